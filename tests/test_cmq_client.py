"""CMQ clients: the data-flow API (signed form POST, code != 0 handling, retries) and Cloud API 3.0 via the SDK."""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import parse_qsl

import pytest
import requests
import responses

from cijobs import cmq_signing
from cijobs.cmq_client import (
    ApiCmqClient,
    CmqConfigError,
    CmqError,
    DataflowCmqClient,
    build_params,
)
from cijobs.credentials import Credentials
from cijobs.deadline import Deadline
from cijobs.errors import SettingsError
from cijobs.settings import Settings
from cijobs.targets import CmqTarget, parse_cmq_target
from fakes import Sleeps

pytestmark = pytest.mark.usefixtures("log_stream")  # each test logs to a private buffer


ENDPOINT = "http://gz.mqadapter.cmq.tencentyun.com"
URL = ENDPOINT + "/v2/index.php"
ROLE = Credentials("AKIDrole", "role-secret-key", "role-session-token")
QUEUE = CmqTarget("queue", "ap-guangzhou", "results")
TOPIC = CmqTarget("topic", "ap-guangzhou", "jobs-topic")


def dataflow(**kw: Any) -> tuple[DataflowCmqClient, Sleeps]:
    sleeps = Sleeps()
    settings = Settings(cmq_endpoint=ENDPOINT, ci_max_attempts=kw.pop("attempts", 3), **kw)
    return DataflowCmqClient(settings, lambda: ROLE, sleep=sleeps, clock=lambda: 1_700_000_000.0,
                             rng=random.Random(3)), sleeps


def form(call: Any) -> dict[str, str]:
    body = call.request.body
    return dict(parse_qsl(body if isinstance(body, str) else body.decode(), keep_blank_values=True))


def ok(**extra: Any) -> dict[str, Any]:
    return {"code": 0, "message": "", "requestId": "req-1", **extra}


@responses.activate
def test_single_send_is_signed_with_role_token() -> None:
    responses.post(URL, json=ok(msgId="m1"))
    c, _ = dataflow()
    assert c.send(QUEUE, ['{"JobId":"j1"}']) == ["m1"]
    p = form(responses.calls[0])
    assert p["Action"] == "SendMessage" and p["queueName"] == "results" and p["msgBody"] == '{"JobId":"j1"}'
    assert p["SecretId"] == "AKIDrole" and p["Token"] == "role-session-token"
    assert p["Timestamp"] == "1700000000" and int(p["Nonce"]) > 0
    assert cmq_signing.verify(p, "role-secret-key", "gz.mqadapter.cmq.tencentyun.com")
    assert not cmq_signing.verify(p, "other-key", "gz.mqadapter.cmq.tencentyun.com")


@responses.activate
def test_fixed_cmq_keys_replace_role_credentials() -> None:
    responses.post(URL, json=ok(msgId="m1"))
    c, _ = dataflow(cmq_secret_id="AKIDfixed", cmq_secret_key="fixed-key")
    c.send(QUEUE, ["x"])
    p = form(responses.calls[0])
    assert p["SecretId"] == "AKIDfixed" and "Token" not in p
    assert cmq_signing.verify(p, "fixed-key", "gz.mqadapter.cmq.tencentyun.com")


@responses.activate
def test_batch_publish_with_tags() -> None:
    responses.post(URL, json=ok(msgList=[{"msgId": "a"}, {"msgId": "b"}]))
    c, _ = dataflow()
    assert c.send(TOPIC, ["b0", "b1"], ["Transcode", "Success"]) == ["a", "b"]
    p = form(responses.calls[0])
    assert p["Action"] == "BatchPublishMessage" and p["topicName"] == "jobs-topic"
    assert (p["msgBody.0"], p["msgBody.1"]) == ("b0", "b1")
    assert (p["msgTag.0"], p["msgTag.1"]) == ("Transcode", "Success")


def test_build_params_shapes() -> None:
    assert build_params(QUEUE, ["a", "b"], ["ignored"]) == {"Action": "BatchSendMessage", "queueName": "results",
                                                           "msgBody.0": "a", "msgBody.1": "b"}
    with pytest.raises(ValueError):
        build_params(QUEUE, [], [])


@pytest.mark.parametrize(("code", "retryable"), [(4000, False), (4440, False), (6000, True)])
@responses.activate
def test_code_not_zero_on_http_200_is_an_error(code: int, retryable: bool) -> None:
    responses.post(URL, json={"code": code, "message": "(10200)bad", "requestId": "rq"})
    responses.post(URL, json=ok(msgId="m"))
    c, sleeps = dataflow()
    if retryable:
        assert c.send(QUEUE, ["x"]) == ["m"] and len(sleeps) == 1
        return
    with pytest.raises(CmqError) as ei:
        c.send(QUEUE, ["x"])
    assert (ei.value.code, ei.value.retryable, ei.value.request_id) == (str(code), False, "rq")
    assert "(10200)bad" in ei.value.message and len(responses.calls) == 1


@responses.activate
def test_transport_errors_are_retried_then_reported() -> None:
    responses.post(URL, body=requests.ConnectionError("reset"))
    responses.post(URL, status=502, body="bad gateway")
    responses.post(URL, body="not json")
    c, sleeps = dataflow()
    with pytest.raises(CmqError) as ei:
        c.send(QUEUE, ["x"])
    assert ei.value.retryable and ei.value.code == "MalformedResponse"
    assert len(responses.calls) == 3 and len(sleeps) == 2


