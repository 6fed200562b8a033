"""Issue 13 (8): one bad job fails alone in every sink, and a raising sink fails only its own part.

A trusted callback body can hold a string that UTF-8 cannot encode (a lone surrogate, ``"\\ud800"``, which
``json.loads`` accepts from ``"\\\\ud800"``). Before, ``canonical_json`` raised out of ``ObjectSink.write``:
the batch's good job was written but reported ``WriteNotConfirmed``, and the later sinks of a MultiSink
never ran. Now the bad job gets ``InvalidJob`` (not retryable) and everything else goes on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Optional

import pytest

from cijobs.cmq_client import CmqTarget
from cijobs.deadline import Deadline
from cijobs.models import Job, WriteResult
from cijobs.pipeline import Pipeline
from cijobs.settings import Settings
from cijobs.sinks import CmqSink, KeyLayout, MultiSink, ObjectSink, WebhookSink, canonical_json
from cijobs.sinks.webhook import new_webhook_session
from cijobs.store import FileObjectStore, StoreError
from cijobs.targets import parse_webhook_target
from cijobs_tools.emulator import Emulator
from fakes import FakePending

pytestmark = pytest.mark.usefixtures("log_stream")

SECRET = "webhook-test-secret-" + "k" * 24
GOOD, BAD, THIRD = f"j{1:032x}", f"j{2:032x}", f"j{3:032x}"
LONE = json.loads('"\\ud800"')  # what a JSON callback body with "\ud800" decodes to


def job(job_id: str, **extra: Any) -> dict[str, Any]:
    return {"JobId": job_id, "State": "Success", "Tag": "Transcode", "Code": "Success", "Message": "", **extra}


def bad_job() -> dict[str, Any]:
    return job(BAD, Message=f"broken {LONE} text")


def assert_bad_alone(results: Sequence[WriteResult], good: Sequence[str] = (GOOD,)) -> None:
    by_id = {r.job_id: r for r in results}
    for g in good:
        assert by_id[g].ok, by_id[g]
    bad = by_id[BAD]
    assert not bad.ok and bad.error is not None
    assert bad.error.code == "InvalidJob" and bad.retryable is False
    assert "UnicodeEncodeError" in bad.error.message
    json.dumps(bad.as_dict(), ensure_ascii=False).encode("utf-8")  # the result itself is printable


def stored(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*.json"))


@pytest.mark.parametrize("concurrency", [1, 4])
def test_object_sink_fails_the_unencodable_job_alone(tmp_path: Path, concurrency: int) -> None:
    sink = ObjectSink(FileObjectStore(str(tmp_path)), KeyLayout(), concurrency)
    results = sink.write([job(GOOD), bad_job(), job(THIRD)])
    assert [r.job_id for r in results] == [GOOD, BAD, THIRD]
    assert_bad_alone(results, (GOOD, THIRD))
    assert stored(tmp_path) == [f"{GOOD}.json", f"{THIRD}.json"]


def test_object_sink_turns_an_unexpected_store_exception_into_that_jobs_result(tmp_path: Path) -> None:
    class Flaky(FileObjectStore):
        def create(self, key: str, body: bytes, *args: Any, **kwargs: Any) -> bool:
            if BAD in key:
                raise RuntimeError("store bug")
            return super().create(key, body, *args, **kwargs)

    sink = ObjectSink(Flaky(str(tmp_path)), KeyLayout(), 4)
    results = sink.write([job(GOOD), job(BAD), job(THIRD)])
    assert [r.ok for r in results] == [True, False, True]
    err = results[1].error
    assert err is not None and err.code == "WriteNotConfirmed" and results[1].retryable is True


class FakeCmq:
    max_batch = 16

    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send(self, target: CmqTarget, bodies: Sequence[str], tags: Sequence[str] = (),
             deadline: Optional[Deadline] = None) -> list[str]:
        self.bodies.extend(bodies)
        return [f"m{i}" for i in range(len(bodies))]


def test_cmq_sink_fails_the_unencodable_job_alone() -> None:
    fake = FakeCmq()
    results = CmqSink(fake, CmqTarget("queue", "ap-guangzhou", "results")).write([job(GOOD), bad_job()])
    assert_bad_alone(results)
    assert fake.bodies == [canonical_json(job(GOOD)).decode()]


def test_cmq_sink_claim_check_store_raising_fails_that_job_alone(tmp_path: Path) -> None:
    class Broken(FileObjectStore):
        def create(self, *args: Any, **kwargs: Any) -> bool:
            raise RuntimeError("store bug")

    fake = FakeCmq()
    big = job(BAD, Message="x" * 2000)
    sink = CmqSink(fake, CmqTarget("queue", "ap-guangzhou", "results"), Broken(str(tmp_path)), 1000)
    results = sink.write([job(GOOD), big])
    assert results[0].ok and not results[1].ok
    assert results[1].error is not None and results[1].error.code == "WriteNotConfirmed"
    assert len(fake.bodies) == 1


class RaisingCmq(FakeCmq):
    def send(self, target: CmqTarget, bodies: Sequence[str], tags: Sequence[str] = (),
             deadline: Optional[Deadline] = None) -> list[str]:
        if "Snapshot" in tags:
            raise KeyError("client bug")
        return super().send(target, bodies, tags, deadline)


def test_cmq_sink_a_raising_send_fails_only_its_batch() -> None:
    fake = RaisingCmq()
    sink = CmqSink(fake, CmqTarget("topic", "ap-guangzhou", "jobs"))
    results = sink.write([job(GOOD), job(BAD, Tag="Snapshot")])
    assert results[0].ok and not results[1].ok
    assert results[1].error is not None and results[1].error.code == "WriteNotConfirmed" and results[1].retryable


@pytest.fixture(scope="module")
def server() -> Iterator[Emulator]:
    with Emulator(seed=5) as emu:
        yield emu


@pytest.mark.parametrize("concurrency", [1, 4])
def test_webhook_sink_fails_the_unencodable_job_alone(server: Emulator, concurrency: int) -> None:
    server.reset()
    server.webhooks.configure("r", secrets=[SECRET])
    sink = WebhookSink(new_webhook_session(), parse_webhook_target(server.webhook_url("r")), (SECRET,),
                       concurrency=concurrency, sleep=lambda s: None, rng=random.Random(1))
    results = sink.write([job(GOOD), bad_job(), job(THIRD)])
    assert_bad_alone(results, (GOOD, THIRD))
    assert sorted(json.loads(d.body)["JobId"] for d in server.webhooks.deliveries("r")) == [GOOD, THIRD]


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[str] = []

    def write(self, jobs: Sequence[Job], deadline: Optional[Deadline] = None) -> list[WriteResult]:
        self.seen.extend(j["JobId"] for j in jobs)
        return [WriteResult.written(j["JobId"], j["State"]) for j in jobs]


class Raising:
    name = "raising"

    def write(self, jobs: Sequence[Job], deadline: Optional[Deadline] = None) -> list[WriteResult]:
        raise StoreError("Boom", "unexpected", retryable=False)


class Short(Recorder):
    def write(self, jobs: Sequence[Job], deadline: Optional[Deadline] = None) -> list[WriteResult]:
        return super().write(jobs, deadline)[:-1]


@pytest.mark.parametrize("broken", [Raising(), Short("short")], ids=["raises", "too-few-results"])
def test_multisink_a_broken_sink_fails_only_its_part_and_later_sinks_run(broken: Any) -> None:
    first, last = Recorder("first"), Recorder("last")
    results = MultiSink([first, broken, last]).write([job(GOOD), job(THIRD)])
    assert first.seen == last.seen == [GOOD, THIRD]  # the sink after the broken one still ran
    for r in results:
        assert not r.ok and r.retryable is True and r.error is not None
        assert r.error.code == "WriteNotConfirmed" and broken.name in r.error.message


def test_multisink_with_real_sinks_fails_the_bad_job_alone(tmp_path: Path) -> None:
    fake, last = FakeCmq(), Recorder("last")
    sink = MultiSink([ObjectSink(FileObjectStore(str(tmp_path / "a"))),
                      CmqSink(fake, CmqTarget("queue", "ap-guangzhou", "results")), last])
    results = sink.write([job(GOOD), bad_job()])
    assert_bad_alone(results)
    assert stored(tmp_path / "a") == [f"{GOOD}.json"] and len(fake.bodies) == 1 and last.seen == [GOOD, BAD]


class NoQueries:
    def query(self, ids: Any, deadline: Any = None) -> Any:
        raise AssertionError("trusted jobs are not queried")


def test_pipeline_trusted_callback_with_a_lone_surrogate(tmp_path: Path) -> None:
    """The reproduction: the good job is reported written, the bad one failed alone (not parked)."""
    pending = FakePending()
    sink = ObjectSink(FileObjectStore(str(tmp_path)), KeyLayout(), 4)
    out = Pipeline(Settings(), NoQueries(), sink, pending).process(
        [GOOD, BAD], "callback", Deadline(30), jobs=[job(GOOD), bad_job()], trust_jobs=True)
    got = {o.job_id: o for o in out.by_id.values()}
    assert got[GOOD].status == "written"
    assert got[BAD].status == "failed" and got[BAD].reason == "InvalidJob" and got[BAD].retryable is False
    assert stored(tmp_path) == [f"{GOOD}.json"] and pending.entries == {}
