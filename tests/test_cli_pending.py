"""`cijobs pending list/show/retry/drop`, against a file:// registry and the emulator's COS; and the wrong-key
end to end: a timer tick parks its Message's jobs, the next tick after the fix writes them."""

from __future__ import annotations

import json
import os
import time

import pytest

from cijobs.credentials import from_env as credentials_from_env
from cijobs.pending import PendingStore, build_pending_store
from cijobs.settings import Settings
from cijobs_tools.cli import main
from cijobs_tools.emulator import Emulator

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
SECRET_ID, SECRET_KEY = "AKIDpending000test", "pending-secret-key-value"
DONE = "j" + "a" * 32
RUNNING = "j" + "b" * 32
OLD = "j" + "c" * 32
THREE = ["j" + c * 32 for c in "def"]


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("CI_", "COS_", "CMQ_", "RESULT_", "PENDING_", "API_TOKEN", "TENCENTCLOUD_", "WEBHOOK_",
                            "HTTP_", "LOG_LEVEL", "DISCOVER_", "DEADLINE_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture(params=["file", "cos"])
def registry(request, clean_env, tmp_path):
    """(emulator, registry as the CLI sees it, results dir) with DONE, RUNNING and OLD registered."""
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, seed=2) as emu:
        store = f"file://{tmp_path}/pending" if request.param == "file" else f"cos://{BUCKET}.{REGION}/registry"
        env = emu.env(BUCKET, REGION) | {"RESULT_SINK": f"file://{tmp_path}/results", "PENDING_STORE": store}
        for k, v in env.items():
            clean_env.setenv(k, v)
        emu.ci.add_job(DONE, state="Success")
        emu.ci.add_job(RUNNING, state="Running")
        emu.ci.add_job(OLD, state="Running")
        reg = build_pending_store(Settings.from_env(os.environ), lambda: credentials_from_env(os.environ))
        assert not reg.add([DONE, RUNNING], now=time.time(), source="direct")
        # OLD: two hours old in a file:// registry (FirstSeen is read from the entry); on COS the object's
        # LastModified is its FirstSeen, so there it is as new as the others
        assert not reg.add([OLD], now=time.time() - 7200, source="direct")
        yield emu, reg, tmp_path / "results", request.param