@responses.activate
def test_http_4xx_is_final_and_deadline_respected() -> None:
    responses.post(URL, status=403, body="")
    c, _ = dataflow()
    with pytest.raises(CmqError) as ei:
        c.send(QUEUE, ["x"])
    # 403: credentials rejected: a configuration failure, not retried now (retryable: kept for later)
    assert ei.value.retryable and ei.value.failure_class == "configuration" and ei.value.status == 403
    with pytest.raises(CmqError, match="DeadlineExceeded"):
        c.send(QUEUE, ["x"], deadline=Deadline(0))
    assert len(responses.calls) == 1


def test_config_errors() -> None:
    with pytest.raises(CmqConfigError, match="CMQ_ENDPOINT"):
        DataflowCmqClient(Settings(), lambda: ROLE)
    with pytest.raises(CmqConfigError, match="together"):
        DataflowCmqClient(Settings(cmq_endpoint=ENDPOINT, cmq_secret_id="x"), lambda: ROLE)
    assert parse_cmq_target("cmq-topic://ap-shanghai/t_1") == CmqTarget("topic", "ap-shanghai", "t_1")
    for bad in ["cmq-queue://ap-guangzhou/", "cmq-queue://nope/q", "cmq-x://ap-guangzhou/q",
                "cmq-queue://ap-guangzhou/a b"]:
        with pytest.raises(SettingsError, match="RESULT_SINK"):
            parse_cmq_target(bad)


# -- Cloud API 3.0 (SDK) --------------------------------------------------------------------------
API_URL = "https://tdmq.tencentcloudapi.com/"


def api(**kw: Any) -> tuple[ApiCmqClient, Sleeps]:
    sleeps = Sleeps()
    return ApiCmqClient(Settings(cmq_mode="api", ci_max_attempts=3, **kw), lambda: ROLE, sleep=sleeps,
                        rng=random.Random(1)), sleeps


@responses.activate
def test_api_send_and_publish_through_the_sdk() -> None:
    responses.post(API_URL, json={"Response": {"Result": True, "MsgId": "mq1", "RequestId": "r1"}})
    responses.post(API_URL, json={"Response": {"Result": True, "MsgId": "mt1", "RequestId": "r2"}})
    c, _ = api()
    assert c.send(QUEUE, ['{"a":1}']) == ["mq1"]
    assert c.send(TOPIC, ['{"a":1}'], ["Transcode"]) == ["mt1"]
    first, second = responses.calls
    assert first.request.headers["X-TC-Action"] == "SendCmqMsg"
    assert first.request.headers["X-TC-Region"] == "ap-guangzhou"
    assert first.request.headers["X-TC-Token"] == "role-session-token"
    assert json.loads(first.request.body) == {"QueueName": "results", "MsgContent": '{"a":1}', "DelaySeconds": 0}
    assert second.request.headers["X-TC-Action"] == "PublishCmqMsg"
    assert json.loads(second.request.body)["MsgTag"] == ["Transcode"]


@responses.activate
def test_api_errors_mapped_to_retryable_or_not() -> None:
    responses.post(API_URL, json={"Response": {"Error": {"Code": "InternalError.Retry", "Message": "m"},
                                               "RequestId": "r"}})
    responses.post(API_URL, json={"Response": {"Result": True, "MsgId": "m2", "RequestId": "r"}})
    responses.post(API_URL, json={"Response": {"Error": {"Code": "ResourceNotFound", "Message": "no queue"},
                                               "RequestId": "r9"}})
    c, sleeps = api()
    assert c.send(QUEUE, ["x"]) == ["m2"] and len(sleeps) == 1
    with pytest.raises(CmqError) as ei:
        c.send(QUEUE, ["x"])
    assert (ei.value.code, ei.value.retryable, ei.value.request_id) == ("ResourceNotFound", False, "r9")
    with pytest.raises(ValueError):
        c.send(QUEUE, ["a", "b"])


@responses.activate
def test_api_endpoint_override_for_local_testing() -> None:
    responses.post("http://127.0.0.1:9/", json={"Response": {"Result": True, "MsgId": "x", "RequestId": "r"}})
    c, _ = api(cmq_endpoint="http://127.0.0.1:9")
    assert c.send(QUEUE, ["x"]) == ["x"]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_cmq_dataflow_redirect_is_a_final_error_and_not_followed(status):
    with responses.RequestsMock() as r:
        r.add(responses.POST, URL, status=status, headers={"Location": "https://evil.example/steal"})
        client = DataflowCmqClient(Settings(cmq_endpoint=ENDPOINT), lambda: Credentials("AKID", "k"),
                                   sleep=lambda _s: None)
        with pytest.raises(CmqError) as exc:
            client.send(CmqTarget("queue", "ap-guangzhou", "q"), ["{}"])
        assert len(r.calls) == 1  # nothing sent to the Location (responses would refuse an unknown URL)
    assert (exc.value.code, exc.value.status, exc.value.retryable) == ("Redirect", status, False)
