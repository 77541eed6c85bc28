"""Analysis tasks, the sans-IO part: validation (one-line reasons), the bounded table, expiry
against an injected clock, ids."""
import json

import pytest

from l7scope.tasks.model import (DEFAULT_DURATION_S, MAX_BODY_BYTES, Invalid, Rules, Selector,
                                 TaskSpec, TaskTable, parse_body, parse_task)

S = 1_000_000_000


class Clock:
    def __init__(self, now=100 * S):
        self.now = now

    def __call__(self):
        return self.now


def spec(**processes):
    return TaskSpec(Selector(**processes or {"names": ("nginx",)}))


def test_a_full_task_parses_to_its_values():
    got = parse_task({"processes": {"pids": [42, 7, 42], "names": ["nginx"], "exe": ["*/python3*"]},
                      "sampling": {"uri_regex": "^/api/", "min_duration_ms": 150, "when_4xx": False,
                                   "capture_response": False},
                      "duration_s": 30.5, "label": "checkout"})
    assert got.selector == Selector(pids=(42, 7), names=("nginx",), exe=("*/python3*",))
    assert got.rules == Rules(uri_regex="^/api/", min_duration_ms=150, when_4xx=False,
                              when_5xx=True, capture_request=True, capture_response=False)
    assert got.rules.pattern.search("/api/x") and not got.rules.pattern.search("/x/api/")
    assert (got.duration_s, got.label) == (30.5, "checkout")


def test_defaults_are_ten_minutes_and_the_configs_default_rule():
    got = parse_task({"processes": {"pids": [1]}})
    assert got.duration_s == DEFAULT_DURATION_S == 600
    assert got.rules == Rules()
    rule = got.rules.sampling_rule()
    assert (rule.uri_regex, rule.min_duration_ms, rule.when_4xx, rule.when_5xx) == (None, 500, True, True)
    assert (rule.settings.capture_request, rule.settings.capture_response) == (True, True)


@pytest.mark.parametrize("doc, reason", [
    (None, "body: missing"),
    ([], "body: must be a JSON object"),
    ({}, "processes: missing"),
    ({"processes": {}}, "processes: name at least one process (pids, names or exe)"),
    ({"processes": {"pids": []}}, "processes: name at least one process (pids, names or exe)"),
    ({"processes": {"pid": [1]}}, "processes.'pid': unknown field (known: pids, names, exe)"),
    ({"processes": {"pids": [1]}, "extra": 1}, "'extra': unknown field (known: processes, sampling, duration_s, label)"),
    ({"processes": {"pids": "1"}}, "processes.pids: must be a list"),
    ({"processes": {"pids": [0]}}, "processes.pids[0]: must be a process id (1..4194304)"),
    ({"processes": {"pids": [1, True]}}, "processes.pids[1]: must be a process id (1..4194304)"),
    ({"processes": {"pids": [4194305]}}, "processes.pids[0]: must be a process id (1..4194304)"),
    ({"processes": {"pids": list(range(1, 1026))}}, "processes.pids: more than 1024 entries"),
    ({"processes": {"names": [""]}}, "processes.names[0]: must be a non-empty process name"),
    ({"processes": {"names": ["a\nb"]}}, "processes.names[0]: must be a non-empty process name"),
    ({"processes": {"names": ["a-very-long-server-name"]}},
     "processes.names[0]: 'a-very-long-server-name' is longer than the 15 bytes the kernel keeps "
     "of a process name; use 'a-very-long-ser'"),
    ({"processes": {"exe": ["x" * 257]}}, "processes.exe[0]: must be a path pattern of 1..256 characters"),
    ({"processes": {"exe": ["/a"] * 17}}, "processes.exe: more than 16 entries"),
    ({"processes": {"pids": [1]}, "sampling": {"uri_regex": "("}},
     "sampling.uri_regex: not a regular expression: missing ), unterminated subpattern at position 0"),
    ({"processes": {"pids": [1]}, "sampling": {"uri_regex": "(a+)+$"}},
     "sampling.uri_regex: nested repetition such as (a+)+ or a repeated alternation such as (a|aa)+ is not allowed"),
    ({"processes": {"pids": [1]}, "sampling": {"uri_regex": "a" * 257}},
     "sampling.uri_regex: longer than 256 characters"),
    ({"processes": {"pids": [1]}, "sampling": {"uri_regex": ""}}, "sampling.uri_regex: must be a non-empty string"),
    ({"processes": {"pids": [1]}, "sampling": {"min_duration_ms": -1}},
     "sampling.min_duration_ms: must be a number from 0 to 8.64e+07"),
    ({"processes": {"pids": [1]}, "sampling": {"when_5xx": "yes"}}, "sampling.when_5xx: must be true or false"),
    ({"processes": {"pids": [1]}, "sampling": {"slow": 1}},
     "sampling.'slow': unknown field (known: uri_regex, min_duration_ms, when_4xx, when_5xx, capture_request, capture_response)"),
    ({"processes": {"pids": [1]}, "duration_s": 0}, "duration_s: must be a number from 1 to 86400"),
    ({"processes": {"pids": [1]}, "duration_s": 86401}, "duration_s: must be a number from 1 to 86400"),
    ({"processes": {"pids": [1]}, "duration_s": "60"}, "duration_s: must be a number from 1 to 86400"),
    ({"processes": {"pids": [1]}, "label": "x" * 101}, "label: must be printable text of at most 100 characters"),
])
def test_bad_input_is_one_line_naming_where(doc, reason):
    got = parse_task(doc)
    assert got == Invalid(reason)
    assert "\n" not in got.reason


