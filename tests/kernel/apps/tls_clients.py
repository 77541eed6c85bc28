"""TLS clients for kernel tests (each run as its own process).

    python tls_clients.py https PORT N     N GET /boom?py=I requests with Python's ssl module
        (libssl): the first half on one kept-alive connection, the rest one connection each
    python tls_clients.py grpc PORT CERT N  N unary Echo calls and one failing call (NOT_FOUND)
        over TLS with grpcio (its own BoringSSL, linked in), trusting CERT for "localhost"
Prints "done" at the end.
"""
import http.client
import ssl
import sys

SERVICE = "l7scope.test.Echo"


def https(port: int, n: int) -> None:
    ctx = ssl._create_unverified_context()  # the test's self-signed certificate
    kept = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    for i in range(n):
        conn = kept if i < n // 2 else http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
        conn.request("GET", f"/boom?py={i}")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"boom\n", resp.status
        if conn is not kept:
            conn.close()
    kept.close()


def grpc_calls(port: int, cert: str, n: int) -> None:
    import grpc

    with open(cert, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    options = (("grpc.ssl_target_name_override", "localhost"),)
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options) as ch:
        echo = ch.unary_unary(f"/{SERVICE}/Echo")
        fail = ch.unary_unary(f"/{SERVICE}/Fail")
        for i in range(n):
            assert echo(f"hello-{i}".encode()) == f"hello-{i}".encode()
        try:
            fail(b"x")
            raise AssertionError("Fail succeeded")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.NOT_FOUND, e.code()


if __name__ == "__main__":
    if sys.argv[1] == "https":
        https(int(sys.argv[2]), int(sys.argv[3]))
    else:
        grpc_calls(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
    print("done", flush=True)
