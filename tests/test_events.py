"""Event classes: one per SCF trigger shape, built from the doc fixtures; detect()."""

from __future__ import annotations

import base64
import io
import json
import os
from typing import Any

import pytest

from cijobs.events import (
    APIGatewayEvent,
    BodyTooLargeError,
    CINotification,
    CKafkaEvent,
    CMQTopicEvent,
    DirectInvokeEvent,
    EventError,
    FunctionURLEvent,
    Limits,
    TimerEvent,
    UnknownEventError,
    detect,
    parse_message,
)
from cijobs.job_ids import validate_job_id
from fakes import FIXTURES

EV = os.path.join(FIXTURES, "events")
LIMITS = Limits(max_body_bytes=64 * 1024, max_ids=20)
JOB_A = "j" + "a" * 32
JOB_B = "j" + "b" * 32


def load(name: str):
    with open(os.path.join(EV, name), encoding="utf-8") as fh:
        return json.load(fh)


def fixture_bytes(name: str) -> bytes:
    with open(os.path.join(FIXTURES, name), "rb") as fh:
        return fh.read()


def test_timer_fixture_is_a_registry_only_tick():
    ev = detect(load("timer.json"))
    assert isinstance(ev, TimerEvent)
    assert (ev.trigger_name, ev.time, ev.message) == ("EveryDay", "2019-02-21T11:49:00Z", "user define msg body")
    assert ev.job_ids(LIMITS) == []  # a note, not IDs


@pytest.mark.parametrize("message", [f"{JOB_A},{JOB_B}", f" {JOB_A} {JOB_B}\n", json.dumps({"JobIds": [JOB_A, JOB_B]}),
                                     json.dumps({"JobIds": f"{JOB_A},{JOB_B},{JOB_A}"})])
def test_timer_message_ids(message):
    ev = detect({"Type": "Timer", "TriggerName": "t", "Time": "2024-01-01T00:00:00Z", "Message": message})
    assert ev.job_ids(LIMITS) == [JOB_A, JOB_B]


def test_timer_message_keeps_invalid_tokens_next_to_real_ids():
    ev = TimerEvent("t", "", f"{JOB_A},oops")
    assert ev.job_ids(LIMITS) == [JOB_A, "oops"]  # the pipeline reports 'oops' as invalid


def test_timer_message_bad_json_names_the_field():
    with pytest.raises(EventError) as exc:
        TimerEvent("t", "", '{"JobIds": [1, 2]}').job_ids(LIMITS)
    assert exc.value.field == "Message.JobIds"


def test_apigw_fixture():
    ev = detect(load("apigw.json"))
    assert isinstance(ev, APIGatewayEvent)
    assert (ev.method, ev.path, ev.stage, ev.request_id) == ("POST", "/test/value", "release",
                                                             "c6af9ac6-7b61-11e6-9a41-93e8deadbeef")
    assert ev.header("user-agent") == "User Agent String" == ev.headers["USER-AGENT"]
    assert ev.query["bob"] == "alice" and ev.source_ip == "10.0.2.14"
    assert ev.body_bytes(1024) == b'{"test":"body"}' and ev.is_base64 is False


def test_function_url_fixture():
    ev = detect(load("function-url.json"))
    assert isinstance(ev, FunctionURLEvent)
    assert (ev.method, ev.path, ev.source_ip) == ("POST", "/", "111.206.96.145")
    assert ev.query == {"a": "1", "b": "2"} and ev.header("Content-Length") == "17"


def test_http_secrets_are_hidden_from_repr():
    event = load("function-url.json")
    event["headers"]["authorization"] = "Bearer s3cr3t-token-value"
    event["queryString"]["token"] = "query-s3cr3t"
    event["body"] = "body-s3cr3t"
    text = repr(detect(event))
    assert "s3cr3t" not in text and "***" in text and "x-scf-remote-addr" in text


def test_headers_multi_value_and_case_insensitive():
    ev = detect({"httpMethod": "get", "path": "/x", "headers": {"X-A": ["1", "2"], "Authorization": "Bearer t"}})
    assert ev.method == "GET" and ev.header("x-a") == "1" and "AUTHORIZATION" in ev.headers


