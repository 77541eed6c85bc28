"""Process identity: who a pid is (name, executable, command line, container, service).

``ProcessTable`` (table.py) is the only stateful part; cgroup.py, cmdline.py and naming.py are
pure functions of strings; procfs.py does the bounded reads of /proc; filters.py checks the
agent's ``--comm``/``--pid`` filters. See docs/processes.md.
"""
from l7scope.procs.cgroup import CgroupInfo, parse_cgroup
from l7scope.procs.cmdline import parse_cmdline, redact_args
from l7scope.procs.filters import comm_filter_warnings, pid_warnings, process_names_to_pids
from l7scope.procs.naming import DEFAULT_INTERPRETERS, docker_container_name, service_name
from l7scope.procs.procfs import ProcFS
from l7scope.procs.table import ProcessInfo, ProcessTable

__all__ = [
    "CgroupInfo", "DEFAULT_INTERPRETERS", "ProcFS", "ProcessInfo", "ProcessTable",
    "comm_filter_warnings", "docker_container_name", "parse_cgroup", "parse_cmdline",
    "pid_warnings", "process_names_to_pids", "redact_args", "service_name",
]
