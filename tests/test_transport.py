"""``cijobs.transport.KeepAliveAdapter`` on the wire, against servers these tests start on 127.0.0.1.

The server is a raw socket server (``RawServer``): every accepted connection runs a small script in its own
thread, so each test says byte for byte what the peer does (answer, stall, close, reset, truncate) and reads
back what arrived (``server.requests``) and how many TCP connections the client opened (``server.accepted``).
No real network; ``responses`` only where the deferral to test doubles is the subject.
"""

from __future__ import annotations

import gzip
import os
import socket
import ssl
import struct
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pytest
import requests
import responses

from cijobs.http import RETRYABLE_EXCEPTIONS, new_session
from cijobs.transport import CertificateVerifyError, KeepAliveAdapter

TLS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tls")
CERT = os.path.join(TLS_DIR, "cert.pem")  # self-signed, 127.0.0.1 + localhost, test-only
KEY = os.path.join(TLS_DIR, "key.pem")
T = (1.0, 2.0)  # (connect, read) for requests that should succeed: a hang fails fast instead of blocking


# ---------------------------------------------------------------------------------------------- the server
@dataclass
class Req:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in the order received."""
        return [value for key, value in self.headers if key.lower() == name.lower()]


class Conn:
    """One accepted connection, as a server script sees it."""

    def __init__(self, sock: socket.socket, index: int, server: RawServer) -> None:
        self.sock = sock
        self.index = index  # 0 for the first connection the server accepted, 1 for the next...
        self.server = server
        self.client_closed = threading.Event()  # the client closed (EOF) or reset its end
        self.server_closed = threading.Event()  # the script closed or reset our end
        self._buf = b""

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise
        except OSError:
            data = b""
        if not data:
            self.client_closed.set()
            return False
        self._buf += data
        return True

    def _until(self, sep: bytes) -> Optional[bytes]:
        while sep not in self._buf:
            if not self._fill():
                return None
        head, self._buf = self._buf.split(sep, 1)
        return head

    def _exact(self, n: int) -> Optional[bytes]:
        while len(self._buf) < n:
            if not self._fill():
                return None
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def request(self) -> Optional[Req]:
        """The next request (also appended to ``server.requests``), or None once the client closed."""
        head = self._until(b"\r\n\r\n")
        if head is None:
            return None
        line, *fields = head.decode("latin-1").split("\r\n")
        method, target, _version = line.split(" ", 2)
        req = Req(method, target, [(k.strip(), v.strip()) for k, v in (f.split(":", 1) for f in fields)], b"")
        if "chunked" in ",".join(req.values("Transfer-Encoding")).lower():
            while True:
                size = int((self._until(b"\r\n") or b"0").split(b";")[0], 16)
                if size == 0:
                    self._until(b"\r\n")  # no trailers: the empty line that ends the body
                    break
                req.body += (self._exact(size + 2) or b"")[:size]
        else:
            req.body = self._exact(int((req.values("Content-Length") or ["0"])[0])) or b""
        self.server.requests.append(req)
        return req

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.server_closed.set()
        self.sock.close()

    def reset(self) -> None:
        """Close with an RST instead of a FIN (SO_LINGER on, zero timeout)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def stall(self, limit: float = 3.0) -> None:
        """Say nothing more; read and drop whatever comes until the client closes.

        After ``limit`` seconds the server hangs up, so a client that never times out fails instead of hanging.
        """
        self.sock.settimeout(limit)
        try:
            while self._fill():
                self._buf = b""
        except socket.timeout:
            self.close()


Script = Callable[[Conn], None]


class RawServer:
    """A TCP (optionally TLS) server on 127.0.0.1 running ``script(conn)`` for every accepted connection.

    When a script returns without closing, the connection is kept open and any further request on it is
    recorded but never answered (so a client that wrongly reuses it shows up in ``requests`` and times out).
    """

    def __init__(self, script: Script, tls: Optional[ssl.SSLContext] = None) -> None:
        self._script = script
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.02)
        self.port = self._listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.conns: list[Conn] = []
        self.requests: list[Req] = []
        self.stopping = threading.Event()
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    @property
    def accepted(self) -> int:
        return len(self.conns)

    def open_count(self) -> int:
        """Connections neither side has closed yet."""
        return sum(not (c.client_closed.is_set() or c.server_closed.is_set()) for c in self.conns)

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(None)
            conn = Conn(sock, len(self.conns), self)
            self.conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: Conn) -> None:
        try:
            if self._tls is not None:
                conn.sock = self._tls.wrap_socket(conn.sock, server_side=True)
            self._script(conn)
            while not conn.server_closed.is_set() and conn.request() is not None:
                pass  # recorded, not answered
        except (OSError, ValueError):
            conn.client_closed.set()  # TLS handshake refused by the client, reset, or teardown

    def close(self) -> None:
        self.stopping.set()
        self._listener.close()
        for conn in self.conns:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(2)
        for conn in self.conns:
            conn.sock.close()