def test_base64_body_decoded_and_invalid_rejected():
    raw = "<Response>é</Response>".encode()
    event = load("apigw.json") | {"isBase64Encoded": True, "body": base64.b64encode(raw).decode()}
    assert detect(event).body_bytes(1024) == raw
    bad = detect(load("apigw.json") | {"isBase64Encoded": True, "body": "not*base64!"})
    with pytest.raises(EventError) as exc:
        bad.body_bytes(1024)
    assert exc.value.field == "body" and "Base64" in str(exc.value)


def test_body_too_large_plain_and_base64():
    big = detect({"httpMethod": "POST", "path": "/", "body": "x" * 2048})
    with pytest.raises(BodyTooLargeError):
        big.body_bytes(1024)
    big64 = detect({"httpMethod": "POST", "path": "/", "isBase64Encoded": True,
                    "body": base64.b64encode(b"x" * 1025).decode()})
    with pytest.raises(BodyTooLargeError):
        big64.body_bytes(1024)
    assert len(detect({"httpMethod": "POST", "path": "/", "body": "x" * 1024}).body_bytes(1024)) == 1024


def test_cmq_fixture_record_without_ids_is_reported():
    ev = detect(load("cmq-topic.json"))
    assert isinstance(ev, CMQTopicEvent)
    rec = ev.records[0]
    assert (rec.topic_name, rec.msg_id, rec.msg_tags) == ("testtopic", "123345346", ("tag1", "tag2"))
    [result] = ev.parse_records(LIMITS)
    assert result.request is None and "msgBody" in (result.error or "")


def test_cmq_tags_as_list_and_bodies_of_each_kind():
    xml = fixture_bytes("events/ci-taskfinish-callback.xml").decode()
    event = {"Records": [
        {"CMQ": {"topicName": "t", "msgId": "1", "msgBody": f"{JOB_A},{JOB_B}", "msgTag": ["x", "y"]}},
        {"CMQ": {"topicName": "t", "msgId": "2", "msgBody": xml}},
        {"CMQ": {"topicName": "t", "msgId": "3", "msgBody": json.dumps({"JobIds": [JOB_B]})}},
        {"CMQ": {"topicName": "t", "msgId": "4"}},
    ]}
    ev = detect(event)
    assert ev.records[0].msg_tags == ("x", "y")
    results = ev.parse_records(LIMITS)
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert results[0].request.job_ids == (JOB_A, JOB_B)
    assert results[1].request.job_ids == ("j035aca66f86211ec8a5a87e016101404",)
    assert results[1].request.jobs[0]["State"] == "Success"
    assert results[2].request.job_ids == (JOB_B,)
    assert results[3].request is None and "msgBody" in results[3].error


def test_ckafka_fixture():
    ev = detect(load("ckafka.json"))
    assert isinstance(ev, CKafkaEvent)
    assert [(r.partition, r.offset, r.msg_key) for r in ev.records] == [(1, 36, None), (1, 37, None)]
    results = ev.parse_records(LIMITS)
    assert [r.ref for r in results] == ["test-topic/1/36", "test-topic/1/37"]
    assert all(r.request is None for r in results)


def test_direct_invoke():
    ev = detect({"JobIds": [JOB_A, JOB_A, JOB_B]})
    assert isinstance(ev, DirectInvokeEvent)
    work = ev.work(LIMITS)
    assert work.ids == (JOB_A, JOB_B) and not work.tick and ev.raises_when_unparked
    with pytest.raises(EventError) as exc:
        detect({"JobIds": 7}).work(LIMITS)
    assert exc.value.field == "JobIds"
    with pytest.raises(EventError, match="at most 20"):
        detect({"JobIds": [f"j{i:032x}" for i in range(21)]}).work(LIMITS)


@pytest.mark.parametrize("event", [None, [], "text", {"foo": 1}, {"Records": []}, load("cos.json")])
def test_unknown_events_name_the_accepted_shapes(event):
    with pytest.raises(UnknownEventError) as exc:
        detect(event)
    text = str(exc.value)
    assert "Timer" in text and "JobIds" in text and "Ckafka" in text and "function URL" in text


def test_cos_event_is_named_as_such():
    with pytest.raises(UnknownEventError, match="COS trigger"):
        detect(load("cos-observed.json"))


