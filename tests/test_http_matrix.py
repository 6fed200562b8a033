"""One failure matrix through CI, COS and CMQ (data-flow): the same code and class in all three.

Plus: ``HTTP_MAX_ATTEMPTS`` / ``CI_MAX_ATTEMPTS`` (alias) bound the requests per batch, throttles wait for the
pace and ``Retry-After`` within the deadline, and every CI, COS and CMQ request goes through urllib3 (pool
requests counted against the emulator's). ``cijobs query`` against a closed port: tests/test_cli_query.py.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import urllib3

from cijobs import failures
from cijobs.ci_client import JobClient
from cijobs.cmq_client import CmqError, CmqTarget, DataflowCmqClient
from cijobs.cos import CosClient, CosError
from cijobs.credentials import Credentials
from cijobs.deadline import Deadline
from cijobs.failures import ClassifiedJobFailure
from cijobs.ratelimit import Limiters
from cijobs.settings import Settings
from cijobs_tools.emulator import Emulator
from fakes.rawserver import Conn, RawServer, response

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
CREDS = Credentials("AKIDmatrix", "matrix-secret-key")
JOB = "j" + "0" * 31 + "1"
QUEUE = CmqTarget("queue", REGION, "results")


def xml_error(code: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>m</Message><RequestId>rid</RequestId></Error>".encode()


def answer(raw: bytes) -> Callable[[Conn], None]:
    def script(conn: Conn) -> None:
        while conn.request() is not None:
            conn.send(raw)

    return script


def close_without_answering(conn: Conn) -> None:
    conn.request()


def never_answer(conn: Conn) -> None:
    conn.request()
    time.sleep(2)


def malformed_200(conn: Conn) -> None:
    while conn.request() is not None:
        conn.send(response(b"<<< not XML, not JSON"))


MATRIX: list[tuple[str, Callable[[Conn], None], str, str]] = [
    ("network-error", close_without_answering, failures.CONNECTION_ERROR, failures.TRANSIENT),
    ("timeout", never_answer, failures.TIMEOUT, failures.TRANSIENT),
    ("429-retry-after", answer(response(status="429 Too Many Requests", headers=(("Retry-After", "5"),))),
     "HTTP429", failures.THROTTLE),
    ("500", answer(response(xml_error("InternalError"), "500 Internal Server Error")), "InternalError",
     failures.TRANSIENT),
    ("501", answer(response(status="501 Not Implemented")), "HTTP501", failures.TRANSIENT),
    ("503-slowdown", answer(response(xml_error("SlowDown"), "503 Service Unavailable",
                                     (("Retry-After", "5"),))), "SlowDown", failures.THROTTLE),
    ("503-other", answer(response(xml_error("ServiceUnavailable"), "503 Service Unavailable")),
     "ServiceUnavailable", failures.TRANSIENT),
    ("malformed-200", malformed_200, failures.MALFORMED_RESPONSE, failures.TRANSIENT),
    ("403-access-denied", answer(response(xml_error("AccessDenied"), "403 Forbidden")), "AccessDenied",
     failures.CONFIGURATION),
    ("403-signature", answer(response(xml_error("SignatureDoesNotMatch"), "403 Forbidden")),
     "SignatureDoesNotMatch", failures.CONFIGURATION),
    ("404", answer(response(xml_error("NoSuchKey"), "404 Not Found")), "NoSuchKey", failures.FINAL),
    ("redirect", answer(response(status="302 Found", headers=(("Location", "http://127.0.0.1:1/x"),))),
     failures.REDIRECT, failures.FINAL),
]


def settings(url: str, **kw: Any) -> Settings:
    base: dict[str, Any] = {"ci_bucket": BUCKET, "ci_region": REGION, "ci_endpoint": url, "cos_endpoint": url,
                            "cmq_endpoint": url, "http_max_attempts": 1, "http_read_timeout_s": 0.3}
    base.update(kw)
    return Settings(**base)


def via_ci(url: str) -> tuple[str, str, bool]:
    (f,) = JobClient(settings(url), lambda: CREDS).query([JOB], Deadline(1.0)).failed
    assert isinstance(f, ClassifiedJobFailure)
    return f.error.code, f.failure_class, f.retryable


def via_cos(url: str) -> tuple[str, str, bool]:
    with pytest.raises(CosError) as info:
        CosClient(settings(url), lambda: CREDS).list_objects(BUCKET, REGION, "p/", deadline=Deadline(1.0))
    return info.value.code, info.value.failure_class, info.value.retryable


def via_cmq(url: str) -> tuple[str, str, bool]:
    with pytest.raises(CmqError) as info:
        DataflowCmqClient(settings(url), lambda: CREDS).send(QUEUE, ["{}"], deadline=Deadline(1.0))
    return info.value.code, info.value.failure_class, info.value.retryable


@pytest.mark.parametrize(("script", "code", "failure_class"), [m[1:] for m in MATRIX], ids=[m[0] for m in MATRIX])
def test_same_code_and_class_in_ci_cos_and_cmq(script: Callable[[Conn], None], code: str,
                                               failure_class: str) -> None:
    expected = (code, failure_class, failure_class != failures.FINAL)
    for via in (via_ci, via_cos, via_cmq):
        with RawServer(script) as server:
            started = time.monotonic()
            assert via(server.url) == expected, via.__name__
            assert time.monotonic() - started < 1.5
            assert len(server.requests) == 1, via.__name__  # one attempt, nothing followed


def test_throttle_waits_for_retry_after_within_the_deadline_without_counting_attempts() -> None:
    served: list[float] = []

    def script(conn: Conn) -> None:
        while conn.request() is not None:
            served.append(time.monotonic())
            if len(served) < 3:
                conn.send(response(xml_error("SlowDown"), "503 Service Unavailable", (("Retry-After", "0.2"),)))
            else:
                conn.send(response(b'{"code": 0, "msgId": "m1"}'))

    with RawServer(script) as server:
        client = DataflowCmqClient(settings(server.url), lambda: CREDS)  # HTTP_MAX_ATTEMPTS=1
        assert client.send(QUEUE, ["{}"], deadline=Deadline(3)) == ["m1"]
    assert len(served) == 3 and served[1] - served[0] >= 0.19 and served[2] - served[1] >= 0.19


def test_throttle_reports_to_the_limiter() -> None:
    def script(conn: Conn) -> None:
        n = 0
        while conn.request() is not None:
            n += 1
            conn.send(response(status="429 Too Many Requests", headers=(("Retry-After", "0.1"),)) if n == 1
                      else response(b"<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>"))

    limiters = Limiters("adaptive", start_rps=100)
    with RawServer(script) as server:
        cos = CosClient(settings(server.url), lambda: CREDS, limiters=limiters)
        assert cos.list_objects(BUCKET, REGION, deadline=Deadline(3)).objects == []
    snap = limiters.snapshot()
    assert snap["cos"]["throttled"] == 1 and snap["cos"]["rate"] is not None and snap["cos"]["rate"] < 100


@pytest.mark.parametrize(("env", "expected"), [({"HTTP_MAX_ATTEMPTS": "2"}, 2), ({"CI_MAX_ATTEMPTS": "3"}, 3),
                                               ({"HTTP_MAX_ATTEMPTS": "2", "CI_MAX_ATTEMPTS": "3"}, 2)])
def test_attempts_per_batch_against_an_always_500_endpoint(env: dict[str, str], expected: int) -> None:
    with RawServer(answer(response(xml_error("InternalError"), "500 Internal Server Error"))) as server:
        s = Settings.from_env({"CI_BUCKET": BUCKET, "CI_REGION": REGION, "CI_ENDPOINT": server.url, **env})
        client = JobClient(s, lambda: CREDS, sleep=lambda _s: None)
        result = client.query([f"j{n:032x}" for n in range(20)], Deadline(5))  # two batches
    assert len(result.failed) == 20 and {f.error.code for f in result.failed} == {"InternalError"}
    assert len(server.requests) == 2 * expected


def test_alias_warnings() -> None:
    assert Settings.from_env({}).alias_warnings() == []
    assert Settings.from_env({"HTTP_MAX_ATTEMPTS": "2"}).alias_warnings() == []
    (only,) = Settings.from_env({"CI_MAX_ATTEMPTS": "3"}).alias_warnings()
    assert "CI_MAX_ATTEMPTS is the old name of HTTP_MAX_ATTEMPTS" in only
    (both,) = Settings.from_env({"CI_READ_TIMEOUT_S": "3", "HTTP_READ_TIMEOUT_S": "4"}).alias_warnings()
    assert "HTTP_READ_TIMEOUT_S wins" in both
    s = Settings.from_env({"CI_READ_TIMEOUT_S": "3", "HTTP_READ_TIMEOUT_S": "4", "CI_CONNECT_TIMEOUT_S": "1.5"})
    assert (s.read_timeout_s, s.connect_timeout_s, s.max_attempts) == (4.0, 1.5, 4)


def test_alias_warning_is_logged_once_at_client_construction(log_stream: Any) -> None:
    s = Settings.from_env({"CI_BUCKET": BUCKET, "CI_REGION": REGION, "CI_MAX_ATTEMPTS": "3"})
    JobClient(s, lambda: CREDS)
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    warned = [e for e in events if e["event"] == "settings.alias"]
    assert len(warned) == 1 and warned[0]["level"] == "warning" and "3" not in warned[0]["message"]


# -- every request goes through urllib3 ---------------------------------------------------------------------

@pytest.fixture
def pool_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Counts urllib3 pool requests (``HTTPConnectionPool.urlopen``, the public entry every request takes)."""
    seen: list[str] = []
    real = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def counting(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(f"{method} {url}")
        return real(self, method, url, *args, **kwargs)

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "urlopen", counting)
    yield seen