def reply(body: bytes = b"ok", status: int = 200, reason: str = "OK", headers: Sequence[tuple[str, str]] = (),
          version: str = "HTTP/1.1", length: bool = True) -> bytes:
    """A response head (plus ``Content-Length`` unless ``length`` is False) and the body."""
    lines = [f"{version} {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def echo(req: Req) -> bytes:
    return reply(f"{req.method} {req.target}".encode())


def keep_alive(respond: Callable[[Req], bytes] = echo) -> Script:
    """Answer every request on the connection with ``respond(req)`` until the client closes it."""
    def script(conn: Conn) -> None:
        while True:
            req = conn.request()
            if req is None:
                return
            conn.send(respond(req))
    return script


def first_then_ok(first: Script) -> Script:
    """``first`` on the first connection, ``keep_alive()`` (echo) on every later one."""
    def script(conn: Conn) -> None:
        (first if conn.index == 0 else keep_alive())(conn)
    return script


def answer_then_close(raw: bytes) -> Script:
    """Read the request, send ``raw`` (a broken answer), close."""
    def script(conn: Conn) -> None:
        assert conn.request() is not None
        conn.send(raw)
        conn.close()
    return script


def fails_retryably_then_recovers(serve: Any, session: requests.Session, first: Script) -> Any:
    """``first`` answers the first connection: the request fails with an exception the clients retry
    (``RETRYABLE_EXCEPTIONS``), and the next request, on a fresh connection, works. Returns the server
    and the exception."""
    server = serve(first_then_ok(first))
    with pytest.raises(requests.RequestException) as info:
        session.get(server.url + "/t", timeout=T)
    assert isinstance(info.value, RETRYABLE_EXCEPTIONS)
    assert session.get(server.url + "/next", timeout=T).content == b"GET /next"
    return server, info.value


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.002)
    return True


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(script: Script, tls: Optional[ssl.SSLContext] = None) -> RawServer:
        server = RawServer(script, tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    s = new_session()
    yield s
    s.close()


def limited_session(max_body_bytes: int) -> requests.Session:
    s = new_session()
    adapter = KeepAliveAdapter(max_body_bytes=max_body_bytes)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


# ---------------------------------------------------------------------------------------------- 1. keep-alive
def test_new_session_mounts_the_keep_alive_adapter(session: requests.Session) -> None:
    assert isinstance(session.get_adapter("http://127.0.0.1/"), KeepAliveAdapter)
    assert isinstance(session.get_adapter("https://b-1250000000.ci.ap-beijing.myqcloud.com/"), KeepAliveAdapter)


def test_sequential_requests_reuse_one_connection(serve, session) -> None:
    server = serve(keep_alive())
    for i in range(20):
        r = session.get(f"{server.url}/jobs/{i}", timeout=T)
        assert (r.status_code, r.content) == (200, f"GET /jobs/{i}".encode())
    assert len(server.requests) == 20
    assert server.accepted == 1


def _hammer(session: requests.Session, url: str, threads: int, per_thread: int) -> list[tuple[str, bytes]]:
    """``threads`` threads released together, each doing ``per_thread`` GETs; returns (path, body) pairs."""
    start = threading.Barrier(threads)
    results: list[tuple[str, bytes]] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            start.wait(5)
            for i in range(per_thread):
                path = f"/w{n}/{i}"
                r = session.get(url + path, timeout=T)
                assert r.status_code == 200
                results.append((path, r.content))
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(20)
    assert errors == []
    assert len(results) == threads * per_thread
    assert all(body == f"GET {path}".encode() for path, body in results)  # no cross-talk between threads
    return results


def _concurrent_server(serve, concurrent: int) -> RawServer:
    """Echo server whose first ``concurrent`` connections hold their first answer until all of them are open."""
    gate = threading.Barrier(concurrent, timeout=2)

    def script(conn: Conn) -> None:
        if conn.index < concurrent:
            req = conn.request()
            if req is None:
                return
            try:
                gate.wait()
            except threading.BrokenBarrierError:
                pass  # the client never had that many requests in flight: the assertions below fail
            conn.send(echo(req))
        keep_alive()(conn)

    return serve(script)


def test_sixteen_threads_open_at_most_sixteen_connections(serve) -> None:
    server = _concurrent_server(serve, 8)
    session = new_session(pool_size=16)
    try:
        _hammer(session, server.url, threads=16, per_thread=10)
        assert 8 <= server.accepted <= 16  # really concurrent, and a connection per thread at most
        opened = server.accepted
        session.get(server.url + "/again", timeout=T)
        assert server.accepted == opened  # idle connections were kept for reuse
    finally:
        session.close()


def test_idle_pool_never_exceeds_pool_maxsize(serve) -> None:
    server = _concurrent_server(serve, 8)
    session = new_session(pool_size=4)
    try:
        _hammer(session, server.url, threads=16, per_thread=5)
        assert server.accepted >= 8
        # every connection beyond the four kept idle is closed by the client
        assert wait_until(lambda: server.open_count() <= 4), server.open_count()
        assert server.open_count() >= 1
        opened = server.accepted
        session.get(server.url + "/again", timeout=T)
        assert server.accepted == opened
    finally:
        session.close()


# ---------------------------------------------------------------------------------------------- 2. stale pool
@pytest.mark.parametrize("how", ["close", "reset"])
def test_idle_connection_closed_by_the_peer_is_replaced(serve, session, how) -> None:
    def script(conn: Conn) -> None:
        req = conn.request()
        assert req is not None
        conn.send(reply(b"answer %d" % conn.index))  # keep-alive framing, then the peer hangs up anyway
        getattr(conn, how)()

    server = serve(script)
    assert session.get(server.url + "/a", timeout=T).content == b"answer 0"
    assert wait_until(server.conns[0].server_closed.is_set)
    time.sleep(0.02)  # let the FIN/RST reach the client's socket
    r = session.get(server.url + "/b", timeout=T)
    assert (r.status_code, r.content) == (200, b"answer 1")
    assert server.accepted == 2
    assert [q.target for q in server.requests] == ["/a", "/b"]


def test_stray_bytes_on_an_idle_connection_discard_it(serve, session) -> None:
    def script(conn: Conn) -> None:
        req = conn.request()
        assert req is not None
        conn.send(echo(req))
        if conn.index == 0:
            time.sleep(0.05)
            conn.send(reply(b"unsolicited"))  # never asked for: must not be taken as the next answer
        keep_alive()(conn)

    server = serve(script)
    assert session.get(server.url + "/a", timeout=T).content == b"GET /a"
    time.sleep(0.1)
    assert session.get(server.url + "/b", timeout=T).content == b"GET /b"
    assert server.accepted == 2


# ---------------------------------------------------------------------------------------------- 3. close framing
BIG = bytes(range(256)) * 400  # 100 KiB, sent in pieces


def _send_in_pieces(conn: Conn, head: bytes, body: bytes) -> None:
    conn.send(head)
    for i in range(0, len(body), 30000):
        conn.send(body[i:i + 30000])
        time.sleep(0.005)


@pytest.mark.parametrize("framing", ["connection-close", "http10-no-length", "http11-no-length"])
def test_close_delimited_and_connection_close_responses(serve, session, framing) -> None:
    def script(conn: Conn) -> None:
        req = conn.request()
        assert req is not None
        if framing == "connection-close":  # framed by Content-Length, and the socket is left open
            conn.send(reply(BIG, headers=[("Connection", "close")]))
            return
        version = "HTTP/1.0" if framing == "http10-no-length" else "HTTP/1.1"
        _send_in_pieces(conn, reply(b"", version=version, length=False), BIG)
        conn.close()

    server = serve(script)
    for path in ("/one", "/two"):
        r = session.get(server.url + path, timeout=T)
        assert r.status_code == 200
        assert len(r.content) == len(BIG) and r.content == BIG
    assert server.accepted == 2  # never reused
    assert [q.target for q in server.requests] == ["/one", "/two"]
    if framing == "connection-close":
        assert wait_until(server.conns[0].client_closed.is_set)  # and the client closed its end


# ---------------------------------------------------------------------------------------------- 4. chunked
def test_chunked_body_is_decoded_and_the_connection_reused(serve, session) -> None:
    parts = [b"hello", b" ", b"x" * 70000, b"\r\n in the data \r\n"]
    last_chunk = b"0\r\n\r\n"
    body = (b"5;name=value\r\nhello\r\n"  # a chunk extension
            + chunked(*parts[1:])[:-len(last_chunk)]
            + b"0\r\nX-Trailer: yes\r\n\r\n")  # and a trailer

    server = serve(keep_alive(lambda req: reply(b"", headers=[("Transfer-Encoding", "chunked")], length=False)
                              + body))
    for _ in range(2):
        r = session.get(server.url + "/c", timeout=T)
        assert r.content == b"".join(parts)
    assert server.accepted == 1


@pytest.mark.parametrize("wire", [
    b"5\r\nhello\r\n",                  # the last chunk never comes
    b"5\r\nhello\r\na\r\nhel",          # ends inside a chunk
    b"zz\r\nhello\r\n",                 # not a chunk size
], ids=["no-last-chunk", "mid-chunk", "bad-size"])
def test_chunked_body_that_ends_early_is_a_retryable_error(serve, session, wire) -> None:
    head = reply(b"", headers=[("Transfer-Encoding", "chunked")], length=False)
    _, exc = fails_retryably_then_recovers(serve, session, answer_then_close(head + wire))
    assert isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.ConnectionError))


