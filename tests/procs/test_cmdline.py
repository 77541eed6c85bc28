"""Command lines: bounded, secrets in arguments redacted."""
import pytest

from l7scope.procs.cmdline import REDACTED, is_secret_name, parse_cmdline, redact_args, render

R = REDACTED


def nul(*args: str) -> bytes:
    return b"".join(a.encode() + b"\0" for a in args)


@pytest.mark.parametrize("args, want", [
    (["app", "--password=hunter2", "-v"], ["app", f"--password={R}", "-v"]),
    (["app", "--password", "hunter2", "-v"], ["app", "--password", R, "-v"]),
    (["app", "--db-passwd", "x", "--api-key=k1", "--apikey", "k2", "--API_KEY=k3"],
     ["app", "--db-passwd", R, f"--api-key={R}", "--apikey", R, f"--API_KEY={R}"]),
    (["app", "-token=abc", "--client-secret", "s", "--access_token=t"],
     ["app", f"-token={R}", "--client-secret", R, f"--access_token={R}"]),
    (["env", "DB_PASSWORD=pw", "GITHUB_TOKEN=ghp", "HOME=/root", "app"],
     ["env", f"DB_PASSWORD={R}", f"GITHUB_TOKEN={R}", "HOME=/root", "app"]),
    # a flag with no value: the next option is not its value
    (["app", "--token", "--verbose"], ["app", "--token", "--verbose"]),
    # where the secret is kept is not the secret
    (["app", "--password-file", "/run/secrets/db", "--token-path=/t"],
     ["app", "--password-file", "/run/secrets/db", "--token-path=/t"]),
    (["psql", "postgres://alice:s3cr3t@db:5432/app"], ["psql", f"postgres://alice:{R}@db:5432/app"]),
    (["app", "--db=mysql://u:p@h/x", "http://h/x@y"], ["app", f"--db=mysql://u:{R}@h/x", "http://h/x@y"]),
    (["app", "--port=8080", "--name", "web"], ["app", "--port=8080", "--name", "web"]),
    # a process title rewritten as one string: word by word
    (["worker --password hunter2 --secret=x  done"], [f"worker --password {R} --secret={R}  done"]),
])
def test_redaction(args, want):
    assert redact_args(args) == want
    got, cut = parse_cmdline(nul(*args))
    assert list(got) == want and not cut


def test_secret_names():
    assert is_secret_name("--PASSWORD") and is_secret_name("db_password") and is_secret_name("--api-key")
    assert not is_secret_name("--port") and not is_secret_name("--password-file")


def test_no_trailing_nul_and_bad_utf8():
    assert parse_cmdline(b"a\0b") == (("a", "b"), False)
    assert parse_cmdline(b"a\xff\0") == (("a\ufffd",), False)
    assert parse_cmdline(b"") == ((), False)


def test_bounded_and_cut_marked():
    raw = nul("app", "x" * 5000)
    args, cut = parse_cmdline(raw[:101], max_bytes=100)
    assert cut and args == ("app", "x" * 96)
    assert render(args, cut, 100) == "app " + "x" * 96 + "..."
    assert len(render(("y" * 300,), False, 100)) == 103


def test_cut_inside_url_password_shows_none_of_it():
    raw = nul("psql", "postgres://alice:s3cr3t-and-more@db")
    args, cut = parse_cmdline(raw, max_bytes=len("psql\0postgres://alice:s3c"))
    assert cut and args == ("psql", f"postgres://alice:{R}")


def test_cut_after_secret_flag_value_redacted():
    args, cut = parse_cmdline(nul("app", "--password", "hunter2"), max_bytes=17)
    assert cut and args == ("app", "--password", R)


def test_random_input_never_raises():
    import random

    from l7scope.procs.cgroup import parse_cgroup
    from l7scope.procs.procfs import parse_stat, parse_tgid
    rng = random.Random(11)
    alphabet = b"\0 :/=-@()\n" + bytes(range(0x20, 0x7f)) + b"\xff\xc3"
    for _ in range(3000):
        raw = bytes(rng.choice(alphabet) for _ in range(rng.randrange(0, 120)))
        args, cut = parse_cmdline(raw, max_bytes=rng.randrange(1, 130))
        assert all(isinstance(a, str) for a in args)
        text = raw.decode("utf-8", "replace")
        parse_cgroup(text)
        parse_stat(text)
        parse_tgid(text)
