"""A real grpcio server and client for kernel tests (raw-bytes messages, no generated code).

    python grpc_app.py server PORT            prints "ready"
    python grpc_app.py client PORT SCRIPT     SCRIPT: comma-separated steps, run in order:
        unary:N        N unary Echo calls with metadata x-l7-custom: value-<i>
        stream:K       one ServerStream call returning K messages
        fail           one Fail call (NOT_FOUND, details "no such item")
        wait           print "waiting" and wait for a line on stdin (the channel stays open)
    The client prints "done" at the end.
"""
import sys
from concurrent import futures

import grpc

SERVICE = "l7scope.test.Echo"


def _ident(b):
    return b


def serve(port: int) -> None:
    def echo(request, context):
        context.set_trailing_metadata((("x-l7-trailer", "echoed"),))
        return request

    def server_stream(request, context):
        for i in range(int(request.decode() or "1")):
            yield f"item-{i}".encode()

    def fail(request, context):
        context.abort(grpc.StatusCode.NOT_FOUND, "no such item")

    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo, _ident, _ident),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, _ident, _ident),
        "Fail": grpc.unary_unary_rpc_method_handler(fail, _ident, _ident),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


def client(port: int, script: str) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        echo = ch.unary_unary(f"/{SERVICE}/Echo", _ident, _ident)
        stream = ch.unary_stream(f"/{SERVICE}/ServerStream", _ident, _ident)
        fail = ch.unary_unary(f"/{SERVICE}/Fail", _ident, _ident)
        n = 0
        for step in script.split(","):
            kind, _, arg = step.partition(":")
            if kind == "unary":
                for _ in range(int(arg)):
                    assert echo(f"hello-{n}".encode(), metadata=(("x-l7-custom", f"value-{n}"),)) == f"hello-{n}".encode()
                    n += 1
            elif kind == "stream":
                assert len(list(stream(arg.encode()))) == int(arg)
            elif kind == "fail":
                try:
                    fail(b"x")
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.NOT_FOUND
            elif kind == "wait":
                print("waiting", flush=True)
                sys.stdin.readline()
    print("done", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(int(sys.argv[2]))
    else:
        client(int(sys.argv[2]), sys.argv[3])
