"""The emulator's TDMQ CMQ data-flow side: v2 signature, batch limits, messages kept."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any, Optional

import pytest
import requests

from cijobs import cmq_signing
from cijobs_tools.emulator import Emulator

SID, SKEY = "AKIDtest", "test-secret-key"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(secret_id=SID, secret_key=SKEY, seed=5) as e:
        yield e


def send(
    emu: Emulator, action: str, params: dict[str, str], key: str = SKEY, now: Optional[float] = None,
    token: Optional[str] = None, method: str = "HmacSHA256", sign_host: Optional[str] = None,
) -> dict[str, Any]:
    host = cmq_signing.host_of(emu.url)
    common = cmq_signing.common_params(action, SID, now if now is not None else time.time(),
                                       random.randint(1, 2**31), method, token)
    signed = cmq_signing.sign_params({**common, **params}, key, sign_host or host)
    r = requests.post(emu.url + "/v2/index.php", data=signed, timeout=5)
    assert r.status_code == 200
    data: dict[str, Any] = r.json()
    assert data["requestId"]
    return data


def test_send_message(emu: Emulator) -> None:
    data = send(emu, "SendMessage", {"queueName": "results", "msgBody": '{"JobId": "j1", "x": "a&b=c+d"}'})
    assert data["code"] == 0, data
    assert data["msgId"]
    [msg] = emu.cmq.messages
    assert (msg.kind, msg.queue, msg.body) == ("queue", "results", '{"JobId": "j1", "x": "a&b=c+d"}')
    assert msg.msg_id == data["msgId"]


def test_publish_with_tags_and_sha1(emu: Emulator) -> None:
    data = send(emu, "PublishMessage", {"topicName": "jobs", "msgBody": "hello 世界", "msgTag.0": "Success",
                                        "msgTag.1": "Transcode"}, method="HmacSHA1")
    assert data["code"] == 0, data
    [msg] = emu.cmq.messages
    assert (msg.topic, msg.body, msg.tags) == ("jobs", "hello 世界", ["Success", "Transcode"])
    send(emu, "PublishMessage", {"topicName": "jobs", "msgBody": "r", "routingKey": "a.b"})
    assert emu.cmq.messages[-1].routing_key == "a.b"


def test_batch_send_and_limits(emu: Emulator) -> None:
    ok = send(emu, "BatchSendMessage", {f"msgBody.{i}": f"m{i}" for i in range(16)} | {"queueName": "q"})
    assert ok["code"] == 0, ok
    assert len(ok["msgList"]) == 16
    assert [m.body for m in emu.cmq.by_name("q")] == [f"m{i}" for i in range(16)]
    too_many = send(emu, "BatchSendMessage", {f"msgBody.{i}": "m" for i in range(17)} | {"queueName": "q"})
    assert too_many["code"] != 0
    assert "10370" in too_many["message"]
    too_big = send(emu, "BatchPublishMessage", {f"msgBody.{i}": "x" * 20_000 for i in range(4)} | {"topicName": "t"})
    assert too_big["code"] != 0
    gap = send(emu, "BatchSendMessage", {"msgBody.0": "a", "msgBody.2": "c", "queueName": "q"})
    assert gap["code"] != 0
    assert len(emu.cmq.messages) == 16  # rejected batches stored nothing


def test_per_message_limit_configurable() -> None:
    with Emulator(secret_id=SID, secret_key=SKEY, cmq_max_message_bytes=10) as emu:
        assert send(emu, "SendMessage", {"queueName": "q", "msgBody": "x" * 10})["code"] == 0
        assert send(emu, "SendMessage", {"queueName": "q", "msgBody": "x" * 11})["code"] != 0


def test_signature_checks(emu: Emulator) -> None:
    p = {"queueName": "q", "msgBody": "m"}
    assert send(emu, "SendMessage", p, key="wrong")["code"] == 4100
    assert send(emu, "SendMessage", p, sign_host="cmq-gz.public.tencenttdmq.com")["code"] == 4100
    assert send(emu, "SendMessage", p, now=time.time() - 3600)["code"] == 4100
    assert send(emu, "UnknownAction", p)["code"] == 4000
    # tampered body after signing
    host = cmq_signing.host_of(emu.url)
    signed = cmq_signing.sign_params(
        {**cmq_signing.common_params("SendMessage", SID, time.time(), 7), **p}, SKEY, host)
    signed["msgBody"] = "changed"
    assert requests.post(emu.url + "/v2/index.php", data=signed, timeout=5).json()["code"] == 4100
    assert emu.cmq.messages == []


def test_token_when_temporary_credentials() -> None:
    with Emulator(secret_id=SID, secret_key=SKEY, token="tok") as emu:
        p = {"queueName": "q", "msgBody": "m"}
        assert send(emu, "SendMessage", p)["code"] == 4100
        assert send(emu, "SendMessage", p, token="tok")["code"] == 0


def test_queue_must_exist_when_not_auto_created(emu: Emulator) -> None:
    emu.cmq.auto_create = False
    emu.cmq.queues.add("known")
    assert send(emu, "SendMessage", {"queueName": "known", "msgBody": "m"})["code"] == 0
    assert send(emu, "SendMessage", {"queueName": "other", "msgBody": "m"})["code"] == 4440
