"""Rate limiting end to end (issue 14): ``cijobs query`` and a timer tick (``cijobs invoke``) against the
in-process emulator with a per-account cap (``Emulator(max_rps=...)``): every ID answered (or parked when
the deadline is short), throttle answers seen and reported, and no explosion of requests."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cijobs.ratelimit import DEFAULT_CONCURRENCY, DEFAULT_RTT_S
from cijobs_tools.cli import main
from cijobs_tools.emulator import Emulator

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
CAP = 60.0  # requests/s: low enough that the client (no cap configured) runs into it at once
STARTING_PACE = DEFAULT_CONCURRENCY / DEFAULT_RTT_S  # what the concurrency allows before any throttle


def ids(n: int, offset: int = 0) -> list[str]:
    return [f"j{offset + i:032x}" for i in range(n)]


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Emulator]:
    for name in list(os.environ):
        if name.startswith(("CI_", "COS_", "CMQ_", "RESULT_", "PENDING_", "TENCENTCLOUD_", "DEADLINE_", "RATE_",
                            "DISCOVER_", "HTTP_", "LOG_")):
            monkeypatch.delenv(name)
    with Emulator(secret_id="AKIDrate", secret_key="rate-secret-key", seed=5, auto_jobs=True, max_rps=CAP) as e:
        env = e.env(BUCKET, REGION) | {"RESULT_SINK": f"file://{tmp_path}/results",
                                       "PENDING_STORE": f"file://{tmp_path}/pending"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        yield e


def ci_requests(emu: Emulator) -> int:
    return emu.stats.get("ci.requests", 0)


def written(tmp_path: Path) -> list[str]:
    """JobIds of the result objects in the file sink (one object per job; index objects excluded)."""
    root = tmp_path / "results"
    if not root.exists():
        return []
    return sorted(p.stem for p in root.rglob("*.json") if "_index" not in p.parts)


def registry() -> Any:
    from cijobs.credentials import from_env
    from cijobs.pending import build_pending_store
    from cijobs.settings import Settings

    return build_pending_store(Settings.from_env(os.environ), lambda: from_env(os.environ))


def pending(tmp_path: Path) -> list[str]:
    return list(registry().list_ids())


def invoke_tick(tmp_path: Path, capsys: pytest.CaptureFixture[str], job_ids: list[str],
                time_limit_ms: int = 30000) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Register ``job_ids`` in the pending registry (as tracking does), then ``cijobs invoke`` a timer event:
    (exit code, response, invocation_summary log line)."""
    assert registry().add(job_ids, now=time.time(), source="track") == []
    event = tmp_path / "timer.json"
    event.write_text(json.dumps({"Type": "Timer", "TriggerName": "t", "Time": "2026-12-04T00:05:00Z"}),
                     encoding="utf-8")
    capsys.readouterr()
    code = main(["invoke", str(event), "--time-limit-ms", str(time_limit_ms), "--output", "jsonl", "-v"])
    out, err = capsys.readouterr()
    summaries = [json.loads(line) for line in err.splitlines()
                 if line.startswith("{") and '"invocation_summary"' in line]
    assert len(summaries) == 1, err[-2000:]
    return code, json.loads(out), summaries[0]