# ---------------------------------------------------------------------------------------------- 5. truncation
@pytest.mark.parametrize("sent", [b"", b"0123456789"])
def test_body_shorter_than_content_length_is_never_a_success(serve, session, sent) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + sent
    server, _ = fails_retryably_then_recovers(serve, session, answer_then_close(raw))
    assert server.accepted == 2


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 200 OK\r\nContent-Le",                              # cut inside a field name
    b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n",      # cut before the blank line
], ids=["mid-field", "before-blank-line"])
def test_head_cut_off_before_the_blank_line_is_a_retryable_error(serve, session, head) -> None:
    # RFC 9112 section 8: a close-delimited body is complete only "if the header section was received
    # intact"; a head that never reached its blank line is an incomplete message, not an empty 200.
    fails_retryably_then_recovers(serve, session, answer_then_close(head))


@pytest.mark.parametrize(("lengths", "ok"), [(("2", "2"), True), (("2", "10"), False)], ids=["same", "conflicting"])
def test_repeated_content_length_must_agree(serve, session, lengths, ok) -> None:
    # RFC 9112 section 6.3: differing Content-Length values make the framing invalid; the client must close
    # the connection and discard the response (requests' stock adapter raises InvalidHeader here)
    def script(conn: Conn) -> None:
        req = conn.request()
        assert req is not None
        fields = "".join(f"Content-Length: {n}\r\n" for n in lengths)
        conn.send(f"HTTP/1.1 200 OK\r\n{fields}\r\n".encode() + b"ok" + b"SMUGGLED" * (not ok))
        keep_alive()(conn)

    server = serve(first_then_ok(script))
    if ok:
        assert session.get(server.url + "/cl", timeout=T).content == b"ok"
    else:
        with pytest.raises(requests.RequestException):
            session.get(server.url + "/cl", timeout=T)
    assert session.get(server.url + "/next", timeout=T).content == b"GET /next"
    assert server.accepted == (1 if ok else 2)  # an invalid framing costs the connection


