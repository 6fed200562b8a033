"""Hostile servers against the stock stack (requests + urllib3, through cijobs.http): raw sockets on 127.0.0.1.

Each case asserts the elapsed time (ends by the deadline or the cap), the documented error code and the
peak memory (tracemalloc, every thread), and that nothing is followed. A CI client sends one attempt
(``HTTP_MAX_ATTEMPTS=1``) with a 1 s deadline and a 1 MiB cap.
"""

from __future__ import annotations

import gzip
import os
import ssl
import time
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import pytest
import requests

from cijobs import failures
from cijobs.ci_client import JobClient
from cijobs.credentials import Credentials
from cijobs.deadline import Deadline
from cijobs.http import NoAnswer, exchange, new_session
from cijobs.models import JobFailure
from cijobs.settings import Settings
from fakes import Sleeps
from fakes.rawserver import Conn, RawServer, response

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
CREDS = Credentials("AKIDhostile", "hostile-secret-key")
JOB = "j" + "0" * 31 + "1"
CAP = 1024 * 1024
DEADLINE_S = 1.0
BLOCK = b"x" * 65536  # sent over and over: the server allocates nothing while memory is traced
TLS = os.path.join(os.path.dirname(__file__), "data", "tls")


def _gzip_bomb(decoded: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    parts = [c.compress(zeros) for _ in range(decoded // len(zeros))]
    return b"".join(parts) + c.flush()


BOMB = _gzip_bomb(64 * 1024 * 1024)  # 64 MiB of zeros in ~64 KB


def ci_query(url: str, deadline_s: float = DEADLINE_S) -> tuple[JobFailure, float, int]:
    settings = Settings(ci_bucket=BUCKET, ci_region=REGION, ci_endpoint=url, http_max_attempts=1,
                        http_read_timeout_s=2.0, http_connect_timeout_s=2.0)
    client = JobClient(settings, credentials=lambda: CREDS, sleep=Sleeps(), max_body_bytes=CAP)
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = client.query([JOB], Deadline(deadline_s))
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    (failure,) = result.failed
    return failure, elapsed, peak


def serve_once(write: Callable[[Conn], None]) -> Callable[[Conn], None]:
    def script(conn: Conn) -> None:
        if conn.request() is not None:
            write(conn)

    return script


def forever(conn: Conn, data: bytes, every_s: float = 0.0, limit_s: float = 5.0) -> None:
    end = time.monotonic() + limit_s
    while time.monotonic() < end and conn.send(data):
        if every_s:
            time.sleep(every_s)


def endless_continue(conn: Conn) -> None:
    forever(conn, b"HTTP/1.1 100 Continue\r\n\r\n", every_s=0.05)


def processing_102(conn: Conn) -> None:
    conn.send(b"HTTP/1.1 102 Processing\r\n\r\n")
    time.sleep(2)


def slow_head(conn: Conn) -> None:
    conn.dribble(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Pad: " + b"p" * 100 + b"\r\n\r\nok", 0.05)


def dribbled_body(conn: Conn) -> None:
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    conn.dribble(b"<" * 1000, 0.05)


def chunked_head(conn: Conn, size_line: bytes) -> None:
    conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size_line)
    forever(conn, BLOCK, limit_s=3.0)


def over_cap_content_length(conn: Conn) -> None:
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (64 * CAP))
    forever(conn, BLOCK, limit_s=3.0)


def over_cap_until_close(conn: Conn) -> None:
    conn.send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    forever(conn, BLOCK, limit_s=3.0)


def shorter_than_content_length(conn: Conn) -> None:
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n<Response>")


def gzip_bomb(conn: Conn) -> None:
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(BOMB) + BOMB)
    time.sleep(1)


CASES: list[tuple[str, Callable[[Conn], None], str, float, int]] = [
    # id, server, code, most seconds, most peak bytes
    ("endless-100-continue", endless_continue, failures.TIMEOUT, DEADLINE_S + 0.6, CAP),
    ("102-processing", processing_102, failures.MALFORMED_RESPONSE, 0.5, CAP),
    ("slow-head", slow_head, failures.TIMEOUT, DEADLINE_S + 0.6, CAP),
    ("dribbled-body", dribbled_body, failures.TIMEOUT, DEADLINE_S + 0.6, CAP),
    ("negative-chunk-size", lambda c: chunked_head(c, b"-5\r\n"), failures.MALFORMED_RESPONSE, 0.5, CAP),
    ("malformed-chunk-size", lambda c: chunked_head(c, b"zz\r\n"), failures.MALFORMED_RESPONSE, 0.5, CAP),
    ("huge-chunk-size", lambda c: chunked_head(c, b"fffffffffffffffffff\r\n"), failures.MALFORMED_RESPONSE,
     DEADLINE_S, 4 * CAP),
    ("over-cap-content-length", over_cap_content_length, failures.MALFORMED_RESPONSE, DEADLINE_S, 4 * CAP),
    ("over-cap-until-close", over_cap_until_close, failures.MALFORMED_RESPONSE, DEADLINE_S, 4 * CAP),
    ("shorter-than-content-length", shorter_than_content_length, failures.MALFORMED_RESPONSE, 0.5, CAP),
    ("gzip-bomb", gzip_bomb, failures.MALFORMED_RESPONSE, DEADLINE_S, 6 * CAP),
]


@pytest.mark.parametrize(("write", "code", "most_s", "most_bytes"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_hostile_answer_ends_by_the_deadline_or_the_cap(write: Any, code: str, most_s: float,
                                                        most_bytes: int) -> None:
    with RawServer(serve_once(write)) as server:
        failure, elapsed, peak = ci_query(server.url)
    assert failure.error.code == code, failure
    assert failure.retryable  # transient: a later attempt may help
    if failure.error.http_status is None:  # no HTTP answer: the message names where and why
        assert f"127.0.0.1:{server.port}" in failure.error.message
    assert elapsed < most_s, (elapsed, failure)
    assert peak < most_bytes, peak
    assert len(server.requests) == 1


def test_redirect_is_classified_final_and_not_followed() -> None:
    with RawServer(serve_once(lambda c: c.send(b"unexpected"))) as other:
        location = other.url + "/steal"
        with RawServer(serve_once(lambda c: c.send(response(status="302 Found",
                                                            headers=(("Location", location),))))) as server:
            failure, elapsed, peak = ci_query(server.url)
    assert failure.error.code == failures.REDIRECT and not failure.retryable and failure.error.http_status == 302
    assert elapsed < 0.5 and peak < CAP
    assert len(server.requests) == 1 and other.accepted == 0


def test_refused_certificate_is_a_configuration_failure() -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(TLS, "cert.pem"), os.path.join(TLS, "key.pem"))
    with RawServer(serve_once(lambda c: c.send(response(b"nope"))), tls=ctx) as server:
        failure, elapsed, peak = ci_query(server.url)
    assert failure.error.code == failures.CERTIFICATE_VERIFY_FAILED and failure.retryable
    assert "certificate refused" in failure.error.message and f"127.0.0.1:{server.port}" in failure.error.message
    assert elapsed < 0.5 and peak < CAP
    assert server.requests == []  # nothing was sent over the refused connection


def _exchange(session: requests.Session, url: str, deadline_s: float = 2.0) -> bytes:
    prepared = session.prepare_request(requests.Request("GET", url))
    return exchange(session, prepared, host_port="127.0.0.1", deadline=Deadline(deadline_s),
                    connect_timeout_s=1, read_timeout_s=1, max_body_bytes=CAP).body


def test_bytes_past_content_length_never_become_part_of_a_response() -> None:
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
    served = [0]

    def script(conn: Conn) -> None:
        while conn.request() is not None:
            served[0] += 1
            if served[0] == 1:
                conn.send(response(b"hello") + smuggled)  # 5 declared, more sent
            else:
                conn.send(response(b"good"))

    with RawServer(script) as server:
        session = new_session(4)
        assert _exchange(session, server.url + "/a") == b"hello"
        time.sleep(0.05)
        assert _exchange(session, server.url + "/b") == b"good"
        assert _exchange(session, server.url + "/c") == b"good"


def test_keep_alive_is_kept_for_clean_answers() -> None:
    def script(conn: Conn) -> None:
        while conn.request() is not None:
            conn.send(response(gzip.compress(b"body" * 100), headers=(("Content-Encoding", "gzip"),)))

    with RawServer(script) as server:
        session = new_session(4)
        for _ in range(5):
            assert _exchange(session, server.url + "/x") == b"body" * 100
    assert server.accepted == 1 and len(server.requests) == 5


def test_a_failed_answer_is_not_reused() -> None:
    served = [0]

    def script(conn: Conn) -> None:
        while conn.request() is not None:
            served[0] += 1
            conn.send(b"HTTP/1.1 102 Processing\r\n\r\n" + response(b"late") if served[0] == 1
                      else response(b"fresh"))

    with RawServer(script) as server:
        session = new_session(4)
        prepared = session.prepare_request(requests.Request("GET", server.url + "/x"))
        reply = exchange(session, prepared, host_port="h", deadline=Deadline(2), connect_timeout_s=1,
                         read_timeout_s=1)
        assert reply.status == 102
        # the "late" answer on the first connection is never taken as the answer to the next request
        assert _exchange(session, server.url + "/y") == b"fresh"
    assert server.accepted == 2


def test_exchange_with_no_time_left_sends_nothing() -> None:
    with RawServer(serve_once(lambda c: c.send(response(b"x")))) as server:
        session = new_session(1)
        with pytest.raises(NoAnswer) as info:
            _exchange(session, server.url, deadline_s=0)
    assert info.value.kind == "deadline" and server.accepted == 0


def test_connection_refused_names_host_port_and_cause() -> None:
    from fakes.rawserver import closed_port

    port = closed_port()
    failure, elapsed, _ = ci_query(f"http://127.0.0.1:{port}")
    assert failure.error.code == failures.CONNECTION_ERROR and failure.retryable
    assert failure.error.message == f"127.0.0.1:{port}: connection refused"
    assert elapsed < 0.5


def test_name_that_does_not_resolve_is_a_configuration_failure() -> None:
    settings = Settings(ci_bucket=BUCKET, ci_region=REGION, ci_endpoint="http://nxdomain.invalid",
                        http_max_attempts=3)
    sleeps = Sleeps()
    result = JobClient(settings, credentials=lambda: CREDS, sleep=sleeps).query([JOB], Deadline(5))
    (failure,) = result.failed
    assert failure.error.code == failures.CONNECTION_ERROR and failure.retryable and sleeps == []
    assert "nxdomain.invalid:80" in failure.error.message and "did not resolve" in failure.error.message
