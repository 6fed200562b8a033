"""`cijobs invoke EVENT.json`: runs main_handler locally with a fake SCF context."""

from __future__ import annotations

import base64
import json
import os

import pytest

from cijobs_tools.cli import main
from cijobs_tools.cli.invoke import decode_http_answer, fake_context
from cijobs_tools.emulator import Emulator
from fakes import ROOT

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
                                         "PENDING_STORE": f"file://{tmp_path}/pending",
                                         "API_TOKEN": "demo-api-token-0123"}
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
    rc = main(["invoke", os.path.join(ROOT, "events", "direct.json"), "--request-id", "cli-req-1", "-v"])
    captured = capsys.readouterr()
    assert rc == 0
    summary = json.loads(captured.out)  # stdout is exactly the response
    assert {o["JobId"]: o["Outcome"] for o in summary["Outcomes"]} == {OK: "written", RUN: "pending",
                                                                       FAIL: "written"}
    assert any('"request_id": "cli-req-1"' in line for line in captured.err.splitlines())
    assert os.path.isdir(tmp / "results")


def test_invoke_logs_warnings_only_by_default(emu_env, capsys, monkeypatch):
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    assert main(["invoke", os.path.join(ROOT, "events", "direct.json")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["Outcomes"]
    assert '"level": "info"' not in captured.err
    assert "LOG_LEVEL" not in os.environ  # restored after the run
    monkeypatch.setenv("LOG_LEVEL", "info")  # applies when no flag is given...
    assert main(["invoke", os.path.join(ROOT, "events", "direct.json")]) == 0
    assert '"level": "info"' in capsys.readouterr().err
    assert main(["invoke", "-q", os.path.join(ROOT, "events", "direct.json")]) == 0  # ...a flag wins
    assert '"level": "info"' not in capsys.readouterr().err
    assert os.environ["LOG_LEVEL"] == "info"


def test_invoke_http_event_prints_the_decoded_body(emu_env, capsys):
    rc = main(["invoke", os.path.join(ROOT, "events", "apigw-get-jobs.json")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["statusCode"] == 200
    assert {j["JobId"] for j in out["body"]["JobsDetail"]} >= {OK}  # a JSON document, not an escaped string


def test_invoke_http_503_exits_1(emu_env, capsys, monkeypatch):
    monkeypatch.delenv("CI_BUCKET")  # the function is misconfigured: an HTTP caller gets 503
    rc = main(["invoke", os.path.join(ROOT, "events", "apigw-get-jobs.json")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["statusCode"] == 503
    assert out["body"]["Error"]["Code"] == "ConfigurationError" and "CI_BUCKET" in out["body"]["Error"]["Message"]


def test_invoke_http_4xx_is_an_answer_exit_0(emu_env, capsys, tmp_path):
    event = load_event("apigw-get-jobs.json")
    event["headers"] = {k: v for k, v in event["headers"].items() if k.lower() != "authorization"}
    path = tmp_path / "no-token.json"
    path.write_text(json.dumps(event))
    assert main(["invoke", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["statusCode"] == 401


def test_invoke_jsonl_prints_the_whole_return_value_on_one_line(emu_env, capsys):
    assert main(["invoke", "--output", "jsonl", os.path.join(ROOT, "events", "apigw-get-jobs.json")]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    doc = json.loads(out)
    assert doc["statusCode"] == 200 and doc["body"]["JobsDetail"] and "headers" in doc


@pytest.mark.parametrize(("answer", "body"), [
    ({"statusCode": 200, "body": '{"a": [1]}'}, {"a": [1]}),
    ({"statusCode": 200, "body": "plain text"}, "plain text"),
    ({"statusCode": 200, "isBase64Encoded": True, "body": base64.b64encode(b'{"b": 2}').decode()}, {"b": 2}),
    ({"statusCode": 200, "isBase64Encoded": True, "body": base64.b64encode(b"\xff\xfe").decode()}, "//4="),
])
def test_decode_http_answer(answer, body):
    assert decode_http_answer(answer)["body"] == body


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


# ---------------------------------------------------------------- --dead-letter: replay what SCF gave up on

def dead_letter_message(event, request_source="TRIGGER_TIMER", client_context=True):
    """A dead-letter body shaped as https://www.tencentcloud.com/document/product/583/39704 documents it."""
    body = {"AppId": 1250000000, "Uin": "100000000001", "SubAccountUin": "100000000001",
            "RequestSource": request_source, "FunctionName": "cijobs", "Namespace": "default",
            "Qualifier": "$DEFAULT", "InvocationType": "Event", "LogType": "",
            "TimeStampForInvoker": "1767225900000", "RequestId": "dlq-req-1",
            "PushTime": "2026-01-01T08:05:00.061824591+08:00", "RetryNum": 2, "Ttl": 0}
    if client_context:
        body["ClientContext"] = json.dumps(event)
    return {"RequestId": "dlq-req-1", "ErrorCode": -1, "Body": body,
            "ErrorMessage": 'Traceback (most recent call last):\n  File "/var/user/index.py" ... token=SECRET-IN-TRACE'}


def load_event(name):
    with open(os.path.join(ROOT, "events", name), encoding="utf-8") as fh:
        return json.load(fh)


@pytest.mark.parametrize("wrap", [
    lambda m: m,  # the message body as saved from the console
    lambda m: {"code": 0, "message": "", "msgId": "m1", "msgBody": json.dumps(m)},  # ReceiveMessage answer
    lambda m: {"code": 0, "msgInfoList": [{"msgId": "m1", "msgBody": json.dumps(m)}]},  # BatchReceiveMessage
])
def test_dead_letter_print_event_gives_back_the_original_event(tmp_path, capsys, wrap):
    timer = load_event("timer.json")
    path = tmp_path / "dlq.json"
    path.write_text(json.dumps(wrap(dead_letter_message(timer))))
    assert main(["invoke", "--dead-letter", str(path), "--print-event"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == timer
    about = json.loads(captured.err.split("cijobs: dead letter ", 1)[1])
    assert about["RequestId"] == "dlq-req-1" and about["RequestSource"] == "TRIGGER_TIMER"
    assert about["RetryNum"] == 2
    assert "SECRET-IN-TRACE" not in captured.out + captured.err  # ErrorMessage is not echoed


def test_dead_letter_replay_runs_the_handler_on_the_original_event(emu_env, tmp_path, capsys):
    path = tmp_path / "dlq.json"
    path.write_text(json.dumps(dead_letter_message(load_event("direct.json"), request_source="INVOKE")))
    assert main(["invoke", "--dead-letter", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert {o["JobId"]: o["Outcome"] for o in summary["Outcomes"]} == {OK: "written", RUN: "pending",
                                                                       FAIL: "written"}


@pytest.mark.parametrize(("doc", "message"), [
    (dead_letter_message({}, client_context=False), "carries no ClientContext"),
    ({"JobIds": [OK]}, "not an SCF dead-letter message"),
    ({"msgInfoList": [{"msgBody": "{}"}, {"msgBody": "{}"}]}, "holds 2 messages"),
    ({"msgBody": "{not json"}, "msgBody is not JSON"),
    ({**dead_letter_message({}), "Body": {"ClientContext": "{oops"}}, "ClientContext is not JSON"),
])
def test_dead_letter_without_a_replayable_event_says_why(tmp_path, capsys, doc, message):
    path = tmp_path / "dlq.json"
    path.write_text(json.dumps(doc))
    assert main(["invoke", "--dead-letter", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_dead_letter_and_event_file_are_exclusive(tmp_path, capsys):
    path = tmp_path / "e.json"
    path.write_text("{}")
    assert main(["invoke", str(path), "--dead-letter", str(path)]) == 2
    assert main(["invoke"]) == 2
    assert main(["invoke", str(path), "--print-event"]) == 2
    err = capsys.readouterr().err
    assert "either EVENT.json or --dead-letter" in err and "--print-event goes with --dead-letter" in err
