"""Fuzzing the event side (issue 7, "Hostile and bad input"): ``detect``, the CI notification parser and
``main_handler`` end to end end in a result or a documented error, never another exception; only validated
job IDs ever reach CI (or a sink)."""

from __future__ import annotations

import base64
import glob
import io
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cijobs import log
from cijobs.app import App, InvocationFailedError, build_app
from cijobs.events import (
    EVENT_CLASSES,
    APIGatewayEvent,
    CINotification,
    CKafkaEvent,
    CMQTopicEvent,
    DirectInvokeEvent,
    EventError,
    FunctionURLEvent,
    HttpEvent,
    Limits,
    TimerEvent,
    UnknownEventError,
    detect,
    parse_message,
)
from cijobs.job_ids import validate_job_id
from cijobs.pipeline import Pipeline
from cijobs.settings import Settings
from fakes import FIXTURES, JOB_A, JOB_B, JOB_C, JOB_D, FakeCI, FakeClock, FakePending, FakeSink

TOKEN = "fuzz-api-token-01234"
LIMITS = Limits(max_body_bytes=64 * 1024, max_ids=20)
CALLBACKS = [open(p, "rb").read() for p in sorted(glob.glob(os.path.join(FIXTURES, "callback-*.*")))]
XML_DOCS = [open(p, "rb").read() for p in sorted(glob.glob(os.path.join(FIXTURES, "*.xml")))]
SEEDS = CALLBACKS + XML_DOCS
QUIET = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- strategies --------------------------------------------------------------------------------------------

KEYS = st.sampled_from(["Type", "Records", "httpMethod", "requestContext", "CMQ", "Ckafka", "JobIds", "Message",
                        "msgBody", "path", "headers", "body", "isBase64Encoded", "queryString", "cos", "partition",
                        "offset", "msgTag", "EventName", "JobsDetail"]) | st.text(max_size=6)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
           | st.sampled_from(["Timer", "GET", "POST", "/jobs/track", "/callbacks/ci", JOB_A, "1e400", ""]))
JSON_LIKE = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(KEYS, kids, max_size=5),
                         max_leaves=25)

VALID_IDS = [JOB_A, JOB_B, JOB_C, JOB_D]
BAD_IDS = ["", " ", "../" + JOB_A, JOB_A + "%2F", "J" + JOB_A[1:], "j" * 70, "j123", JOB_A + "\r\n", "ジョブ" * 6,
           JOB_A.upper(), JOB_A + "?x=1", "a,b", "null"]
IDS = st.sampled_from(VALID_IDS + BAD_IDS) | st.text(max_size=20)
ID_TEXT = st.builds(lambda ids, sep: sep.join(ids), st.lists(IDS, max_size=8), st.sampled_from([",", " ", "\n", ",,"]))
JOB_IDS_VALUE = st.lists(IDS, max_size=8) | ID_TEXT | JSON_LIKE


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes] = SEEDS) -> bytes:
    """A fixture with a few random byte edits (the same mutations as the normalizer's property test)."""
    raw = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 5))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        pos = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[pos] = draw(st.integers(0, 255))
        elif op == "delete" and raw:
            del raw[pos: pos + draw(st.integers(1, 20))]
        elif op == "insert":
            raw[pos:pos] = draw(st.sampled_from([b"<", b"</", b"/>", b"&", b"{", b"}", b",", b'"', b"[" * 3000,
                                                 b"\x00", JOB_A.encode(), b"<JobId>../x</JobId>"]))
        elif op == "truncate":
            del raw[pos:]
    return bytes(raw)


def json_ids_body(ids: Any) -> str:
    return json.dumps({"JobIds": ids})


BODY_TEXT = (st.text(max_size=80) | st.builds(json_ids_body, JOB_IDS_VALUE) | ID_TEXT
             | mutated().map(lambda b: b.decode("utf-8", "replace"))
             | st.sampled_from(['{"JobIds": ' + "[" * 5000 + "]" * 5000 + "}", "{" + "[" * 5000, "[]", "null"]))
MESSAGE = BODY_TEXT | st.builds(json.dumps, JSON_LIKE)


