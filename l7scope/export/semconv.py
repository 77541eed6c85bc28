"""OpenTelemetry semantic conventions (HTTP, RPC) for the exporters: names and attribute values.

Theory of operation
-------------------
Pure functions from one Exchange to the values the conventions ask for, shared by the OTLP
exporter (metrics and spans) and the Zipkin exporter (span names):

* ``http.request.method``: one of the methods the conventions list, else ``_OTHER`` (the
  captured text then goes to ``http.request.method_original`` on spans only). Methods are
  client-supplied text: folding unknown ones keeps metric series bounded.
* span names: gRPC calls ``package.Service/Method`` (from a ``/package.Service/Method``
  path); HTTP ``{method}`` alone, since the route template is a server framework's notion
  the agent does not see (``HTTP`` for an ``_OTHER`` method), as the conventions say.
* ``network.protocol.version``: "1.0"/"1.1" from the request line, "2" for HTTP/2 and gRPC.
* ``server.address``/``server.port``: the server's socket address (the local end for a
  server-side record, the remote end otherwise); ``client.address`` the other end's IP. The
  Host header is not used: it is client-supplied text.
* ``error.type``: set only for failures. HTTP: the status code as text when >= 500 (server
  side and packet captures) or >= 400 (client side); gRPC: the status name (``NOT_FOUND``)
  for a non-OK grpc-status; no response: ``timeout`` when the record's notes say the
  connection went idle, else ``incomplete``.
"""
from __future__ import annotations

import re

from l7scope.exchange import Exchange

# https://opentelemetry.io/docs/specs/semconv/http/http-spans/ : known methods (RFC 9110
# section 9 and PATCH of RFC 5789); anything else is "_OTHER".
KNOWN_METHODS = frozenset(("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST",
                           "PUT", "TRACE"))
OTHER_METHOD = "_OTHER"

# gRPC status codes, https://grpc.github.io/grpc/core/md_doc_statuscodes.html
GRPC_STATUS_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED")

# gRPC over HTTP/2 (PROTOCOL-HTTP2.md): Path = "/" Service-Name "/" {method name}; the service
# name is a fully qualified protobuf name. Bounded so hostile paths never become names.
_GRPC_PATH = re.compile(r"/([A-Za-z_][A-Za-z0-9_.]{0,126})/([A-Za-z_][A-Za-z0-9_]{0,126})")

_VERSIONS = {"HTTP/1.1": "1.1", "HTTP/1.0": "1.0", "HTTP/2": "2", "HTTP/2.0": "2"}


def method(ex: Exchange) -> str:
    """``http.request.method``: the captured method when the conventions know it."""
    m = ex.method or ""
    return m if m in KNOWN_METHODS else OTHER_METHOD


def grpc_route(ex: Exchange) -> tuple[str, str] | None:
    """(rpc.service, rpc.method) of a gRPC call whose path has the gRPC form, else None."""
    if ex.protocol != "grpc" or not ex.path:
        return None
    m = _GRPC_PATH.fullmatch(ex.path)
    return (m.group(1), m.group(2)) if m else None


def span_name(ex: Exchange) -> str:
    """``package.Service/Method`` for gRPC, else the method (``HTTP`` when not a known one)."""
    route = grpc_route(ex)
    if route is not None:
        return f"{route[0]}/{route[1]}"
    m = method(ex)
    return "HTTP" if m == OTHER_METHOD else m


def protocol_version(ex: Exchange) -> str | None:
    if ex.protocol in ("http2", "grpc"):
        return "2"
    version = ex.request.version if ex.request is not None else None
    if version is None and ex.response is not None:
        version = ex.response.version
    return _VERSIONS.get(version or "")


def split_endpoint(endpoint: str | None) -> tuple[str | None, int | None]:
    """("10.0.0.1", 8080) from "10.0.0.1:8080" or "[::1]:8080"; (None, None) when unknown."""
    if not endpoint or ":" not in endpoint:
        return None, None
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")
    number = int(port) if port.isascii() and port.isdigit() and len(port) <= 5 else 0
    return (host or None), (number if 0 < number < 65536 else None)


def server_endpoint(ex: Exchange) -> tuple[str | None, int | None]:
    return split_endpoint(ex.local if ex.side == "server" else ex.remote)


def client_address(ex: Exchange) -> str | None:
    return split_endpoint(ex.remote if ex.side == "server" else ex.local)[0]


def error_type(ex: Exchange) -> str | None:
    """The ``error.type`` of a failed exchange, None when it did not fail."""
    if ex.status is None:
        idle = any("idle" in n or "timeout" in n or "timed out" in n for n in ex.notes)
        return "timeout" if idle else "incomplete"
    if ex.grpc_status not in (None, 0):
        g = ex.grpc_status
        return GRPC_STATUS_NAMES[g] if 0 <= g < len(GRPC_STATUS_NAMES) else str(g)
    if ex.status >= 500 or (ex.side == "client" and ex.status >= 400):
        return str(ex.status)
    return None
