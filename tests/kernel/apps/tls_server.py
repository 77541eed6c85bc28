"""The test HTTP/1.1 server (http_server.py) over TLS: python tls_server.py PORT CERT KEY."""
import ssl
import sys

from http_server import Handler, ThreadingHTTPServer

if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[2], sys.argv[3])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
