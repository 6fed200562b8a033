"""main_handler end to end on every sample event against the in-process emulator (CI + COS)."""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import pytest

from cijobs.events import UnknownEventError
from cijobs_tools.emulator import Emulator
from fakes import ROOT, load_module

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
SECRET_ID, SECRET_KEY, SESSION_TOKEN = "AKIDhandlertest", "handler-secret-key-value", "handler-session-token-value"
TOKEN = "demo-api-token-0123"  # the token the sample events in events/ carry
RUN = "j8d121820f5e411ec926ef19d53ba9c6f"
OK = "j9c0a4726f6ac11ec96aaa9b64ab18d00"
SNAP = "j4e431ba0f86711ecb8546d80f2baf56f"
SUB = "j06668dc0f86811ecb90d0b03267ce0e5"
FAIL = "jb976c9e0f86111ec9452c1c27f56a659"
CB = "j035aca66f86211ec8a5a87e016101404"
JOBS = ((RUN, "Transcode", "Running"), (OK, "Transcode", "Success"), (SNAP, "Snapshot", "Success"),
        (SUB, "SuperResolution", "Submitted"), (FAIL, "MediaInfo", "Failed"), (CB, "Transcode", "Success"))
EVENTS_DIR = os.path.join(ROOT, "events")
CONTEXT = {"memory_limit_in_mb": 512, "time_limit_in_ms": 30000, "request_id": "req-0001",
           "function_name": "cijobs", "namespace": "default", "function_version": "$LATEST"}


def load_handler() -> Any:
    return load_module("scf_index", "handler", "index.py")


def sample(name: str) -> dict[str, Any]:
    with open(os.path.join(EVENTS_DIR, name), encoding="utf-8") as fh:
        return json.load(fh)


@dataclass
class World:
    emu: Emulator
    handler: Any

    def __call__(self, event: Any, time_limit_ms: int = 30000, request_id: str = "req-0001") -> Any:
        return self.handler.main_handler(event, CONTEXT | {"time_limit_in_ms": time_limit_ms,
                                                           "request_id": request_id})

    def _ids(self, prefix: str) -> set[str]:
        return {k.rsplit("/", 1)[1][:-5] for (b, k) in list(self.emu.cos.objects) if b == BUCKET
                and k.startswith(prefix) and k.endswith(".json")}

    @property
    def written(self) -> set[str]:
        return self._ids("results/")

    @property
    def pending(self) -> set[str]:
        return self._ids("state/.pending/")

    def result(self, job_id: str) -> dict[str, Any]:
        [body] = [o.body for (b, k), o in list(self.emu.cos.objects.items()) if k.startswith("results/")
                  and k.endswith(f"/{job_id}.json")]
        return json.loads(body)


@pytest.fixture
def world(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("CI_", "COS_", "CMQ_", "RESULT_", "PENDING_", "API_TOKEN", "TENCENTCLOUD_", "TRUST_",
                            "ALLOW_", "MAX_", "DEADLINE_", "CLAIM_", "LOG_LEVEL")):
            monkeypatch.delenv(name)
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=SESSION_TOKEN, seed=7) as emu:
        env = emu.env(BUCKET, REGION) | {
            "RESULT_SINK": f"cos://{BUCKET}.{REGION}/results", "PENDING_STORE": f"cos://{BUCKET}.{REGION}/state",
            "API_TOKEN": TOKEN, "DEADLINE_MARGIN_S": "0.5", "HTTP_MAX_ATTEMPTS": "2",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        for job_id, tag, state in JOBS:
            emu.ci.add_job(job_id, tag=tag, state=state)
        handler = load_handler()
        yield World(emu, handler)
        handler.reset()


def http(resp: dict[str, Any]) -> tuple[int, Any]:
    assert set(resp) == {"isBase64Encoded", "statusCode", "headers", "body"}
    return resp["statusCode"], json.loads(resp["body"])


def outcomes(summary: dict[str, Any]) -> dict[str, str]:
    return {o["JobId"]: o["Outcome"] for o in summary["Outcomes"]}


def test_every_sample_event_is_runnable():
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(EVENTS_DIR, "*.json")))
    assert names == sorted(["timer.json", "apigw-get-jobs.json", "function-url-callback.json",
                            "apigw-callback-taskfinish.json", "cmq-topic.json", "ckafka.json", "direct.json",
                            "function-url-track.json"])


