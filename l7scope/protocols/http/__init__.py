"""HTTP/1.x, HTTP/2 and gRPC (registry entries in spec.py; detection in detection.py)."""
from l7scope.protocols.http.spec import HTTP1, HTTP2

__all__ = ["HTTP1", "HTTP2"]