def one_in(draw: st.DrawFn, n: int) -> bool:
    """True with probability 1/n (sampled_from is uniform; drawn integers lean towards their bounds)."""
    return bool(draw(st.sampled_from([True] + [False] * (n - 1))))


def junk_or(draw: st.DrawFn, value: Any) -> Any:
    """``value`` mostly; one time in eight an arbitrary JSON-like value instead."""
    return draw(JSON_LIKE) if one_in(draw, 8) else value


def with_junk(draw: st.DrawFn, event: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """The event, or (one time in three) with one of ``fields`` replaced by an arbitrary JSON-like value."""
    junk = draw(st.sampled_from([None] * (2 * len(fields)) + fields))
    if junk is not None:
        event[junk] = draw(JSON_LIKE)
    return event


@st.composite
def http_event(draw: st.DrawFn) -> dict[str, Any]:
    prefix = draw(st.sampled_from(["", "/release/cijobs", "/x/..", "//"]))
    tail = draw(st.sampled_from(["/jobs/{ids}", "/jobs/{ids}", "/jobs/track", "/callbacks/ci", "/callbacks/ci",
                                 "/jobs/", "/callbacks", "/{text}", "/jobs/{ids}/", "/jobs/track/x"]))
    ids = draw(ID_TEXT | st.sampled_from(VALID_IDS)).replace("\n", "%0A")
    path = prefix + tail.replace("{ids}", ids).replace("{text}", draw(st.text(max_size=12)))
    method = draw(st.sampled_from(["GET", "POST", "post", "PUT", "HEAD", ""]))
    if tail.startswith("/jobs/{ids}") or one_in(draw, 5):
        method = method if one_in(draw, 4) else "GET"
    elif not one_in(draw, 4):
        method = "POST"
    event: dict[str, Any] = {"httpMethod": method, "path": path}
    auth = draw(st.sampled_from([f"Bearer {TOKEN}", f"bearer  {TOKEN} ", "Bearer wrong", f"Basic {TOKEN}", None,
                                 f"Bearer {TOKEN}\r\nX: y"]))
    if draw(st.booleans()):
        auth = f"Bearer {TOKEN}"
    headers: dict[str, Any] = draw(st.dictionaries(st.text(max_size=8), JSON_LIKE, max_size=2))
    if auth is not None:
        headers[draw(st.sampled_from(["Authorization", "authorization", "AUTHORIZATION"]))] = auth
    event["headers"] = headers
    query = draw(st.sampled_from([{}, {"token": TOKEN}, {"token": [TOKEN, "x"]}, {"token": None}, {"a": "b"}]))
    event["queryString"] = query
    if tail == "/jobs/track" and not one_in(draw, 4):
        body = json_ids_body(draw(st.lists(IDS | st.sampled_from(VALID_IDS), max_size=8)))
    elif tail == "/callbacks/ci" and not one_in(draw, 4):
        body = draw(st.sampled_from(CALLBACKS) | mutated(CALLBACKS)).decode("utf-8", "replace")
    else:
        body = draw(BODY_TEXT)
    b64 = draw(st.sampled_from([False, True, "true", "TRUE", "false", None, 1]))
    if b64 in (True, "true", "TRUE") and not one_in(draw, 4):
        body = base64.b64encode(body.encode("utf-8", "surrogatepass")).decode()
    event["body"] = body
    event["isBase64Encoded"] = b64
    if draw(st.booleans()):
        event["requestContext"] = {"requestId": "r", "stage": "release", "sourceIp": "1.2.3.4"}
    return with_junk(draw, event, ["httpMethod", "path", "headers", "queryString", "body", "requestContext"])


@st.composite
def queue_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["CMQ", "Ckafka"]))
    records = []
    for _ in range(draw(st.integers(1, 4))):
        inner: dict[str, Any] = {"msgBody": junk_or(draw, draw(MESSAGE))}
        if kind == "CMQ":
            inner.update(topicName=junk_or(draw, "topic"), msgId=draw(st.text(max_size=5)),
                         msgTag=draw(st.sampled_from(["a,b", ["x", 1], None]) | JSON_LIKE))
        else:
            inner.update(topic=draw(st.text(max_size=5)), partition=draw(SCALARS), offset=draw(SCALARS),
                         msgKey=draw(SCALARS))
        records.append(junk_or(draw, {kind: junk_or(draw, inner)}))
    if not isinstance(records[0], dict) or kind not in records[0]:
        records.insert(0, {kind: {"msgBody": draw(MESSAGE)}})
    return {"Records": records}


