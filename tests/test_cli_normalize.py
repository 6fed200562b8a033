"""`cijobs normalize`: output formats, one-line errors, the repair hint, logs on stderr.

(Moved here from tests/test_normalize_rules.py, which tests the normalizer itself.)"""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

import pytest
import structlog

from cijobs_tools.cli import main
from fakes import FIXTURES


@pytest.fixture(autouse=True)
def _restore_structlog() -> Any:
    """`cijobs normalize` configures structlog for the process (stderr); undo it."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cli_prints_compact_sorted_json_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["normalize", os.path.join(FIXTURES, "Tts.xml")])
    out = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out)
    assert doc["JobsDetail"][0]["Tag"] == "Tts"
    assert out == json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"


def test_cli_prints_indented_json_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = Terminal()
    monkeypatch.setattr(sys, "stdout", tty)
    assert main(["normalize", os.path.join(FIXTURES, "Tts.xml")]) == 0
    doc = json.loads(tty.getvalue())
    assert tty.getvalue() == json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_cli_jsonl_is_one_line_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = Terminal()
    monkeypatch.setattr(sys, "stdout", tty)
    assert main(["normalize", "--output", "jsonl", os.path.join(FIXTURES, "Tts.xml")]) == 0
    assert tty.getvalue().count("\n") == 1 and json.loads(tty.getvalue())["JobsDetail"][0]["Tag"] == "Tts"


def test_cli_reads_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    body = "<Response><JobsDetail><JobId>j1</JobId><Message>完成</Message></JobsDetail></Response>".encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))
    assert main(["normalize", "-"]) == 0
    out = capsys.readouterr().out
    assert '"Message":"完成"' in out


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        (os.path.join(FIXTURES, "seed-success.xml"), "MalformedDocumentError"),
        (os.path.join(FIXTURES, "callback-Translation.json"), "line 27, column 9"),
        (os.path.join(FIXTURES, "no-such-file.xml"), "cannot read"),
    ],
)
def test_cli_errors_exit_2_with_one_line(path: str, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["normalize", path]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert needle in captured.err and captured.err.count("\n") == 1


@pytest.mark.parametrize(("name", "repair"), [("seed-success.xml", "stray-close-tag"),
                                              ("seed-running.xml", "stray-close-tag"),
                                              ("VideoTag.xml", "unclosed-leaf-tag")])
def test_cli_suggests_the_repair_that_would_apply(name: str, repair: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = os.path.join(FIXTURES, name)
    assert main(["normalize", path]) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"; try --repair {repair}\n") and err.count("\n") == 1
    assert main(["normalize", "--repair", repair, path]) == 0  # and the suggestion is right
    assert json.loads(capsys.readouterr().out)["JobsDetail"]


def test_cli_suggests_nothing_when_no_repair_applies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["normalize", os.path.join(FIXTURES, "callback-Translation.json")]) == 2
    assert "--repair" not in capsys.readouterr().err


def test_cli_suggests_both_repairs_when_only_both_together_apply(tmp_path: Any,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    body = tmp_path / "both.xml"
    body.write_bytes(b"<Response>\n<JobsDetail>\n<JobId>j1</JobId>\n</Message>\n<Tag>Transcode<Tag>\n"
                     b"</JobsDetail>\n</Response>\n")
    assert main(["normalize", str(body)]) == 2
    assert capsys.readouterr().err.endswith("; try --repair stray-close-tag --repair unclosed-leaf-tag\n")


def test_cli_forbidden_xml(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    bomb = tmp_path / "bomb.xml"
    bomb.write_bytes(b'<!DOCTYPE r [<!ENTITY a "aaaa">]><Response>&a;</Response>')
    assert main(["normalize", str(bomb)]) == 2
    err = capsys.readouterr().err
    assert "ForbiddenXMLError" in err and err.count("\n") == 1 and "--repair" not in err


def test_cli_repair_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["normalize", "--repair", "stray-close-tag", os.path.join(FIXTURES, "seed-running.xml")]) == 0
    assert json.loads(capsys.readouterr().out)["JobsDetail"][0]["State"] == "Running"
    assert main(["normalize", "--repair", "bogus", os.path.join(FIXTURES, "seed-running.xml")]) == 2


def test_cli_drift_logs_go_to_stderr(tmp_path: Any, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    body = tmp_path / "drift.xml"
    body.write_bytes(b"<Response><JobsDetail><JobId>j1</JobId><Progress>lots</Progress></JobsDetail></Response>")
    assert main(["normalize", str(body)]) == 0  # a warning: shown at the default level
    captured = capsys.readouterr()
    assert json.loads(captured.out)["JobsDetail"][0]["Progress"] == "lots"
    assert "schema_drift" in captured.err
    assert main(["normalize", "-q", str(body)]) == 0  # -q: errors only
    assert "schema_drift" not in capsys.readouterr().err