@pytest.mark.parametrize(("name", "ids"), [
    ("events/ci-taskfinish-callback.xml", ["j035aca66f86211ec8a5a87e016101404"]),
    ("callback-WorkflowFinish.xml", None),
    ("callback-WorkflowFinish-doc.xml", None),
    ("callback-WorkflowFinish.json", ["j23c11e1e17b011edaab4ab15ec33d076", "j168668b217b011ed8efb27bb229e2d11"]),
    ("callback-MediaInfo.json", None),
    ("callback-WordsGeneralize.json", None),
    ("callback-TaskFinish-workflow-PicProcess.xml", None),
])
def test_notifications_from_fixtures(name, ids):
    note = CINotification.parse(fixture_bytes(name), LIMITS)
    assert note.job_ids and all(validate_job_id(i) for i in note.job_ids)
    if ids is not None:
        assert list(note.job_ids) == ids
    if note.event_name == "TaskFinish":
        assert [j["JobId"] for j in note.jobs] == list(note.job_ids)
    else:
        assert note.jobs == ()


@pytest.mark.parametrize("body", [b"<Response><EventName>Other</EventName></Response>", b"not xml",
                                  b"<Response><EventName>TaskFinish</EventName></Response>",
                                  b'<!DOCTYPE x [<!ENTITY a "b">]><Response>&a;</Response>',
                                  b'{"EventName": "TaskFinish", "JobsDetail": {"Code": "x"}}'])
def test_bad_notifications_are_event_errors(body):
    with pytest.raises(EventError) as exc:
        CINotification.parse(body, LIMITS)
    assert exc.value.field is not None and exc.value.field.startswith("body")


def test_parse_message_limits():
    with pytest.raises(EventError, match="bytes"):
        parse_message("x" * (LIMITS.max_body_bytes + 1), LIMITS)
    with pytest.raises(EventError, match="at most"):
        parse_message(",".join(f"j{i:032x}" for i in range(21)), LIMITS)


def _kafka_records(n_records: int, ids_per_record: int) -> dict[str, Any]:
    records = []
    for r in range(n_records):
        ids = [f"j{r:04x}{i:028x}" for i in range(ids_per_record)]
        records.append({"Ckafka": {"topic": "jobs", "partition": 3, "offset": 1000 + r,
                                   "msgBody": json.dumps({"JobIds": ids})}})
    return {"Records": records}


def test_queue_event_id_limit_counts_the_whole_event_and_skips_records_whole() -> None:
    # 10 records of 100 IDs = 1,000 IDs in one event; MAX_IDS_PER_EVENT=100 takes the first record only
    limits = Limits(max_body_bytes=1024 * 1024, max_ids=100, max_ids_per_event=100)
    ev = detect(_kafka_records(10, 100))
    work = ev.work(limits)  # type: ignore[union-attr]
    assert len(work.ids) == 100
    taken = [r for r in work.records if r.request is not None]
    skipped = [r for r in work.records if r.request is None]
    assert [r.index for r in taken] == [0] and len(skipped) == 9
    assert skipped[0].ref == "jobs/3/1001" and "MAX_IDS_PER_EVENT=100" in (skipped[0].error or "")
    assert all(r.as_dict()["Ref"].startswith("jobs/3/") for r in skipped)  # partition/offset, for replay


def test_queue_event_id_limit_through_the_handler_logs_each_skipped_record(tmp_path: Any) -> None:
    from cijobs import log
    from cijobs.app import build_app

    env = {"CI_BUCKET": "examplebucket-1250000000", "CI_REGION": "ap-guangzhou", "CI_ENDPOINT": "http://127.0.0.1:9",
           "RESULT_SINK": f"file://{tmp_path}/r", "PENDING_STORE": f"file://{tmp_path}/p",
           "MAX_IDS_PER_EVENT": "100", "HTTP_MAX_ATTEMPTS": "1", "TENCENTCLOUD_SECRETID": "AKIDexample",
           "TENCENTCLOUD_SECRETKEY": "secret-key-example"}
    stream = io.StringIO()
    app = build_app(env, log_stream=stream)
    summary = app(_kafka_records(10, 100), {"time_limit_in_ms": 4000})
    log.configure()
    skipped = [r for r in summary["Records"] if "Error" in r]
    assert len(skipped) == 9 and len(summary["Outcomes"]) == 100
    lines = [json.loads(x) for x in stream.getvalue().splitlines() if x.strip()]
    errors = [x for x in lines if x["event"] == "record_skipped"]
    assert len(errors) == 9 and all(x["level"] == "error" for x in errors)
    assert {x["ref"] for x in errors} == {f"jobs/3/{1000 + r}" for r in range(1, 10)}
