"""Every sink and the pending registry over real HTTP against the local emulator (signed, with faults)."""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest

from cijobs.cmq_client import DataflowCmqClient
from cijobs.cos import CosClient
from cijobs.credentials import Credentials
from cijobs.pending import build_pending_store
from cijobs.settings import Settings
from cijobs.sinks import CmqSink, MultiSink, ObjectSink, build_sinks, canonical_json
from cijobs_tools.emulator import Emulator

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
CREDS = Credentials("AKIDemu", "emu-secret-key", "emu-session-token")


pytestmark = pytest.mark.usefixtures("log_stream")  # each test logs to a private buffer


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    with Emulator(secret_id=CREDS.secret_id, secret_key=CREDS.secret_key, token=CREDS.token, seed=11) as emu:
        yield emu


@pytest.fixture
def emu(server: Emulator) -> Iterator[Emulator]:
    server.reset()
    yield server
    server.reset()


def job(i: int = 0, state: str = "Success", tag: str = "Transcode", **extra: Any) -> dict[str, Any]:
    return {"JobId": f"j{i:032x}", "State": state, "Tag": tag, "Code": "Success", **extra}


def settings(emu: Emulator, **kw: Any) -> Settings:
    base: dict[str, Any] = {"cos_endpoint": emu.url, "cmq_endpoint": emu.url, "ci_max_attempts": 6,
                            "ci_read_timeout_s": 2.0}
    base.update(kw)
    return Settings(**base)


def no_sleep(_: float) -> None:
    return None


def clients(s: Settings) -> tuple[CosClient, DataflowCmqClient]:
    return (CosClient(s, lambda: CREDS, sleep=no_sleep, rng=random.Random(1)),
            DataflowCmqClient(s, lambda: CREDS, sleep=no_sleep, rng=random.Random(2)))


def sink_for(emu: Emulator, result_sink: str, **kw: Any) -> Any:
    s = settings(emu, result_sink=result_sink, **kw)
    cos, cmq = clients(s)
    return build_sinks(s, lambda: CREDS, cos_client=cos, cmq_client=cmq)


COS_SINK = f"cos://{BUCKET}.{REGION}/results"


def test_cos_sink_writes_signed_objects_idempotently(emu: Emulator) -> None:
    sink = sink_for(emu, COS_SINK)
    assert isinstance(sink, ObjectSink)
    jobs = [job(i) for i in range(12)]
    assert all(r.ok and not r.already for r in sink.write(jobs))
    assert all(r.ok and r.already for r in sink.write(jobs))
    key = (BUCKET, f"results/Transcode/{jobs[0]['JobId']}.json")
    obj = emu.cos.objects[key]
    assert obj.body == canonical_json(jobs[0])
    assert obj.headers["x-cos-meta-state"] == "Success"
    assert obj.headers["x-cos-meta-sha256"] == hashlib.sha256(obj.body).hexdigest()
    assert all(n == 1 for n in emu.cos.put_counts.values()) and len(emu.cos.put_counts) == 12
    assert all(r.headers.get("x-cos-security-token") == CREDS.token for r in emu.cos.requests)


def test_cos_sink_out_of_order_states(emu: Emulator) -> None:
    sink = sink_for(emu, COS_SINK)
    [r] = sink.write([job(1, state="Running")])
    assert not r.ok and r.error is not None and r.error.code == "NotTerminal"
    assert emu.cos.objects == {}
    assert sink.write([job(1)])[0].ok
    [r] = sink.write([job(1, state="Failed")])
    assert not r.ok and not r.retryable and r.error is not None and r.error.code == "ConflictingResult"
    [r] = sink.write([job(1, NewField=True)])
    assert r.ok and r.already
    [stored] = emu.cos.objects.values()
    assert json.loads(stored.body) == job(1)


