"""HTTP plumbing: a threaded HTTP/1.1 keep-alive server on 127.0.0.1, request reading, fault injection, writing.

Every accepted socket gets ``TCP_NODELAY`` (without it a small response waits
~40 ms for Nagle + delayed ACK), and a response (headers + body) goes out in
one ``sendall``. What a request means is decided by the application object
(:class:`Router`): ``route(request) -> (side, handler)``.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional, Protocol
from urllib.parse import parse_qsl, unquote

from .faults import SIDES, Decision, Faults
from .wire import Request, Response

Handler = Callable[[Request], Response]
MAX_BODY_BYTES = 64 * 1024 * 1024
IDLE_TIMEOUT_S = 120.0
_LINGER_RST = struct.pack("ii", 1, 0)


class Router(Protocol):
    faults: Faults

    def route(self, req: Request) -> tuple[str, Handler]: ...

    def fault_response(self, side: str, kind: str, req: Request) -> Response: ...

    def throttle(self, side: str, req: Request) -> Optional[Response]: ...

    def count(self, side: str, status: int) -> None: ...


class _Reset(Exception):
    """Raised inside a handler to drop the connection with a TCP RST."""


class _BadRequest(Exception):
    pass


def _host_without_port(value: str) -> str:
    host = value.strip().lower()
    if host.startswith("["):
        return host.split("]")[0] + "]"
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], router: Router) -> None:
        self.router = router
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, RequestHandler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._conns_lock:
            self._conns.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
        try:
            reset = struct.unpack("ii", request.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8))[0] == 1
        except OSError:
            reset = False
        if reset:  # no FIN first: close with linger 0 sends the RST
            request.close()
            return
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server: EmulatorHTTPServer
    _server_header = "tencent-ci"
    # headers + body in one sendall (False = http.server's usual two writes; only the bench's baseline uses it)
    single_write = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the stores keep what the tests need

    def version_string(self) -> str:
        return self._server_header

    def handle(self) -> None:
        self.close_connection = True
        try:
            self.handle_one_request()
            while not self.close_connection:
                self.handle_one_request()
        except _Reset:
            pass
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    # -- reading ---------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY_BYTES:
                    raise _BadRequest("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        n = int(length)
        if n < 0 or n > MAX_BODY_BYTES:
            raise _BadRequest("bad Content-Length")
        return self.rfile.read(n)

    def _request(self) -> Request:
        raw_path, _, qs = self.path.partition("?")
        try:
            body = self._read_body()
        except ValueError as e:
            raise _BadRequest(str(e)) from None
        return Request(
            method=self.command,
            path=unquote(raw_path) or "/",
            raw_path=raw_path,
            query=dict(parse_qsl(qs, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            host=_host_without_port(self.headers.get("Host") or ""),
        )

    # -- serving ---------------------------------------------------------------------------------
    def _serve(self) -> None:
        router = self.server.router
        try:
            req = self._request()
        except _BadRequest as e:
            self._write(Response(400, str(e).encode(), content_type="text/plain"), "HEAD" == self.command,
                        Decision(None))
            self.close_connection = True
            return
        arrived = time.monotonic()
        side, handler = router.route(req)
        throttled = router.throttle(side, req) if side in SIDES else None
        if throttled is not None:
            # over the account's cap (checked on arrival): no fault draw, no processing
            router.count(side, throttled.status)
            _sleep_until(arrived + router.faults.latency_s(side))
            self._write(throttled, req.method == "HEAD", Decision(None))
            return
        decision = router.faults.decide(side) if side in SIDES else Decision(None)
        kind = decision.kind
        if kind == "reset":
            _sleep_until(arrived + decision.latency_s)
            self._reset()
        mutating = req.method not in ("GET", "HEAD")
        if kind in ("fail", "slowdown") or (kind in ("truncate", "garbage", "wrong_content_type") and mutating):
            # the request is lost before it is processed: no state changes
            resp = router.fault_response(side, kind, req)
        else:
            resp = handler(req)
        router.count(side, resp.status)
        # the latency counts from the request's arrival: the work of answering it happens inside it, so
        # 16 simultaneous requests are all answered `latency` after they arrived (the emulator adds no
        # delay of its own on top)
        _sleep_until(arrived + decision.latency_s)
        if kind == "reset_after":
            self._reset()
        self._write(resp, req.method == "HEAD" or resp.head_only, decision)

    def _reset(self) -> None:
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        except OSError:
            pass
        self.close_connection = True
        raise _Reset

    def _write(self, resp: Response, head: bool, decision: Decision) -> None:
        kind = decision.kind
        body = resp.body
        status = resp.status
        ctype = resp.content_type
        router = self.server.router
        if kind == "garbage":
            status = 200
            if router.faults.choice([True, False]):
                body = b"<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>"
                ctype = "text/html"
            else:
                body = router.faults.randbytes(64)
                ctype = "application/octet-stream"
        elif kind == "wrong_content_type":
            ctype = "text/html; charset=utf-8"
        declared = len(body)
        send = body
        if kind == "truncate":
            status = 200 if status >= 400 else status
            declared = max(len(body), 64)
            send = body[: len(body) // 2]
            self.close_connection = True
        self._server_header = resp.server
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(declared))
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        else:
            self.send_header("Connection", "keep-alive")
        self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]
        if head:
            self.flush_headers()
        elif decision.slow_body_s > 0 and len(send) > 1:
            self.flush_headers()
            n = min(16, len(send))
            step = -(-len(send) // n)
            for i in range(0, len(send), step):
                time.sleep(decision.slow_body_s / n)
                self.wfile.write(send[i: i + step])
        elif self.single_write:
            self._headers_buffer.append(send)  # type: ignore[attr-defined]
            self.flush_headers()
        else:
            self.flush_headers()
            self.wfile.write(send)


def _sleep_until(when: float) -> None:
    left = when - time.monotonic()
    if left > 0:
        time.sleep(left)