@pytest.mark.parametrize("value", ["abc", "-1", "1e3", "٣"])
def test_a_content_length_that_is_not_digits_is_an_error(serve, session, value) -> None:
    raw = f"HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\nok".encode()
    fails_retryably_then_recovers(serve, session, answer_then_close(raw))


def test_interim_1xx_responses_are_skipped(serve, session) -> None:
    # RFC 9110 section 15.2: a client must parse (and may ignore) 1xx responses before the final one.
    # Returning the 103 as the answer leaves the real answer on the pooled connection for the next request.
    def script(conn: Conn) -> None:
        while True:
            req = conn.request()
            if req is None:
                return
            conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            time.sleep(0.05)
            conn.send(echo(req))

    server = serve(script)
    for path in ("/a", "/b"):
        r = session.get(server.url + path, timeout=T)
        assert (r.status_code, r.content) == (200, f"GET {path}".encode())


# ---------------------------------------------------------------------------------------------- 6. failures
def _stall_after(head: bytes) -> Script:
    def bad(conn: Conn) -> None:
        conn.request()
        if head:
            conn.send(head)
        conn.stall()
    return bad


@pytest.mark.parametrize("head", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial"],
                         ids=["no-answer", "body-stalls"])
def test_read_timeout(serve, session, head) -> None:
    server = serve(first_then_ok(_stall_after(head)))
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout) as info:
        session.get(server.url + "/slow", timeout=(1, 0.2))
    assert time.monotonic() - started < 0.9  # the read timeout, not the connect one
    assert isinstance(info.value, RETRYABLE_EXCEPTIONS)
    assert wait_until(server.conns[0].client_closed.is_set)  # the broken connection was closed, not pooled
    assert session.get(server.url + "/next", timeout=T).content == b"GET /next"
    assert server.accepted == 2