def test_cos_sink_survives_injected_5xx_slowdown_and_resets(emu: Emulator, log_stream: io.StringIO) -> None:
    emu.faults.cos.fail_rate = 0.2
    emu.faults.cos.slowdown_rate = 0.2
    emu.faults.cos.reset_after_rate = 0.2  # processed, then the connection dies: retry sees 409 → HEAD
    sink = sink_for(emu, COS_SINK, ci_max_attempts=10)
    jobs = [job(i) for i in range(30)]
    results = sink.write(jobs)
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    assert len(emu.cos.objects) == 30
    assert all(n == 1 for n in emu.cos.put_counts.values())  # nothing written twice
    injected = emu.faults.injected
    assert injected.get("cos.fail", 0) > 0 and injected.get("cos.slowdown", 0) > 0
    assert injected.get("cos.reset_after", 0) > 0
    logged = log_stream.getvalue()
    assert '"event": "http.retry"' in logged and '"service": "cos"' in logged
    assert CREDS.secret_key not in logged and str(CREDS.token) not in logged and "q-signature" not in logged


def test_cos_sink_persistent_failure_then_retry_completes(emu: Emulator) -> None:
    emu.faults.cos.fail_rate = 1.0
    sink = sink_for(emu, COS_SINK, ci_max_attempts=3)
    results = sink.write([job(1), job(2)])
    assert all(not r.ok and r.retryable for r in results)
    assert emu.cos.objects == {}
    emu.faults.cos.fail_rate = 0.0
    assert all(r.ok and not r.already for r in sink.write([job(1), job(2)]))
    assert all(r.ok and r.already for r in sink.write([job(1), job(2)]))
    assert all(n == 1 for n in emu.cos.put_counts.values())


def test_wrong_key_is_refused_by_the_emulator(emu: Emulator) -> None:
    s = settings(emu, result_sink=COS_SINK)
    bad = CosClient(s, lambda: Credentials(CREDS.secret_id, "wrong-key", CREDS.token), sleep=no_sleep)
    sink = build_sinks(s, lambda: CREDS, cos_client=bad)
    [r] = sink.write([job()])
    # a configuration failure: not retried now, kept (retryable) until the key is fixed
    assert not r.ok and r.retryable and r.error is not None and r.error.code == "SignatureDoesNotMatch"


def test_cmq_queue_and_topic(emu: Emulator) -> None:
    sink = sink_for(emu, "cmq-queue://ap-guangzhou/results,cmq-topic://ap-guangzhou/jobs")
    assert isinstance(sink, MultiSink)
    jobs = [job(i) for i in range(20)] + [job(99, tag="ExtractDigitalWatermark", state="Failed")]
    assert all(r.ok for r in sink.write(jobs))
    queue = emu.cmq.by_name("results")
    topic = emu.cmq.by_name("jobs")
    assert [m.body for m in queue] == [canonical_json(j).decode() for j in jobs]
    assert all(m.tags == [] for m in queue)
    assert {tuple(m.tags) for m in topic} == {("Transcode", "Success"), ("Failed",)}
    assert emu.cmq.requests == 5  # queue: 16 + 5 -> 2 batches; topic: 16 + 4 (Transcode) and 1 (watermark) -> 3
    # at least once: a retried invocation sends again; consumers dedupe on JobId + State
    sink.write(jobs[:1])
    assert len(emu.cmq.by_name("results")) == 22


def test_cmq_injected_failures_retried(emu: Emulator) -> None:
    emu.faults.cmq.fail_rate = 0.3
    emu.faults.inject_next("cmq", "fail")  # three batches may all miss the 30 %: one failure for certain
    sink = sink_for(emu, "cmq-queue://ap-guangzhou/results", ci_max_attempts=10)
    jobs = [job(i) for i in range(40)]
    assert all(r.ok for r in sink.write(jobs))
    bodies = [m.body for m in emu.cmq.by_name("results")]
    assert sorted(bodies) == sorted(canonical_json(j).decode() for j in jobs)  # no loss, no duplicates
    assert emu.faults.injected.get("cmq.fail", 0) > 0


