"""Reliability of the pending registry and of the raise rules.

* A timer tick over N registered, still-unfinished jobs costs one listing (one request per 1,000 entries):
  no read and no write per entry, FirstSeen comes from the listing's LastModified (entries are written
  once), and PENDING_MAX_AGE_S still expires a job from its *first* registration.
* A direct invoke whose retryable failure could not be parked raises (like timer/CMQ): nothing is lost
  silently; with a working registry it does not raise.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from cijobs.app import App, InvocationFailedError
from cijobs.ci_client import JobClient
from cijobs.cos import CosClient
from cijobs.credentials import Credentials
from cijobs.deadline import Deadline
from cijobs.pending import PendingStore, build_pending_store, parse_last_modified
from cijobs.pipeline import Pipeline
from cijobs.settings import Settings
from cijobs.sinks import build_sinks
from cijobs_tools.emulator import Emulator
from fakes import JOB_A, JOB_B, FakeCI, FakeClock, FakePending, FakeSink

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
CREDS = Credentials("AKIDreliab", "reliability-secret-key", None)
ENV = {"TENCENTCLOUD_SECRETID": CREDS.secret_id, "TENCENTCLOUD_SECRETKEY": CREDS.secret_key}


pytestmark = pytest.mark.usefixtures("log_stream")  # each test logs to a private buffer


class EmuClock:
    """The emulator's clock (it stamps LastModified); tests move it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def wire(emu: Emulator, clock: Any, **overrides: Any) -> tuple[Pipeline, PendingStore]:
    s = Settings(**{
        **dict(ci_bucket=BUCKET, ci_region=REGION, ci_endpoint=emu.url, cos_endpoint=emu.url,
                 result_sink=f"cos://{BUCKET}.{REGION}/results", pending_store=f"cos://{BUCKET}.{REGION}/state",
                 ci_max_attempts=4), **overrides})
    no_sleep = lambda _s: None  # noqa: E731
    # requests are signed with the emulator's (moved) clock, so that it accepts them
    cos = CosClient(s, lambda: CREDS, sleep=no_sleep, clock=clock, rng=random.Random(1))
    client = JobClient(s, credentials=lambda: CREDS, sleep=no_sleep, clock=clock, rng=random.Random(2))
    sink = build_sinks(s, lambda: CREDS, cos_client=cos)
    pending = build_pending_store(s, lambda: CREDS, cos_client=cos)
    assert isinstance(pending, PendingStore)
    return Pipeline(s, client, sink, pending, clock=clock), pending


def ids(n: int, offset: int = 0) -> list[str]:
    return [f"j{i + offset:032x}" for i in range(n)]


def cos_requests(emu: Emulator, since: int) -> list[tuple[str, str]]:
    return [(r.method, r.key) for r in emu.cos.requests[since:]]


def test_a_tick_over_pending_jobs_is_one_listing_per_1000_entries() -> None:
    clock = EmuClock(1_800_000_000.0)
    with Emulator(secret_id=CREDS.secret_id, secret_key=CREDS.secret_key, seed=3, clock=clock) as emu:
        pipeline, _pending = wire(emu, clock)
        jobs = ids(1500)
        for j in jobs:
            emu.ci.add_job(j, state="Running")
        out = pipeline.track(jobs, "http")
        assert out.counts()["pending"] == 1500
        assert sum(1 for m, k in cos_requests(emu, 0) if m == "PUT") == 1500  # one create each
        before = len(emu.cos.requests)
        clock.now += 60
        tick = pipeline.tick(Deadline(60))
        assert tick.counts()["pending"] == 1500 and tick.counts()["failed"] == 0
        assert {o.state for o in tick.by_id.values()} == {"Running"}
        # the list marker, two list pages of entries (1000 + 500), one of markers, one PUT per answered
        # marker (CI answered for the first time), no read or rewrite of any entry
        after = cos_requests(emu, before)
        lists = [r for r in after if r == ("GET", "")]
        assert len(lists) == 3 and ("GET", "state/.list-marker") in after  # no marker yet: one empty page
        assert sum(1 for m, k in after if m == "PUT" and "/.answered/" in k) == 1500
        assert not [r for r in after if "/.pending/" in r[1]]
        # the entries were not rewritten: one PUT each, ever
        assert set(emu.cos.put_counts.values()) == {1}
        before = len(emu.cos.requests)
        clock.now += 60
        pipeline.tick(Deadline(60))  # markers exist now: a tick is listings only
        assert {m for m, _k in cos_requests(emu, before)} == {"GET"}


def test_first_seen_is_the_listing_last_modified_and_survives_re_adds() -> None:
    clock = EmuClock(1_800_000_000.0)
    with Emulator(secret_id=CREDS.secret_id, secret_key=CREDS.secret_key, seed=4, clock=clock) as emu:
        _pipeline, pending = wire(emu, clock)
        [a, b] = ids(2)
        assert pending.add([a], now=clock.now, source="callback") == []
        clock.now += 500
        assert pending.add([a, b], now=clock.now, source="timer") == []
        listed = {e.job_id: e for e in pending.listing(resume=False).entries}
        assert listed[a].first_seen == 1_800_000_000.0 and listed[b].first_seen == 1_800_000_500.0
        assert [e.job_id for e in pending.listing(resume=False).entries] == [a, b]  # oldest first
        got = pending.get(a)
        assert got is not None and got.source == "callback"


