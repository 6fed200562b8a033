"""A lean keep-alive transport for ``requests`` sessions, on the standard library's ``http.client``.

``new_session()`` mounts :class:`KeepAliveAdapter` instead of requests' urllib3
adapter. The session API, the auth hooks and the exceptions callers see are
requests' own; only the wire layer underneath is shorter. Why: a 1,000-ID query
is 100 requests, and the CPU the stock stack spends per request (urllib3
re-parses and re-percent-encodes the ~370-character ``/jobs/<ids>`` path three
times, checks the socket, wraps the response twice) was a third of the query's
client CPU, which on one core under the GIL is the query's wall time
(``bench/query.py``, see the README).

What it does:

* one pool of idle connections per (scheme, host, port, TLS settings), LIFO,
  at most ``pool_maxsize`` kept; a busy pool opens another connection rather
  than wait (the callers bound their own concurrency);
* a pooled connection is reused only if the peer has not closed it (a zero
  timeout ``select``), and is kept only after its response was read to the end
  and neither side asked to close;
* response heads are read strictly by :mod:`cijobs.response_head` (a head cut off by the close,
  conflicting or malformed ``Content-Length`` and malformed field lines are errors; 1xx interim
  responses are skipped), bodies by ``http.client``;
* connect and read timeouts (``timeout=float | (connect, read) | None``);
* TLS verified against requests' CA bundle (certifi) by default; ``verify`` as
  a path or ``False`` and ``cert`` are honoured like requests does;
* the body is always read in full (``stream=True`` is accepted and ignored:
  our responses are small documents), bounded by ``max_body_bytes``; a
  ``gzip``/``deflate`` body is decoded within the same bound (a cut or trailing-garbage stream is an
  error; multi-member gzip is decoded whole);
* failures are requests' exceptions: ``ConnectTimeout``, ``ReadTimeout``,
  ``SSLError`` (:class:`CertificateVerifyError` when the certificate is refused),
  ``ConnectionError``, ``ChunkedEncodingError``, ``ContentDecodingError``,
  ``InvalidURL``, ``InvalidHeader``;
* proxies are refused (``InvalidProxyURL``): signed calls go direct, and
  ``new_session()`` turns off proxies from the environment.

Test doubles that replace ``HTTPAdapter.send`` (the ``responses`` library) keep
working: while ``HTTPAdapter.send`` is not requests' own, this adapter hands the
request to it.
"""

from __future__ import annotations

import http.client
import math
import os
import select
import socket
import ssl
import threading
import zlib
from typing import Any, Optional, Union, cast
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_CA_BUNDLE_PATH, HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers

from .response_head import Fields, StrictResponse

DEFAULT_POOL_MAXSIZE = 16
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}

_PoolKey = tuple[str, str, int, Any, Any]


def _positive_seconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < math.inf


def split_timeout(timeout: Any) -> tuple[Optional[float], Optional[float]]:
    """requests' ``timeout`` argument (seconds, a (connect, read) pair, or None = no limit) as a pair.

    Anything else is a ``ValueError``, as requests' own adapter raises for a malformed timeout."""
    pair = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    if len(pair) != 2 or not all(t is None or _positive_seconds(t) for t in pair):
        raise ValueError(f"timeout must be None, a positive number or a (connect, read) pair of them, "
                         f"got {timeout!r}")
    return tuple(None if t is None else float(t) for t in pair)  # type: ignore[return-value]


def peer_closed(sock: Optional[socket.socket]) -> bool:
    """True when an idle keep-alive socket is unusable: closed, or readable (EOF or stray bytes)."""
    if sock is None or sock.fileno() < 0:
        return True
    try:
        if hasattr(select, "poll"):  # no FD_SETSIZE limit, unlike select()
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _is_zlib_header(data: bytes) -> bool:
    """RFC 1950: CM = 8 (deflate) and the 16-bit header a multiple of 31."""
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


