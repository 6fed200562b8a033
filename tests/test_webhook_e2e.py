"""Webhook sink end to end: SCF events through ``handler/index.py`` -> CI (emulator) -> the emulator's webhook
receiver. Signatures are checked with the snippet printed in README.md (extracted and executed here)."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any, Callable

import pytest

from cijobs.sinks import canonical_json
from cijobs_tools.emulator import Emulator
from fakes import ROOT, load_module

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
SECRET = "first-webhook-secret-" + "0123456789abcdef" * 2
SECRET2 = "second-webhook-secret-" + "fedcba9876543210" * 2
URL_TOKEN = "url-query-token-0123456789"
JOB, JOB2 = "j" + "a1" * 16, "j" + "b2" * 16
CTX = {"time_limit_in_ms": 20000, "request_id": "hook-1", "function_name": "cijobs"}
ENV_PREFIXES = ("CI_", "COS_", "CMQ_", "RESULT_", "PENDING_", "API_TOKEN", "TENCENTCLOUD_", "TRUST_", "ALLOW_",
                "MAX_", "DEADLINE_", "CLAIM_", "LOG_LEVEL", "WEBHOOK_")


def readme_verify() -> Callable[..., bool]:
    """The ``verify`` function of the README's webhook section, executed as printed."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        section = fh.read().split("\n## Webhook\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README.md ## Webhook has no python snippet"
    snippet = match.group(1)
    assert len(snippet.strip().splitlines()) <= 10
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "README.md#webhook", "exec"), namespace)  # the README snippet, as printed
    fn: Callable[..., bool] = namespace["verify"]
    return fn


def as_received(d: Any) -> dict[str, str]:
    return {"X-Cijobs-Timestamp": d.header("X-Cijobs-Timestamp"), "X-Cijobs-Signature": d.header("X-Cijobs-Signature")}


