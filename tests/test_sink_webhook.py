"""The webhook sink over real HTTP on 127.0.0.1, against the emulator's webhook receiver."""

from __future__ import annotations

import io
import json
import math
import random
import time
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from cijobs import log
from cijobs.deadline import Deadline
from cijobs.settings import Settings
from cijobs.sinks import MultiSink, SinkConfigError, WebhookSink, build_sinks, canonical_json
from cijobs.sinks.webhook import USER_AGENT, new_webhook_session
from cijobs.store import FileObjectStore
from cijobs.targets import parse_webhook_target
from cijobs.webhook_signature import verify
from cijobs_tools.emulator import Emulator

SECRET = "webhook-test-secret-" + "k" * 24
SECRET2 = "webhook-next-secret-" + "n" * 24

pytestmark = pytest.mark.usefixtures("log_stream")


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    with Emulator(seed=3) as emu:
        yield emu


@pytest.fixture
def emu(server: Emulator) -> Iterator[Emulator]:
    server.reset()
    yield server
    server.reset()


def job(i: int = 0, state: str = "Success", **extra: Any) -> dict[str, Any]:
    return {"JobId": f"j{i:032x}", "State": state, "Tag": "Transcode", "Code": "Success", **extra}


class Limiter:
    """Records the feedback the sink gives its rate limiter."""

    def __init__(self, admit: bool = True) -> None:
        self.admit = admit
        self.acquired = 0
        self.successes = 0
        self.throttles: list[Optional[float]] = []

    rate = math.inf
    throttled = 0

    def acquire(self, deadline_remaining_s: float = math.inf) -> bool:
        self.acquired += 1
        return self.admit

    def on_success(self) -> None:
        self.successes += 1

    def on_throttle(self, retry_after_s: Optional[float] = None) -> None:
        self.throttles.append(retry_after_s)


class Sleeps(list[float]):
    def __call__(self, s: float) -> None:
        self.append(s)


def make_sink(emu: Emulator, name: str = "r", secrets: tuple[str, ...] = (SECRET,), **kw: Any) -> WebhookSink:
    kw.setdefault("sleep", Sleeps())
    kw.setdefault("rng", random.Random(1))
    kw.setdefault("limiter", Limiter())
    return WebhookSink(new_webhook_session(), parse_webhook_target(emu.webhook_url(name)), secrets, **kw)


def test_delivery_body_and_headers(emu: Emulator) -> None:
    emu.webhooks.configure("r", secrets=[SECRET])
    sink = make_sink(emu)
    j = job(1, Operation={"Output": {"Object": "out/é.mp4"}})
    before = int(time.time())
    (r,) = sink.write([j])
    assert r.ok and not r.retryable
    (d,) = emu.webhooks.deliveries("r")
    assert d.body == canonical_json(j) and d.verified is True and d.status == 200
    h = d.headers
    assert h["content-type"] == "application/json" and h["user-agent"] == USER_AGENT \
        and USER_AGENT.startswith("cijobs/")
    assert h["x-cijobs-event"] == "job.finished" and h["x-cijobs-delivery"] == f"{j['JobId']}.Success"
    assert before <= int(h["x-cijobs-timestamp"]) <= int(time.time())
    assert verify([SECRET], h["x-cijobs-timestamp"], h["x-cijobs-signature"], d.body, time.time())
    assert sink.limiter.successes == 1  # type: ignore[attr-defined]


def test_rotation_signs_with_both_secrets(emu: Emulator) -> None:
    emu.webhooks.configure("old", secrets=[SECRET])
    emu.webhooks.configure("new", secrets=[SECRET2])
    for name in ("old", "new"):
        (r,) = make_sink(emu, name, secrets=(SECRET, SECRET2)).write([job(2)])
        assert r.ok
        (d,) = emu.webhooks.deliveries(name)
        assert d.verified is True and d.headers["x-cijobs-signature"].count("v1=") == 2


def test_500_then_200_is_delivered_again_with_the_same_delivery_id(emu: Emulator) -> None:
    emu.webhooks.configure("r", secrets=[SECRET], statuses=[500, 503])
    sleeps = Sleeps()
    (r,) = make_sink(emu, sleep=sleeps).write([job(3)])
    assert r.ok
    ds = emu.webhooks.deliveries("r")
    assert [d.status for d in ds] == [500, 503, 200] and len(sleeps) == 2
    assert len({d.headers["x-cijobs-delivery"] for d in ds}) == 1 and all(d.verified for d in ds)


