"""A protocol l7scope does not recognise, over TCP, from processes with names of their own.

    python raw_tcp.py server NAME PORT
    python raw_tcp.py client NAME PORT CONNECTIONS REQUEST_BYTES REPLY_BYTES

Each connection: the client sends a 4-byte length-prefixed binary request (REQUEST_BYTES in
all, the prefix included) and reads the server's reply (REPLY_BYTES, the length asked for in
the request), then closes. The main thread renames itself (prctl PR_SET_NAME) first, so the
process is named NAME (at most 15 bytes). The client prints "done" when every reply is read.
"""
import ctypes
import os
import socket
import struct
import sys
import threading

PR_SET_NAME = 15


def rename(name: str) -> None:
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0) != 0:
        sys.exit(f"prctl(PR_SET_NAME) failed: {os.strerror(ctypes.get_errno())}")


def read_exactly(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def serve_one(conn: socket.socket) -> None:
    with conn:
        total, reply = struct.unpack("!HH", read_exactly(conn, 4))
        read_exactly(conn, total - 4)
        conn.sendall(bytes((i * 7) % 251 for i in range(reply)))


def server(port: int) -> None:
    srv = socket.create_server(("127.0.0.1", port))
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve_one, args=(conn,), daemon=True).start()


def client(port: int, connections: int, request: int, reply: int) -> None:
    for _ in range(connections):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(struct.pack("!HH", request, reply) + b"\x00\xffL7" * ((request - 4) // 4)
                      + b"\x00" * ((request - 4) % 4))
            read_exactly(s, reply)
    print("done", flush=True)


if __name__ == "__main__":
    role, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rename(name)
    if role == "server":
        server(port)
    else:
        client(port, *(int(a) for a in sys.argv[4:7]))