def query(capsys: pytest.CaptureFixture[str], wanted: list[str]) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["query", ",".join(wanted), "--timeout", "30", "--output", "jsonl"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_cijobs_query_at_a_cap_answers_every_id(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    wanted = ids(600)  # 60 requests: one second at the cap
    code, rows, err = query(capsys, wanted)
    assert code == 0, err[-2000:]
    assert [r["JobId"] for r in rows] == wanted
    assert all(r.get("State") == "Success" for r in rows)
    assert emu.stats.get("ci.throttled", 0) > 0  # the cap was reached: the throttle path was taken
    ideal = math.ceil(len(wanted) / 10)
    assert emu.stats.get("ci.status.200", 0) == ideal  # every batch answered once: no batch queried twice
    assert ci_requests(emu) <= 2.5 * ideal, f"{ci_requests(emu)} requests for {ideal} batches"


@pytest.mark.parametrize(("mode", "bound"), [("adaptive", 1.3), ("fixed", None)])
def test_cijobs_query_at_a_cap_is_paced_not_retried_into_the_ground(
        emu: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, mode: str,
        bound: Any) -> None:
    monkeypatch.setenv("RATE_MODE", mode)
    wanted = ids(1800, offset=50_000)  # 180 requests, 3 s at the cap: the start-up burst is amortized
    code, _, _ = query(capsys, wanted)
    assert code == 0
    ideal = math.ceil(len(wanted) / 10)
    if bound is not None:  # adaptive: the first throttles cut the pace, then it follows the cap
        assert ci_requests(emu) <= bound * ideal, f"{ci_requests(emu)} requests for {ideal} batches"
    else:  # fixed (no pacing): every throttled request is simply retried; the same query costs far more
        assert ci_requests(emu) > 1.3 * ideal, f"{ci_requests(emu)} requests for {ideal} batches"


def test_timer_tick_at_a_cap_answers_every_id_reports_throttles_and_paces_below_the_start(
        emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wanted = ids(900)  # 90 requests: 1.5 s at the cap; unpaced until the first throttle, the client outruns it
    code, response, summary = invoke_tick(tmp_path, capsys, wanted)
    assert code == 0
    assert written(tmp_path) == wanted  # every ID answered and written once
    assert pending(tmp_path) == []
    assert response.get("Failed", []) == [] or not response["Failed"]
    assert summary["throttled"] > 0
    assert summary["throttled"] == emu.stats.get("ci.throttled", 0)
    rate = summary["rates"]["ci"]
    assert rate is not None and rate < STARTING_PACE  # pacing since the first throttle, below the start
    ideal = math.ceil(len(wanted) / 10)
    assert ci_requests(emu) <= 1.3 * ideal, f"{ci_requests(emu)} requests for {ideal} batches"


def test_timer_tick_at_a_cap_with_a_short_deadline_parks_what_it_could_not_answer(
        emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    emu.limits["ci"].set_rate(20.0)
    wanted = ids(1000, offset=10_000)  # 100 requests: 5 s at the cap, and the deadline is ~1 s
    code, _, summary = invoke_tick(tmp_path, capsys, wanted, time_limit_ms=2000)
    assert code == 0
    done, parked = written(tmp_path), pending(tmp_path)
    assert done and parked  # some answered, the rest left for the next tick
    assert sorted(done + parked) == wanted  # every ID written or parked, none both, none lost
    assert summary["throttled"] > 0
    assert ci_requests(emu) <= 1.3 * math.ceil(len(done) / 10) + summary["throttled"] + 16


@pytest.mark.parametrize("retry_after", [True, False])
def test_emulator_throttle_answers_carry_retry_after_unless_switched_off(retry_after: bool) -> None:
    import requests

    from cijobs import signing
    from cijobs.credentials import Credentials
    from cijobs_tools.cli import emulator as emulator_cli

    creds = Credentials("AKIDra", "ra-secret-key")
    with Emulator(secret_id=creds.secret_id, secret_key=creds.secret_key, seed=1, auto_jobs=True, max_rps=1,
                  throttle_retry_after=retry_after) as e, requests.Session() as s:
        answers = [s.get(f"{e.url}/jobs/{ids(1)[0]}", headers={"Host": f"{BUCKET}.ci.{REGION}.myqcloud.com"},
                         auth=signing.CosSigner(creds, "x-ci-security-token"), timeout=5) for _ in range(40)]
    throttled = [r for r in answers if r.status_code in (429, 503)]
    assert len(throttled) >= 30
    assert any("Retry-After" in r.headers for r in throttled) is retry_after
    import argparse

    parser = argparse.ArgumentParser()
    emulator_cli.add_arguments(parser)
    assert parser.parse_args(["--no-retry-after"]).no_retry_after is True
    assert parser.parse_args([]).no_retry_after is False