def test_every_ci_cos_and_cmq_request_goes_through_urllib3(pool_requests: list[str]) -> None:
    creds = Credentials("AKIDemu", "emu-secret-key")
    with Emulator(secret_id=creds.secret_id, secret_key=creds.secret_key, seed=3) as emu:
        emu.faults.cos.fail_rate = 0.3  # retries are requests too
        s = Settings(ci_bucket=BUCKET, ci_region=REGION, ci_endpoint=emu.url, cos_endpoint=emu.url,
                     cmq_endpoint=emu.url, http_max_attempts=10)
        ids = [f"j{n:032x}" for n in range(35)]
        for job_id in ids[:30]:
            emu.ci.add_job(job_id)
        rng = random.Random(5)
        result = JobClient(s, lambda: creds, sleep=lambda _s: None, rng=rng).query(ids, Deadline(20))
        assert len(result.jobs) == 30 and len(result.nonexistent) == 5
        cos = CosClient(s, lambda: creds, sleep=lambda _s: None, rng=rng)
        for n in range(10):
            cos.put_object(BUCKET, REGION, f"k/{n}.json", b"{}", "application/json")
        assert len(cos.list_objects(BUCKET, REGION, "k/").objects) == 10
        cmq = DataflowCmqClient(s, lambda: creds, sleep=lambda _s: None, rng=rng)
        cmq.send(QUEUE, ["a", "b"])
        # answered requests, plus those the emulator failed on purpose (not in its request logs)
        injected = sum(emu.faults.injected.values())
        emulator_requests = len(emu.ci.requests) + len(emu.cos.requests) + emu.cmq.requests + injected
    assert len(emu.ci.requests) == math.ceil(35 / 10) and injected > 0
    assert len(pool_requests) == emulator_requests
