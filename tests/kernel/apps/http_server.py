"""A real HTTP/1.1 server for kernel tests (run as its own process).

    python http_server.py PORT
Endpoints: /hello (200 text), /status/N (status N), /slow?ms=N (sleeps N ms), /chunked?n=K
(chunked body of K chunks with a trailer), /big?bytes=N (N-byte body), POST /echo (echoes the body).
Prints "ready" on stdout once listening.
"""
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Served-By", "l7scope-test")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/hello":
            return self._send(200, b"hello world\n")
        if url.path.startswith("/status/"):
            code = int(url.path.rsplit("/", 1)[1])
            return self._send(code, f"status {code}\n".encode())
        if url.path == "/slow":
            time.sleep(int(q.get("ms", "100")) / 1000)
            return self._send(200, b"slow\n")
        if url.path == "/big":
            return self._send(200, b"x" * int(q.get("bytes", "100000")), "application/octet-stream")
        if url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum")
            self.end_headers()
            for i in range(int(q.get("n", "3"))):
                part = f"chunk-{i}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\nX-Checksum: abc123\r\n\r\n")
            return None
        return self._send(404, b"not found\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        self._send(200, body, self.headers.get("Content-Type", "application/octet-stream"))


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()