@st.composite
def timer_event(draw: st.DrawFn) -> dict[str, Any]:
    event = {"Type": "Timer", "TriggerName": "poll", "Time": "2026-01-01T00:00:00Z", "Message": draw(MESSAGE)}
    event = {k: v for k, v in event.items() if k == "Type" or draw(st.sampled_from([True] * 5 + [False]))}
    return with_junk(draw, event, ["TriggerName", "Time", "Message"])


def direct_event() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"JobIds": st.lists(IDS, max_size=8) | ID_TEXT | JSON_LIKE},
                                 optional={"Bucket": st.text(max_size=8), "Region": st.text(max_size=8)})


EVENTS = http_event() | queue_event() | timer_event() | direct_event() | JSON_LIKE


# -- (a) detect ----------------------------------------------------------------------------------------------

def parse_all(ev: Any) -> None:
    """What the app does with a typed event before the pipeline: may raise only EventError."""
    if isinstance(ev, TimerEvent):
        ids = ev.job_ids(LIMITS)
        assert all(isinstance(i, str) and i for i in ids) and len(ids) <= LIMITS.max_ids
    elif isinstance(ev, (CMQTopicEvent, CKafkaEvent)):
        results = ev.parse_records(LIMITS)
        assert [r.index for r in results] == sorted(r.index for r in results)
        for r in results:
            assert (r.request is None) != (r.error is None)
            json.dumps(r.as_dict())
        assert len(ev.work(LIMITS).ids) <= LIMITS.max_ids_per_event
    elif isinstance(ev, DirectInvokeEvent):
        assert all(isinstance(i, str) for i in ev.work(LIMITS).ids)
    else:
        assert isinstance(ev, (APIGatewayEvent, FunctionURLEvent))
        assert isinstance(ev.body_bytes(LIMITS.max_body_bytes), bytes)
        assert TOKEN not in repr(ev)  # Authorization and ?token= stay hidden


@settings(max_examples=400, **QUIET)
@given(EVENTS)
def test_detect_gives_a_typed_event_or_an_event_error(event: Any) -> None:
    try:
        ev = detect(event)
    except UnknownEventError as exc:
        assert "expected one of" in str(exc)
        return
    except EventError as exc:
        assert isinstance(event, dict) and str(exc)
        return
    assert isinstance(ev, EVENT_CLASSES)
    try:
        parse_all(ev)
    except EventError:
        pass


# -- (b) the CI notification parser --------------------------------------------------------------------------

def check_notification(body: bytes) -> None:
    try:
        note = CINotification.parse(body, LIMITS)
    except EventError as exc:
        assert exc.field and exc.field.startswith("body")
        return
    assert note.event_name in ("TaskFinish", "WorkflowFinish") and note.job_ids
    assert all(isinstance(i, str) and i for i in note.job_ids) and len(set(note.job_ids)) == len(note.job_ids)
    assert {j["JobId"] for j in note.jobs} <= set(note.job_ids)
    request = parse_message(body, LIMITS)  # a queue message carrying the same body names the same jobs
    assert request.job_ids == note.job_ids


@settings(max_examples=300, **QUIET)
@given(st.binary(max_size=1024))
def test_notification_parser_on_arbitrary_bytes(body: bytes) -> None:
    check_notification(body)


@settings(max_examples=400, **QUIET)
@given(mutated())
def test_notification_parser_on_mutated_fixtures(body: bytes) -> None:
    check_notification(body)


@settings(max_examples=300, **QUIET)
@given(MESSAGE.map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(max_size=256))
def test_queue_message_parser(body: bytes) -> None:
    try:
        request = parse_message(body, LIMITS, "msgBody")
    except EventError as exc:
        assert exc.field and exc.field.startswith("msgBody")
        return
    assert request.job_ids and all(isinstance(i, str) and i for i in request.job_ids)


# -- (c) main_handler end to end, with fakes -------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    log.configure("error", io.StringIO())
    yield


