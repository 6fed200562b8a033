"""CMQ sink: message bodies, topic tags, batching limits, claim check, failure reporting."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import pytest

from cijobs.cmq_client import CmqError, CmqTarget
from cijobs.credentials import Credentials
from cijobs.deadline import Deadline
from cijobs.errors import SettingsError
from cijobs.settings import Settings
from cijobs.sinks import CmqSink, build_sinks, canonical_json
from cijobs.sinks.cmq import topic_tags
from cijobs.store import FileObjectStore

pytestmark = pytest.mark.usefixtures("log_stream")  # each test logs to a private buffer


QUEUE = CmqTarget("queue", "ap-guangzhou", "results")
TOPIC = CmqTarget("topic", "ap-guangzhou", "jobs")


def job(i: int = 0, state: str = "Success", tag: str = "Transcode", **extra: Any) -> dict[str, Any]:
    return {"JobId": f"j{i:032x}", "State": state, "Tag": tag, **extra}


class FakeCmq:
    def __init__(self, max_batch: int = 16, failures: Optional[list[CmqError]] = None) -> None:
        self.max_batch = max_batch
        self.calls: list[tuple[CmqTarget, list[str], tuple[str, ...]]] = []
        self.failures = failures or []

    def send(self, target: CmqTarget, bodies: Sequence[str], tags: Sequence[str] = (),
             deadline: Optional[Deadline] = None) -> list[str]:
        self.calls.append((target, list(bodies), tuple(tags)))
        if self.failures:
            raise self.failures.pop(0)
        return [f"m{i}" for i in range(len(bodies))]

    @property
    def bodies(self) -> list[str]:
        return [b for _, bodies, _ in self.calls for b in bodies]


def test_queue_messages_are_canonical_json_without_tags() -> None:
    fake = FakeCmq()
    results = CmqSink(fake, QUEUE).write([job(1), job(2)])
    assert all(r.ok for r in results)
    assert fake.bodies == [canonical_json(job(1)).decode(), canonical_json(job(2)).decode()]
    assert fake.calls[0][2] == ()


def test_topic_tags_are_tag_and_state_never_truncated_never_job_id() -> None:
    assert topic_tags(job()) == ("Transcode", "Success")
    assert topic_tags(job(tag="ExtractDigitalWatermark")) == ("Success",)
    fake = FakeCmq()
    CmqSink(fake, TOPIC).write([job(1), job(2, tag="ExtractDigitalWatermark"), job(3)])
    by_tags = {tags: bodies for _, bodies, tags in fake.calls}
    assert len(by_tags[("Transcode", "Success")]) == 2 and len(by_tags[("Success",)]) == 1
    assert all(job(1)["JobId"] not in t for _, _, tags in fake.calls for t in tags)


def test_batches_respect_count_and_64k() -> None:
    fake = FakeCmq()
    results = CmqSink(fake, QUEUE).write([job(i) for i in range(40)])
    assert [len(b) for _, b, _ in fake.calls] == [16, 16, 8] and all(r.ok for r in results)
    fake = FakeCmq()
    big = [job(i, Pad="x" * 30_000) for i in range(5)]  # ~30 KB each: 2 per batch
    CmqSink(fake, QUEUE, claim_check_bytes=65536).write(big)
    assert [len(b) for _, b, _ in fake.calls] == [2, 2, 1]
    assert all(sum(len(x.encode()) for x in b) <= 64 * 1024 for _, b, _ in fake.calls)


def test_failed_batch_fails_its_jobs_only_and_others_continue() -> None:
    fake = FakeCmq(max_batch=2, failures=[CmqError("6000", "server busy", True, 200, "rq")])
    results = CmqSink(fake, QUEUE).write([job(1), job(2), job(3), job(4, state="Running")])
    assert [r.ok for r in results] == [False, False, True, False]
    assert results[0].retryable and results[0].error is not None and results[0].error.request_id == "rq"
    assert results[3].error is not None and results[3].error.code == "NotTerminal"
    # the retry (e.g. SCF re-invokes) sends again: at-least-once
    assert all(r.ok for r in CmqSink(fake, QUEUE).write([job(1), job(2)]))


def test_oversized_without_store_fails_loudly() -> None:
    fake = FakeCmq()
    [r] = CmqSink(fake, QUEUE, None, 1024).write([job(Pad="y" * 2000)])
    assert not r.ok and not r.retryable and r.error is not None and r.error.code == "MessageTooLarge"
    assert fake.calls == []


def test_claim_check_to_file_store_is_idempotent(tmp_path: Path) -> None:
    fake = FakeCmq()
    store = FileObjectStore(str(tmp_path))
    sink = CmqSink(fake, TOPIC, store, 1024)
    big = job(Pad="z" * 5000)
    for _ in range(2):
        [r] = sink.write([big])
        assert r.ok
    body = canonical_json(big)
    pointers = [json.loads(b) for b in fake.bodies]
    assert pointers[0] == pointers[1]
    p = pointers[0]
    assert (p["JobId"], p["Tag"], p["State"]) == (big["JobId"], "Transcode", "Success")
    cc = p["ClaimCheck"]
    assert cc["Size"] == len(body) and cc["Sha256"] == hashlib.sha256(body).hexdigest()
    assert Path(cc["Path"]).read_bytes() == body
    assert len([f for f in tmp_path.rglob("*") if f.is_file()]) == 1


def test_build_sinks_claim_check_store_and_api_mode(tmp_path: Path) -> None:
    creds = Credentials("AKIDx", "k")
    sink = build_sinks(Settings(result_sink="cmq-queue://ap-guangzhou/q", cmq_endpoint="http://127.0.0.1:1",
                                claim_check_store=f"file://{tmp_path}", claim_check_bytes=2048), lambda: creds)
    assert isinstance(sink, CmqSink) and sink.claim_store is not None and sink.claim_check_bytes == 2048
    api = build_sinks(Settings(result_sink="cmq-topic://ap-guangzhou/t", cmq_mode="api"), lambda: creds)
    assert isinstance(api, CmqSink) and api.client.max_batch == 1


@pytest.mark.parametrize(("name", "url"), [
    ("CLAIM_CHECK_STORE", "file:///tmp/cijobs/pending/.pending"),
    ("CLAIM_CHECK_STORE", "cos://examplebucket-1250000000.ap-guangzhou/state/.pending/claims"),
    ("RESULT_SINK", "file:///tmp/cijobs/pending/.pending/results"),
])
def test_no_store_may_sit_inside_a_pending_folder(name: str, url: str) -> None:
    fields = {"claim_check_store": url, "result_sink": "cmq-queue://ap-guangzhou/q"} if name == "CLAIM_CHECK_STORE" \
        else {"result_sink": url}
    with pytest.raises(SettingsError, match=rf"{name}.*'\.pending' folder"):
        build_sinks(Settings(cmq_endpoint="http://127.0.0.1:1", **fields), lambda: Credentials("AKIDx", "k"))


# -- claim checks never raise out of write() (moved from the review-fixes file) -----------------------------
CLAIM_BUCKET, CLAIM_REGION = "examplebucket-1250000000", "ap-guangzhou"
CLAIM_SECRET_ID, CLAIM_SECRET_KEY = "AKIDreviewtest", "review-secret-key-value"


class RecordingCmq:
    max_batch = 16

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, target, bodies, tags=(), deadline=None):
        self.sent += bodies
        return ["m"] * len(bodies)


def cmq_sink_with_cos_claims(emu: Any, cmq: RecordingCmq) -> Any:
    from cijobs.cos import CosClient
    from cijobs.store import CosLocation
    from cijobs.store.cos import CosObjectStore

    s = Settings(cos_endpoint=emu.url, ci_max_attempts=2)
    cos = CosClient(s, lambda: Credentials(CLAIM_SECRET_ID, CLAIM_SECRET_KEY), sleep=lambda _s: None)
    store = CosObjectStore(cos, CosLocation(CLAIM_BUCKET, CLAIM_REGION, "claims"))
    return CmqSink(cmq, CmqTarget("queue", CLAIM_REGION, "q"), store, 1024)


@pytest.mark.parametrize("tag", ["..", "a/b", "转码", "Tag\u2028x"])
def test_cmq_sink_claim_check_with_an_unsafe_tag_writes_every_job(tag):
    from cijobs_tools.emulator import Emulator

    with Emulator(secret_id=CLAIM_SECRET_ID, secret_key=CLAIM_SECRET_KEY, seed=5) as emu:
        cmq = RecordingCmq()
        sink = cmq_sink_with_cos_claims(emu, cmq)
        jobs = [{"JobId": "jaaaaaaaaaaaaaaaaaaaa", "State": "Success", "Tag": "Transcode"},
                {"JobId": "jbbbbbbbbbbbbbbbbbbbb", "State": "Success", "Tag": tag, "Big": "x" * 2000}]
        results = sink.write(jobs)
        assert [(r.job_id, r.ok) for r in results] == [(j["JobId"], True) for j in jobs]
        [(_, key)] = [k for k in emu.cos.objects]
        assert key.startswith("claims/claim-check/Unknown/jbbbbbbbbbbbbbbbbbbbb/")
        pointer = json.loads(cmq.sent[1])
        assert pointer["Tag"] == tag and pointer["ClaimCheck"]["Key"] == key


def test_cmq_sink_fails_only_the_job_whose_claim_check_cannot_be_built():
    from cijobs.store import InvalidKeyError

    class BadKeys(FileObjectStore):
        def key(self, *parts: str) -> str:
            raise InvalidKeyError("object key has an empty, '.' or '..' segment")

    cmq = RecordingCmq()
    sink = CmqSink(cmq, CmqTarget("queue", CLAIM_REGION, "q"), BadKeys("/nonexistent-review-dir"), 1024)
    jobs = [{"JobId": "jaaaaaaaaaaaaaaaaaaaa", "State": "Success", "Tag": "Transcode"},
            {"JobId": "jbbbbbbbbbbbbbbbbbbbb", "State": "Success", "Tag": "T", "Big": "x" * 2000}]
    ok, bad = sink.write(jobs)
    assert ok.ok and len(cmq.sent) == 1
    assert not bad.ok and bad.error is not None and (bad.error.code, bad.retryable) == ("InvalidKey", False)
