"""`cijobs doctor` and the checks of cijobs.doctor, against the emulator (127.0.0.1 only)."""

from __future__ import annotations

import json
import os
import socket

import pytest

from cijobs.deadline import Deadline
from cijobs.doctor import (
    PROBE_JOB_ID,
    Check,
    Collaborators,
    check_all,
    handle_event,
    is_doctor_event,
    mask_secret_id,
    report,
    run_checks,
)
from cijobs.models import ErrorInfo, QueryResult
from cijobs.settings import Settings
from cijobs.store import FileObjectStore
from cijobs_tools.cli import main
from cijobs_tools.emulator import Emulator

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
SECRET_ID, SECRET_KEY = "AKIDdoctor0000test", "doctor-secret-key-value"
COS_RESULTS = f"cos://{BUCKET}.{REGION}/results"
COS_PENDING = f"cos://{BUCKET}.{REGION}/registry"
WEBHOOK_SECRET = "w" * 40


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("CI_", "COS_", "CMQ_", "RESULT_", "PENDING_", "API_TOKEN", "TENCENTCLOUD_", "WEBHOOK_",
                            "HTTP_", "LOG_LEVEL", "DISCOVER_")):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def emu(clean_env, tmp_path):
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, seed=5) as emulator:
        env = emulator.env(BUCKET, REGION) | {"RESULT_SINK": f"file://{tmp_path}/results,{COS_RESULTS}",
                                              "PENDING_STORE": COS_PENDING, "HTTP_MAX_ATTEMPTS": "1"}
        for k, v in env.items():
            clean_env.setenv(k, v)
        yield emulator


def lines_of(text: str) -> dict[str, str]:
    """``{check name: its line}`` of the text report."""
    out = {}
    for line in text.splitlines():
        if line[:2] in ("✓ ", "✗ ", "- "):
            out[line[2:].split(": ", 1)[0]] = line
    return out


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mask_secret_id_shows_first_and_last_four_only():
    assert mask_secret_id("AKIDabcdefghijklmnWXYZ") == "AKID…WXYZ"
    assert mask_secret_id("short") == "*****"


def test_doctor_passes_against_the_emulator_and_cleans_up(emu, capsys):
    rc = main(["doctor"])
    out = capsys.readouterr().out
    assert rc == 0, out
    first = out.splitlines()[0]
    assert first.startswith("✓ credentials:") and "AKID…test" in first and "permanent" in first
    assert SECRET_ID not in out and SECRET_KEY not in out
    lines = lines_of(out)
    assert set(lines) == {"credentials", "settings", "ci query", "ci list", f"sink file://{emu_tmp(out)}",
                          f"sink {COS_RESULTS}", "pending store"}
    assert all(line.startswith("✓") for line in lines.values())
    assert "NonExistJobIds" in lines["ci query"]
    assert out.rstrip().endswith("all checks passed")
    # the probes went where the policy allows them (<prefix>/_doctor/) and were deleted again
    probed = {(r.method, r.key.rsplit("/", 1)[0]) for r in emu.cos.requests if "_doctor/" in r.key}
    assert probed == {("PUT", "results/_doctor"), ("HEAD", "results/_doctor"), ("DELETE", "results/_doctor"),
                      ("PUT", "registry/_doctor"), ("HEAD", "registry/_doctor"), ("DELETE", "registry/_doctor")}
    assert not [k for (_b, k) in emu.cos.objects if "_doctor" in k]
    listed = [r for r in emu.cos.requests if r.method == "GET" and not r.key]
    assert listed and listed[0].query.get("prefix") == "registry/.pending/"


def emu_tmp(out: str) -> str:
    """The file:// sink's directory as the report names it."""
    return next(line.split("file://", 1)[1].split(":", 1)[0] for line in out.splitlines()
                if line.startswith("✓ sink file://"))