STATES = st.sampled_from(["Success", "Failed", "Cancel", "Running", "Submitted", "Pause", ""])


@st.composite
def world(draw: st.DrawFn) -> tuple[App, FakeCI, FakeSink, FakePending]:
    """An App over fakes whose CI answers, failures and registry health are drawn too."""
    cfg = Settings(ci_bucket="examplebucket-1250000000", ci_region="ap-guangzhou", max_ids_per_request=20,
                   max_body_bytes=64 * 1024, api_token=draw(st.sampled_from([TOKEN, None])),
                   allow_unauthenticated=draw(st.booleans()), trust_callback_body=draw(st.booleans()))
    ci = FakeCI({j: draw(STATES) for j in VALID_IDS if draw(st.booleans())})
    ci.fail = {j: (draw(st.sampled_from(["InternalError", "AccessDenied"])), draw(st.booleans()))
               for j in VALID_IDS if one_in(draw, 4)}
    sink, pending = FakeSink(), FakePending()
    sink.fail = {j: ("SlowDown", True) for j in VALID_IDS if one_in(draw, 6)}
    pending.fail_add = {j for j in VALID_IDS if one_in(draw, 6)}
    pending.broken = one_in(draw, 8)
    for j in VALID_IDS:
        if one_in(draw, 4) and not pending.broken:
            pending.add([j], now=1.0, source="http")
    app = App(cfg, Pipeline(cfg, ci, sink, pending, clock=FakeClock()), {}, monotonic=FakeClock(100.0))
    return app, ci, sink, pending


def check_invocation(app: App, event: Any, context: dict[str, Any]) -> Any:
    """One invocation: the result or the exception, checked against the documented contract."""
    try:
        result = app(event, context)
    except UnknownEventError:
        return "unknown"
    except InvocationFailedError as exc:
        ev = detect(event)
        assert not isinstance(ev, HttpEvent) and ev.raises_when_unparked
        json.dumps(exc.summary)
        # raised after finishing: a retryable failure could not be parked, or a configuration error (its jobs
        # are parked) must be counted by SCF
        assert any(o["Outcome"] == "failed" and o.get("Retryable") for o in exc.summary["Outcomes"]) \
            or exc.summary.get("Errors") or exc.summary.get("ConfigErrors")
        return "raised"
    except EventError as exc:  # a known non-HTTP shape with a malformed field (HTTP shapes answer 400)
        assert isinstance(event, dict) and "httpMethod" not in event and exc.field, exc
        return "bad event"
    assert isinstance(result, dict)
    if isinstance(event, dict) and "httpMethod" in event:
        assert set(result) == {"isBase64Encoded", "statusCode", "headers", "body"}
        assert result["statusCode"] in (200, 207, 400, 401, 404, 405, 413, 502, 503), result
        body = json.loads(result["body"])
        assert isinstance(body, dict)
        if result["statusCode"] >= 400:
            assert set(body) == {"Error"} or result["statusCode"] == 502
        return result["statusCode"]
    json.dumps(result)
    assert result["Trigger"] in ("timer", "cmq", "ckafka", "direct")
    assert set(result["Counts"]) >= {"written", "pending", "nonexistent", "invalid", "failed"}
    return result["Trigger"]


@settings(max_examples=500, **QUIET)
@given(world(), EVENTS, st.sampled_from([{}, {"time_limit_in_ms": 30000, "request_id": "r"}, {"time_limit_in_ms": 0}]))
def test_main_handler_ends_in_a_response_summary_or_documented_error(
    app_and_fakes: tuple[App, FakeCI, FakeSink, FakePending], scf_event: Any, context: dict[str, Any]
) -> None:
    app, ci, sink, pending = app_and_fakes
    event(str(check_invocation(app, scf_event, context)))
    for call in ci.calls:
        assert call and all(validate_job_id(i) for i in call), call
    assert all(validate_job_id(j) for j in sink.written)
    assert all(validate_job_id(j) for j in pending.entries)


# -- (c') the same through the real client, normalizer and file sinks, against the emulator ---------------------

