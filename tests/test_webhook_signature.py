"""Webhook signatures: the header format, rotation, constant-time checks, the timestamp window, the CLI
verb, and the settings/URL rules for webhook sinks (https only off loopback, WEBHOOK_SECRET)."""

from __future__ import annotations

import hashlib
import hmac
import io
import re
from typing import Any

import pytest

from cijobs import webhook_signature as ws
from cijobs.errors import SettingsError
from cijobs.settings import Settings
from cijobs.targets import WebhookTarget, parse_sink_targets
from cijobs_tools.cli import main

S1 = "s1-" + "a" * 40
S2 = "s2-" + "b" * 40
BODY = b'{"JobId":"j1","State":"Success"}'
TS = 1_767_225_600


def reference(secret: str, ts: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


def test_sign_is_v1_lower_hex_of_timestamp_dot_body() -> None:
    header = ws.sign([S1], TS, BODY)
    assert re.fullmatch(r"v1=[0-9a-f]{64}", header)
    assert header == "v1=" + reference(S1, TS, BODY)


def test_rotation_gives_one_value_per_secret_in_order_without_spaces() -> None:
    header = ws.sign([S1, S2], TS, BODY)
    assert header == f"v1={reference(S1, TS, BODY)},v1={reference(S2, TS, BODY)}"
    assert ws.verify([S1], str(TS), header, BODY, TS) and ws.verify([S2], str(TS), header, BODY, TS)
    assert ws.verify([S2, "other-" + "x" * 40], str(TS), header, BODY, TS)
    assert not ws.verify(["other-" + "x" * 40], str(TS), header, BODY, TS)


@pytest.mark.parametrize("change", ["body", "timestamp", "secret", "case", "space", "scheme", "truncated", "empty"])
def test_verify_refuses_anything_changed(change: str) -> None:
    header = ws.sign([S1], TS, BODY)
    body, ts, secrets = BODY, str(TS), [S1]
    if change == "body":
        body = BODY + b" "
    elif change == "timestamp":
        ts = str(TS + 1)
    elif change == "secret":
        secrets = [S1 + "x"]
    elif change == "case":
        header = header.upper().replace("V1=", "v1=")
    elif change == "space":
        header = header.replace("v1=", "v1= ")
    elif change == "scheme":
        header = header.replace("v1=", "v2=")
    elif change == "truncated":
        header = header[:-1]
    else:
        header = ""
    assert not ws.verify(secrets, ts, header, body, TS)


def test_timestamp_window_and_malformed_timestamps() -> None:
    header = ws.sign([S1], TS, BODY)
    assert ws.verify([S1], str(TS), header, BODY, TS + 300)
    assert ws.verify([S1], str(TS), header, BODY, TS - 300)
    assert not ws.verify([S1], str(TS), header, BODY, TS + 301)
    assert not ws.verify([S1], str(TS), header, BODY, TS + 10, tolerance=5)
    for bad in ("", "-1", "1e9", " 12a", "1.5"):
        assert not ws.verify([S1], bad, header, BODY, TS)


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(ws.hmac, "compare_digest", spy)
    header = ws.sign([S1, S2], TS, BODY)
    assert ws.verify([S2, S1], str(TS), header, BODY, TS)
    assert len(calls) == 4  # every secret against every value: no early exit


def test_sign_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        ws.sign([], TS, BODY)


# -- the CLI verb -------------------------------------------------------------------------------------

def run_cli(monkeypatch: pytest.MonkeyPatch, argv: list[str], body: bytes = BODY) -> int:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(body)))
    return main(["webhook", "verify", *argv])


def test_cli_verify_exit_codes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    now = int(time.time())
    header = ws.sign([S1, S2], now, BODY)
    monkeypatch.delenv("WEBHOOK_SECRET", raising=False)
    assert run_cli(monkeypatch, ["--secret", S2, "--timestamp", str(now), "--signature", header]) == 0
    assert capsys.readouterr().out.strip() == "valid"
    assert run_cli(monkeypatch, ["--secret", S1, "--timestamp", str(now), "--signature", header], BODY + b"x") == 1
    err = capsys.readouterr().err
    assert "invalid" in err and S1 not in err
    old = now - 1000
    stale = ws.sign([S1], old, BODY)
    assert run_cli(monkeypatch, ["--secret", S1, "--timestamp", str(old), "--signature", stale]) == 1
    assert "timestamp" in capsys.readouterr().err
    assert run_cli(monkeypatch, ["--secret", S1, "--timestamp", str(old), "--signature", stale,
                                 "--tolerance", "2000"]) == 0
    assert run_cli(monkeypatch, ["--secret", S1, "--timestamp", str(now), "--signature", "sha256=abc"]) == 1
    monkeypatch.setenv("WEBHOOK_SECRET", f"{S1},{S2}")  # the secret need not be on the command line
    assert run_cli(monkeypatch, ["--timestamp", str(now), "--signature", ws.sign([S2], now, BODY)]) == 0
    monkeypatch.delenv("WEBHOOK_SECRET")
    assert run_cli(monkeypatch, ["--timestamp", str(now), "--signature", header]) == 2


# -- settings and URLs --------------------------------------------------------------------------------

def test_webhook_urls_https_or_loopback_http_only() -> None:
    (t,) = parse_sink_targets("https://hooks.example.com:8443/cijobs?token=abcdefghijklmnop")
    assert isinstance(t, WebhookTarget)
    assert t.url == "https://hooks.example.com:8443/cijobs" and t.host == "hooks.example.com"
    assert "token" not in repr(t) and t.full_url.endswith("?token=abcdefghijklmnop")
    for ok in ("http://127.0.0.1:8080/hook", "http://localhost/hook"):
        assert isinstance(parse_sink_targets(ok)[0], WebhookTarget)
    for bad in ("http://hooks.example.com/hook", "http://10.0.0.1/x", "http://127.0.0.2/x", "https:///x",
                "https://h.example.com/x#frag", "https://h.example.com:0/x", "https://h.example.com:99999/x"):
        with pytest.raises(SettingsError, match="RESULT_SINK"):
            parse_sink_targets(bad)
    both = parse_sink_targets("file:///tmp/r,https://h.example.com/hook")
    assert [type(x).__name__ for x in both] == ["FileLocation", "WebhookTarget"]
    with pytest.raises(SettingsError, match="twice"):
        parse_sink_targets("https://h.example.com/hook,https://h.example.com/hook")


def test_http_to_non_loopback_is_refused_at_cold_start_without_quoting_the_query() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"RESULT_SINK": "http://hooks.example.com/x?token=hunter2hunter2"})
    assert "https" in str(err.value) and "hunter2" not in str(err.value)


def test_webhook_secret_setting() -> None:
    s = Settings.from_env({"WEBHOOK_SECRET": f"{S1}, {S2}"})
    assert s.webhook_secret == (S1, S2) and S1 not in repr(s)
    assert Settings.from_env({"WEBHOOK_SECRET": S1}).webhook_secret == (S1,)
    for bad in ("short", f"{S1},{S2},{S1}x", f"{S1},", f"{S1},{S1}", f"{S1},tooshort"):
        with pytest.raises(SettingsError, match="WEBHOOK_SECRET") as err:
            Settings.from_env({"WEBHOOK_SECRET": bad})
        assert S1 not in str(err.value) and "tooshort" not in str(err.value)
    d = Settings()
    assert (d.webhook_concurrency, d.webhook_max_bytes, d.webhook_max_rps) == (8, 256 * 1024, None)
