"""The test HTTP server (http_server.py) under a process name of its own.

    python named_server.py NAME PORT
The main thread renames itself (prctl PR_SET_NAME) before any thread starts, so the process
and every worker thread are named NAME (at most 15 bytes): two of these are two distinct
processes by name, as a task or --comm tells them apart.
"""
import ctypes
import os
import sys
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_server import Handler  # noqa: E402

PR_SET_NAME = 15

if __name__ == "__main__":
    name = sys.argv[1].encode()[:15]
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name, 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_NAME) failed: {os.strerror(ctypes.get_errno())}")
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()