def test_timer_sample_and_ticks_carry_jobs_until_they_finish(world):
    status, body = http(world(sample("function-url-track.json")))
    assert status == 200 and {o["Outcome"] for o in body["Outcomes"]} == {"pending"}
    assert world.pending == {RUN, SUB} and world.written == set()

    first = world(sample("timer.json"))  # Message names SNAP (finished); registry holds RUN, SUB
    assert outcomes(first) == {SNAP: "written", RUN: "pending", SUB: "pending"}
    assert first["Counts"]["queried"] == 3 and world.written == {SNAP} and world.pending == {RUN, SUB}

    world.emu.ci.set_state(RUN, "Success")
    world.emu.ci.advance()  # SUB: Submitted -> Running
    second = world({"Type": "Timer", "TriggerName": "t", "Time": "2026-01-01T00:10:00Z", "Message": ""})
    assert outcomes(second) == {RUN: "written", SUB: "pending"}
    assert [o["State"] for o in second["Outcomes"] if o["JobId"] == SUB] == ["Running"]
    assert world.pending == {SUB} and world.written == {SNAP, RUN}

    world.emu.ci.set_state(SUB, "Failed")
    third = world({"Type": "Timer", "Message": ""})
    assert outcomes(third) == {SUB: "written"} and world.pending == set()
    assert world.result(SUB)["State"] == "Failed"


def test_apigw_get_jobs_sample_reads_and_writes_nothing(world):
    status, body = http(world(sample("apigw-get-jobs.json")))
    assert status == 200
    assert sorted(j["JobId"] for j in body["JobsDetail"]) == sorted([OK, RUN])
    assert body["NonExistJobIds"] == [] and body["Failed"] == []
    assert world.emu.cos.objects == {}


@pytest.mark.parametrize("name", ["function-url-callback.json", "apigw-callback-taskfinish.json"])
def test_callback_samples_write_cis_version(world, name):
    status, body = http(world(sample(name)))
    assert status == 200 and body["EventName"] == "TaskFinish"
    assert outcomes(body) == {CB: "written"} and world.written == {CB}
    assert [r.ids for r in world.emu.ci.requests] == [[CB]]


def test_forged_callback_is_not_trusted(world):
    event = sample("function-url-callback.json")
    event["body"] = event["body"].replace("This is my NoiseReduction job.", "FORGED").replace(
        "<State>Success</State>", "<State>Failed</State>")
    assert http(world(event))[0] == 200
    written = world.result(CB)
    assert written["State"] == "Success" and "FORGED" not in json.dumps(written)


def test_callback_body_trusted_when_configured(world, monkeypatch):
    monkeypatch.setenv("TRUST_CALLBACK_BODY", "true")
    world.handler.reset()
    assert http(world(sample("function-url-callback.json")))[0] == 200
    assert world.emu.ci.requests == []
    assert world.result(CB)["Operation"]["UserData"] == "This is my NoiseReduction job."


def test_cmq_sample(world):
    summary = world(sample("cmq-topic.json"))
    assert outcomes(summary) == {FAIL: "written", SUB: "pending", CB: "written"}
    assert [r["JobIds"] for r in summary["Records"]] == [[FAIL, SUB], [CB]]
    assert world.pending == {SUB} and world.result(FAIL)["State"] == "Failed"


def test_ckafka_sample_and_malformed_records_are_skipped(world):
    event = sample("ckafka.json")
    event["Records"].append({"Ckafka": {"topic": "t", "partition": 0, "offset": 43, "msgKey": "None",
                                        "msgBody": "<Response><EventName>TaskFinish</Event"}})
    event["Records"].append({"Ckafka": {"topic": "t", "partition": 0, "offset": 44}})
    summary = world(event)
    assert outcomes(summary) == {OK: "written", SNAP: "written", CB: "written"}
    assert [("Error" in r) for r in summary["Records"]] == [False, False, True, True]


def test_direct_sample(world):
    summary = world(sample("direct.json"))
    assert summary["Trigger"] == "direct"
    assert outcomes(summary) == {OK: "written", RUN: "pending", FAIL: "written"}
    assert summary["Counts"] == {"queried": 3, "written": 2, "pending": 1, "nonexistent": 0, "invalid": 0,
                                 "failed": 0}


def test_http_errors_through_the_handler(world):
    ev = sample("function-url-track.json")
    assert http(world(ev | {"headers": {"authorization": "Bearer wrong"}}))[0] == 401
    assert http(world(ev | {"headers": {}}))[0] == 401
    assert http(world(ev | {"body": "{oops"}))[0] == 400
    assert http(world(ev | {"body": json.dumps({"JobIds": ["x" * 5000] * 300})}))[0] == 413
    assert http(world(ev | {"path": "/nope"}))[0] == 404
    assert http(world(ev | {"httpMethod": "PUT"}))[0] == 405
    api = sample("apigw-callback-taskfinish.json")
    assert http(world(api | {"body": "@@not base64@@"}))[0] == 400
    status, body = http(world(sample("apigw-get-jobs.json") | {"path": "/release/cijobs/jobs/NOT_AN_ID"}))
    assert status == 400 and "JobIds" in body["Error"]["Message"]
    assert world.emu.ci.requests == [] and world.emu.cos.objects == {}


