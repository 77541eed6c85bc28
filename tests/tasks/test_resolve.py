"""Running tasks -> processes, the kernel filter (a union), the capture thread's coverage and
the sampling rules each exchange gets."""
from l7scope.config import SamplingConfig, SamplingRule
from l7scope.sampling import Sampler
from l7scope.tasks.model import Rules, Selector, Task, parse_task
from l7scope.tasks.resolve import (Coverage, Proc, kernel_filter, matching, merged,
                                   over_capacity)
from tests.export import make_exchange

PROCS = (Proc(10, "nginx", "/usr/sbin/nginx"), Proc(11, "nginx", "/usr/sbin/nginx"),
         Proc(20, "python3", "/usr/bin/python3.11"), Proc(30, "curl", "/usr/bin/curl"),
         Proc(40, "a-very-long-ser", "/opt/a-very-long-server-name"), Proc(50, "kworker/0:1", None))


def task(tid, rules=None, **selector):
    doc = {"processes": selector, "sampling": rules or {}}
    return Task(tid, parse_task(doc), started_ns=0, started_wall_ns=0)


def ex(pid, name, exe=None, **kw):
    return make_exchange(pid=pid, comm=name, **kw)._replace(name=name, exe=exe)


def pids(found):
    return [p.pid for p in found]


def test_a_selector_matches_by_pid_name_or_exe_pattern():
    assert pids(matching(Selector(pids=(20, 99)), PROCS)) == [20]
    assert pids(matching(Selector(names=("nginx",)), PROCS)) == [10, 11]
    assert pids(matching(Selector(exe=("*/python3*",)), PROCS)) == [20]
    assert pids(matching(Selector(exe=("/usr/bin/*",)), PROCS)) == [20, 30]
    assert pids(matching(Selector(exe=("/usr/bin/[cx]url",)), PROCS)) == [30]
    assert pids(matching(Selector(pids=(30,), names=("nginx",), exe=("*python*",)), PROCS)) == [10, 11, 20, 30]
    # names compare as the kernel keeps them (15 bytes); a kernel thread has no exe
    assert pids(matching(Selector(names=("a-very-long-ser",)), PROCS)) == [40]
    assert pids(matching(Selector(exe=("*",)), PROCS)) == [10, 11, 20, 30, 40]


def test_the_kernel_filter_is_the_union_of_the_running_tasks():
    a = task("t1", pids=[99], exe=["/usr/sbin/nginx"])
    b = task("t2", names=["python3", "curl"])
    resolved = {"t1": matching(a.spec.selector, PROCS), "t2": matching(b.spec.selector, PROCS)}
    assert kernel_filter((a, b), resolved) == (frozenset({99, 10, 11, 20, 30}),
                                               frozenset({"python3", "curl"}))
    assert kernel_filter((), resolved) == (frozenset(), frozenset())


def test_capacity_of_the_kernel_filter():
    assert over_capacity(frozenset(range(1, 1025)), frozenset()) is None
    assert over_capacity(frozenset(range(1, 1026)), frozenset()) == \
        "the running tasks would trace 1025 processes, more than the 1024 the kernel filter holds"
    assert over_capacity(frozenset(), frozenset(str(i) for i in range(257))) == \
        "the running tasks name 257 processes, more than the 256 names the kernel filter holds"


def test_with_no_task_everything_is_admitted_with_the_default_rules():
    cov = Coverage()
    assert cov.admit(ex(20, "python3")) and cov.rules_for(ex(20, "python3")) is None


def test_coverage_admits_only_the_tasks_processes():
    a = task("t1", names=["nginx"])
    b = task("t2", exe=["*/python3*"])
    c = task("t3", pids=[30])
    cov = Coverage((a, b, c), {"t1": (PROCS[0],), "t2": (PROCS[2],), "t3": ()})
    assert cov.covering(ex(11, "nginx")) == (a,)  # by name, even if not resolved yet
    assert cov.covering(ex(77, "other", "/usr/bin/python3.12")) == (b,)  # by exe
    assert cov.covering(ex(20, "renamed")) == (b,)  # by its resolved pid
    assert cov.covering(ex(30, "curl")) == (c,)
    assert not cov.admit(ex(31, "curl", "/usr/bin/curl"))
    assert not cov.admit(ex(12, "nginx-like"))


def test_packet_captures_name_no_process_so_every_task_covers_every_exchange():
    a, b = task("t1", pids=[1]), task("t2", names=["x"])
    cov = Coverage((a, b), {}, packets=True)
    assert cov.covering(ex(None, None)) == (a, b) and cov.admit(ex(None, None))


def test_merged_rules_sample_when_any_task_would():
    r = merged([Rules(min_duration_ms=300, when_4xx=False, capture_response=False),
                Rules(min_duration_ms=100, when_5xx=False, capture_request=False)])
    assert (r.uri_regex, r.min_duration_ms, r.when_4xx, r.when_5xx) == (None, 100, True, True)
    assert (r.settings.capture_request, r.settings.capture_response) == (True, True)
    r = merged([Rules(when_4xx=False, capture_request=False)])
    assert (r.when_4xx, r.settings.capture_request, r.settings.capture_response) == (False, False, True)


def test_a_tasks_uri_regex_limits_its_sampling_to_matching_paths():
    a = task("t1", {"uri_regex": "^/api/", "min_duration_ms": 0}, names=["nginx"])
    b = task("t2", {"min_duration_ms": 1000, "when_4xx": False}, names=["nginx"])
    cov = Coverage((a, b), {})
    rules = cov.rules_for(ex(10, "nginx"))
    api, other = rules.select("/api/x?q=1"), rules.select("/static/app.js")
    assert (api.min_duration_ms, api.when_4xx) == (0, True)  # a and b merged
    assert (other.min_duration_ms, other.when_4xx) == (1000, False)  # b alone
    assert rules.select("/api/y") is api  # cached per set of matching tasks
    only_a = Coverage((a,), {}).rules_for(ex(10, "nginx"))
    assert only_a.select("/static/app.js") is None  # a regex task samples nothing else


def test_the_sampler_samples_each_tasks_processes_by_its_rules():
    sampler = Sampler(SamplingConfig(top_n=5, rules=(SamplingRule(min_duration_ms=500),)))
    fast = task("t1", {"min_duration_ms": 0, "capture_response": False}, names=["nginx"])
    cov = Coverage((fast,), {"t1": ()}, top_n=5)
    sampler.rules_for = cov.rules_for
    kept = sampler.offer(ex(10, "nginx", duration_ms=3))
    assert (kept.reason, kept.request_raw is not None, kept.response_raw) == ("slow", True, None)
    assert sampler.offer(ex(20, "python3", duration_ms=3)) is None  # not covered: the config's rule
    assert sampler.offer(ex(20, "python3", duration_ms=600)).reason == "slow"
    sampler.rules_for = Coverage().rules_for  # the task ended
    assert sampler.offer(ex(10, "nginx", duration_ms=3)) is None