def decode_body(data: bytes, encoding: str, limit: int) -> bytes:
    """A ``Content-Encoding`` of identity, gzip or deflate decoded, at most ``limit`` bytes out.

    The compressed stream must end where the body ends (a cut stream is an error, not a short body);
    gzip may hold several members, one after another (RFC 1952), and all are decoded.
    """
    coding = encoding.strip().lower()
    if coding in ("", "identity") or not data:  # no body (HEAD, 204, 304): nothing to decode
        return data
    if coding in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif coding == "deflate":
        wbits = zlib.MAX_WBITS if _is_zlib_header(data) else -zlib.MAX_WBITS  # zlib-wrapped or raw
    else:
        raise requests.exceptions.ContentDecodingError(f"unsupported Content-Encoding {encoding!r}")
    out = bytearray()
    rest = data
    while True:
        decoder = zlib.decompressobj(wbits)
        try:
            out += decoder.decompress(rest, limit + 1 - len(out))
        except zlib.error:
            raise requests.exceptions.ContentDecodingError(f"body is not valid {coding} data") from None
        if len(out) > limit or decoder.unconsumed_tail:
            raise requests.exceptions.ContentDecodingError(f"decoded body exceeds {limit} bytes")
        if not decoder.eof:
            raise requests.exceptions.ContentDecodingError(f"the {coding} stream ends before its end marker")
        rest = decoder.unused_data
        if not rest:
            return bytes(out)
        if wbits != 16 + zlib.MAX_WBITS:
            raise requests.exceptions.ContentDecodingError(f"bytes after the end of the {coding} stream")


class CertificateVerifyError(requests.exceptions.SSLError):
    """The server's TLS certificate was refused (untrusted, expired, or for another host), as opposed to
    a handshake cut by the network; the clients report it as ``CertificateVerifyFailed``."""


