"""Discovery end to end (issue 16): timer ticks through ``cijobs invoke`` (handler/index.py, wired by
``build_app`` with ``DISCOVER_*``) against the in-process emulator with a catalog of jobs: finished jobs
are written at once (source ``discovery``), running ones parked and finished by later ticks, every job
written exactly once, nothing new on a repeated tick, whichever way CI's creation-time bounds go."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cijobs.ci_list import format_list_time
from cijobs_tools.cli import main
from cijobs_tools.emulator import Emulator
from fakes import job_id as jid

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
TAGS = ("Transcode", "Snapshot")


def catalog(t0: int) -> tuple[list[dict[str, Any]], dict[str, str], set[str]]:
    """250 swept jobs over 2 tags (a third running, finishing after 2 queries by ID), 12 of one second
    across the Transcode page boundary, plus jobs that must never be written: another tag, and jobs
    created before DISCOVER_SINCE. Returns (catalog, final state of every job to be written, running IDs)."""
    jobs: list[dict[str, Any]] = []
    for n in range(250):
        tag = TAGS[n % 2]
        state = ("Success", "Failed", "Running", "Cancel", "Success", "Running")[n % 6]
        created = t0 + n  # Transcode jobs: every other second
        jobs.append({"job_id": jid(n), "tag": tag, "created": created, "state": state,
                     "final_state": "Failed" if n % 5 == 0 else "Success", "finish_after": 2})
    transcode = [j for j in jobs if j["tag"] == "Transcode"]
    for j in transcode[94:106]:  # 12 jobs sharing one second across the first page boundary (100 a page)
        j["created"] = transcode[94]["created"]
    expected = {j["job_id"]: j["state"] if j["state"] != "Running" else j["final_state"] for j in jobs}
    running = {j["job_id"] for j in jobs if j["state"] == "Running"}
    jobs += [{"job_id": jid(1000 + n), "tag": "SuperResolution", "created": t0 + n, "state": "Success"}
             for n in range(5)]
    jobs += [{"job_id": jid(2000 + n), "tag": TAGS[n % 2], "created": t0 - 200 - n, "state": "Success"}
             for n in range(6)]
    return jobs, expected, running


@pytest.fixture(params=["exclusive", "inclusive"])
def world(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
          tmp_path: Path) -> Iterator[tuple[Emulator, Path, dict[str, str], set[str]]]:
    for name in list(os.environ):
        if name.startswith(("CI_", "COS_", "CMQ_", "RESULT_", "PENDING_", "TENCENTCLOUD_", "DEADLINE_", "RATE_",
                            "DISCOVER_", "HTTP_", "LOG_")):
            monkeypatch.delenv(name)
    t0 = int(time.time()) - 600  # the catalog: created within the last ten minutes
    with Emulator(secret_id="AKIDdisc", secret_key="disc-secret-key", seed=9) as emu:
        emu.ci.list_bounds = request.param
        jobs, expected, running = catalog(t0)
        emu.ci.load_catalog(jobs)
        env = emu.env(BUCKET, REGION) | {
            "RESULT_SINK": f"file://{tmp_path}/results", "PENDING_STORE": f"file://{tmp_path}/pending",
            "DISCOVER_TAGS": ",".join(TAGS), "DISCOVER_SINCE": format_list_time(t0 - 180),
            "DISCOVER_SETTLE_S": "0"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        yield emu, tmp_path, expected, running


def tick(tmp_path: Path, capsys: pytest.CaptureFixture[str], when: str = "2026-12-04T00:05:00Z"
         ) -> tuple[dict[str, Any], dict[str, Any]]:
    """One timer tick through ``cijobs invoke``: (response, invocation_summary log line)."""
    event = tmp_path / "timer.json"
    event.write_text(json.dumps({"Type": "Timer", "TriggerName": "every-5-min", "Time": when}), encoding="utf-8")
    capsys.readouterr()
    code = main(["invoke", str(event), "--output", "jsonl", "-v"])
    out, err = capsys.readouterr()
    assert code == 0, out + err[-2000:]
    summaries = [json.loads(line) for line in err.splitlines()
                 if line.startswith("{") and '"invocation_summary"' in line]
    assert len(summaries) == 1, err[-2000:]
    return json.loads(out), summaries[0]


def results(tmp_path: Path) -> Counter[str]:
    """Result objects in the file sink, counted per JobId (index objects excluded)."""
    root = tmp_path / "results"
    return Counter(p.stem for p in root.rglob("*.json") if "_index" not in p.parts) if root.exists() else Counter()


def states(tmp_path: Path) -> dict[str, str]:
    root = tmp_path / "results"
    return {p.stem: json.loads(p.read_text(encoding="utf-8"))["State"]
            for p in root.rglob("*.json") if "_index" not in p.parts}


def test_ticks_write_every_job_once_park_the_running_and_repeat_nothing(
        world: tuple[Emulator, Path, dict[str, str], set[str]], capsys: pytest.CaptureFixture[str]) -> None:
    emu, tmp_path, expected, running = world
    finished = set(expected) - running

    response, summary = tick(tmp_path, capsys)
    outcomes = {o["JobId"]: o for o in response["Outcomes"]}
    assert set(outcomes) == set(expected)
    assert {o["Source"] for o in outcomes.values()} == {"discovery"}
    assert {j for j, o in outcomes.items() if o["Outcome"] == "written"} == finished
    assert {j for j, o in outcomes.items() if o["Outcome"] == "pending"} == running
    assert set(results(tmp_path)) == finished
    assert summary["discovered"] == len(expected)
    assert response["Discovery"]["discovered"] == len(expected)
    assert response["Discovery"]["failures"] == []

    later: dict[str, str] = {}
    for _ in range(6):  # later ticks query the parked jobs by ID (the registry work) until they finish
        response, summary = tick(tmp_path, capsys)
        assert summary["discovered"] == 0
        assert {o["JobId"] for o in response["Outcomes"]} <= running
        later.update({o["JobId"]: o["Source"] for o in response["Outcomes"] if o["Outcome"] == "written"})
        if not any(o["Outcome"] == "pending" for o in response["Outcomes"]):
            break
    assert set(later) == running and set(later.values()) == {"timer"}
    assert set(results(tmp_path)) == set(expected)
    assert states(tmp_path) == expected  # the running ones with their final state
    assert max(results(tmp_path).values()) == 1  # every job written exactly once

    count = sum(results(tmp_path).values())
    objects = len(emu.cos.objects)
    response, summary = tick(tmp_path, capsys)  # the same tick again: nothing new
    assert summary["discovered"] == 0 and summary["written"] == 0
    assert response["Outcomes"] == []
    assert sum(results(tmp_path).values()) == count and len(emu.cos.objects) == objects
    # jobs of another tag, or created before DISCOVER_SINCE, were never written
    assert not {jid(1000 + n) for n in range(5)} & set(results(tmp_path))
    assert not {jid(2000 + n) for n in range(6)} & set(results(tmp_path))


def test_a_job_created_after_a_tick_is_found_by_the_next_one_only(
        world: tuple[Emulator, Path, dict[str, str], set[str]], capsys: pytest.CaptureFixture[str]) -> None:
    emu, tmp_path, _, _ = world
    tick(tmp_path, capsys)
    late = jid(3000)
    emu.ci.load_catalog([{"job_id": late, "tag": "Snapshot", "created": int(time.time()), "state": "Success"}])
    time.sleep(1.1)  # DISCOVER_SETTLE_S=0: the window ends at the current whole second
    response, summary = tick(tmp_path, capsys)
    assert summary["discovered"] == 1
    assert {o["JobId"] for o in response["Outcomes"] if o["Source"] == "discovery"} == {late}
    assert results(tmp_path)[late] == 1
    response, summary = tick(tmp_path, capsys)
    assert summary["discovered"] == 0 and results(tmp_path)[late] == 1