def test_doctor_says_when_the_credentials_are_temporary(clean_env, tmp_path, capsys):
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token="session-token-value-123", seed=1) as emulator:
        for k, v in (emulator.env(BUCKET, REGION) | {"RESULT_SINK": f"file://{tmp_path}/r",
                                                     "PENDING_STORE": f"file://{tmp_path}/p"}).items():
            clean_env.setenv(k, v)
        rc = main(["doctor"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "temporary (session token set)" in out.splitlines()[0]
    assert "session-token-value-123" not in out


def test_doctor_with_a_wrong_key_names_the_check_and_signature_does_not_match(emu, clean_env, capsys):
    clean_env.setenv("TENCENTCLOUD_SECRETKEY", "a-wrong-secret-key-000")
    rc = main(["doctor"])
    out = capsys.readouterr().out
    assert rc == 1
    lines = lines_of(out)
    assert lines["ci query"].startswith("✗ ci query: SignatureDoesNotMatch")
    assert lines[f"sink {COS_RESULTS}"].startswith("✗") and lines["pending store"].startswith("✗")
    assert "fix: the secret key does not match the SecretId: check TENCENTCLOUD_SECRETKEY" in out
    assert "a-wrong-secret-key-000" not in out
    assert "check(s) failed: ci query, ci list" in out


def test_doctor_with_a_closed_port_names_the_host(emu, clean_env, capsys, tmp_path):
    port = closed_port()
    clean_env.setenv("PENDING_STORE", f"file://{tmp_path}/pending")
    rc = main(["doctor", "--endpoint", f"http://127.0.0.1:{port}", "--result-sink", f"file://{tmp_path}/res"])
    out = capsys.readouterr().out
    assert rc == 1
    lines = lines_of(out)
    assert lines["ci query"].startswith("✗ ci query: ConnectionError") and f"127.0.0.1:{port}" in lines["ci query"]
    assert "check --endpoint (or CI_BUCKET/CI_REGION)" in out  # the flag that set it is named
    assert lines["pending store"].startswith("✓") and lines[f"sink file://{tmp_path}/res"].startswith("✓")


def test_doctor_json_for_machines(emu, clean_env, capsys):
    assert main(["doctor", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["Ok"] is True and doc["Checks"][0]["Name"] == "credentials"
    clean_env.setenv("TENCENTCLOUD_SECRETKEY", "a-wrong-secret-key-000")
    assert main(["doctor", "--output", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    failed = {c["Name"]: c for c in doc["Checks"] if not c["Ok"]}
    assert doc["Ok"] is False and "SignatureDoesNotMatch" in failed["ci query"]["Detail"]
    assert failed["ci query"]["Fix"]


def test_doctor_without_credentials_fails_the_first_line(clean_env, tmp_path, capsys):
    clean_env.setenv("CI_BUCKET", BUCKET)
    clean_env.setenv("CI_REGION", REGION)
    clean_env.setenv("CI_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    clean_env.setenv("RESULT_SINK", f"file://{tmp_path}/r")
    clean_env.setenv("PENDING_STORE", f"file://{tmp_path}/p")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("✗ credentials: missing credentials") and "TENCENTCLOUD_SECRETID" in out
    lines = lines_of(out)
    assert lines["ci query"].startswith("✗ ci query: missing credentials")  # nothing was sent unsigned
    assert lines["pending store"].startswith("✓")  # a file:// store needs no credentials


def test_doctor_with_invalid_settings_stops_at_the_settings_line(emu, clean_env, capsys):
    clean_env.setenv("RESULT_SINK", "ftp://nowhere")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    lines = lines_of(out)
    assert set(lines) == {"credentials", "settings"}
    assert lines["settings"].startswith("✗ settings: RESULT_SINK")
    clean_env.setenv("RESULT_SINK", "file:///tmp/x")
    assert main(["doctor", "--bucket", "Not_A_Bucket"]) == 1
    assert "--bucket must look like" in capsys.readouterr().out  # the flag is named, not CI_BUCKET


def test_doctor_list_check_says_to_set_discover_queue_ids(emu, capsys):
    emu.ci.list_requires_queue = True
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert lines_of(out)["ci list"].startswith("✗ ci list:")
    assert "set DISCOVER_QUEUE_IDS" in out
    assert lines_of(out)["ci query"].startswith("✓")


def test_doctor_unusable_file_sink_is_named_with_a_fix(emu, clean_env, capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    clean_env.setenv("RESULT_SINK", f"file://{blocker}/results")
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert lines_of(out)[f"sink file://{blocker}/results"].startswith("✗")
    assert f"fix: RESULT_SINK: make {blocker}/results writable" in out


def test_cmq_and_webhook_are_probed_only_with_send_probe(emu, clean_env, capsys):
    url = emu.webhook_url("doctor")
    emu.webhooks.configure("doctor", secrets=[WEBHOOK_SECRET])
    clean_env.setenv("RESULT_SINK", f"cmq-queue://{REGION}/results,{url}")
    clean_env.setenv("WEBHOOK_SECRET", WEBHOOK_SECRET)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    lines = lines_of(out)
    assert lines[f"sink cmq-queue://{REGION}/results"].startswith("- ")
    assert "--send-probe" in lines[f"sink {url}"]
    assert emu.cmq.by_name("results") == [] and emu.webhooks.deliveries("doctor") == []

    assert main(["doctor", "--send-probe"]) == 0
    out = capsys.readouterr().out
    assert all(line.startswith("✓") for line in lines_of(out).values())
    [message] = emu.cmq.by_name("results")
    assert json.loads(message.body)["JobId"] == PROBE_JOB_ID
    [delivery] = emu.webhooks.deliveries("doctor")
    assert delivery.verified is True and json.loads(delivery.body)["Tag"] == "Doctor"


def test_webhook_probe_refused_is_reported(emu, clean_env, capsys):
    url = emu.webhook_url("refuses")
    emu.webhooks.configure("refuses", status=404)
    clean_env.setenv("RESULT_SINK", url)
    clean_env.setenv("WEBHOOK_SECRET", WEBHOOK_SECRET)
    assert main(["doctor", "--send-probe"]) == 1
    assert lines_of(capsys.readouterr().out)[f"sink {url}"].startswith("✗")


def test_direct_invoke_answer_runs_the_same_checks(emu):
    assert is_doctor_event({"Doctor": True}) and not is_doctor_event({"Doctor": "yes"})
    assert not is_doctor_event({"JobIds": ["j1"]})
    answer = handle_event({"Doctor": True}, dict(os.environ), Deadline(20))
    assert answer["Trigger"] == "doctor" and answer["Ok"] is True
    assert [c["Name"] for c in answer["Checks"]][:4] == ["credentials", "settings", "ci query", "ci list"]
    assert "AKID…test" in answer["Checks"][0]["Detail"]
    assert SECRET_KEY not in json.dumps(answer)
    bad = handle_event({"Doctor": True}, dict(os.environ) | {"TENCENTCLOUD_SECRETKEY": "wrong-key-123456"},
                       Deadline(20))
    assert bad["Ok"] is False


class _Querier:
    def __init__(self, result: QueryResult) -> None:
        self.result = result

    def query(self, job_ids, deadline=None):
        return self.result


class _Lister:
    def list_page(self, query, deadline=None):
        assert (query.tag, query.size, query.queue_id) == ("Transcode", 1, None)
        return type("Page", (), {"jobs": []})()


class _Registry:
    def __init__(self, store):
        self.store = store

    def list_ids(self, limit=None, deadline=None):
        return []


def test_check_all_is_pure_orchestration_over_injected_clients(tmp_path):
    from cijobs.credentials import Credentials

    settings = Settings(ci_bucket=BUCKET, ci_region=REGION, result_sink=f"file://{tmp_path}/r",
                        pending_store=f"file://{tmp_path}/p")
    failed = QueryResult(failed=[type("F", (), {"job_id": PROBE_JOB_ID,
                                                "error": ErrorInfo("AccessDenied", "no", 403)})()])
    collab = Collaborators(querier=lambda: _Querier(failed), lister=_Lister,
                           store=lambda url: FileObjectStore(url.root),  # type: ignore[union-attr]
                           sink=lambda t: (_ for _ in ()).throw(AssertionError("no CMQ/webhook here")),
                           pending=lambda: _Registry(FileObjectStore(f"{tmp_path}/p")))
    checks = check_all(settings, Credentials("AKIDfake0000abcd", "k"), collab, Deadline(5), clock=lambda: 1.0)
    by_name = {c.name: c for c in checks}
    assert not by_name["ci query"].ok and "AccessDenied" in by_name["ci query"].detail
    assert "ci:DescribeMediaJob" in by_name["ci query"].fix
    assert by_name["ci list"].ok and by_name["pending store"].ok
    assert report(checks)["Ok"] is False
    assert Check("x", True, "d", skipped=True).as_dict() == {"Name": "x", "Ok": True, "Detail": "d", "Skipped": True}
    assert run_checks({}, Deadline(1))[1].name == "settings"  # no CI_BUCKET: stops at the settings line


def test_the_emulators_auto_jobs_never_answer_the_doctors_probe() -> None:
    from cijobs.doctor import PROBE_JOB_ID
    from cijobs_tools.emulator.ci import DOCTOR_PROBE_ID

    assert DOCTOR_PROBE_ID == PROBE_JOB_ID


def test_doctor_against_a_server_that_never_answers_ends_by_its_timeout(emu, clean_env, capsys, tmp_path):
    import time

    from fakes.rawserver import Conn, RawServer

    def silent(conn: Conn) -> None:  # reads the request, then says nothing until the client gives up
        conn.request()
        time.sleep(5)

    clean_env.setenv("PENDING_STORE", f"file://{tmp_path}/pending")
    with RawServer(silent) as server:
        started = time.monotonic()
        rc = main(["doctor", "--endpoint", server.url, "--result-sink", f"file://{tmp_path}/res", "--timeout", "1"])
        elapsed = time.monotonic() - started
    lines = lines_of(capsys.readouterr().out)
    assert rc == 1 and elapsed < 2.5, f"took {elapsed:.1f} s with --timeout 1"
    assert lines["ci query"].startswith("✗ ci query:") and "127.0.0.1" in lines["ci query"]
