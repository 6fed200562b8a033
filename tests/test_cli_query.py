"""`cijobs query`: exit codes, JSON shape, nothing sent on bad input."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
import responses

from cijobs_tools.cli import main

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"
BASE = f"https://{BUCKET}.ci.{REGION}.myqcloud.com"
A = "j" + "a" * 32
B = "j" + "b" * 32
C = "j" + "c" * 32


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CI_ENDPOINT", "TENCENTCLOUD_SESSIONTOKEN", "CI_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CI_BUCKET", BUCKET)
    monkeypatch.setenv("CI_REGION", REGION)
    monkeypatch.setenv("CI_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", "AKIDtest")
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", "cli-secret-key")


def body(found: list[str], missing: list[str]) -> str:
    jobs = "".join(f"<JobsDetail><Code>Success</Code><Message/><JobId>{i}</JobId><State>Success</State>"
                   f"<Tag>Transcode</Tag></JobsDetail>" for i in found)
    gone = f"<NonExistJobIds>{','.join(missing)}</NonExistJobIds>" if missing else ""
    return f"<Response>{jobs}{gone}</Response>"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    code = main(["query", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


@responses.activate
def test_all_answered_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    responses.add(responses.GET, f"{BASE}/jobs/{A},{B}", body=body([A], [B]))
    code, doc, err = run(capsys, f"{A},{B}", A)
    assert code == 0
    assert set(doc) == {"JobsDetail", "NonExistJobIds", "Failed"}
    assert [j["JobId"] for j in doc["JobsDetail"]] == [A] and doc["JobsDetail"][0]["State"] == "Success"
    assert doc["NonExistJobIds"] == [B] and doc["Failed"] == []
    assert "cli-secret-key" not in err


@responses.activate
def test_some_failed_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    ids = [f"j{n:032x}" for n in range(11)]
    responses.add(responses.GET, f"{BASE}/jobs/{','.join(ids[:10])}", body=body(ids[:10], []))
    responses.add(responses.GET, f"{BASE}/jobs/{ids[10]}", status=403, headers={"x-ci-request-id": "rid"},
                  body="<Error><Code>AccessDenied</Code><Message>denied</Message></Error>")
    code, doc, _ = run(capsys, " ".join(ids))
    assert code == 1
    assert len(doc["JobsDetail"]) == 10
    assert doc["Failed"] == [{"JobId": ids[10], "Retryable": True,  # configuration: kept for later
                              "Error": {"Code": "AccessDenied", "Message": "denied", "HttpStatus": 403,
                                        "RequestId": "rid"}}]


@responses.activate
def test_output_is_deterministic_sorted_and_unicode(capsys: pytest.CaptureFixture[str]) -> None:
    xml = (f"<Response><JobsDetail><JobId>{A}</JobId><State>Success</State><Tag>Transcode</Tag>"
           "<Input><Object>视频/演示.mp4</Object></Input></JobsDetail></Response>")
    responses.add(responses.GET, f"{BASE}/jobs/{A}", body=xml.encode())
    assert main(["query", A]) == 0
    out = capsys.readouterr().out
    assert "视频/演示.mp4" in out
    doc = json.loads(out)
    assert out.strip() == json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=2)


@pytest.mark.parametrize(
    "argv",
    [
        [f"{A},../etc/passwd"],
        [A, "J" + "A" * 32],
        [f"{A}?x=1"],
        [",,"],
    ],
)
@responses.activate
def test_bad_ids_exit_2_and_send_nothing(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    responses.add(responses.GET, re.compile(".*"), body=body([A], []))
    code, doc, err = run(capsys, *argv)
    assert code == 2 and doc is None and len(responses.calls) == 0
    assert err.startswith("cijobs: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("unset", "setvars", "flags", "needle"),
    [
        ("TENCENTCLOUD_SECRETKEY", {}, [], "TENCENTCLOUD_SECRETKEY"),
        ("CI_BUCKET", {}, [], "CI_BUCKET"),
        (None, {"CI_BUCKET": "evil.com/x"}, [], "CI_BUCKET"),
        (None, {}, ["--region", "ap-guangzhou.evil.com"], "CI_REGION"),
        (None, {}, ["--endpoint", "ftp://x"], "CI_ENDPOINT"),
        (None, {"CI_CONCURRENCY": "0"}, [], "CI_CONCURRENCY"),
        (None, {}, ["--timeout", "0"], "--timeout"),
    ],
)
@responses.activate
def test_bad_settings_exit_2(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                             unset: str | None, setvars: dict[str, str], flags: list[str], needle: str) -> None:
    responses.add(responses.GET, re.compile(".*"), body=body([A], []))
    if unset:
        monkeypatch.delenv(unset)
    for k, v in setvars.items():
        monkeypatch.setenv(k, v)
    code, doc, err = run(capsys, A, *flags)
    assert code == 2 and doc is None and len(responses.calls) == 0
    assert needle in err and err.count("\n") == 1


@responses.activate
def test_flags_override_environment(capsys: pytest.CaptureFixture[str]) -> None:
    other = "otherbucket-1250000001"
    responses.add(responses.GET, f"http://127.0.0.1:9/jobs/{A}", body=body([A], []))
    code, doc, _ = run(capsys, A, "--bucket", other, "--region", "ap-beijing", "--endpoint", "http://127.0.0.1:9")
    assert code == 0 and doc["JobsDetail"][0]["JobId"] == A
    assert responses.calls[0].request.headers["Host"] == f"{other}.ci.ap-beijing.myqcloud.com"


@responses.activate
def test_ids_from_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{B}\n{C}\n"))
    responses.add(responses.GET, f"{BASE}/jobs/{A},{B},{C}", body=body([A, B, C], []))
    code, doc, _ = run(capsys, A, "-")
    assert code == 0 and [j["JobId"] for j in doc["JobsDetail"]] == [A, B, C]


def test_usage_error_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["query"])
    assert exc.value.code == 2
