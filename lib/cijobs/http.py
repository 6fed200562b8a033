"""Outbound HTTP on the stock stack (requests' ``HTTPAdapter``, urllib3 underneath), with the guarantees
cijobs needs and the stock stack does not give by itself.

* :func:`new_session`: a keep-alive session; pool sized to the concurrency, ``max_retries=0`` (retries are
  ours: :mod:`cijobs.service_call`), ``trust_env=False`` (no proxy/netrc from the environment), TLS verified
  against certifi's bundle with hostname checking (urllib3's defaults), ``Accept-Encoding: gzip, deflate``.
* :func:`exchange`: send one prepared request (``Session.send``, ``stream=True``, redirects never followed)
  and read its answer under an **absolute deadline** and a **size cap**, or raise :class:`NoAnswer` with a
  cause in words naming ``host:port`` (never a header, a body or a secret).

Guarantees and how they are kept:

* *Absolute deadline.* Connect/read timeouts are per socket operation: a server dribbling a byte a second,
  or sending ``100 Continue`` forever, defeats them. A single watchdog thread shuts the socket down
  (``shutdown(SHUT_RDWR)``) when the request's deadline passes, whatever phase it is in (head, interim
  responses, body); the blocked read then fails and the request is reported as ``Timeout``. The body is
  also read in bounded chunks with a deadline check between them.
* *Size cap, whatever the framing says.* Every byte read from the connection for a response (status lines,
  headers, interim responses, chunk-size lines, body) is counted; past the cap the read fails. A read
  "to EOF" (what ``http.client`` does for a *negative* chunk size) is refused outright, so a negative,
  malformed or huge chunk size is an error, never a read to EOF.
* *Decoded size.* urllib3 2.6.3 (the pinned release, with the CVE-2025-66471 fix) decodes gzip/deflate
  incrementally, at most ``amt`` bytes per ``read(amt)``; the decoded total is capped by the read loop.
* *Framing.* A body shorter than its ``Content-Length`` (or cut) is an error (urllib3's
  ``enforce_content_length``); bytes past the declared length stay behind in a buffer that is dropped with
  the response, and a connection with unread bytes is discarded by urllib3 before reuse
  (``is_connection_dropped``). A connection whose answer was not read cleanly is closed, never reused.
* *Interim answers.* A 1xx that comes back as the answer (``102 Processing``) is returned as such
  (the caller classifies it) and its connection is closed, since the real answer may follow on it.

The narrow steps outside requests' and urllib3's public APIs (each one tested in tests/test_http_hostile.py):
the adapter's pools use our connection class (``PoolManager.pool_classes_by_scheme`` and
``HTTPConnectionPool.ConnectionCls``), whose ``getresponse`` registers the socket with the watchdog, and whose
``response_class`` (http.client's documented hook) wraps the response's file object in the byte-counting
reader. There is no other way to bound the head read and http.client's chunk-size parsing; nothing
overrides ``send``, and test doubles that mock the adapter (the ``responses`` library) keep working.
"""

from __future__ import annotations

import errno
import heapq
import http.client
import itertools
import random
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .deadline import Deadline
from .models import ServiceError

T = TypeVar("T")
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
READ_CHUNK = 64 * 1024


