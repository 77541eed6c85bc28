"""A failing HTTP/1.1 server for the redaction kernel test (run as its own process).

    python traced_error_server.py PORT
Every POST is answered "500 Internal Server Error" with the request body echoed back as
application/json and a session cookie: "Set-Cookie: session=<SESSION>". Prints "ready".
"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SESSION = "srv-session-Zq81"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", f"session={SESSION}; HttpOnly")
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()