def test_cmq_claim_check_through_cos(emu: Emulator) -> None:
    sink = sink_for(emu, "cmq-topic://ap-guangzhou/jobs", claim_check_store=f"cos://{BUCKET}.{REGION}/claims",
                    claim_check_bytes=4096)
    assert isinstance(sink, CmqSink)
    big = job(5, Result={"Text": "字" * 5000})
    small = job(6)
    assert all(r.ok for r in sink.write([big, small]))
    msgs = emu.cmq.by_name("jobs")
    pointer = json.loads(msgs[0].body)
    cc = pointer["ClaimCheck"]
    assert (cc["Bucket"], cc["Region"]) == (BUCKET, REGION) and cc["Key"].startswith("claims/claim-check/")
    stored = emu.cos.objects[(BUCKET, cc["Key"])].body
    assert stored == canonical_json(big) and cc["Size"] == len(stored)
    assert cc["Sha256"] == hashlib.sha256(stored).hexdigest()
    assert json.loads(msgs[1].body) == small
    # the same oversized result again: same object, no second PUT that succeeded
    assert sink.write([big])[0].ok
    assert emu.cos.put_counts[(BUCKET, cc["Key"])] == 1


def test_cmq_oversized_without_claim_store_fails_loudly(emu: Emulator) -> None:
    sink = sink_for(emu, "cmq-queue://ap-guangzhou/results")
    [r] = sink.write([job(1, Pad="x" * 70_000)])
    assert not r.ok and not r.retryable and r.error is not None and r.error.code == "MessageTooLarge"
    assert emu.cmq.requests == 0


def test_multi_sink_cos_and_queue_partial_failure(emu: Emulator) -> None:
    sink = sink_for(emu, f"{COS_SINK},cmq-queue://ap-guangzhou/results", ci_max_attempts=2)
    emu.faults.cmq.fail_rate = 1.0
    [r] = sink.write([job(1)])
    assert not r.ok and r.retryable and "cmq-queue://ap-guangzhou/results" in (r.error.message if r.error else "")
    emu.faults.cmq.fail_rate = 0.0
    [r] = sink.write([job(1)])
    assert r.ok and not r.already  # COS said already, the queue wrote now
    assert emu.cos.put_counts == {(BUCKET, f"results/Transcode/{job(1)['JobId']}.json"): 1}


def test_pending_registry_on_emulated_cos(emu: Emulator) -> None:
    s = settings(emu, pending_store=f"cos://{BUCKET}.{REGION}/results")
    cos, _ = clients(s)
    reg = build_pending_store(s, lambda: CREDS, cos_client=cos)
    ids = [f"j{i:032x}" for i in range(3)]
    assert reg.add(ids, now=100.0, source="timer") == []
    key0 = f"results/.pending/{ids[0]}.json"
    stored = emu.cos.get(BUCKET, key0)
    assert stored is not None
    assert reg.add(ids[:1], now=500.0, source="callback") == []
    assert emu.cos.put_counts[(BUCKET, key0)] == 1  # written once: the second add did not rewrite it
    before = len(emu.cos.requests)
    entries = {e.job_id: e for e in reg.listing(resume=False).entries}
    # one listing of the entries and one of the answered markers, no read of any entry
    assert [(r.method, r.key) for r in emu.cos.requests[before:]] == [("GET", ""), ("GET", "")]
    # FirstSeen from the listing's LastModified (second precision), no read of the entry
    assert entries[ids[0]].first_seen == int(stored.last_modified)
    first = reg.get(ids[0])
    assert first is not None and first.first_seen == 100.0 and first.source == "timer"
    # results under the same prefix do not show up as pending entries
    sink = sink_for(emu, COS_SINK)
    assert sink.write([{"JobId": ids[1], "State": "Success", "Tag": "Transcode"}])[0].ok
    assert reg.remove([ids[1]]) == []
    assert reg.list_ids() == [ids[0], ids[2]]
    for i in range(1001):  # seed past one list page directly
        emu.cos.put(BUCKET, f"results/.pending/k{i:032x}.json", b'{"FirstSeen":1}')
    assert len(reg.list_ids()) == 1003