def test_connection_refused(serve, session) -> None:
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))  # bound but not listening: connecting is refused
    try:
        port = unused.getsockname()[1]
        with pytest.raises(requests.ConnectionError) as info:
            session.get(f"http://127.0.0.1:{port}/x", timeout=T)
        assert not isinstance(info.value, requests.exceptions.ConnectTimeout)
        assert isinstance(info.value, RETRYABLE_EXCEPTIONS)
    finally:
        unused.close()
    server = serve(keep_alive())
    assert session.get(server.url + "/next", timeout=T).content == b"GET /next"


@pytest.mark.parametrize("how", ["reset", "close"])
def test_peer_resets_or_closes_instead_of_answering(serve, session, how) -> None:
    def bad(conn: Conn) -> None:
        conn.request()
        getattr(conn, how)()

    server, exc = fails_retryably_then_recovers(serve, session, bad)
    assert isinstance(exc, requests.ConnectionError)
    assert server.accepted == 2


# ---------------------------------------------------------------------------------------------- 7. bodies
PLAIN = b"<Response><JobsDetail><Code>Success</Code></JobsDetail></Response>" * 50


def _raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(("coding", "encode"), [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),      # zlib-wrapped, as RFC 9110 says
    ("deflate", _raw_deflate),       # raw, as some servers send
    ("deflate", lambda data: zlib.compress(data, wbits=9)),  # zlib-wrapped with a small window
    ("gzip", lambda data: gzip.compress(data[:100]) + gzip.compress(data[100:])),  # two members
    ("identity", lambda data: data),
], ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "deflate-zlib-window-9", "gzip-two-members",
        "identity"])
def test_encoded_bodies_are_decoded(serve, session, coding, encode) -> None:
    server = serve(keep_alive(lambda req: reply(encode(PLAIN), headers=[("Content-Encoding", coding)])))
    r = session.get(server.url + "/z", timeout=T)
    assert r.content == PLAIN
    assert server.requests[0].values("Accept-Encoding") == ["gzip, deflate"]


@pytest.mark.parametrize(("coding", "data"), [
    ("br", b"\x1b\x03\x00\xf8\x05\x12\x0e\x14\x03"),
    ("gzip", b"this is not gzip at all"),
    ("deflate", b"\x78\x9cnot deflate either"),
    ("gzip", gzip.compress(PLAIN)[:-8] + b"\0\0\0\0\0\0\0\0"),  # CRC and length do not match
    ("gzip", gzip.compress(PLAIN)[:40]),  # the stream is cut: a short body must not pass as the whole
    ("deflate", zlib.compress(PLAIN)[:-6]),
    ("gzip", gzip.compress(PLAIN) + b"trailing junk"),
], ids=["br", "gzip-garbage", "deflate-garbage", "gzip-bad-crc", "gzip-cut", "deflate-cut", "gzip-trailing"])
def test_undecodable_bodies_are_content_decoding_errors(serve, session, coding, data) -> None:
    server = serve(keep_alive(lambda req: reply(data, headers=[("Content-Encoding", coding)])))
    with pytest.raises(requests.exceptions.ContentDecodingError):
        session.get(server.url + "/z", timeout=T)


LIMIT = 64 * 1024


