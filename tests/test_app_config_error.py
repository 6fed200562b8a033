"""Invalid settings: a structured log line and a clean answer, never a traceback from deep inside."""

import io
import json

import pytest

from cijobs import log
from cijobs.app import App, ConfigurationError, MisconfiguredApp, load_app

BAD_ENV = {"CI_BUCKET": "not a bucket", "CI_REGION": "ap-guangzhou", "API_TOKEN": "tok-secret-123456"}
CONTEXT = {"request_id": "req-cfg", "time_limit_in_ms": 3000}


def _capture():
    buf = io.StringIO()
    log.configure("info", stream=buf)
    return buf


def test_load_app_returns_a_misconfigured_app_naming_the_variable():
    app = load_app(BAD_ENV)
    assert isinstance(app, MisconfiguredApp)
    assert "CI_BUCKET" in app.message


def test_load_app_builds_the_real_app_when_settings_are_valid(tmp_path):
    env = {"CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou",
           "RESULT_SINK": f"file://{tmp_path}/r", "PENDING_STORE": f"file://{tmp_path}/p"}
    assert isinstance(load_app(env), App)


def test_http_event_gets_503_json_and_a_structured_log_line():
    app = load_app(BAD_ENV)
    buf = _capture()
    resp = app({"httpMethod": "GET", "path": "/jobs/j8d121820f5e411ec926ef19d53ba9c6f", "headers": {}}, CONTEXT)
    assert resp["statusCode"] == 503
    body = json.loads(resp["body"])
    assert body["Error"]["Code"] == "ConfigurationError" and "CI_BUCKET" in body["Error"]["Message"]
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert lines[-1]["event"] == "configuration_error" and lines[-1]["request_id"] == "req-cfg"
    assert "tok-secret-123456" not in buf.getvalue() + resp["body"]


def test_async_event_raises_configuration_error_so_scf_keeps_the_event():
    app = load_app(BAD_ENV)
    with pytest.raises(ConfigurationError, match="CI_BUCKET"):
        app({"Type": "Timer", "TriggerName": "t", "Time": "2026-01-01T00:00:00Z", "Message": ""}, CONTEXT)


def test_bad_result_sink_prefix_is_a_configuration_error(tmp_path):
    env = {"CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou",
           "RESULT_SINK": "cos://examplebucket-1250000000.ap-guangzhou/.pending",
           "PENDING_STORE": f"file://{tmp_path}/p"}
    app = load_app(env)
    assert isinstance(app, MisconfiguredApp) and "RESULT_SINK" in app.message


@pytest.mark.parametrize(("name", "value"), [
    ("CI_ENDPOINT", "http://10.0.0.5:8080/internal?x=1"),
    ("COS_ENDPOINT", "https://user:pa55word@cos.example.com"),
    ("RESULT_SINK", "ftp://files.internal.example/drop"),
    ("PENDING_STORE", "s3://internal-bucket/secret-prefix"),
    ("CMQ_ENDPOINT", "http://{appid}.internal.example"),
    ("API_TOKEN", "short-tok-123"),
])
def test_503_names_the_setting_but_never_its_value(name: str, value: str) -> None:
    env = {"CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou", "API_TOKEN": "a-long-api-token-0123",
           name: value}
    app = load_app(env)
    assert isinstance(app, MisconfiguredApp)
    resp = app({"httpMethod": "GET", "path": "/jobs/j8d121820f5e411ec926ef19d53ba9c6f", "headers": {}}, CONTEXT)
    assert resp["statusCode"] == 503 and name in resp["body"]
    for part in (value, "10.0.0.5", "pa55word", "internal", "short-tok"):
        assert part not in resp["body"]


def test_a_wiring_bug_is_not_reported_as_a_configuration_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import cijobs.app as app_module

    def broken(*_a, **_k):
        raise ValueError("a bug, not a setting")

    monkeypatch.setattr(app_module, "build_app", broken)
    with pytest.raises(ValueError, match="a bug"):
        load_app({"CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou"})
