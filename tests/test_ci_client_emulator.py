"""JobClient over real HTTP against the in-process emulator (127.0.0.1 only)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cijobs.ci_client import JobClient
from cijobs.credentials import Credentials
from cijobs.deadline import Deadline
from cijobs.settings import Settings
from cijobs_tools.emulator import Emulator
from fakes import job_id as jid

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"
HOST = f"{BUCKET}.ci.{REGION}.myqcloud.com"
SECRET_ID, SECRET_KEY, TOKEN = "AKIDtest", "test-secret-key", "sts-token-xyz"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN, seed=7) as e:
        yield e


def client(emu: Emulator, creds: Credentials | None = None, attempts: int = 4) -> JobClient:
    settings = Settings(ci_bucket=BUCKET, ci_region=REGION, ci_endpoint=emu.url, ci_concurrency=8,
                        ci_max_attempts=attempts)
    c = creds or Credentials(SECRET_ID, SECRET_KEY, TOKEN)
    return JobClient(settings, credentials=lambda: c, sleep=lambda s: None)


def test_query_found_nonexistent_and_states(emu: Emulator) -> None:
    ids = [jid(n) for n in range(23)]
    tags = ["Transcode", "Snapshot", "SuperResolution"]
    for n, i in enumerate(ids[:20]):
        emu.ci.add_job(i, tag=tags[n % 3], state="Running" if n % 2 else "Success")
    result = client(emu).query(ids + ids[:3])  # duplicates are asked once
    assert [j["JobId"] for j in result.jobs] == ids[:20]
    assert [j["State"] for j in result.jobs] == ["Running" if n % 2 else "Success" for n in range(20)]
    assert [j["Tag"] for j in result.jobs] == [tags[n % 3] for n in range(20)]
    assert result.nonexistent == ids[20:] and result.failed == [] and result.invalid == []
    reqs = emu.ci.requests
    assert sorted(len(r.ids) for r in reqs) == [3, 10, 10]
    assert all(r.status == 200 and r.headers.get("host", r.headers.get("Host")) == HOST for r in reqs)


def test_fail_rate_is_retried_to_success(emu: Emulator) -> None:
    ids = [jid(n) for n in range(100)]
    for i in ids:
        emu.ci.add_job(i, state="Success")
    emu.faults.fail_rate = 0.3
    emu.faults.inject_next("ci", "fail")  # ten requests may all miss the 30 %: one failure for certain
    result = client(emu, attempts=8).query(ids)
    assert result.failed == [] and len(result.jobs) == 100
    # faulted requests are answered before they reach the CI store: it saw each batch succeed once
    assert sorted(r.status for r in emu.ci.requests) == [200] * 10
    assert emu.faults.injected.get("ci.fail", 0) > 0


def test_connection_faults_are_retried(emu: Emulator) -> None:
    ids = [jid(n) for n in range(60)]
    for i in ids:
        emu.ci.add_job(i, state="Success")
    emu.faults.reset_rate = 0.15
    emu.faults.truncate_rate = 0.15
    emu.faults.garbage_rate = 0.15
    result = client(emu, attempts=10).query(ids)
    assert result.failed == [] and [j["JobId"] for j in result.jobs] == ids
    assert sum(emu.faults.injected.values()) > 0


def test_wrong_key_is_rejected_with_signature_error(emu: Emulator) -> None:
    emu.ci.add_job(jid(1))
    result = client(emu, Credentials(SECRET_ID, "wrong-key", TOKEN)).query([jid(1)])
    (failure,) = result.failed
    assert failure.error.http_status == 403 and failure.error.code == "SignatureDoesNotMatch"
    assert failure.error.request_id and failure.retryable  # configuration: kept pending, fixed by the operator
    assert len(emu.ci.requests) == 1  # 403 is not retried


def test_wrong_token_is_rejected(emu: Emulator) -> None:
    emu.ci.add_job(jid(1))
    (failure,) = client(emu, Credentials(SECRET_ID, SECRET_KEY, "other-token")).query([jid(1)]).failed
    assert failure.error.http_status == 403 and failure.retryable  # configuration: not retried now, kept
    assert len(emu.ci.requests) == 1


def test_deadline_with_latency(emu: Emulator) -> None:
    ids = [jid(n) for n in range(10)]
    for i in ids:
        emu.ci.add_job(i)
    emu.faults.latency_ms = 400
    result = client(emu, attempts=1).query(ids, Deadline(0.1))
    assert [f.job_id for f in result.failed] == ids
    assert all(f.retryable and f.error.code == "Timeout" for f in result.failed)