class World:
    def __init__(self, emu: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
        self.emu, self.monkeypatch, self.tmp_path = emu, monkeypatch, tmp_path
        self.handler: Any = None

    def start(self, **env: str) -> Any:
        base = self.emu.env(BUCKET, REGION) | {
            "RESULT_SINK": self.emu.webhook_url("hook"), "WEBHOOK_SECRET": SECRET,
            "PENDING_STORE": f"file://{self.tmp_path}/pending", "HTTP_MAX_ATTEMPTS": "3",
            "DEADLINE_MARGIN_S": "0.5", "LOG_LEVEL": "debug",
        }
        for k, v in (base | env).items():
            self.monkeypatch.setenv(k, v)
        if self.handler is not None:
            self.handler.reset()
        self.handler = load_module("scf_index_webhook", "handler", "index.py")
        self.handler.reset()
        return self.handler

    def invoke(self, *ids: str) -> dict[str, Any]:
        out: dict[str, Any] = self.handler.main_handler({"JobIds": list(ids)}, CTX)
        return out


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[World]:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    with Emulator(seed=5) as emu:
        emu.ci.add_job(JOB, state="Success")
        emu.ci.add_job(JOB2, state="Failed")
        w = World(emu, monkeypatch, tmp_path)
        yield w
        if w.handler is not None:
            w.handler.reset()


def outcome(summary: dict[str, Any], job_id: str) -> dict[str, Any]:
    (o,) = [o for o in summary["Outcomes"] if o["JobId"] == job_id]
    return o


def test_deliveries_verify_with_the_readme_snippet(world: World) -> None:
    world.emu.webhooks.configure("hook", secrets=[SECRET])
    world.start()
    summary = world.invoke(JOB, JOB2)
    assert {outcome(summary, j)["Outcome"] for j in (JOB, JOB2)} == {"written"}
    verify = readme_verify()
    deliveries = world.emu.webhooks.deliveries("hook")
    assert sorted(d.header("X-Cijobs-Delivery") for d in deliveries) == [f"{JOB}.Success", f"{JOB2}.Failed"]
    for d in deliveries:
        assert d.verified is True and verify(SECRET, as_received(d), d.body)
        assert not verify(SECRET2, as_received(d), d.body)
        assert not verify(SECRET, as_received(d), d.body + b" ")
        doc = json.loads(d.body)
        assert d.body == canonical_json(doc) and doc["JobId"] in (JOB, JOB2)


def test_rotation_two_secrets_verify_with_either(world: World) -> None:
    world.emu.webhooks.configure("old", secrets=[SECRET])
    world.emu.webhooks.configure("new", secrets=[SECRET2])
    world.start(RESULT_SINK=f"{world.emu.webhook_url('old')},{world.emu.webhook_url('new')}",
                WEBHOOK_SECRET=f"{SECRET},{SECRET2}")
    assert outcome(world.invoke(JOB), JOB)["Outcome"] == "written"
    verify = readme_verify()
    for name in ("old", "new"):
        (d,) = world.emu.webhooks.deliveries(name)
        assert d.verified is True
        assert verify(SECRET, as_received(d), d.body) and verify(SECRET2, as_received(d), d.body)
        assert re.fullmatch(r"v1=[0-9a-f]{64},v1=[0-9a-f]{64}", d.header("X-Cijobs-Signature") or "")


def test_500_then_200_delivers_once_more_with_the_same_delivery_id(world: World) -> None:
    world.emu.webhooks.configure("hook", secrets=[SECRET], statuses=[500])
    world.start()
    assert outcome(world.invoke(JOB), JOB)["Outcome"] == "written"
    ds = world.emu.webhooks.deliveries("hook")
    assert [d.status for d in ds] == [500, 200]
    assert [d.header("X-Cijobs-Delivery") for d in ds] == [f"{JOB}.Success"] * 2
    assert ds[0].body == ds[1].body and all(d.verified for d in ds)


def test_410_fails_without_retry(world: World) -> None:
    world.emu.webhooks.configure("hook", status=410, answer='{"error":"endpoint retired"}')
    world.start()
    o = outcome(world.invoke(JOB), JOB)
    assert o["Outcome"] == "failed" and o["Retryable"] is False
    assert o["Reason"] == "ReceiverRejected" and "410" in o["Message"]
    assert "endpoint retired" in o["Message"]
    assert len(world.emu.webhooks.deliveries("hook")) == 1


def test_redirect_is_not_followed(world: World) -> None:
    world.emu.webhooks.configure("hook", status=302, location=world.emu.webhook_url("thief"))
    world.start()
    o = outcome(world.invoke(JOB), JOB)
    assert o["Outcome"] == "failed" and o["Reason"] == "Redirect" and o["Retryable"] is False
    assert len(world.emu.webhooks.deliveries("hook")) == 1 and world.emu.webhooks.deliveries("thief") == []


def test_too_large_job_arrives_as_a_claim_check_pointer(world: World) -> None:
    world.emu.ci.set_state(JOB2, "Failed", code="InternalError", message="m" * 3000)
    world.emu.webhooks.configure("hook", secrets=[SECRET])
    world.start(WEBHOOK_MAX_BYTES="3000", CLAIM_CHECK_STORE=f"file://{world.tmp_path}/claims")
    summary = world.invoke(JOB, JOB2)
    assert {outcome(summary, j)["Outcome"] for j in (JOB, JOB2)} == {"written"}
    bodies = {json.loads(d.body)["JobId"]: d for d in world.emu.webhooks.deliveries("hook")}
    pointer = json.loads(bodies[JOB2].body)
    assert set(pointer) == {"JobId", "Tag", "State", "ClaimCheck"} and pointer["State"] == "Failed"
    assert bodies[JOB2].verified is True and readme_verify()(SECRET, as_received(bodies[JOB2]), bodies[JOB2].body)
    cc = pointer["ClaimCheck"]
    with open(cc["Path"], "rb") as fh:
        stored = fh.read()
    assert len(stored) == cc["Size"] > 3000 and json.loads(stored)["JobId"] == JOB2
    assert "ClaimCheck" not in json.loads(bodies[JOB].body)  # the small one is sent whole


def test_too_large_without_claim_store_fails_message_too_large(world: World) -> None:
    world.emu.ci.set_state(JOB2, "Failed", code="InternalError", message="m" * 3000)
    world.start(WEBHOOK_MAX_BYTES="3000")
    o = outcome(world.invoke(JOB2), JOB2)
    assert o["Outcome"] == "failed" and o["Reason"] == "MessageTooLarge" and o["Retryable"] is False
    assert world.emu.webhooks.deliveries("hook") == []


@pytest.mark.parametrize(("env", "needle"), [
    ({"RESULT_SINK": "http://hooks.example.com/cijobs"}, "https"),
    ({"RESULT_SINK": "http://10.1.2.3:8080/cijobs"}, "https"),
    ({"WEBHOOK_SECRET": ""}, "WEBHOOK_SECRET"),
    ({"WEBHOOK_SECRET": "too-short"}, "WEBHOOK_SECRET"),
])
def test_refused_at_cold_start(world: World, env: dict[str, str], needle: str) -> None:
    handler = world.start(**env)
    with pytest.raises(Exception) as err:
        world.invoke(JOB)
    assert type(err.value).__name__ == "ConfigurationError" and needle in str(err.value)
    resp = handler.main_handler({"httpMethod": "GET", "path": "/jobs/" + JOB, "headers": {},
                                 "queryStringParameters": {}, "body": None, "isBase64Encoded": False}, CTX)
    assert resp["statusCode"] == 503
    assert world.emu.webhooks.deliveries() == [] and world.emu.ci.requests == []


def test_secret_never_appears_in_a_whole_invocation_log(world: World) -> None:
    world.emu.webhooks.configure("hook", secrets=[SECRET2], statuses=[500, 200, 410])
    world.start(RESULT_SINK=world.emu.webhook_url("hook") + f"?token={URL_TOKEN}",
                WEBHOOK_SECRET=f"{SECRET},{SECRET2}")
    out = io.StringIO()
    results: list[Any] = []
    with redirect_stdout(out):
        results.append(world.invoke(JOB))
        results.append(world.invoke(JOB2))  # 410: a failure, logged
        world.emu.ci.add_job(JOB2, state="Success")
        world.emu.webhooks.configure("hook", status=503)
        results.append(world.invoke(JOB2))  # retried, then failed retryable: parked in the pending registry
    logs = out.getvalue()
    assert "webhook_delivery_failed" in logs and "invocation_summary" in logs
    deliveries = world.emu.webhooks.deliveries("hook")
    assert len(deliveries) >= 4
    text = logs + json.dumps(results, default=str)
    for secret in (SECRET, SECRET2, URL_TOKEN):
        assert secret not in text
    assert world.emu.webhook_url("hook") in logs  # the URL is named, without its query string
    failed = [json.loads(line) for line in logs.splitlines() if '"webhook_delivery_failed"' in line]
    assert failed and all(f["request_id"] == "hook-1" for f in failed)  # parallel deliveries keep the context