class _Pool:
    """Idle connections to one origin (LIFO: the most recently used socket is the warmest)."""

    def __init__(self, maxsize: int) -> None:
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._maxsize = maxsize

    def take(self) -> Optional[http.client.HTTPConnection]:
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if not peer_closed(conn.sock):
                return conn
            conn.close()

    def give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self._maxsize:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class KeepAliveAdapter(HTTPAdapter):
    """A ``requests`` transport adapter over pooled ``http.client`` connections (see the module doc)."""

    def __init__(self, pool_maxsize: int = DEFAULT_POOL_MAXSIZE,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        super().__init__(pool_connections=1, pool_maxsize=max(1, pool_maxsize), max_retries=0)
        self._pool_max = max(1, pool_maxsize)
        self._max_body = max_body_bytes
        self._pools: dict[_PoolKey, _Pool] = {}
        self._contexts: dict[tuple[Any, Any], ssl.SSLContext] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ requests API
    def send(  # type: ignore[override]
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Union[bool, str] = True,
        cert: Any = None,
        proxies: Optional[dict[str, str]] = None,
    ) -> requests.Response:
        if getattr(HTTPAdapter.send, "__module__", None) != "requests.adapters":  # a test double is installed
            return HTTPAdapter.send(self, request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                                    proxies=proxies)
        if proxies and any(proxies.values()):
            raise requests.exceptions.InvalidProxyURL("proxies are not supported: signed calls go direct",
                                                      request=request)
        connect_s, read_s = split_timeout(timeout)
        url = request.url or ""
        parts = urlsplit(url)
        scheme = (parts.scheme or "").lower()
        host = parts.hostname
        if scheme not in _DEFAULT_PORTS or not host:
            raise requests.exceptions.InvalidURL(f"cannot send to {url[:200]!r}", request=request)
        try:
            port = parts.port or _DEFAULT_PORTS[scheme]
        except ValueError:
            raise requests.exceptions.InvalidURL(f"bad port in {url[:200]!r}", request=request) from None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        tls_key: tuple[Any, Any] = (verify, cert) if scheme == "https" else (None, None)
        pool = self._pool((scheme, host, port, *tls_key))

        conn = pool.take()
        if conn is None:
            conn = self._connect(scheme, host, port, tls_key, connect_s, request)
        try:
            sock = conn.sock
            if sock is not None:
                sock.settimeout(read_s)
            status, reason, headers, data, reusable = self._exchange(conn, request, target)
        except BaseException:
            conn.close()
            raise
        if reusable:
            pool.give(conn)
        else:
            conn.close()
        return self._response(request, status, reason, headers, data)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
        super().close()

    # ------------------------------------------------------------------ pieces
    def _pool(self, key: _PoolKey) -> _Pool:
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.setdefault(key, _Pool(self._pool_max))
        return pool

    def _context(self, verify: Union[bool, str], cert: Any) -> ssl.SSLContext:
        key = (verify, cert)
        ctx = self._contexts.get(key)
        if ctx is not None:
            return ctx
        if verify is False:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif isinstance(verify, str):
            if os.path.isdir(verify):
                ctx = ssl.create_default_context(capath=verify)
            else:
                ctx = ssl.create_default_context(cafile=verify)
        else:
            ctx = ssl.create_default_context(cafile=DEFAULT_CA_BUNDLE_PATH)
        if cert:
            if isinstance(cert, tuple):
                ctx.load_cert_chain(cert[0], cert[1])
            else:
                ctx.load_cert_chain(cert)
        self._contexts[key] = ctx
        return ctx

    def _connect(self, scheme: str, host: str, port: int, tls_key: tuple[Any, Any],
                 connect_s: Optional[float], request: requests.PreparedRequest) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        try:
            if scheme == "https":
                conn = http.client.HTTPSConnection(host, port, timeout=connect_s,
                                                   context=self._context(*tls_key))
            else:
                conn = http.client.HTTPConnection(host, port, timeout=connect_s)
            conn.response_class = StrictResponse
            conn.connect()
        except ssl.SSLCertVerificationError as exc:
            raise CertificateVerifyError(f"TLS certificate of {host}:{port} refused: {exc.verify_message}",
                                         request=request) from None
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise requests.exceptions.SSLError(f"TLS handshake with {host}:{port} failed: {exc}",
                                               request=request) from None
        except (socket.timeout, TimeoutError):
            raise requests.exceptions.ConnectTimeout(f"connecting to {host}:{port} timed out",
                                                     request=request) from None
        except (OSError, http.client.HTTPException) as exc:
            raise requests.exceptions.ConnectionError(
                f"cannot connect to {host}:{port}: {type(exc).__name__}: {exc}", request=request) from None
        return conn

    def _exchange(self, conn: http.client.HTTPConnection, request: requests.PreparedRequest,
                  target: str) -> tuple[int, str, CaseInsensitiveDict[str], bytes, bool]:
        body = request.body
        headers = dict(request.headers)
        if isinstance(body, str):
            body = body.encode("utf-8")
            headers["Content-Length"] = str(len(body))
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        try:
            conn.request(request.method or "GET", target, body=body, headers=headers, encode_chunked=chunked)
            resp = conn.getresponse()
            length: Optional[int] = None if resp.chunked else resp.length
            if length is not None:  # Content-Length: read() raises IncompleteRead when the body is short
                too_long = length > self._max_body
                data = b"" if too_long else resp.read()
            else:  # chunked (a premature end raises IncompleteRead) or delimited by the close
                data = resp.read(self._max_body + 1)
                too_long = len(data) > self._max_body
            complete = resp.isclosed()
        except requests.RequestException:
            raise
        except (socket.timeout, TimeoutError):
            raise requests.exceptions.ReadTimeout("the server did not answer in time", request=request) from None
        except http.client.IncompleteRead as exc:
            raise requests.exceptions.ChunkedEncodingError(
                f"response ended early ({len(exc.partial)} bytes read)", request=request) from None
        except http.client.InvalidURL as exc:
            raise requests.exceptions.InvalidURL(str(exc), request=request) from None
        except ValueError as exc:  # http.client refuses an illegal header name or value
            if isinstance(exc, UnicodeError):
                raise  # a header that is not Latin-1: callers report it as such
            raise requests.exceptions.InvalidHeader(str(exc), request=request) from None
        except ssl.SSLError as exc:
            raise requests.exceptions.SSLError(f"TLS error: {exc}", request=request) from None
        except (OSError, http.client.HTTPException) as exc:
            raise requests.exceptions.ConnectionError(f"{type(exc).__name__}: {exc}", request=request) from None
        if too_long:
            raise requests.exceptions.ContentDecodingError(
                f"response body exceeds {self._max_body} bytes", request=request)
        merged = cast(Fields, resp.headers).merged()
        data = decode_body(data, merged.get("Content-Encoding", ""), self._max_body)
        return resp.status, resp.reason, merged, data, complete and not resp.will_close

    def _response(self, request: requests.PreparedRequest, status: int, reason: str,
                  headers: CaseInsensitiveDict[str], data: bytes) -> requests.Response:
        response = requests.Response()
        response.connection = self  # as HTTPAdapter.build_response sets it (auth handlers re-send through it)
        response.status_code = status
        response.reason = reason
        response.headers = headers
        response.encoding = get_encoding_from_headers(headers)
        response.url = request.url or ""
        response.request = request
        response._content = data
        response._content_consumed = True  # type: ignore[attr-defined]
        return response