# ---------------------------------------------------------------------------------------------- retry policy
@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by the deadline."""

    max_attempts: int = 4
    base_delay_s: float = 0.1
    max_delay_s: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int) -> float:
        """Sleep before retry number ``attempt`` (1 = first retry): uniform in [0, min(cap, base*2^(n-1))]."""
        return self.rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * (2 ** (max(1, attempt) - 1))))

    def should_retry(self, attempt: int, deadline: Deadline, delay: float) -> bool:
        """True when another attempt is allowed and its backoff fits in the time left."""
        return attempt < self.max_attempts and deadline.remaining() > delay

    def run(
        self,
        attempt: Callable[[int], T],
        deadline: Deadline,
        sleep: Callable[[float], None],
        on_retry: Optional[Callable[[int, ServiceError, float], None]] = None,
    ) -> T:
        """``attempt(n)`` for n = 1, 2, ... until it returns; it raises a :class:`ServiceError` to fail.

        A retryable error is retried after a full-jitter backoff while attempts remain and the backoff
        fits in the time left (``on_retry(n, error, delay)`` is called before sleeping); the deadline is
        checked again after sleeping. The last error is raised. (The HTTP clients use
        :func:`cijobs.service_call.call`, which adds failure classes and pacing on top of this policy.)
        """
        n = 0
        while True:
            n += 1
            try:
                return attempt(n)
            except ServiceError as exc:
                if not exc.retryable:
                    raise
                delay = self.delay(n)
                if not self.should_retry(n, deadline, delay):
                    raise
                if on_retry is not None:
                    on_retry(n, exc, delay)
                sleep(delay)
                if deadline.expired():
                    raise


# ---------------------------------------------------------------------------------------------- watchdog
class _Guard:
    """One request's deadline and the sockets it uses; the watchdog shuts them down when it passes."""

    __slots__ = ("at", "cap", "done", "fired", "lock", "socks")

    def __init__(self, at: float, cap: int) -> None:
        self.at = at
        self.cap = cap
        self.socks: list[socket.socket] = []
        self.lock = threading.Lock()
        self.done = False
        self.fired = False

    def attach(self, sock: Optional[socket.socket]) -> None:
        if sock is None:
            return
        with self.lock:
            if self.done:
                return
            self.socks.append(sock)
            late = self.fired
        if late:
            _shutdown(sock)

    def fire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.fired = True
            socks = list(self.socks)
        for sock in socks:
            _shutdown(sock)

    def finish(self) -> None:
        with self.lock:
            self.done = True
            self.socks.clear()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _Watchdog:
    """One daemon thread for every request of the process: a heap of (deadline, guard)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Guard]] = []
        self._seq = itertools.count()
        self._thread: Optional[threading.Thread] = None

    def watch(self, guard: _Guard) -> None:
        with self._cond:
            heapq.heappush(self._heap, (guard.at, next(self._seq), guard))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cijobs-http-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is guard:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].done:
                        heapq.heappop(self._heap)  # finished in time: forget it
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait <= 0:
                        guard = heapq.heappop(self._heap)[2]
                        break
                    self._cond.wait(wait)
            guard.fire()


_WATCHDOG = _Watchdog()
_current = threading.local()


def _active_guard() -> Optional[_Guard]:
    return getattr(_current, "guard", None)


# ---------------------------------------------------------------------------------------------- capped reads
class ResponseTooLarge(http.client.HTTPException):
    """More bytes than the cap were read for one response (head and body together)."""


class UnboundedRead(http.client.HTTPException):
    """The parser asked to read to EOF (http.client does so for a negative chunk size): refused."""


class _CappedReader:
    """The response's file object, counting every byte; refuses reads past the cap and reads to EOF."""

    def __init__(self, fp: Any, cap: int) -> None:
        self._fp = fp
        self._left = cap
        self._cap = cap

    def _take(self, data: bytes) -> bytes:
        self._left -= len(data)
        if self._left < 0:
            raise ResponseTooLarge(f"answer larger than the {self._cap}-byte cap")
        return data

    def read(self, n: Optional[int] = -1) -> bytes:
        if n is None or n < 0:
            raise UnboundedRead("refused to read an answer to EOF (negative or missing length)")
        if n > self._left + 1:  # reading more than the cap allows fails anyway: fail before allocating it
            raise ResponseTooLarge(f"answer larger than the {self._cap}-byte cap")
        return self._take(self._fp.read(n))

    def read1(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = READ_CHUNK
        return self._take(self._fp.read1(min(n, self._left + 1)))

    def readinto(self, b: Any) -> int:
        view = memoryview(b)
        if len(view) > self._left + 1:
            view = view[: self._left + 1]
        count = int(self._fp.readinto(view))
        self._left -= count
        if self._left < 0:
            raise ResponseTooLarge(f"answer larger than the {self._cap}-byte cap")
        return count

    def readline(self, limit: int = -1) -> bytes:
        if limit is None or limit < 0 or limit > self._left + 1:
            limit = self._left + 1
        return self._take(self._fp.readline(limit))

    def peek(self, n: int = 0) -> bytes:
        return bytes(self._fp.peek(n))

    def __getattr__(self, name: str) -> Any:  # close, closed, flush, fileno: the real file's
        return getattr(self._fp, name)


class _CappedHTTPResponse(http.client.HTTPResponse):
    """``http.client``'s response reading through :class:`_CappedReader` (cap from the active request)."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        guard = _active_guard()
        self.fp = _CappedReader(self.fp, guard.cap if guard is not None else DEFAULT_MAX_BODY_BYTES)  # type: ignore[assignment]


class _WatchedConnectionMixin:
    sock: Optional[socket.socket]

    def getresponse(self) -> Any:
        guard = _active_guard()
        if guard is not None:
            guard.attach(self.sock)  # from here until the body is read, the deadline shuts this socket down
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedConnectionMixin, HTTPConnection):
    response_class = _CappedHTTPResponse  # http.client's hook for the response type it builds


class _WatchedHTTPSConnection(_WatchedConnectionMixin, HTTPSConnection):
    response_class = _CappedHTTPResponse


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _Adapter(HTTPAdapter):
    """requests' own adapter; only its pools' connection class is ours (see the module docstring)."""

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def new_session(pool_size: int = 16) -> requests.Session:
    """A keep-alive session whose pool keeps ``pool_size`` connections per host (the concurrency)."""
    session = requests.Session()
    adapter = _Adapter(pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0, pool_block=False)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.trust_env = False  # no proxy or netrc from the environment for signed calls
    session.headers["Accept-Encoding"] = "gzip, deflate"  # what urllib3 decodes without extra packages
    return session


# ---------------------------------------------------------------------------------------------- one exchange
@dataclass(frozen=True)
class Reply:
    """An HTTP answer read in full (within the cap): status, reason, headers (case-insensitive), body."""

    status: int
    reason: str
    headers: Any  # requests.structures.CaseInsensitiveDict[str]
    body: bytes


class NoAnswer(Exception):
    """A request that got no (usable) HTTP answer. ``kind`` is one of :data:`cijobs.failures.NO_ANSWER`."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def exchange(
    session: requests.Session,
    prepared: requests.PreparedRequest,
    *,
    host_port: str,
    deadline: Deadline,
    connect_timeout_s: float,
    read_timeout_s: float,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Reply:
    """Send ``prepared`` and read the whole answer by ``deadline`` and within ``max_body_bytes``."""
    remaining = deadline.remaining()
    if remaining <= 0:
        raise NoAnswer("deadline", f"{host_port}: no time left to send the request")
    guard = _Guard(time.monotonic() + remaining if remaining != float("inf") else float("inf"), max_body_bytes)
    if guard.at != float("inf"):
        _WATCHDOG.watch(guard)
    _current.guard = guard
    timeout = (deadline.clamp(connect_timeout_s), deadline.clamp(read_timeout_s))
    started = time.monotonic()
    resp: Optional[requests.Response] = None
    try:
        try:
            resp = session.send(prepared, stream=True, allow_redirects=False, timeout=timeout, verify=True,
                                proxies={})
        except Exception as exc:  # requests' exceptions, and http.client's/ours through urllib3
            raise _no_answer(exc, host_port, guard, timeout, started, sending=True) from None
        status = resp.status_code
        if status < 200:  # an interim answer where the final one should be: its connection is not reused
            _discard(resp)
            return Reply(status, resp.reason or "", resp.headers, b"")
        try:
            body = _read_body(resp, max_body_bytes, deadline, host_port)
        except NoAnswer:
            _discard(resp)
            raise
        except Exception as exc:
            _discard(resp)
            raise _no_answer(exc, host_port, guard, timeout, started) from None
        return Reply(status, resp.reason or "", resp.headers, body)
    finally:
        guard.finish()
        _current.guard = None


def _read_body(resp: requests.Response, cap: int, deadline: Deadline, host_port: str) -> bytes:
    raw = resp.raw
    parts: list[bytes] = []
    size = 0
    while True:
        if deadline.expired():
            raise NoAnswer("timeout", f"{host_port}: the answer was not complete by the deadline")
        chunk = raw.read(READ_CHUNK, decode_content=True)
        if not chunk:
            break
        size += len(chunk)
        if size > cap:
            raise NoAnswer("too_large", f"{host_port}: answer larger than the {cap}-byte cap")
        parts.append(chunk)
    raw.release_conn()
    return b"".join(parts)


def _discard(resp: requests.Response) -> None:
    """Close the answer's connection (never reused) and return it to its pool as closed."""
    try:
        resp.raw.close()
        resp.raw.release_conn()
    except Exception:  # noqa: S110 - best effort on a connection already failed
        pass


def _causes(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    stack: list[Optional[BaseException]] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        out.append(e)
        stack.extend([e.__cause__, e.__context__])
        for arg in getattr(e, "args", ()):
            if isinstance(arg, BaseException):
                stack.append(arg)
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    return out


_NXDOMAIN = {getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA") if hasattr(socket, n)}


def _no_answer(exc: BaseException, host_port: str, guard: _Guard, timeout: tuple[float, float],
               started: float, sending: bool = False) -> NoAnswer:
    """Name the cause in words (never the exception's own text: it may quote a URL or a header)."""
    elapsed = time.monotonic() - started
    causes = _causes(exc)
    if guard.fired:
        return NoAnswer("timeout", f"{host_port}: no complete answer by the deadline (cut after {elapsed:.1f} s)")
    if sending and isinstance(exc, UnicodeError):  # http.client encodes header values as Latin-1
        return NoAnswer("invalid_header", f"{host_port}: a header value is not Latin-1; not sent")
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader,
                        requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema)) or (
            sending and isinstance(exc, (UnicodeError, ValueError))):
        # a URL or header the request cannot carry (e.g. a header value that is not Latin-1): never sendable
        return NoAnswer("invalid", f"{host_port}: request refused before sending ({type(exc).__name__})")
    for e in causes:
        if isinstance(e, ResponseTooLarge):
            return NoAnswer("too_large", f"{host_port}: {e}")
        if isinstance(e, UnboundedRead):
            return NoAnswer("malformed", f"{host_port}: malformed chunked framing (negative chunk size)")
        if isinstance(e, ssl.SSLCertVerificationError):
            why = e.verify_message or "verification failed"
            return NoAnswer("certificate", f"{host_port}: certificate refused ({why})")
        if isinstance(e, socket.gaierror):
            if e.errno in _NXDOMAIN:
                return NoAnswer("nxdomain", f"{host_port}: name did not resolve")
            return NoAnswer("network", f"{host_port}: name resolution failed (temporary)")
    for e in causes:  # before the timeouts: urllib3's NewConnectionError is a ConnectTimeoutError subclass
        if isinstance(e, ConnectionRefusedError):
            return NoAnswer("network", f"{host_port}: connection refused")
        if isinstance(e, http.client.RemoteDisconnected):
            return NoAnswer("network", f"{host_port}: closed the connection without answering")
        if isinstance(e, ConnectionResetError):
            return NoAnswer("network", f"{host_port}: connection reset by peer")
        if isinstance(e, OSError) and e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
            return NoAnswer("network", f"{host_port}: network unreachable")
    if any(isinstance(e, (requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError))
           and not isinstance(e, urllib3.exceptions.NewConnectionError) for e in causes):
        return NoAnswer("timeout", f"{host_port}: connect timed out after {timeout[0]:g} s")
    if any(isinstance(e, (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError))
           for e in causes):
        return NoAnswer("timeout", f"{host_port}: timed out after {timeout[1]:g} s waiting for the answer")
    for e in causes:
        if isinstance(e, (urllib3.exceptions.IncompleteRead, http.client.IncompleteRead)):
            return NoAnswer("malformed", f"{host_port}: answer cut short (shorter than its framing says)")
        if isinstance(e, (urllib3.exceptions.DecodeError, requests.exceptions.ContentDecodingError)):
            return NoAnswer("malformed", f"{host_port}: answer could not be decoded (bad gzip/deflate data)")
        if isinstance(e, (http.client.HTTPException, ValueError, urllib3.exceptions.ProtocolError,
                          requests.exceptions.ChunkedEncodingError)) and not isinstance(e, OSError):
            return NoAnswer("malformed", f"{host_port}: malformed answer ({type(e).__name__})")
    if any(isinstance(e, ssl.SSLError) for e in causes):
        return NoAnswer("network", f"{host_port}: TLS handshake failed")
    return NoAnswer("network", f"{host_port}: network error ({type(exc).__name__})")
