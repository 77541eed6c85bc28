"""Process exec and exit records from the kernel (sched tracepoints) into the process table."""
from __future__ import annotations

import shutil
import subprocess
import threading
import time

from l7scope.capture.proc_events import ProcessExec, ProcessExit, feed_process_table
from tests.kernel.conftest import cannot_run


class Recorder:
    def __init__(self):
        self.calls = []

    def on_exec(self, pid, ts=None, comm=None, filename=None):
        self.calls.append(("exec", pid, comm, filename))

    def on_exit(self, pid, ts=None):
        self.calls.append(("exit", pid))


def test_exec_and_exit_of_a_process_reach_the_table(tmp_path):
    from l7scope.capture.kernel import CaptureUnavailable, KernelCapture, KernelOptions
    try:  # pid 1 only: no syscall traffic, exec and exit records come from every process
        capture = KernelCapture(KernelOptions(pids=(1,), tls=False))
    except CaptureUnavailable as e:
        cannot_run(str(e))
    events, stop = [], threading.Event()

    def pump():
        while not stop.is_set():
            events.extend(capture.poll(50))
    thread = threading.Thread(target=pump)
    thread.start()
    child = tmp_path / "l7t-sleeper"  # a name no other process on the host has
    shutil.copy("/bin/sleep", child)
    try:  # a shell that runs a child and exits: two execs, two exits
        shell = subprocess.run(["/bin/sh", "-c", f"{child} 0.1; echo $$"], check=True,
                               capture_output=True, text=True)
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
        events += capture.drain()
        capture.close()
    shell_pid = int(shell.stdout)
    table = Recorder()
    feed_process_table(table, [e for e in events if type(e) in (ProcessExec, ProcessExit)])
    child_pid = next(c[1] for c in table.calls if c[0] == "exec" and c[3] == str(child))
    mine = [c for c in table.calls if c[1] in (shell_pid, child_pid)]
    assert mine == [("exec", shell_pid, "sh", "/bin/sh"),
                    ("exec", child_pid, "l7t-sleeper", str(child)),
                    ("exit", child_pid), ("exit", shell_pid)]