@pytest.mark.parametrize(("coding", "encode"), [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_decompression_bomb_is_refused_within_bounded_memory(serve, coding, encode) -> None:
    bomb = encode(b"\0" * (32 * 1024 * 1024))  # 32 MiB decoded from ~32 KiB on the wire
    assert len(bomb) < LIMIT  # the wire body itself is within the limit: only decoding can trip it
    server = serve(keep_alive(lambda req: reply(bomb, headers=[("Content-Encoding", coding)])))
    s = limited_session(LIMIT)
    try:
        tracemalloc.start()
        try:
            with pytest.raises(requests.exceptions.ContentDecodingError) as info:
                s.get(server.url + "/bomb", timeout=T)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert "exceeds" in str(info.value)
        assert peak < 4 * 1024 * 1024, peak  # nowhere near the 32 MiB the bomb expands to
    finally:
        s.close()


def gets_body_or_size_error(s: requests.Session, url: str, expected: Optional[bytes]) -> None:
    """GET ``url``: the body is ``expected``, or (``None``) the size limit refuses it."""
    if expected is not None:
        assert s.get(url, timeout=T).content == expected
    else:
        with pytest.raises(requests.exceptions.ContentDecodingError, match="exceeds"):
            s.get(url, timeout=T)


@pytest.mark.parametrize(("size", "ok"), [(LIMIT, True), (LIMIT + 1, False)])
def test_decoded_size_limit_is_exact(serve, size, ok) -> None:
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    server = serve(keep_alive(lambda req: reply(gzip.compress(data), headers=[("Content-Encoding", "gzip")])))
    s = limited_session(LIMIT)
    try:
        gets_body_or_size_error(s, server.url + "/z", data if ok else None)
    finally:
        s.close()


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close-delimited"])
@pytest.mark.parametrize(("size", "ok"), [(LIMIT, True), (LIMIT + 1, False)])
def test_plain_body_size_limit(serve, framing, size, ok) -> None:
    data = b"a" * size

    def script(conn: Conn) -> None:
        while True:
            req = conn.request()
            if req is None:
                return
            if req.target == "/again":
                conn.send(echo(req))
            elif framing == "content-length":
                conn.send(reply(data))
            elif framing == "chunked":
                pieces = [data[i:i + 5000] for i in range(0, len(data), 5000)]
                conn.send(reply(b"", headers=[("Transfer-Encoding", "chunked")], length=False) + chunked(*pieces))
            else:
                conn.send(reply(b"", length=False) + data)
                conn.close()
                return

    server = serve(script)
    s = limited_session(LIMIT)
    try:
        gets_body_or_size_error(s, server.url + "/p", data if ok else None)
        assert s.get(server.url + "/again", timeout=T).content == b"GET /again"  # the session still works
        # a body read to its end keeps a keep-alive connection; an over-limit one is dropped, never reused
        assert server.accepted == (1 if ok and framing != "close-delimited" else 2)
    finally:
        s.close()


def test_stream_true_still_returns_the_whole_body(serve, session) -> None:
    server = serve(keep_alive(lambda req: reply(BIG)))
    r = session.get(server.url + "/s", stream=True, timeout=T)
    assert b"".join(r.iter_content(4096)) == BIG
    assert r.content == BIG


# ---------------------------------------------------------------------------------------------- 8. requests
def test_str_body_is_sent_as_utf8_with_its_byte_length(serve, session) -> None:
    text = "job 任务 é ✓"
    server = serve(keep_alive())
    session.post(server.url + "/p", data=text, timeout=T)
    (req,) = server.requests
    assert req.method == "POST"
    assert req.body == text.encode("utf-8")
    assert req.values("Content-Length") == [str(len(text.encode("utf-8")))]


def test_bytes_form_and_chunked_upload_bodies(serve, session) -> None:
    server = serve(keep_alive())
    raw = bytes(range(256))
    session.put(server.url + "/bytes", data=raw, timeout=T)
    session.post(server.url + "/form", data={"a": "1 2", "b": "é&"}, timeout=T)
    session.post(server.url + "/gen", data=iter([b"ab", b"", b"cd"]), timeout=T)
    put, form, gen = server.requests
    assert (put.method, put.body, put.values("Content-Length")) == ("PUT", raw, ["256"])
    assert form.body == b"a=1+2&b=%C3%A9%26"
    assert form.values("Content-Type") == ["application/x-www-form-urlencoded"]
    assert form.values("Content-Length") == [str(len(form.body))]
    assert gen.body == b"abcd"
    assert gen.values("Transfer-Encoding") == ["chunked"] and gen.values("Content-Length") == []
    assert server.accepted == 1


def test_host_header_and_target_are_sent_as_given(serve, session) -> None:
    server = serve(keep_alive())
    host = "examplebucket-1250000000.ci.ap-beijing.myqcloud.com"
    target = "/jobs/a8e4f3b2c1d0e9f8a7b6c5d4,b8e4f3b2c1d0e9f8a7b6c5d4?x=1&y=%2F%E4%BB%BB"
    session.get(server.url + target, headers={"Host": host}, timeout=T)
    session.get(server.url + "/plain", timeout=T)
    custom, plain = server.requests
    assert custom.values("Host") == [host]  # exactly one Host header, the given one
    assert custom.target == target  # not re-encoded
    assert plain.values("Host") == [f"127.0.0.1:{server.port}"]
    assert custom.values("Accept-Encoding") == ["gzip, deflate"]


def test_response_headers_merged_and_case_insensitive(serve, session) -> None:
    head = [("X-Dup", "one"), ("x-dup", "two"), ("X-Dup", "three"),
            ("Content-Type", "text/plain; charset=utf-8"), ("x-cos-request-id", "NjQ0")]
    server = serve(keep_alive(lambda req: reply("状态".encode(), headers=head)))
    r = session.get(server.url + "/h", timeout=T)
    assert r.headers["x-dup"] == "one, two, three"
    assert r.headers["X-DUP"] == r.headers["X-Dup"]
    assert r.headers["X-Cos-Request-Id"] == "NjQ0"
    assert r.encoding == "utf-8" and r.text == "状态"
    assert r.url == server.url + "/h" and r.request.method == "GET"


@pytest.mark.parametrize(("status", "reason"), [
    (400, "Bad Request"), (403, "Forbidden"), (404, "Not Found"), (429, "Too Many Requests"),
    (500, "Internal Server Error"), (503, "Service Unavailable"),
])
def test_error_statuses_are_responses(serve, session, status, reason) -> None:
    body = b"<Error><Code>X</Code></Error>"
    server = serve(keep_alive(lambda req: reply(body, status=status, reason=reason)))
    for _ in range(2):
        r = session.get(server.url + "/e", timeout=T)
        assert (r.status_code, r.reason, r.content, r.ok) == (status, reason, body, False)
    assert server.accepted == 1  # an error answer does not cost the connection


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_bodiless_responses_return_at_once_and_keep_the_connection(serve, session, method, status) -> None:
    def respond(req: Req) -> bytes:
        if req.target == "/next":
            return echo(req)
        # a HEAD announces the length of the body it does not send; 204/304 have no body by definition
        fields = [("Content-Encoding", "gzip")] + ([("Content-Length", "1000")] if method == "HEAD" else [])
        return reply(b"", status=status, reason="R", headers=fields, length=False)

    server = serve(keep_alive(respond))
    started = time.monotonic()
    r = session.request(method, server.url + "/x", timeout=(1, 0.5))
    assert time.monotonic() - started < 0.4
    assert (r.status_code, r.content) == (status, b"")
    if method == "HEAD":
        assert r.headers["Content-Length"] == "1000"
    assert session.get(server.url + "/next", timeout=T).content == b"GET /next"
    assert server.accepted == 1


# ---------------------------------------------------------------------------------------------- 9. refusals
def test_proxies_are_refused_before_anything_is_sent(serve, session) -> None:
    server = serve(keep_alive())
    for proxies in ({"https": "http://proxy:1"}, {"http": "http://proxy:1"}):
        with pytest.raises(requests.exceptions.InvalidProxyURL):
            session.get(server.url + "/x", proxies=proxies, timeout=T)
    assert server.accepted == 0 and server.requests == []
    assert session.get(server.url + "/x", timeout=T).content == b"GET /x"


def test_unsupported_schemes_and_bad_urls_are_refused(serve, session) -> None:
    server = serve(keep_alive())
    with pytest.raises(requests.RequestException) as info:  # requests has no adapter for ftp://
        session.get(f"ftp://127.0.0.1:{server.port}/x", timeout=T)
    assert isinstance(info.value, requests.exceptions.InvalidSchema)

    adapter = KeepAliveAdapter()
    try:
        for url in (f"ftp://127.0.0.1:{server.port}/x", f"http://127.0.0.1:{server.port}99999/x", "http:///x"):
            prepared = requests.Request("GET", server.url + "/x").prepare()
            prepared.url = url  # past requests' own checks: the adapter must refuse it
            with pytest.raises(requests.exceptions.InvalidURL):
                adapter.send(prepared, timeout=T)
    finally:
        adapter.close()
    assert server.accepted == 0 and server.requests == []


# ---------------------------------------------------------------------------------------------- 10. redirects
def test_redirect_is_returned_not_followed(serve, session) -> None:
    server = serve(keep_alive(lambda req: reply(b"moved", status=302, reason="Found",
                                                headers=[("Location", "/elsewhere")])))
    r = session.get(server.url + "/jobs/x", allow_redirects=False, timeout=T)
    assert (r.status_code, r.headers["Location"], r.content) == (302, "/elsewhere", b"moved")
    assert r.is_redirect
    assert [q.target for q in server.requests] == ["/jobs/x"]


def test_redirect_followed_when_asked(serve, session) -> None:
    server = serve(keep_alive(lambda req: echo(req) if req.target == "/there" else
                              reply(b"", status=302, reason="Found", headers=[("Location", "/there")])))
    r = session.get(server.url + "/here", timeout=T)
    assert (r.status_code, r.content) == (200, b"GET /there")
    assert [h.status_code for h in r.history] == [302]
    assert server.accepted == 1


# ---------------------------------------------------------------------------------------------- 11. TLS
@pytest.fixture
def tls_server(serve) -> RawServer:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    return serve(first_then_ok(keep_alive()), tls=ctx)


def test_tls_with_the_test_ca_and_keep_alive(tls_server, session) -> None:
    for i in range(3):
        r = session.get(f"{tls_server.url}/s/{i}", verify=CERT, timeout=T)
        assert r.content == f"GET /s/{i}".encode()
    assert tls_server.accepted == 1
    r = session.get(f"https://localhost:{tls_server.port}/dns", verify=CERT, timeout=T)  # DNS SAN too
    assert r.content == b"GET /dns"


def test_tls_default_verification_refuses_a_self_signed_server(tls_server, session) -> None:
    with pytest.raises(CertificateVerifyError, match=r"refused: self[- ]signed certificate") as info:
        session.get(tls_server.url + "/x", timeout=T)  # verify=True: certifi's bundle
    assert isinstance(info.value, requests.exceptions.SSLError)  # still requests' own kind for callers
    assert tls_server.requests == []


def test_tls_verify_false_connects(tls_server, session) -> None:
    assert session.get(tls_server.url + "/x", verify=False, timeout=T).content == b"GET /x"


def test_tls_unverified_connection_is_not_reused_for_a_verified_request(tls_server, session) -> None:
    assert session.get(tls_server.url + "/x", verify=False, timeout=T).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        session.get(tls_server.url + "/y", timeout=T)
    assert [q.target for q in tls_server.requests] == ["/x"]


def test_tls_read_timeout(serve, session) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    server = serve(first_then_ok(_stall_after(b"")), tls=ctx)
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(server.url + "/slow", verify=CERT, timeout=(1, 0.2))
    assert session.get(server.url + "/next", verify=CERT, timeout=T).content == b"GET /next"


# ---------------------------------------------------------------------------------------------- 12. test doubles
@responses.activate
def test_responses_answers_while_active(serve) -> None:
    server = serve(keep_alive())
    responses.get(server.url + "/jobs/x", body=b"from responses")
    session = new_session()
    try:
        r = session.get(server.url + "/jobs/x", timeout=T)
        assert r.content == b"from responses"
        with pytest.raises(requests.ConnectionError):  # responses' answer to an unregistered URL
            session.get(server.url + "/unregistered", timeout=T)
    finally:
        session.close()
    assert server.accepted == 0
    assert len(responses.calls) == 2


def test_real_transport_is_used_when_responses_is_not_active(serve, session) -> None:
    server = serve(keep_alive())
    with responses.RequestsMock() as mock:
        mock.get(server.url + "/jobs/x", body=b"mocked")
        assert session.get(server.url + "/jobs/x", timeout=T).content == b"mocked"
    assert server.accepted == 0
    assert session.get(server.url + "/jobs/x", timeout=T).content == b"GET /jobs/x"
    assert server.accepted == 1


# ---------------------------------------------------------------------------------------------- 13. close
@pytest.mark.parametrize("closer", ["session", "adapter"])
def test_close_closes_idle_pooled_sockets(serve, closer) -> None:
    first, second = serve(keep_alive()), serve(keep_alive())
    s = new_session()
    for server in (first, second):
        s.get(server.url + "/x", timeout=T)
    time.sleep(0.02)
    assert first.open_count() == 1 and second.open_count() == 1  # pooled, still open
    if closer == "session":
        s.close()
    else:
        s.get_adapter(first.url).close()
    assert wait_until(first.conns[0].client_closed.is_set)
    assert wait_until(second.conns[0].client_closed.is_set)


def test_peer_closed_tells_a_usable_idle_socket_from_a_dead_one() -> None:
    from cijobs.transport import peer_closed

    a, b = socket.socketpair()
    try:
        assert peer_closed(a) is False  # idle, open, nothing to read
        b.sendall(b"x")
        assert peer_closed(a) is True  # stray bytes: not safe to send a request on it
        a.recv(1)
        b.close()
        assert peer_closed(a) is True  # EOF from the peer
    finally:
        a.close()
    assert peer_closed(a) is True and peer_closed(None) is True  # closed here / no socket


def test_responses_carry_the_adapter_as_their_connection(serve, session) -> None:
    server = serve(keep_alive())
    r = session.get(server.url + "/c", timeout=T)
    assert r.connection is session.get_adapter(server.url)


@pytest.mark.parametrize(("timeout", "expected"), [
    (None, (None, None)), (2, (2.0, 2.0)), (0.5, (0.5, 0.5)), ((1, 2.5), (1.0, 2.5)), ((None, 3), (None, 3.0)),
])
def test_split_timeout_accepts_what_requests_accepts(timeout, expected) -> None:
    from cijobs.transport import split_timeout

    assert split_timeout(timeout) == expected


@pytest.mark.parametrize("timeout", [0, -1, (1, 0), (1, 2, 3), (1,), "5", True, float("inf"), float("nan"), [1, 2]])
def test_a_malformed_timeout_is_a_value_error_before_anything_is_sent(serve, session, timeout) -> None:
    server = serve(keep_alive())
    with pytest.raises(ValueError, match="timeout must be"):
        session.get(server.url + "/t", timeout=timeout)
    assert server.requests == []
