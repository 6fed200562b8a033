"""Issue 13 (6): one oversized job no longer fails its whole 10-ID batch.

A batch whose answer is refused for its size (over the document limit, or too many elements) is asked
again in halves down to single IDs: the other jobs are answered, only the job whose own answer is too large
fails, ``DocumentTooLarge``, not retryable, with the size in its message. Scaled down (a 200 KiB document
limit, a 300 KiB job) against the in-process emulator on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from cijobs.ci_client import DOCUMENT_TOO_LARGE, JobClient
from cijobs.credentials import Credentials
from cijobs.deadline import Deadline
from cijobs.normalize import normalize_document
from cijobs.pipeline import Pipeline
from cijobs.settings import Settings
from cijobs.sinks import KeyLayout, ObjectSink
from cijobs.store import FileObjectStore
from cijobs_tools.emulator import Emulator
from fakes import FakePending
from fakes import job_id as jid

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
SECRET_ID, SECRET_KEY = "AKIDtest", "test-secret-key"
LIMIT = 200 * 1024
BIG = 300 * 1024


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, seed=3) as e:
        yield e


def client(emu: Emulator, **kwargs: object) -> JobClient:
    settings = Settings(ci_bucket=BUCKET, ci_region=REGION, ci_endpoint=emu.url, ci_concurrency=4)
    creds = Credentials(SECRET_ID, SECRET_KEY)
    return JobClient(settings, credentials=lambda: creds, sleep=lambda s: None, **kwargs)  # type: ignore[arg-type]


def finished(emu: Emulator, ids: list[str], big: str | None = None) -> None:
    for i in ids:
        emu.ci.add_job(i, state="Success")
    if big is not None:
        emu.ci.set_state(big, "Success", message="m" * BIG)


def test_one_oversized_job_fails_alone_and_its_batch_mates_are_answered(emu: Emulator) -> None:
    ids = [jid(n) for n in range(10)]
    finished(emu, ids, big=ids[6])
    result = client(emu, max_document_bytes=LIMIT).query(ids)
    assert [j["JobId"] for j in result.jobs] == ids[:6] + ids[7:]
    assert all(j["State"] == "Success" for j in result.jobs)
    assert result.nonexistent == [] and result.invalid == []
    [failure] = result.failed
    assert failure.job_id == ids[6]
    assert failure.error.code == DOCUMENT_TOO_LARGE and failure.retryable is False
    assert failure.as_dict()["Retryable"] is False
    # the size of the job's own answer and the limit are in the message
    size = int(failure.error.message.split(" answer is ", 1)[1].split(" ", 1)[0])
    assert size > BIG and f"limit {LIMIT}" in failure.error.message
    # halves down to the single ID: 10 -> 5 + 5 -> 3 + 2 -> 1 + 1 (+ the batch without it)
    asked = [tuple(r.ids) for r in emu.ci.requests]
    assert tuple(ids) in asked and (ids[6],) in asked
    assert len(asked) <= 2 * 10


def test_two_oversized_jobs_in_different_halves(emu: Emulator) -> None:
    ids = [jid(n) for n in range(25)]
    finished(emu, ids, big=ids[1])
    emu.ci.set_state(ids[23], "Success", message="n" * BIG)
    result = client(emu, max_document_bytes=LIMIT).query(ids)
    assert sorted(f.job_id for f in result.failed) == [ids[1], ids[23]]
    assert {f.error.code for f in result.failed} == {DOCUMENT_TOO_LARGE}
    assert len(result.jobs) == 23


def test_batch_too_large_only_together_is_answered_in_full(emu: Emulator) -> None:
    """Each answer fits, the ten together do not: every job is answered, none fails."""
    ids = [jid(n) for n in range(10)]
    finished(emu, ids)
    for i in ids:
        emu.ci.set_state(i, "Success", message="x" * (LIMIT // 4))
    result = client(emu, max_document_bytes=LIMIT).query(ids)
    assert result.failed == [] and [j["JobId"] for j in result.jobs] == ids


def test_too_many_elements_splits_too(emu: Emulator) -> None:
    ids = [jid(n) for n in range(10)]
    finished(emu, ids)
    # a job's answer has a few dozen elements: a limit that a few jobs fit and ten do not
    normalize = partial(normalize_document, max_elements=150)
    result = client(emu, normalize=normalize).query(ids)
    assert result.failed == [] and len(result.jobs) == 10
    assert len(emu.ci.requests) > 1


def test_other_body_errors_do_not_split(emu: Emulator) -> None:
    """A malformed answer is not a size problem: retried whole (transient), never split."""
    ids = [jid(n) for n in range(10)]
    finished(emu, ids)
    emu.ci.jobs[ids[0]]._xml = b"<JobsDetail><JobId>x</JobId><State>"
    result = client(emu).query(ids)
    assert len(result.failed) == 10 and {f.error.code for f in result.failed} == {"MalformedResponse"}
    assert all(f.retryable for f in result.failed)
    assert {len(r.ids) for r in emu.ci.requests} == {10}


def test_reproduction_at_the_real_limit_through_the_pipeline(emu: Emulator, tmp_path: Path) -> None:
    """9 finished jobs + 1 with an 8 MiB Message: 9 written, 1 failed DocumentTooLarge (final), none parked."""
    ids = [jid(n) for n in range(10)]
    for i in ids:
        emu.ci.add_job(i, state="Success")
    emu.ci.set_state(ids[3], "Success", message="m" * (8 * 1024 * 1024))
    pending = FakePending()
    sink = ObjectSink(FileObjectStore(str(tmp_path)), KeyLayout(), 4)
    out = Pipeline(Settings(), client(emu), sink, pending).process(ids, "direct", Deadline(30))
    got = {o.job_id: o for o in out.by_id.values()}
    assert {i for i, o in got.items() if o.status == "written"} == set(ids) - {ids[3]}
    bad = got[ids[3]]
    assert (bad.status, bad.reason, bad.retryable) == ("failed", DOCUMENT_TOO_LARGE, False)
    assert pending.entries == {}
    assert len(list(tmp_path.rglob("*.json"))) == 9