def test_retryable_statuses_run_out_of_attempts_retryable(emu: Emulator) -> None:
    emu.webhooks.configure("r", status=502, answer="upstream down")
    (r,) = make_sink(emu, max_attempts=3).write([job(4)])
    assert not r.ok and r.retryable and r.error is not None
    assert r.error.code == "ReceiverUnavailable" and r.error.http_status == 502 and "upstream down" in r.error.message
    assert len(emu.webhooks.deliveries("r")) == 3


@pytest.mark.parametrize("status", [408, 425])
def test_408_and_425_are_retried(emu: Emulator, status: int) -> None:
    emu.webhooks.configure("r", statuses=[status])
    (r,) = make_sink(emu).write([job(5)])
    assert r.ok and [d.status for d in emu.webhooks.deliveries("r")] == [status, 200]


@pytest.mark.parametrize("status", [410, 400, 401, 404, 422])
def test_4xx_fails_without_retry_with_status_and_200_bytes(emu: Emulator, status: int) -> None:
    emu.webhooks.configure("r", status=status, answer="G" * 150 + "H" * 100 + "TAIL")
    (r,) = make_sink(emu).write([job(6)])
    assert not r.ok and not r.retryable and r.error is not None
    assert r.error.code == "ReceiverRejected" and r.error.http_status == status
    assert str(status) in r.error.message and "G" * 150 + "H" * 50 in r.error.message
    assert "H" * 51 not in r.error.message and "TAIL" not in r.error.message
    assert len(emu.webhooks.deliveries("r")) == 1


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_is_not_followed(emu: Emulator, status: int) -> None:
    emu.webhooks.configure("r", status=status, location=emu.webhook_url("elsewhere"))
    (r,) = make_sink(emu).write([job(7)])
    assert not r.ok and not r.retryable and r.error is not None and r.error.code == "Redirect"
    assert len(emu.webhooks.deliveries("r")) == 1 and emu.webhooks.deliveries("elsewhere") == []


def test_429_retry_after_is_honoured_and_slows_the_limiter(emu: Emulator) -> None:
    emu.webhooks.configure("r", statuses=[429], retry_after="2")
    sleeps, limiter = Sleeps(), Limiter()
    (r,) = make_sink(emu, sleep=sleeps, limiter=limiter).write([job(8)], Deadline(30))
    assert r.ok and limiter.throttles == [2.0] and sleeps == [2.0]
    assert [d.status for d in emu.webhooks.deliveries("r")] == [429, 200]


def test_retry_after_past_the_deadline_gives_up_retryable(emu: Emulator) -> None:
    emu.webhooks.configure("r", statuses=[503], retry_after="120")
    sleeps = Sleeps()
    (r,) = make_sink(emu, sleep=sleeps).write([job(9)], Deadline(5))
    assert not r.ok and r.retryable and sleeps == [] and len(emu.webhooks.deliveries("r")) == 1


def test_no_time_or_no_admission_sends_nothing(emu: Emulator) -> None:
    (r,) = make_sink(emu).write([job(10)], Deadline(0))
    assert not r.ok and r.retryable and r.error is not None and r.error.code == "DeadlineExceeded"
    (r,) = make_sink(emu, limiter=Limiter(admit=False)).write([job(10)], Deadline(5))
    assert r.error is not None and r.error.code == "DeadlineExceeded"
    assert emu.webhooks.deliveries() == []


def test_connection_refused_and_timeouts_are_retryable_and_never_quote_the_url() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = parse_webhook_target(f"http://127.0.0.1:{port}/hook?token=query-secret-value-123")
    sink = WebhookSink(new_webhook_session(), target, (SECRET,), sleep=Sleeps(), max_attempts=2)
    (r,) = sink.write([job(11)])
    assert not r.ok and r.retryable and r.error is not None and r.error.code == "ConnectionError"
    assert "query-secret" not in json.dumps(r.as_dict()) and "query-secret" not in sink.name


def test_read_timeout_is_retryable(emu: Emulator) -> None:
    emu.webhooks.configure("slow", latency_ms=600)
    (r,) = make_sink(emu, "slow", read_timeout_s=0.2, max_attempts=1).write([job(12)])
    assert not r.ok and r.retryable and r.error is not None and r.error.code in ("Timeout", "ConnectionError")


