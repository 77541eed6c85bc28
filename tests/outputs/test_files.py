"""Output files: created 0600, never through a link, refused when someone else could swap them."""
from __future__ import annotations

import os
import stat
import sys

import pytest

from l7scope.outputs.files import open_output
from l7scope.outputs.jsonl import JsonlSink

OTHER_UID = 65534  # nobody


@pytest.fixture
def sticky_dir(tmp_path):
    """A directory like /tmp: world-writable with the sticky bit."""
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(0o1777)
    return d


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_new_output_is_created_0600_and_written(tmp_path):
    path = tmp_path / "out.jsonl"
    sink = JsonlSink(str(path))
    sink.write({"a": 1})
    sink.close()
    assert _mode(path) == 0o600
    assert path.read_text() == '{"a":1}\n'


def test_mode_can_be_given(tmp_path):
    old = os.umask(0)
    try:
        JsonlSink(str(tmp_path / "m.jsonl"), mode=0o640).close()
    finally:
        os.umask(old)
    assert _mode(tmp_path / "m.jsonl") == 0o640


def test_existing_own_file_is_appended_and_keeps_its_mode(sticky_dir):
    path = sticky_dir / "mine.jsonl"
    path.write_text('{"old":true}\n')
    path.chmod(0o644)
    sink = JsonlSink(str(path))
    sink.write({"new": True})
    sink.close()
    assert path.read_text() == '{"old":true}\n{"new":true}\n'
    assert _mode(path) == 0o644


def test_symlink_planted_in_sticky_dir_is_refused_and_target_untouched(tmp_path, sticky_dir):
    target = tmp_path / "root-only"
    target.write_text("secret config\n")
    target.chmod(0o600)
    link = sticky_dir / "x.jsonl"
    link.symlink_to(target)
    with pytest.raises(OSError) as err:
        JsonlSink(str(link))
    assert err.value.strerror == "is a symbolic link; refusing to follow it"
    assert err.value.filename == str(link)
    assert target.read_text() == "secret config\n"


def test_dangling_symlink_is_refused_and_nothing_created(tmp_path):
    link = tmp_path / "x.jsonl"
    link.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(OSError, match="symbolic link"):
        open_output(str(link))
    assert not (tmp_path / "would-be-created").exists()


def test_file_of_another_user_in_sticky_dir_is_refused(sticky_dir):
    path = sticky_dir / "theirs.jsonl"
    path.write_text("")
    os.chown(path, OTHER_UID, OTHER_UID)
    with pytest.raises(OSError) as err:
        JsonlSink(str(path))
    assert "owned by another user (uid 65534)" in err.value.strerror
    assert "\n" not in str(err.value)
    assert path.read_text() == ""


def test_file_of_another_user_outside_shared_dir_is_allowed(tmp_path):
    path = tmp_path / "given.jsonl"
    path.write_text("")
    os.chown(path, OTHER_UID, OTHER_UID)
    sink = JsonlSink(str(path))
    sink.write({"k": 1})
    sink.close()
    assert path.read_text() == '{"k":1}\n'


def test_fifo_is_refused_without_hanging(sticky_dir):
    path = sticky_dir / "pipe.jsonl"
    os.mkfifo(path)
    with pytest.raises(OSError, match="not a regular file"):
        open_output(str(path))


def test_fifo_with_a_reader_is_refused_too(tmp_path):
    path = tmp_path / "pipe.jsonl"
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        with pytest.raises(OSError, match="not a regular file"):
            open_output(str(path))
    finally:
        os.close(reader)


def test_directory_is_refused(tmp_path):
    with pytest.raises(OSError):
        open_output(str(tmp_path))


def test_dash_is_stdout():
    sink = JsonlSink("-")
    assert sink._f is sys.stdout
    sink.close()


def test_the_null_device_is_accepted_but_other_devices_are_not(tmp_path):
    # the null device is a deliberate sink (benchmarks, dry runs); any other device is refused
    f = open_output("/dev/null")
    f.write("x\n")
    f.close()
    with pytest.raises(OSError, match="not a regular file"):
        open_output("/dev/zero")
