"""Every invocation returns before its SCF time limit, even when the stores are slow (issue 13, soak
``slow-stores`` phase at a small scale): ``POST /jobs/track`` registers under the invocation's deadline
(parking may use half the margin more) and reports what it could not register as failed, retryable."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cijobs_tools.emulator import Emulator
from fakes import load_module

soak = load_module("cijobs_bench_soak_deadlines", "bench", "soak.py")
ENV_PREFIXES = ("CI_", "COS_", "CMQ_", "RESULT_", "PENDING_", "API_TOKEN", "TENCENTCLOUD_", "TRUST_", "ALLOW_",
                "MAX_", "DEADLINE_", "CLAIM_", "LOG_LEVEL", "HTTP_")
LIMIT_MS = 4000
MARGIN_S = 1.0


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Emulator, Any]]:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    with Emulator(secret_id=soak.SECRET_ID, secret_key=soak.SECRET_KEY, seed=11) as emu:
        env = soak.function_env(emu.url, f"cos://{soak.BUCKET}.{soak.REGION}/results")
        for k, v in {**env, "DEADLINE_MARGIN_S": str(MARGIN_S)}.items():
            monkeypatch.setenv(k, v)
        handler = load_module("scf_index_deadlines", "handler", "index.py")
        yield emu, handler
        handler.reset()


def test_track_with_slow_cos_returns_before_the_time_limit(slow: tuple[Emulator, Any]) -> None:
    emu, handler = slow
    ids = soak.job_ids(100, "j")
    emu.faults.cos.latency_ms = 800  # about 7 waves of 16 parallel PUTs: ~5.6 s without a deadline
    context = {"time_limit_in_ms": LIMIT_MS, "request_id": "slow-track", "function_name": "cijobs"}
    started = time.monotonic()
    resp = handler.main_handler(soak.track_event(ids), context)
    took = time.monotonic() - started
    assert took < LIMIT_MS / 1000, f"the invocation took {took:.2f} s of a {LIMIT_MS / 1000:.0f} s limit"
    outcomes = {o["JobId"]: o for o in json.loads(resp["body"])["Outcomes"]}
    assert set(outcomes) == set(ids)
    pending = {i for i, o in outcomes.items() if o["Outcome"] == "pending"}
    failed = {i for i, o in outcomes.items() if o["Outcome"] == "failed"}
    assert pending | failed == set(ids) and pending  # some registered, the rest reported
    assert all(outcomes[i]["Retryable"] and outcomes[i]["Reason"] == "PendingStoreFailed" for i in failed)
    emu.faults.cos.latency_ms = 0
    time.sleep(1.0)  # requests cut at the deadline may still land in the emulator: at most more entries
    stored = {k.rsplit("/", 1)[1][:-5] for (_b, k) in list(emu.cos.objects) if k.startswith("state/.pending/")}
    assert pending <= stored  # every ID reported pending really is registered


def test_a_slow_track_does_not_stop_later_ticks_from_working(slow: tuple[Emulator, Any]) -> None:
    """Found by the soak's slow-stores phase (every tick: queried 0, written 0, for as long as the container
    lives). Scaled down: a track at 0.8 s COS latency, then a tick with fast stores and a 4 s limit."""
    emu, handler = slow
    ids = soak.job_ids(100, "j")
    for job_id in ids:
        emu.ci.add_job(job_id, state="Success")
    context = {"time_limit_in_ms": LIMIT_MS, "request_id": "slow-track", "function_name": "cijobs"}
    emu.faults.cos.latency_ms = 800
    handler.main_handler(soak.track_event(ids), context)
    emu.faults.cos.latency_ms = 0
    summary = handler.main_handler(dict(soak.TIMER_EVENT), {**context, "request_id": "tick"})
    assert summary["Counts"]["queried"] > 0 and summary["Counts"]["written"] > 0


def test_soak_times_every_invocation_and_reports_the_overrun() -> None:
    report = soak.Report()
    invoke = soak.timed(lambda event: (time.sleep(0.05), None), report)
    invoke({})
    invoke({})
    assert len(report.invoke_s) == 2 and min(report.invoke_s) >= 0.05
    assert report.max_overrun_s(10.0) < 0 < report.max_overrun_s(0.01)