def test_bodies_bounded_and_json():
    assert parse_body(b"x" * (MAX_BODY_BYTES + 1)) == Invalid("body: more than 16384 bytes")
    assert parse_body(b"\xff").reason.startswith("body: not JSON: ")
    assert parse_body(b"{").reason == "body: not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    assert parse_body(b"[" * 16_000).reason.startswith("body: not JSON: ")  # no RecursionError
    assert parse_body(json.dumps({"processes": {"pids": [9]}}).encode()).selector.pids == (9,)


def test_ids_count_up_and_tasks_expire_at_their_end():
    clock = Clock()
    table = TaskTable(clock, lambda: 5_000 * S)
    a = table.start(TaskSpec(Selector(pids=(1,)), duration_s=10))
    clock.now += 2 * S
    b = table.start(TaskSpec(Selector(pids=(2,)), duration_s=10))
    assert (a.id, b.id) == ("t1", "t2")
    assert (a.started_wall_ns, a.remaining_s(clock.now)) == (5_000 * S, 8.0)
    clock.now = a.ends_ns - 1
    assert table.expire() == ()
    clock.now = a.ends_ns
    (ended,) = table.expire()
    assert (ended.id, ended.end_reason, ended.ended_ns, ended.remaining_s(clock.now)) == ("t1", "expired", a.ends_ns, 0.0)
    assert [t.id for t in table.running()] == ["t2"] and [t.id for t in table.ended()] == ["t1"]
    clock.now += 100 * S  # a late look ends t2 at its own end, not at the look
    (late,) = table.expire()
    assert late.ended_ns == b.ends_ns


def test_stop_ends_now_and_repeats_are_harmless():
    clock = Clock()
    table = TaskTable(clock, clock)
    t = table.start(spec())
    clock.now += 3 * S
    stopped = table.stop(t.id)
    assert (stopped.end_reason, stopped.ended_ns, stopped.running) == ("stopped", clock.now, False)
    assert table.stop(t.id) == stopped  # already ended: unchanged
    assert table.stop("t99") is None
    assert table.running() == ()


def test_running_and_ended_tasks_are_bounded():
    clock = Clock()
    table = TaskTable(clock, clock, max_tasks=3, max_ended=2)
    for _ in range(3):
        table.start(spec())
    assert table.start(spec()) == Invalid("3 tasks are running, the most there can be; stop one first")
    for t in table.running():
        table.stop(t.id)
    assert [t.id for t in table.ended()] == ["t2", "t3"]  # the oldest forgotten
    assert table.start(spec()).id == "t4"


def test_version_moves_on_every_change_and_withdraw_forgets():
    clock = Clock()
    table = TaskTable(clock, clock)
    v0 = table.version
    t = table.start(spec())
    table.withdraw(t.id)
    assert table.running() == () and table.ended() == () and table.get(t.id) is None
    assert table.version == v0 + 2
