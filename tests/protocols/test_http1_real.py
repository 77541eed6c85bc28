"""Http1Analyzer on bytes recorded between curl 7.88.1 and nginx 1.22.1 (one connection each,
recorded with a byte-for-byte relay; the nginx Date header is as it was sent)."""
from __future__ import annotations

from tests.protocols.test_http1 import C, S, exchanges, run_all_ways

# curl http://127.0.0.1:18932/index.html http://127.0.0.1:18932/nf   (one keep-alive connection)
CURL_TWO_GETS = (
    b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:18932\r\nUser-Agent: curl/7.88.1\r\n"
    b"Accept: */*\r\n\r\n",
    b"GET /nf HTTP/1.1\r\nHost: 127.0.0.1:18932\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
)
NGINX_200_AND_404 = (
    b'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 19:58:26 GMT\r\n'
    b'Content-Type: text/html\r\nContent-Length: 17\r\n'
    b'Last-Modified: Tue, 24 Nov 2026 19:58:24 GMT\r\nConnection: keep-alive\r\n'
    b'ETag: "6b05ec60-11"\r\nAccept-Ranges: bytes\r\n\r\nhello from nginx\n',
    b'HTTP/1.1 404 Not Found\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 19:58:26 GMT\r\n'
    b'Content-Type: text/html\r\nContent-Length: 153\r\nConnection: keep-alive\r\n\r\n'
    b'<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n'
    b'<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n'
    b'</body>\r\n</html>\r\n',
)
# curl --compressed -d 'a=1&b=2' http://127.0.0.1:18932/chunked  (nginx gzip -> chunked)
CURL_POST = (
    b"POST /chunked HTTP/1.1\r\nHost: 127.0.0.1:18932\r\nUser-Agent: curl/7.88.1\r\n"
    b"Accept: */*\r\nAccept-Encoding: gzip\r\nContent-Length: 7\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\n\r\na=1&b=2")
NGINX_CHUNKED_GZIP = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 19:58:27 GMT\r\n"
    b"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n"
    b"Content-Encoding: gzip\r\n\r\n1d\r\n"
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\x03K\xce(\xcd\xcbV\xc8M\xe5\x02\x00\x8aD\xc7\xfa\t"
    b"\x00\x00\x00\r\n0\r\n\r\n")
# curl -I URL --next -H 'If-None-Match: "6b05ec60-11"' URL
CURL_HEAD_THEN_CONDITIONAL = (
    b'HEAD /index.html HTTP/1.1\r\nHost: 127.0.0.1:18932\r\nUser-Agent: curl/7.88.1\r\n'
    b'Accept: */*\r\n\r\n'
    b'GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:18932\r\nUser-Agent: curl/7.88.1\r\n'
    b'Accept: */*\r\nIf-None-Match: "6b05ec60-11"\r\n\r\n')
NGINX_HEAD_200_THEN_304 = (
    b'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 19:58:31 GMT\r\n'
    b'Content-Type: text/html\r\nContent-Length: 17\r\n'
    b'Last-Modified: Tue, 24 Nov 2026 19:58:24 GMT\r\nConnection: keep-alive\r\n'
    b'ETag: "6b05ec60-11"\r\nAccept-Ranges: bytes\r\n\r\n'
    b'HTTP/1.1 304 Not Modified\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 19:58:31 GMT\r\n'
    b'Last-Modified: Tue, 24 Nov 2026 19:58:24 GMT\r\nConnection: keep-alive\r\n'
    b'ETag: "6b05ec60-11"\r\n\r\n')


def test_curl_nginx_keep_alive_200_then_404():
    script = [C(CURL_TWO_GETS[0]), S(NGINX_200_AND_404[0]), C(CURL_TWO_GETS[1]),
              S(NGINX_200_AND_404[1])]
    first, second = exchanges(run_all_ways(script))
    assert first.request.headers == (("Host", "127.0.0.1:18932"), ("User-Agent", "curl/7.88.1"),
                                     ("Accept", "*/*"))
    assert (first.request.authority, first.request.wire_bytes) == ("127.0.0.1:18932", 89)
    assert (first.response.status, first.response.body) == (200, b"hello from nginx\n")
    assert first.response.header("ETag") == '"6b05ec60-11"'
    assert first.response.wire_bytes == len(NGINX_200_AND_404[0])
    assert (second.request.path, second.response.status, second.response.body_len) == (
        "/nf", 404, 153)
    assert second.response.body.endswith(b"</html>\r\n")


def test_curl_post_and_nginx_gzip_chunked():
    (ex,) = exchanges(run_all_ways([C(CURL_POST), S(NGINX_CHUNKED_GZIP)]))
    assert (ex.request.method, ex.request.body, ex.request.wire_bytes) == (
        "POST", b"a=1&b=2", len(CURL_POST))
    assert (ex.response.body_len, ex.response.body[:2], ex.response.complete) == (
        29, b"\x1f\x8b", True)
    assert ex.response.wire_bytes == len(NGINX_CHUNKED_GZIP)


def test_curl_head_and_conditional_get_with_nginx_304():
    script = [C(CURL_HEAD_THEN_CONDITIONAL), S(NGINX_HEAD_200_THEN_304)]
    head, cond = exchanges(run_all_ways(script))
    assert (head.request.method, head.response.status, head.response.body_len) == (
        "HEAD", 200, 0)
    assert head.response.header("content-length") == "17"
    assert (cond.request.header("if-none-match"), cond.response.status) == (
        '"6b05ec60-11"', 304)
    assert head.response.wire_bytes + cond.response.wire_bytes == len(NGINX_HEAD_200_THEN_304)