def listed(capsys, *args: str) -> list[dict]:
    assert main(["pending", "list", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_shows_every_entry_with_source_age_and_answered(registry, capsys):
    _emu, _reg, _results, kind = registry
    docs = listed(capsys)
    assert sorted(d["JobId"] for d in docs) == sorted([DONE, RUNNING, OLD])
    for d in docs:
        assert set(d) == {"JobId", "FirstSeen", "Source", "AgeS", "Answered"}
        assert d["Source"] == "direct" and d["Answered"] is False and d["FirstSeen"].endswith("Z")
    if kind == "file":
        assert docs[0]["JobId"] == OLD and docs[0]["AgeS"] >= 7199  # oldest first
        assert [d["JobId"] for d in listed(capsys, "--older-than", "3600")] == [OLD]
    assert listed(capsys, "--older-than", "86400") == []
    assert len(listed(capsys, "--limit", "2")) == 2
    assert main(["pending", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["JOB", "ID", "FIRST", "SEEN", "SOURCE", "AGE", "ANSWERED"] and len(table) == 4
    assert main(["pending", "list", "--limit", "0"]) == 2


def test_list_notes_a_truncated_listing_on_stderr(registry, capsys):
    assert main(["pending", "list", "--json", "--limit", "1"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 1
    assert "more entries than --limit 1" in captured.err


def test_show_one_entry_and_a_missing_one(registry, capsys):
    assert main(["pending", "show", RUNNING, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["JobId"] == RUNNING and doc["Source"] == "direct" and doc["Answered"] is False
    assert main(["pending", "show", RUNNING]) == 0
    assert "source:      direct" in capsys.readouterr().out
    assert main(["pending", "show", "j" + "9" * 32]) == 1
    assert "is not in the pending registry" in capsys.readouterr().err
    assert main(["pending", "show", "../etc"]) == 2


def test_retry_ids_writes_finished_jobs_and_keeps_the_others(registry, capsys):
    _emu, reg, results, _kind = registry
    assert main(["pending", "retry", DONE, RUNNING]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {o["JobId"]: o["Outcome"] for o in doc["Outcomes"]} == {DONE: "written", RUNNING: "pending"}
    assert {o["Source"] for o in doc["Outcomes"]} == {"operator"}
    assert (results / "Transcode" / f"{DONE}.json").is_file()
    assert reg.list_ids() == sorted([RUNNING, OLD])  # the written job left the registry
    assert main(["pending", "retry", "NOT-AN-ID"]) == 2


def test_retry_without_ids_runs_one_tick_over_the_registry(registry, capsys):
    emu, reg, results, _kind = registry
    emu.ci.set_state(OLD, "Success")
    assert main(["pending", "retry"]) == 0
    doc = json.loads(capsys.readouterr().out)
    outcomes = {o["JobId"]: o["Outcome"] for o in doc["Outcomes"]}
    assert outcomes == {DONE: "written", OLD: "written", RUNNING: "pending"}
    assert reg.list_ids() == [RUNNING]
    assert (results / "Transcode" / f"{OLD}.json").is_file()


def test_drop_refuses_without_yes_then_drops(registry, capsys):
    _emu, reg, _results, _kind = registry
    assert main(["pending", "drop", RUNNING]) == 2
    assert "add --yes" in capsys.readouterr().err
    assert RUNNING in reg.list_ids()
    assert main(["pending", "drop", RUNNING, "--yes"]) == 0
    assert capsys.readouterr().out.strip() == f"{RUNNING}: dropped"
    assert RUNNING not in reg.list_ids()
    assert main(["pending", "drop", RUNNING, OLD, "--yes"]) == 1  # one of them was not pending (a typo?)
    assert capsys.readouterr().out.splitlines() == [f"{RUNNING}: was not pending", f"{OLD}: dropped"]
    assert reg.list_ids() == [DONE]


def test_pending_store_flag_and_bad_settings(clean_env, tmp_path, capsys):
    reg = PendingStore(_file_store(tmp_path / "elsewhere"))
    reg.add([DONE], now=time.time(), source="timer")
    assert main(["pending", "--pending-store", f"file://{tmp_path}/elsewhere", "list", "--json"]) == 0
    assert [d["JobId"] for d in json.loads(capsys.readouterr().out)] == [DONE]
    assert main(["pending", "--pending-store", "ftp://x", "list"]) == 2
    assert "--pending-store must be file://DIR" in capsys.readouterr().err


def _file_store(path):
    from cijobs.store import FileObjectStore

    return FileObjectStore(str(path))


# -- the wrong key, end to end through `cijobs invoke` ----------------------------------------------------


def _timer(path, message):
    event = {"Type": "Timer", "TriggerName": "cijobs-every-5-min", "Time": "2026-01-01T00:05:00Z",
             "Message": json.dumps(message) if message is not None else ""}
    path.write_text(json.dumps(event))
    return str(path)


@pytest.fixture
def wrong_key(clean_env, tmp_path):
    """The emulator holds THREE finished jobs; the function's environment has the wrong secret key (one attempt)."""
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, seed=4) as emu:
        env = emu.env(BUCKET, REGION) | {"RESULT_SINK": f"file://{tmp_path}/results",
                                         "PENDING_STORE": f"file://{tmp_path}/pending",
                                         "TENCENTCLOUD_SECRETKEY": "a-wrong-secret-key-000",
                                         "HTTP_MAX_ATTEMPTS": "1"}
        for k, v in env.items():
            clean_env.setenv(k, v)
        for job_id in THREE:
            emu.ci.add_job(job_id, state="Success")
        yield emu


def test_wrong_key_tick_parks_all_three_and_the_next_tick_after_the_fix_writes_them(
        wrong_key, clean_env, tmp_path, capsys):
    with_ids = _timer(tmp_path / "with-ids.json", {"JobIds": THREE})
    tick = _timer(tmp_path / "tick.json", None)

    main(["invoke", with_ids])  # exit status: test_wrong_key_tick_exits_1_after_parking
    captured = capsys.readouterr()
    assert "a-wrong-secret-key-000" not in captured.out + captured.err
    parked = listed(capsys)
    assert sorted(d["JobId"] for d in parked) == THREE
    assert all(d["Answered"] is False for d in parked)  # CI never answered: they never expire
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("*.json"))

    clean_env.setenv("TENCENTCLOUD_SECRETKEY", SECRET_KEY)  # the fix
    assert main(["invoke", tick]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {o["JobId"]: o["Outcome"] for o in summary["Outcomes"]} == dict.fromkeys(THREE, "written")
    assert listed(capsys) == []
    assert sorted(p.stem for p in (tmp_path / "results").rglob("*.json")) == THREE


def test_wrong_key_tick_exits_1_after_parking(wrong_key, tmp_path, capsys):
    rc = main(["invoke", "-v", _timer(tmp_path / "with-ids.json", {"JobIds": THREE})])
    err = capsys.readouterr().err
    assert sorted(d["JobId"] for d in listed(capsys)) == THREE  # parked, nothing lost
    assert rc == 1  # and SCF counts an error: alarms, the dead-letter queue
    [summary] = [json.loads(line) for line in err.splitlines()
                 if line.startswith("{") and '"invocation_summary"' in line]
    assert summary["level"] == "error" and summary["config_errors"] == {"SignatureDoesNotMatch": 3}
    assert "TENCENTCLOUD_SECRETKEY" in summary["hint"]


def test_options_go_before_or_after_the_action(clean_env, tmp_path, capsys):
    reg = PendingStore(_file_store(tmp_path / "p"))
    reg.add([RUNNING], now=time.time(), source="timer")
    store = f"file://{tmp_path}/p"
    assert main(["pending", "list", "--json", "--pending-store", store, "-q", "--timeout", "5"]) == 0
    assert [d["JobId"] for d in json.loads(capsys.readouterr().out)] == [RUNNING]
    assert main(["pending", "--pending-store", store, "--timeout", "5", "show", RUNNING, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["Source"] == "timer"
    assert main(["pending", "--timeout", "0", "list"]) == 2