def test_pending_expires_from_first_registration_with_listing_times() -> None:
    clock = EmuClock(1_800_000_000.0)
    with Emulator(secret_id=CREDS.secret_id, secret_key=CREDS.secret_key, seed=5, clock=clock) as emu:
        pipeline, pending = wire(emu, clock, pending_max_age_s=3600)
        [old, young, done] = ids(3)
        for j in (old, young, done):
            emu.ci.add_job(j, state="Running")
        pipeline.track([old], "http")
        clock.now += 3000
        pipeline.track([young, done], "http")
        assert pipeline.tick(Deadline(60)).counts()["pending"] == 3
        clock.now += 700  # old: 3700 s since first registered; young: 700 s
        emu.ci.set_state(done, "Success")
        out = pipeline.tick(Deadline(60))
        assert out.by_id[old].status == "failed" and out.by_id[old].reason == "PendingExpired"
        assert out.by_id[young].status == "pending" and out.by_id[done].status == "written"
        assert pending.list_ids() == [young]


@pytest.mark.parametrize("value", ["", "yesterday", "2026-01-01T00:00:00"])
def test_unusable_last_modified_falls_back_to_reading_the_entry(value: str, tmp_path: Any) -> None:
    assert parse_last_modified(value) is None
    assert parse_last_modified("2026-01-01T00:00:00.000Z") == 1767225600.0
    # the file store lists no LastModified: entries are read (local disk), FirstSeen from the body
    reg = build_pending_store(Settings(pending_store=f"file://{tmp_path}"), lambda: CREDS)
    reg.add(ids(1), now=123.0, source="x")
    [e] = reg.listing(resume=False).entries
    assert e.first_seen == 123.0 and e.source == "x"


# -- raising ---------------------------------------------------------------------------------------

def make_app(jobs: dict[str, str]) -> tuple[App, FakeCI, FakeSink, FakePending]:
    settings = Settings(ci_bucket=BUCKET, ci_region=REGION, api_token="registry-api-token", deadline_margin_s=1.0)
    ci, sink, pending = FakeCI(jobs), FakeSink(), FakePending()
    app = App(settings, Pipeline(settings, ci, sink, pending, clock=FakeClock()), ENV, monotonic=FakeClock(1.0))
    return app, ci, sink, pending


def test_direct_invoke_raises_when_a_retryable_failure_cannot_be_parked() -> None:
    app, ci, sink, pending = make_app({JOB_A: "Success", JOB_B: "Success"})
    ci.fail = {JOB_B: ("InternalError", True)}
    pending.broken = True
    with pytest.raises(InvocationFailedError) as exc:
        app({"JobIds": [JOB_A, JOB_B]}, {"time_limit_in_ms": 10000})
    assert set(sink.written) == {JOB_A}  # the rest was finished before raising
    assert JOB_B in str(exc.value) and JOB_A not in str(exc.value)
    [failed] = [o for o in exc.value.summary["Outcomes"] if o["Outcome"] == "failed"]
    assert failed["JobId"] == JOB_B and failed["Reason"] == "PendingStoreFailed" and failed["Retryable"]


def test_direct_invoke_raises_when_a_write_fails_and_cannot_be_parked() -> None:
    app, _ci, sink, pending = make_app({JOB_A: "Success"})
    sink.fail = {JOB_A: ("SlowDown", True)}
    pending.fail_add = {JOB_A}
    with pytest.raises(InvocationFailedError, match=JOB_A):
        app({"JobIds": [JOB_A]}, {"time_limit_in_ms": 10000})


def test_direct_invoke_with_a_working_registry_parks_and_returns() -> None:
    app, ci, _sink, pending = make_app({JOB_A: "Success"})
    ci.fail = {JOB_A: ("InternalError", True)}
    summary = app({"JobIds": [JOB_A]}, {"time_limit_in_ms": 10000})
    assert summary["Outcomes"][0]["Outcome"] == "pending" and JOB_A in pending.entries


def test_direct_invoke_non_retryable_failure_is_reported_not_raised() -> None:
    app, ci, _sink, pending = make_app({JOB_A: "Success"})
    ci.fail = {JOB_A: ("InvalidParameter", False)}
    pending.broken = True
    summary = app({"JobIds": [JOB_A]}, {"time_limit_in_ms": 10000})
    assert summary["Outcomes"][0]["Outcome"] == "failed" and not summary["Outcomes"][0]["Retryable"]


def test_direct_invoke_configuration_failure_that_cannot_be_parked_raises() -> None:
    app, ci, _sink, pending = make_app({JOB_A: "Success"})
    ci.fail = {JOB_A: ("AccessDenied", False)}  # configuration: parked, never failed
    pending.broken = True
    with pytest.raises(InvocationFailedError, match=JOB_A):
        app({"JobIds": [JOB_A]}, {"time_limit_in_ms": 10000})