def test_no_api_token_means_503_for_http_only(world, monkeypatch):
    monkeypatch.delenv("API_TOKEN")
    world.handler.reset()
    status, body = http(world(sample("apigw-get-jobs.json")))
    assert status == 503 and "API_TOKEN" in body["Error"]["Message"]
    assert outcomes(world(sample("direct.json")))[OK] == "written"


def test_ci_down_get_is_502_and_callback_is_parked(world):
    world.emu.faults.update({"fail_rate": 1.0}, side="ci")
    assert http(world(sample("apigw-get-jobs.json")))[0] == 502
    status, body = http(world(sample("function-url-callback.json")))
    assert status == 200 and outcomes(body) == {CB: "pending"} and world.pending == {CB}
    world.emu.faults.reset()
    assert outcomes(world({"Type": "Timer", "Message": ""})) == {CB: "written"}


def test_async_raises_when_nothing_could_be_parked_ckafka_does_not(world):
    world.emu.faults.update({"fail_rate": 1.0})  # CI and COS both down
    with pytest.raises(Exception) as exc:
        world(sample("cmq-topic.json"))
    assert type(exc.value).__name__ == "InvocationFailedError" and "retries" in str(exc.value)
    summary = world(sample("ckafka.json"))  # CKafka: report, never block the partition
    assert set(outcomes(summary).values()) == {"failed"}


def test_deadline_runs_out_mid_tick_nothing_lost(world, monkeypatch):
    monkeypatch.setenv("CI_CONCURRENCY", "1")  # 10 IDs per round
    world.handler.reset()
    ids = [f"j{i:032x}" for i in range(1, 61)]
    for job_id in ids:
        world.emu.ci.add_job(job_id, tag="Transcode", state="Success")
    track = sample("function-url-track.json") | {"body": json.dumps({"JobIds": ids})}
    monkeypatch.setenv("MAX_IDS_PER_REQUEST", "100")
    assert http(world(track))[0] == 200 and world.pending == set(ids)
    world.emu.faults.update({"latency_ms": 120}, side="ci")
    summary = world({"Type": "Timer", "Message": ""}, time_limit_ms=1000)  # deadline: 0.5 s
    got = outcomes(summary)
    assert set(got) == set(ids)
    written = {i for i, o in got.items() if o == "written"}
    left = {i for i, o in got.items() if o == "pending"}
    assert written and left and written | left == set(ids)
    # a write cut by the deadline may have reached the store unconfirmed: it stays pending (at least once)
    assert world.pending == left and written <= world.written and world.written - written <= left
    world.emu.faults.reset()
    final = world({"Type": "Timer", "Message": ""})
    assert set(outcomes(final)) == left and set(outcomes(final).values()) == {"written"}
    assert world.pending == set() and world.written == set(ids)


def test_unknown_event_raises_and_names_the_shapes(world, capsys):
    with pytest.raises(UnknownEventError) as exc:
        world({"hello": "world"})
    assert "JobIds" in str(exc.value) and "Timer" in str(exc.value)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert any(x["event"] == "unknown_event" and x["level"] == "error" for x in lines)


def test_logs_of_a_whole_invocation_carry_no_secret(world, capsys):
    world.emu.faults.update({"fail_rate": 1.0}, side="ci")  # a failing CI request, retried
    event = sample("function-url-callback.json")
    assert http(world(event, request_id="req-secret-check"))[0] == 200
    world.emu.faults.reset()
    world(sample("direct.json"))
    world(sample("apigw-get-jobs.json") | {"headers": {"authorization": "Bearer " + TOKEN + "x"}})
    out = capsys.readouterr().out
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    summaries = [x for x in lines if x["event"] == "invocation_summary"]
    assert len(summaries) == 3
    first = summaries[0]
    assert first["request_id"] == "req-secret-check" and first["function_name"] == "cijobs"
    assert first["trigger"] == "function_url" and first["status_code"] == 200 and first["pending"] == 1
    assert {"queried", "written", "pending", "nonexistent", "invalid", "failed", "duration_ms"} <= set(first)
    for secret in (SECRET_KEY, SESSION_TOKEN, TOKEN):
        assert secret not in out
    assert not re.search(r"q-signature=[0-9a-f]{8}", out)
