"""The soak at a small scale (``bench/soak.py``'s phases in-process): 200 jobs + unknown IDs, timer ticks via
``main_handler``, the soak's fault mix on CI, COS (results + registry) and CMQ. Nothing lost, nothing
duplicated, everything accounted for; CMQ delivery at least once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from cijobs_tools.emulator import Emulator
from fakes import load_module

soak = load_module("cijobs_bench_soak", "bench", "soak.py")
ENV_PREFIXES = ("CI_", "COS_", "CMQ_", "RESULT_", "PENDING_", "API_TOKEN", "TENCENTCLOUD_", "TRUST_", "ALLOW_",
                "MAX_", "DEADLINE_", "CLAIM_", "LOG_LEVEL")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(secret_id=soak.SECRET_ID, secret_key=soak.SECRET_KEY, seed=23) as e:
        yield e


def handler_for(emu: Emulator, sink: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    for k, v in soak.function_env(emu.url, sink).items():
        monkeypatch.setenv(k, v)
    handler = load_module("scf_index_soak", "handler", "index.py")
    context = {"time_limit_in_ms": 60000, "request_id": "soak-test", "function_name": "cijobs"}

    def invoke(event: dict[str, Any]) -> tuple[Any, Optional[str]]:
        try:
            return handler.main_handler(event, context), None
        except Exception as exc:  # what SCF would see; the soak treats it as "retry at the next tick"
            return getattr(exc, "summary", None), type(exc).__name__

    return invoke


def fast_faults(control: Any) -> None:
    """The soak's fault mix, with 2 ms instead of 20 ms latency to keep the test quick."""
    control.post("faults", {**soak.FAULTS, "latency_ms": 2})
    control.post("faults/cos", soak.COS_FAULTS)


def fast_faults_plus(emu: Emulator, **scripted: tuple[str, ...]) -> Any:
    """The fast fault mix, plus faults the first requests of a side always get (random rates alone may
    miss a side that sees only a few requests)."""
    def set_faults(control: Any) -> None:
        fast_faults(control)
        for side, kinds in scripted.items():
            emu.faults.inject_next(side, *kinds)
    return set_faults


@pytest.mark.slow
def test_cos_sink_and_registry_under_faults_lose_and_duplicate_nothing(emu: Emulator, monkeypatch) -> None:
    control = soak.Control(emu.url)
    monkeypatch.setattr(soak.Control, "set_faults",
                        fast_faults_plus(emu, ci=("reset", "fail"), cos=("slowdown", "fail")))
    invoke = handler_for(emu, f"cos://{soak.BUCKET}.{soak.REGION}/results", monkeypatch)
    report = soak.run_phase(control, invoke, 200, 30, max_ticks=12, seed=5, sink="cos", log=lambda _m: None,
                            max_finish=3)
    injected = emu.faults.injected
    assert sum(v for k, v in injected.items() if k.startswith("ci.")) > 10  # faults really hit both sides
    assert sum(v for k, v in injected.items() if k.startswith("cos.")) > 10
    assert {"ci.reset", "ci.fail", "cos.slowdown", "cos.fail"} <= set(injected)
    assert report.lost == [] and report.duplicated == [] and report.unaccounted == []
    assert 3 <= report.ticks <= 12
    results = [k for (_b, k) in emu.cos.objects if k.startswith("results/")]
    assert len(results) == 200  # one object per job, none for the 30 unknown IDs
    assert not [k for (_b, k) in emu.cos.objects if k.startswith("state/.pending/")]


@pytest.mark.slow
def test_cmq_sink_under_faults_is_at_least_once(emu: Emulator, monkeypatch) -> None:
    control = soak.Control(emu.url)
    monkeypatch.setattr(soak.Control, "set_faults", fast_faults_plus(emu, cmq=("fail", "reset")))
    invoke = handler_for(emu, "cmq-queue://ap-guangzhou/results", monkeypatch)
    report = soak.run_phase(control, invoke, 150, 0, max_ticks=12, seed=6, sink="cmq", log=lambda _m: None,
                            max_finish=3)
    assert sum(v for k, v in emu.faults.injected.items() if k.startswith("cmq.")) > 0
    assert report.lost == [] and report.duplicated == [] and report.unaccounted == []
    assert report.distinct_messages == report.finished == 150
    assert report.messages >= report.distinct_messages  # duplicates allowed (counted)


def test_the_checks_catch_a_lost_and_a_duplicated_job(emu: Emulator, monkeypatch) -> None:
    """The soak's own checks must be able to fail: remove one result and re-store another differently."""
    control = soak.Control(emu.url)
    monkeypatch.setattr(soak.Control, "set_faults", lambda self: None)
    invoke = handler_for(emu, f"cos://{soak.BUCKET}.{soak.REGION}/results", monkeypatch)
    original_check = soak.check

    def sabotage(control_: Any, report: Any, known: list[str], *rest: Any) -> None:
        keys = sorted(k for (_b, k) in emu.cos.objects if k.startswith("results/"))
        del emu.cos.objects[(soak.BUCKET, keys[0])]
        emu.cos.put(soak.BUCKET, keys[1], b'{"JobId": "other", "State": "Success"}')
        original_check(control_, report, known, *rest)

    monkeypatch.setattr(soak, "check", sabotage)
    report = soak.run_phase(control, invoke, 20, 2, max_ticks=6, seed=1, sink="cos", log=lambda _m: None,
                            max_finish=1)
    assert len(report.lost) == 2  # the deleted one and the one with a wrong body
    assert len(report.duplicated) == 1
