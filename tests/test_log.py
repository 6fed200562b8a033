import io
import json

from cijobs import log


def _capture(level="info"):
    buf = io.StringIO()
    log.configure(level, stream=buf)
    return buf


def _lines(buf):
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_one_json_object_per_line_with_bound_context():
    buf = _capture()
    log.bind_invocation(request_id="req-1", trigger="timer", job_ids=["ja", "jb"])
    log.get_logger().info("queried", count=2)
    log.get_logger().warning("second")
    lines = _lines(buf)
    assert [line["event"] for line in lines] == ["queried", "second"]
    assert lines[0]["request_id"] == "req-1" and lines[0]["job_ids"] == ["ja", "jb"]
    assert lines[0]["level"] == "info" and "timestamp" in lines[0]


def test_bind_invocation_clears_previous_context():
    buf = _capture()
    log.bind_invocation(request_id="req-1")
    log.bind_invocation(request_id="req-2")
    log.get_logger().info("x")
    assert _lines(buf)[0]["request_id"] == "req-2"


def test_level_filters():
    buf = _capture("warning")
    log.get_logger().info("hidden")
    log.get_logger().error("shown")
    assert [line["event"] for line in _lines(buf)] == ["shown"]


def test_secret_keys_and_registered_values_are_redacted():
    buf = _capture()
    log.register_secrets(["sk-SUPERSECRET-123", "token-ABCDEFG"])
    log.get_logger().info(
        "request",
        secret_key="anything",
        authorization="q-sign-algorithm=sha1&q-ak=AKID&q-signature=deadbeef",
        headers={"Authorization": "x", "x-ci-security-token": "tok", "Host": "h"},
        note="failed with key sk-SUPERSECRET-123 and token-ABCDEFG inside",
        nested=[{"api_token": "t0ps3cret"}],
        secret_id="AKIDpublic",
    )
    text = buf.getvalue()
    for secret in ("anything", "deadbeef", "sk-SUPERSECRET-123", "token-ABCDEFG", "t0ps3cret", '"tok"'):
        assert secret not in text
    line = _lines(buf)[0]
    assert line["headers"]["Host"] == "h"
    assert line["secret_id"] == "AKIDpublic"  # SecretId is an identifier, not a secret


def test_signature_inside_free_text_is_redacted():
    buf = _capture()
    log.get_logger().info("x", detail="Authorization: q-sign-algorithm=sha1&q-signature=abc123&q-ak=AKID")
    text = buf.getvalue()
    assert "abc123" not in text and "q-ak=AKID" in text
