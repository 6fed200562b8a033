"""App dispatch with fakes: deadline, summaries, raising rules, secrets registration."""

from __future__ import annotations

import io
import json

import pytest

from cijobs import log
from cijobs.app import App, InvocationFailedError
from cijobs.events import EventError, UnknownEventError
from cijobs.pipeline import Pipeline
from cijobs.settings import Settings
from fakes import JOB_A, JOB_B, FakeCI, FakeClock, FakePending, FakeSink

ENV = {"TENCENTCLOUD_SECRETID": "AKIDapp", "TENCENTCLOUD_SECRETKEY": "app-secret-key-xyz",
       "TENCENTCLOUD_SESSIONTOKEN": "app-session-token-xyz"}


def make(jobs=None, **overrides):
    settings = Settings(**{
        **dict(ci_bucket="examplebucket-1250000000", ci_region="ap-guangzhou", api_token="app-api-token-0123",
                        deadline_margin_s=2.0), **overrides})
    ci, sink, pending = FakeCI(jobs or {}), FakeSink(), FakePending()
    mono = FakeClock(100.0)
    app = App(settings, Pipeline(settings, ci, sink, pending, clock=FakeClock()), ENV, monotonic=mono)
    return app, ci, sink, pending, mono


@pytest.fixture
def logs():
    stream = io.StringIO()
    log.configure("info", stream)
    yield stream
    log.configure("info")


def lines(stream):
    return [json.loads(x) for x in stream.getvalue().splitlines()]


@pytest.mark.parametrize(("ctx", "expected"), [({"time_limit_in_ms": 10000}, 8.0), ({"time_limit_in_ms": 3000}, 1.5),
                                                ({}, 1.5), ({"time_limit_in_ms": "x"}, 1.5)])
def test_deadline_is_time_limit_minus_margin_capped_at_half(ctx, expected):
    app, *_rest, _mono = make()
    assert app.deadline(ctx).remaining() == pytest.approx(expected)


def test_timer_summary_and_log_line(logs):
    app, _ci, sink, pending, _mono = make({JOB_A: "Success", JOB_B: "Running"})
    summary = app({"Type": "Timer", "Message": f"{JOB_A},{JOB_B}"}, {"request_id": "r-1", "function_name": "fn"})
    assert summary["Trigger"] == "timer" and summary["Counts"]["written"] == 1 and summary["Counts"]["pending"] == 1
    json.dumps(summary)  # JSON-serialisable
    [line] = [x for x in lines(logs) if x["event"] == "invocation_summary"]
    assert (line["request_id"], line["function_name"], line["trigger"]) == ("r-1", "fn", "timer")
    assert (line["queried"], line["written"], line["pending"], line["failed"]) == (2, 1, 1, 0)
    assert set(sink.written) == {JOB_A} and set(pending.entries) == {JOB_B}


def test_bad_timer_message_still_ticks_and_does_not_raise(logs):
    app, _ci, _sink, pending, _mono = make({JOB_A: "Success"})
    pending.add([JOB_A], now=1.0, source="http")
    summary = app({"Type": "Timer", "Message": '{"JobIds": 5}'}, {})
    assert summary["MessageErrors"] and summary["Outcomes"][0]["Outcome"] == "written"
    assert any(x["event"] == "timer_message_rejected" for x in lines(logs))


def test_timer_raises_when_the_registry_is_down_after_finishing_the_rest(logs):
    app, _ci, sink, pending, _mono = make({JOB_A: "Success"})
    pending.broken = True
    with pytest.raises(InvocationFailedError) as exc:
        app({"Type": "Timer", "Message": JOB_A}, {})
    assert set(sink.written) == {JOB_A}  # the Message's job was still written
    assert exc.value.summary["Errors"]


def test_cmq_raises_ckafka_does_not_when_a_retryable_failure_cannot_be_parked(logs):
    for kind, raises in (("CMQ", True), ("Ckafka", False)):
        app, ci, _sink, pending, _mono = make({JOB_A: "Success"})
        ci.fail = {JOB_A: ("InternalError", True)}
        pending.broken = True
        event = {"Records": [{kind: {"msgBody": JOB_A}}, {kind: {"msgBody": "hello"}}]}
        if raises:
            with pytest.raises(InvocationFailedError):
                app(event, {})
        else:
            summary = app(event, {})
            assert summary["Outcomes"][0]["Outcome"] == "failed" and summary["Outcomes"][0]["Retryable"]
            assert "Error" in summary["Records"][1]


def test_direct_invoke_bad_ids_raise(logs):
    app, *_rest = make()
    with pytest.raises(EventError):
        app({"JobIds": {"a": 1}}, {})


def test_unknown_event_raises_with_summary_line(logs):
    app, *_rest = make()
    with pytest.raises(UnknownEventError):
        app({"what": 1}, {"request_id": "r-2"})
    summary = [x for x in lines(logs) if x["event"] == "invocation_summary"]
    assert summary and summary[0]["trigger"] == "unknown" and "expected one of" in summary[0]["error"]


def test_http_unexpected_error_is_a_500_response(logs):
    app, ci, *_rest = make()
    ci.raise_exc = None

    def explode(*_a, **_k):
        raise RuntimeError("bug")

    app.router.get_jobs = explode  # type: ignore[method-assign]
    resp = app({"httpMethod": "GET", "path": f"/jobs/{JOB_A}",
                "headers": {"authorization": "Bearer app-api-token-0123"}}, {})
    assert resp["statusCode"] == 500 and "bug" not in resp["body"]
    assert any(x["event"] == "http_internal_error" for x in lines(logs))


def test_secrets_are_registered_per_invocation(logs):
    app, *_rest = make()
    log.configure("info", logs, app.redactor)
    app({"JobIds": [JOB_A]}, {})
    log.get_logger().info("probe", text="key app-secret-key-xyz token app-session-token-xyz api app-api-token-0123")
    probe = next(x for x in lines(logs) if x["event"] == "probe")
    assert "app-secret-key-xyz" not in probe["text"] and "app-session-token-xyz" not in probe["text"]
    assert "app-api-token-0123" not in probe["text"]


def test_malformed_http_event_is_answered_400(logs):
    app, *_rest = make()
    resp = app({"httpMethod": "POST", "path": "/jobs/track", "headers": "not-a-dict"}, {})
    assert resp["statusCode"] == 400 and "headers" in json.loads(resp["body"])["Error"]["Message"]
    with pytest.raises(EventError):
        app({"Records": [{"CMQ": {"msgBody": "x"}}], "Type": "Timer", "Message": 5}, {})


def test_rotated_credentials_replace_the_previous_invocations_in_the_redactor(logs):
    app, *_rest = make()
    app({"JobIds": [JOB_A]}, {})
    assert "app-secret-key-xyz" in app.redactor.secrets and "app-api-token-0123" in app.redactor.secrets
    app.env = {**ENV, "TENCENTCLOUD_SECRETKEY": "rotated-secret-key-2", "TENCENTCLOUD_SESSIONTOKEN": "rotated-token-2"}
    app({"JobIds": [JOB_A]}, {})
    # the set does not grow with every rotation: the old role credentials are gone, the settings' secret stays
    assert app.redactor.secrets == {"rotated-secret-key-2", "rotated-token-2", "app-api-token-0123"}
