"""`cijobs query`: exit codes, JSON shape, nothing sent on bad input."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
import responses

from cijobs_tools.cli import main
from fakes.rawserver import closed_port

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"
BASE = f"https://{BUCKET}.ci.{REGION}.myqcloud.com"
A = "j" + "a" * 32
B = "j" + "b" * 32
C = "j" + "c" * 32


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CI_ENDPOINT", "TENCENTCLOUD_SESSIONTOKEN", "HTTP_MAX_ATTEMPTS", "CI_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CI_BUCKET", BUCKET)
    monkeypatch.setenv("CI_REGION", REGION)
    monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "1")
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


UNICODE_XML = (f"<Response><JobsDetail><JobId>{A}</JobId><State>Success</State><Tag>Transcode</Tag>"
               "<Input><Object>视频/演示.mp4</Object></Input></JobsDetail></Response>")


@responses.activate
def test_output_not_a_terminal_is_compact_sorted_and_unicode(capsys: pytest.CaptureFixture[str]) -> None:
    responses.add(responses.GET, f"{BASE}/jobs/{A}", body=UNICODE_XML.encode())
    assert main(["query", A]) == 0
    out = capsys.readouterr().out
    assert "视频/演示.mp4" in out
    doc = json.loads(out)
    assert out == json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@responses.activate
def test_output_on_a_terminal_is_indented(monkeypatch: pytest.MonkeyPatch) -> None:
    responses.add(responses.GET, f"{BASE}/jobs/{A}", body=UNICODE_XML.encode())
    tty = Terminal()
    monkeypatch.setattr("sys.stdout", tty)
    assert main(["query", A]) == 0
    doc = json.loads(tty.getvalue())
    assert tty.getvalue() == json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=2) + "\n"


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
        (None, {}, ["--region", "ap-guangzhou.evil.com"], "--region must be a region"),
        (None, {"CI_REGION": "ap-guangzhou.evil.com"}, [], "CI_REGION must be a region"),
        (None, {}, ["--endpoint", "ftp://x"], "--endpoint must be"),
        (None, {}, ["--bucket", "evil.com/x"], "--bucket must look like"),
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


# ---------------------------------------------------------------- invalid IDs, --skip-invalid, --output jsonl

UPPER = "J" + "A" * 32


@responses.activate
def test_uppercase_id_suggests_the_lowercase_form(capsys: pytest.CaptureFixture[str]) -> None:
    responses.add(responses.GET, re.compile(".*"), body=body([A], []))
    code, doc, err = run(capsys, UPPER)
    assert code == 2 and doc is None and len(responses.calls) == 0
    assert f"did you mean {A!r}?" in err and "--skip-invalid" in err and err.count("\n") == 1


@responses.activate
def test_skip_invalid_queries_the_valid_ids_and_lists_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    responses.add(responses.GET, f"{BASE}/jobs/{A},{B}", body=body([A], [B]))
    code, doc, err = run(capsys, A, "../etc/passwd", UPPER, B, "--skip-invalid")
    assert code == 1 and len(responses.calls) == 1  # the valid IDs were sent, in one request
    assert [j["JobId"] for j in doc["JobsDetail"]] == [A] and doc["NonExistJobIds"] == [B]
    assert doc["Invalid"] == ["../etc/passwd", UPPER] and doc["Failed"] == []
    assert err == ""


@responses.activate
def test_skip_invalid_with_only_invalid_ids_sends_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    responses.add(responses.GET, re.compile(".*"), body=body([A], []))
    code, doc, _ = run(capsys, UPPER, "--skip-invalid")
    assert code == 1 and len(responses.calls) == 0
    assert doc == {"JobsDetail": [], "NonExistJobIds": [], "Failed": [], "Invalid": [UPPER]}


@responses.activate
def test_skip_invalid_all_valid_and_answered_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    responses.add(responses.GET, f"{BASE}/jobs/{A}", body=body([A], []))
    code, doc, _ = run(capsys, A, "--skip-invalid")
    assert code == 0 and "Invalid" not in doc


@responses.activate
def test_jsonl_one_line_per_distinct_id_in_input_order(capsys: pytest.CaptureFixture[str]) -> None:
    ids = [f"j{n:032x}" for n in range(11)]  # ten in the first request, the eleventh alone (it fails)
    responses.add(responses.GET, f"{BASE}/jobs/{','.join(ids[:10])}", body=body(ids[1:10], [ids[0]]))
    responses.add(responses.GET, f"{BASE}/jobs/{ids[10]}", status=403,
                  body="<Error><Code>AccessDenied</Code><Message>denied</Message></Error>")
    argv = ["query", ids[0], UPPER, *ids[1:], ids[3], "--skip-invalid", "--output", "jsonl"]
    assert main(argv) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["JobId"] for line in lines] == [ids[0], UPPER, *ids[1:]]  # repeats once, input order
    assert lines[0] == {"JobId": ids[0], "NonExist": True}
    assert lines[1] == {"JobId": UPPER, "Invalid": True}
    assert all(line["State"] == "Success" and line["Tag"] == "Transcode" for line in lines[2:11])
    assert lines[11]["Error"]["Code"] == "AccessDenied" and lines[11]["Retryable"] is True  # configuration


@responses.activate
def test_jsonl_lines_are_compact(capsys: pytest.CaptureFixture[str]) -> None:
    responses.add(responses.GET, f"{BASE}/jobs/{A}", body=UNICODE_XML.encode())
    assert main(["query", A, "-o", "jsonl"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and ", " not in out and "视频" in out


# ---------------------------------------------------------------- logs: warnings by default, -v/-q, LOG_LEVEL


def query_subprocess(emu: Any, ids: list[str], *flags: str, log_level: str | None = None) -> Any:
    import os
    import subprocess
    import sys

    from fakes import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CI_", "TENCENTCLOUD_", "LOG_LEVEL"))}
    env |= emu.env(BUCKET, REGION) | {"PYTHONPATH": os.path.join(ROOT, "lib")}
    if log_level is not None:
        env["LOG_LEVEL"] = log_level
    return subprocess.run([sys.executable, "-m", "cijobs_tools", "query", ",".join(ids), *flags],
                          capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture(scope="module")
def auto_emu() -> Any:
    from cijobs_tools.emulator import Emulator

    with Emulator(secret_id="AKIDquery", secret_key="query-secret-key", auto_jobs=True, seed=1) as emu:
        yield emu


IDS_25 = [f"j{n:032x}" for n in range(25)]


def test_25_ids_at_default_settings_write_nothing_to_stderr(auto_emu: Any) -> None:
    proc = query_subprocess(auto_emu, IDS_25)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert [j["JobId"] for j in doc["JobsDetail"]] == IDS_25 and "\n" not in proc.stdout.strip()


def test_verbose_flag_shows_info_logs_and_overrides_log_level(auto_emu: Any) -> None:
    info = query_subprocess(auto_emu, IDS_25, "-v", log_level="error")
    assert info.returncode == 0 and '"level": "info"' in info.stderr
    assert "query-secret-key" not in info.stderr
    debug = query_subprocess(auto_emu, IDS_25, "-vv")
    assert debug.returncode == 0 and len(debug.stderr.splitlines()) >= len(info.stderr.splitlines())


def test_log_level_applies_without_a_flag_and_quiet_overrides_it(auto_emu: Any) -> None:
    from_env = query_subprocess(auto_emu, IDS_25, log_level="info")
    assert from_env.returncode == 0 and '"level": "info"' in from_env.stderr
    quiet = query_subprocess(auto_emu, IDS_25, "-q", log_level="info")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_query_against_a_closed_port_names_it_and_keeps_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    code = main(["query", C, "--endpoint", f"http://127.0.0.1:{port}"])
    out, err = capsys.readouterr()
    assert code == 1
    (failed,) = json.loads(out)["Failed"]
    assert failed["JobId"] == C and failed["Error"]["Code"] == "ConnectionError" and failed["Retryable"]
    assert f"127.0.0.1:{port}" in failed["Error"]["Message"] and "connection refused" in failed["Error"]["Message"]
    assert "cli-secret-key" not in out + err