def test_oversized_body_goes_through_the_claim_check(emu: Emulator, tmp_path: Any) -> None:
    emu.webhooks.configure("r", secrets=[SECRET])
    store = FileObjectStore(str(tmp_path))
    big = job(13, Blob="x" * 5000)
    small = job(14)
    rs = make_sink(emu, claim_store=store, max_bytes=2048).write([big, small])
    assert all(r.ok for r in rs)
    by_id = {json.loads(d.body)["JobId"]: d for d in emu.webhooks.deliveries("r")}
    pointer = json.loads(by_id[big["JobId"]].body)
    assert set(pointer) == {"JobId", "Tag", "State", "ClaimCheck"} and "Blob" not in pointer
    cc = pointer["ClaimCheck"]
    assert cc["Size"] == len(canonical_json(big))
    stored = store.get(cc["Key"])
    assert stored is not None and stored.body == canonical_json(big)
    assert by_id[big["JobId"]].verified is True
    assert by_id[small["JobId"]].body == canonical_json(small)


def test_oversized_without_store_fails_message_too_large(emu: Emulator) -> None:
    (r,) = make_sink(emu, max_bytes=1024).write([job(15, Blob="x" * 2000)])
    assert not r.ok and not r.retryable and r.error is not None and r.error.code == "MessageTooLarge"
    assert emu.webhooks.deliveries() == []


def test_refused_jobs_are_not_sent_and_results_keep_order(emu: Emulator) -> None:
    jobs = [job(16), job(17, state="Running"), {"State": "Success"}, job(18)]
    rs = make_sink(emu).write(jobs)
    assert [r.ok for r in rs] == [True, False, False, True]
    assert [r.job_id for r in rs] == [jobs[0]["JobId"], jobs[1]["JobId"], "", jobs[3]["JobId"]]
    assert len(emu.webhooks.deliveries()) == 2


def test_deliveries_run_in_parallel(emu: Emulator) -> None:
    emu.webhooks.configure("r", latency_ms=200)
    t0 = time.monotonic()
    rs = make_sink(emu, concurrency=8).write([job(100 + i) for i in range(8)])
    assert all(r.ok for r in rs) and time.monotonic() - t0 < 1.0  # 8 x 200 ms one after the other = 1.6 s


def test_build_sinks_needs_webhook_secret_and_combines(emu: Emulator, tmp_path: Any) -> None:
    url = emu.webhook_url("r")
    with pytest.raises(SinkConfigError, match="WEBHOOK_SECRET"):
        build_sinks(Settings(result_sink=url), lambda: None)  # type: ignore[arg-type,return-value]
    sink = build_sinks(Settings(result_sink=url, webhook_secret=SECRET), lambda: None)  # type: ignore[arg-type,return-value]
    assert isinstance(sink, WebhookSink) and sink.name == url
    multi = build_sinks(Settings(result_sink=f"file://{tmp_path},{url}", webhook_secret=SECRET),
                        lambda: None)  # type: ignore[arg-type,return-value]
    assert isinstance(multi, MultiSink)
    emu.webhooks.configure("r", secrets=[SECRET])
    (r,) = multi.write([job(19)])
    assert r.ok and len(emu.webhooks.deliveries("r")) == 1


def test_secret_and_url_query_are_redacted_from_logs(emu: Emulator, log_stream: io.StringIO) -> None:
    url = emu.webhook_url("r") + "?token=url-token-value-abcdef"
    settings = Settings(result_sink=url, webhook_secret=SECRET)
    log.configure("debug", log_stream, log.Redactor(settings.secrets()))  # what build_app does
    log.get_logger("t").warning("oops", detail=f"{SECRET} {url}")
    text = log_stream.getvalue()
    assert SECRET not in text and "url-token-value-abcdef" not in text and "[redacted]" in text


def test_a_receiver_dribbling_its_answer_cannot_hold_a_delivery_past_the_deadline() -> None:
    from fakes.rawserver import Conn, RawServer

    def dribble(conn: Conn) -> None:
        if conn.request() is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            conn.dribble(b"." * 1000, 0.05, limit_s=5.0)  # one byte every 50 ms: each read is "on time"

    with RawServer(dribble) as server:
        sink = WebhookSink(new_webhook_session(), parse_webhook_target(server.url + "/hook"), (SECRET,),
                           max_attempts=1, read_timeout_s=2.0)
        started = time.monotonic()
        [r] = sink.write([{"JobId": "j" + "d" * 32, "State": "Success", "Tag": "Transcode"}], Deadline(0.6))
        elapsed = time.monotonic() - started
    assert elapsed < 1.2 and not r.ok and r.retryable and r.error is not None and r.error.code == "Timeout"