@pytest.fixture(scope="module")
def emulated() -> Iterator[tuple[App, Any]]:
    from cijobs_tools.emulator import Emulator

    with Emulator(secret_id="AKIDfuzz", secret_key="fuzz-secret-key", seed=7, auto_jobs=True) as emu, \
            tempfile.TemporaryDirectory() as tmp:
        env = {"CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou", "CI_ENDPOINT": emu.url,
               "RESULT_SINK": f"file://{tmp}/results", "PENDING_STORE": f"file://{tmp}/pending",
               "TENCENTCLOUD_SECRETID": "AKIDfuzz", "TENCENTCLOUD_SECRETKEY": "fuzz-secret-key",
               "API_TOKEN": TOKEN, "MAX_IDS_PER_REQUEST": "20", "HTTP_MAX_ATTEMPTS": "1", "LOG_LEVEL": "error"}
        app = build_app(env, log_stream=io.StringIO())
        yield app, emu


@settings(max_examples=120, **QUIET)
@given(EVENTS)
def test_main_handler_against_the_emulator_sends_only_valid_ids(emulated: tuple[App, Any], scf_event: Any) -> None:
    app, emu = emulated
    log.configure("error", io.StringIO())
    before = len(emu.ci.requests)
    event(str(check_invocation(app, scf_event, {"time_limit_in_ms": 30000})))
    for req in emu.ci.requests[before:]:
        assert req.ids and all(validate_job_id(i) for i in req.ids), req.path
        assert req.path == "/jobs/" + ",".join(req.ids)


# -- regressions: inputs the fuzzing found --------------------------------------------------------------------

DEEP = "[" * 100_000


@pytest.mark.parametrize("message", ['{"JobIds": ' + DEEP, "{" + DEEP])
def test_deeply_nested_json_in_a_timer_message_is_an_event_error(message: str) -> None:
    ev = detect({"Type": "Timer", "Message": message})
    assert isinstance(ev, TimerEvent)
    with pytest.raises(EventError, match=r"nested too deeply|not valid JSON") as exc:
        ev.job_ids(LIMITS)
    assert exc.value.field == "Message"


@pytest.mark.parametrize("body", [b'{"EventName": ' + DEEP.encode(), b'{"JobIds": ' + DEEP.encode()])
def test_deeply_nested_json_in_a_queue_message_is_an_event_error(body: bytes) -> None:
    with pytest.raises(EventError) as exc:
        parse_message(body, LIMITS, "msgBody")
    assert exc.value.field is not None and exc.value.field.startswith("msgBody")


def test_deeply_nested_json_through_main_handler_is_a_result_not_a_recursion_error() -> None:
    cfg = Settings(ci_bucket="examplebucket-1250000000", ci_region="ap-guangzhou", api_token=TOKEN)
    ci, sink, pending = FakeCI({JOB_A: "Success"}), FakeSink(), FakePending()
    app = App(cfg, Pipeline(cfg, ci, sink, pending, clock=FakeClock()), {}, monotonic=FakeClock(100.0))
    deep = '{"JobIds": ' + "[" * 50_000
    summary = app({"Type": "Timer", "Message": deep}, {})
    assert summary["MessageErrors"] and summary["Counts"]["queried"] == 0
    records = app({"Records": [{"Ckafka": {"msgBody": deep}},
                               {"Ckafka": {"msgBody": JOB_A}}]}, {})
    assert "Error" in records["Records"][0] and records["Records"][1]["JobIds"] == [JOB_A]
    assert set(sink.written) == {JOB_A}
    response = app({"httpMethod": "POST", "path": "/jobs/track", "headers": {"Authorization": f"Bearer {TOKEN}"},
                    "body": deep}, {})
    assert response["statusCode"] == 400 and "nested too deeply" in json.loads(response["body"])["Error"]["Message"]


def test_ckafka_partition_or_offset_out_of_int_range_is_minus_one() -> None:
    raw = '{"Records": [{"Ckafka": {"topic": "t", "partition": 1e400, "offset": -1e400, "msgBody": "ID"}}]}'
    event = json.loads(raw.replace("ID", JOB_A))
    ev = detect(event)
    assert isinstance(ev, CKafkaEvent)
    assert (ev.records[0].partition, ev.records[0].offset) == (-1, -1)
    assert ev.parse_records(LIMITS)[0].request.job_ids == (JOB_A,)  # type: ignore[union-attr]
