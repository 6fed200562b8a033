"""`cijobs invoke EVENT.json`: runs main_handler locally with a fake SCF context."""

from __future__ import annotations

import json
import os

import pytest

from cijobs_tools.cli import main
from cijobs_tools.cli.invoke import fake_context
from cijobs_tools.emulator import Emulator
from conftest import ROOT

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
OK = "j9c0a4726f6ac11ec96aaa9b64ab18d00"
RUN = "j8d121820f5e411ec926ef19d53ba9c6f"
FAIL = "jb976c9e0f86111ec9452c1c27f56a659"


@pytest.fixture
def emu_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith(("CI_", "COS_", "RESULT_", "PENDING_", "API_TOKEN", "TENCENTCLOUD_", "DEADLINE_")):
            monkeypatch.delenv(name)
    with Emulator(secret_id="AKIDinvoke", secret_key="invoke-secret-key", seed=3) as emu:
        env = emu.env(BUCKET, REGION) | {"RESULT_SINK": f"file://{tmp_path}/results",
                                         "PENDING_STORE": f"file://{tmp_path}/pending", "API_TOKEN": "demo-api-token"}
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        for job_id, state in ((OK, "Success"), (RUN, "Running"), (FAIL, "Failed")):
            emu.ci.add_job(job_id, state=state)
        yield emu, tmp_path


def test_fake_context_has_the_scf_shape():
    with open(os.path.join(ROOT, "tests", "fixtures", "events", "context.json"), encoding="utf-8") as fh:
        real = json.load(fh)
    ctx = fake_context(1234, "rid")
    assert set(real) == set(ctx)
    assert (ctx["time_limit_in_ms"], ctx["request_id"]) == (1234, "rid")


def test_invoke_prints_the_response_and_keeps_logs_on_stderr(emu_env, capsys):
    _emu, tmp = emu_env
    rc = main(["invoke", os.path.join(ROOT, "events", "direct.json"), "--request-id", "cli-req-1"])
    captured = capsys.readouterr()
    assert rc == 0
    summary = json.loads(captured.out)  # stdout is exactly the response
    assert {o["JobId"]: o["Outcome"] for o in summary["Outcomes"]} == {OK: "written", RUN: "pending",
                                                                       FAIL: "written"}
    assert any('"request_id": "cli-req-1"' in line for line in captured.err.splitlines())
    assert os.path.isdir(tmp / "results")


def test_invoke_http_event_prints_the_integration_response(emu_env, capsys):
    rc = main(["invoke", os.path.join(ROOT, "events", "apigw-get-jobs.json")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["statusCode"] == 200 and json.loads(out["body"])["JobsDetail"]


def test_invoke_handler_error_exit_1_structured_no_traceback(emu_env, capsys, tmp_path):
    path = tmp_path / "cos.json"
    path.write_text(json.dumps({"Records": [{"cos": {}}]}))
    rc = main(["invoke", str(path)])
    captured = capsys.readouterr()
    assert rc == 1
    err = json.loads(captured.out)
    assert err["errorType"] == "UnknownEventError" and "COS trigger" in err["errorMessage"]
    assert "Traceback" not in captured.out + captured.err


def test_invoke_bad_file(capsys, tmp_path):
    assert main(["invoke", str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    assert main(["invoke", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
