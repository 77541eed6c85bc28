"""The errors a user sees: each one line on stderr and exit status 2 (cli.py prints them).

Modules below the command line raise these for problems the user can fix (a missing file, a
busy port, a bad config); anything else that escapes is our bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; ``str(e)`` is the one line printed after "l7scope: "."""

    exit_status = 2


class ConfigProblem(UserError):
    """The config file cannot be read or is not valid."""


class CaptureFileError(UserError):
    """A capture file that cannot be analysed at all (missing, unreadable, not a capture)."""


class CaptureUnavailableError(UserError):
    """Live capture cannot start (eBPF not loadable, no such interface, missing privilege)."""


class OutputError(UserError):
    """An output cannot open: a file, the store, the web UI's or the metrics' listener."""
