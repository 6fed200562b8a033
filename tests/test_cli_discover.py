"""`cijobs discover`: listing by tag and creation time against the in-process emulator, and --status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cijobs.ci_list import format_list_time
from cijobs.discovery import known_job_tags, parse_tags
from cijobs.discovery_cursor import CursorStore, Position
from cijobs.store import FileObjectStore
from cijobs_tools.cli import main
from cijobs_tools.emulator import Emulator
from fakes import job_id as jid

T0 = 1_796_000_000


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(secret_id="AKIDtest", secret_key="test-secret-key", seed=1) as e:
        for k, v in e.env().items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "1")
        monkeypatch.delenv("TENCENTCLOUD_SESSIONTOKEN", raising=False)
        e.load_catalog([{"job_id": jid(n), "tag": "Transcode", "created": T0 + n, "state": s}
                        for n, s in enumerate(["Success", "Running", "Failed"] * 50)])
        e.load_catalog([{"job_id": jid(500), "tag": "Snapshot", "created": T0 + 3, "state": "Success",
                         "queue_id": "p" + "1" * 32}])
        yield e


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["discover", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("bounds", ["exclusive", "inclusive"])
def test_lists_a_range_across_pages_exactly(emu: Emulator, capsys: pytest.CaptureFixture[str], bounds: str) -> None:
    emu.ci.list_bounds = bounds
    code, out, _ = run(capsys, "--tag", "Transcode", "--since", format_list_time(T0 + 10),
                       "--until", format_list_time(T0 + 130))
    assert code == 0
    doc = json.loads(out)
    assert [j["JobId"] for j in doc["JobsDetail"]] == [jid(n) for n in range(10, 131)]
    assert doc["Failed"] == []
    assert sum(1 for r in emu.ci.requests if r.path == "/jobs") == 2  # 121 jobs: two pages of 100
    assert all(r.method == "GET" for r in emu.ci.requests)
    assert emu.cos.objects == {}  # writes nothing


def test_states_tags_queues_and_jsonl(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--tag", "Transcode,Snapshot", "--since", "2026-11-30T08:53:20+08:00",
                       "--until", format_list_time(T0 + 5), "--states", "Success", "--output", "jsonl")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["JobId"], r["State"]) for r in rows] == [(jid(0), "Success"), (jid(3), "Success"),
                                                        (jid(500), "Success")]
    code, out, _ = run(capsys, "--tag", "Snapshot", "--since", format_list_time(T0), "--queue", "p" + "2" * 32)
    assert code == 0 and json.loads(out)["JobsDetail"] == []


def test_a_failed_listing_exits_1_with_the_queue_hint(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    emu.ci.list_requires_queue = True
    code, out, _ = run(capsys, "--tag", "Transcode", "--since", format_list_time(T0))
    assert code == 1
    [failure] = json.loads(out)["Failed"]
    assert failure["Code"] == "InvalidArgument" and "DISCOVER_QUEUE_IDS" in failure["Hint"]
    code, _, err = run(capsys, "--tag", "Transcode", "--since", format_list_time(T0), "--output", "jsonl")
    assert code == 1 and "DISCOVER_QUEUE_IDS" in err


@pytest.mark.parametrize("argv,message", [
    ((), "--tag"),
    (("--tag", "Transcode"), "--since is required"),
    (("--tag", "Transcode", "--since", "yesterday"), "UTC offset"),
    (("--tag", "Transcode", "--since", "2026-12-04T20:00:00"), "UTC offset"),
    (("--tag", "Transcode", "--since", "2026-12-04T20:00:00+0800", "--until", "2026-12-04T19:00:00+0800"), "before"),
    (("--tag", "Transcode", "--since", "2026-12-04T20:00:00+0800", "--states", "Done"), "unknown state"),
    (("--tag", "a/b", "--since", "2026-12-04T20:00:00+0800"), "unusable"),
])
def test_bad_usage_exits_2_and_sends_nothing(emu: Emulator, capsys: pytest.CaptureFixture[str], argv: Any,
                                             message: str) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err
    assert emu.ci.requests == []


def test_status_prints_each_cursor(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cs = CursorStore(FileObjectStore(str(tmp_path)))
    first = cs.advance("Transcode", None, None, Position(T0))
    cs.advance("Transcode", None, first, Position(T0 + 7, frozenset({jid(1)})))
    cs.advance("Snapshot", "p" + "1" * 32, None, Position(T0 + 3))
    code, out, _ = run(capsys, "--status", "--store", f"file://{tmp_path}")
    assert code == 0
    rows = {(r["Tag"], r["QueueId"]): r for r in json.loads(out)}
    assert rows[("Transcode", None)]["Seq"] == 2 and rows[("Transcode", None)]["Ids"] == [jid(1)]
    assert rows[("Transcode", None)]["Time"] == format_list_time(T0 + 7)
    assert rows[("Snapshot", "p" + "1" * 32)]["Second"] == T0 + 3
    monkeypatch.setenv("PENDING_STORE", f"file://{tmp_path / 'empty'}")
    code, out, _ = run(capsys, "--status")
    assert code == 0 and json.loads(out) == []


def test_all_tags_are_the_real_job_tags() -> None:
    tags = known_job_tags()
    assert "Transcode" in tags and "SpeechRecognition" in tags and "HighSpeedHd" not in tags
    assert parse_tags("all") == tags == parse_tags("Transcode, ALL")
    assert parse_tags(" Transcode,Snapshot,Transcode ,") == ["Transcode", "Snapshot"]
    assert parse_tags("") == []
