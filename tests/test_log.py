import io
import json

from cijobs import log


def _capture(level="info", redactor=None):
    buf = io.StringIO()
    log.configure(level, stream=buf, redactor=redactor)
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
    buf = _capture(redactor=log.Redactor(["sk-SUPERSECRET-123", "token-ABCDEFG"]))
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


def test_every_q_signature_and_every_occurrence_of_a_secret_is_redacted():
    redactor = log.Redactor(["fixed-secret-01"])
    redactor.replace(["rotating-key-001"])
    buf = _capture(redactor=redactor)
    text = ("a=q-signature=aaaa1111&b=1 c=q-signature=bbbb2222 rotating-key-001 and rotating-key-001, "
            "fixed-secret-01/fixed-secret-01")
    log.get_logger().info("x", text=text, nested=[{"v": "q-signature=cccc3333"}])
    [line] = _lines(buf)
    assert "aaaa1111" not in line["text"] and "bbbb2222" not in line["text"] and "cccc3333" not in str(line)
    assert "rotating-key-001" not in line["text"] and "fixed-secret-01" not in line["text"]
    assert line["text"].count(log.REDACTED) == 6


def test_short_secrets_are_refused_not_skipped():
    import pytest

    with pytest.raises(ValueError, match="8 characters"):
        log.Redactor(["abc"])
    with pytest.raises(ValueError, match="8 characters"):
        log.Redactor().replace(["1234567"])


def test_replace_forgets_the_previous_invocations_values():
    redactor = log.Redactor(["fixed-secret-01"])
    redactor.replace(["first-rotation-01"])
    redactor.replace(["second-rotation-1"])
    assert redactor.secrets == {"fixed-secret-01", "second-rotation-1"}
