"""The handler survives faulty CI answers and unreachable services (CI, COS on the emulator)."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest

from fakes.handler import API_TOKEN, BUCKET, REGION, handler_on_emulator, outcomes, pending_ids

OK = "j9c0a4726f6ac11ec96aaa9b64ab18d00"
POISON = "j8d121820f5e411ec926ef19d53ba9c6f"
CB = "j035aca66f86211ec8a5a87e016101404"
CONTEXT = {"memory_limit_in_mb": 512, "time_limit_in_ms": 30000, "request_id": "req-review"}


@pytest.fixture
def emu_env(monkeypatch):
    with handler_on_emulator(monkeypatch) as pair:
        yield pair


def poison(emu, job_id: str) -> None:
    """CI answers this (terminal) job with a container where its JobId should be."""
    emu.ci.add_job(job_id, tag="Transcode", state="Success")
    emu.ci.jobs[job_id]._xml = b"<JobsDetail><JobId><x>1</x></JobId><State>Success</State></JobsDetail>"


def test_timer_tick_survives_a_poison_jobid_which_stays_pending_as_unanswered(emu_env):
    emu, handler = emu_env
    emu.ci.add_job(OK, tag="Transcode", state="Success")
    poison(emu, POISON)
    track = {"body": json.dumps({"JobIds": [POISON]}), "httpMethod": "POST", "path": "/jobs/track",
             "headers": {"authorization": f"Bearer {API_TOKEN}", "content-type": "application/json"}}
    assert handler.main_handler(track, CONTEXT)["statusCode"] == 200
    assert pending_ids(emu) == {POISON}

    timer = {"Type": "Timer", "TriggerName": "t", "Message": json.dumps({"JobIds": [OK]})}
    first = handler.main_handler(timer, CONTEXT)
    assert outcomes(first) == {OK: ("written", None), POISON: ("pending", "MissingFromResponse")}
    assert pending_ids(emu) == {POISON}

    # Registered long ago, but CI never gave a usable answer for it: it is not expired (it may have
    # finished), it stays pending and the summary counts it as unanswered for the operator.
    key = (BUCKET, f"state/.pending/{POISON}.json")
    emu.cos.objects[key] = dataclasses.replace(emu.cos.objects[key], last_modified=time.time() - 2 * 86400)
    second = handler.main_handler({"Type": "Timer", "Message": ""}, CONTEXT)
    assert outcomes(second) == {POISON: ("pending", "MissingFromResponse")}
    assert pending_ids(emu) == {POISON}


def test_ckafka_trusted_body_with_a_container_state_is_requeried(emu_env, monkeypatch):
    emu, handler = emu_env
    monkeypatch.setenv("TRUST_CALLBACK_BODY", "true")
    handler.reset()
    emu.ci.add_job(CB, tag="NoiseReduction", state="Success")
    bodies = [{"EventName": "TaskFinish", "JobsDetail": {"JobId": CB, "State": {"a": "Success"}, "Tag": "x"}},
              {"EventName": "TaskFinish", "JobsDetail": {"JobId": {"a": CB}, "State": "Success"}}]
    event = {"Records": [{"Ckafka": {"topic": "t", "partition": 0, "offset": n, "msgKey": "k",
                                     "msgBody": json.dumps(b)}} for n, b in enumerate(bodies)]}
    summary = handler.main_handler(event, CONTEXT)
    assert outcomes(summary) == {CB: ("written", None)}
    assert [r.ids for r in emu.ci.requests] == [[CB]]  # the untrusted body was re-queried


def test_ckafka_jobs_that_cannot_be_parked_are_logged_at_error_level(emu_env, capsys):
    emu, handler = emu_env
    emu.ci.add_job(OK, tag="Transcode", state="Success")
    emu.faults.update({"fail_rate": 1.0})  # CI and COS down: nothing can be queried or parked
    event = {"Records": [{"Ckafka": {"topic": "t", "partition": 0, "offset": 1, "msgKey": "k",
                                     "msgBody": json.dumps({"JobIds": [OK, CB]})}}]}
    capsys.readouterr()
    summary = handler.main_handler(event, CONTEXT)  # CKafka: never raises
    assert {o["Outcome"] for o in summary["Outcomes"]} == {"failed"}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [lost] = [line for line in lines if line["event"] == "jobs_not_parked"]
    assert lost["level"] == "error" and lost["job_ids"] == [OK, CB] and lost["count"] == 2
    [line] = [line for line in lines if line["event"] == "invocation_summary"]
    assert line["failed_ids"] == [OK, CB]


def test_build_app_shares_one_cos_client_and_session_between_sink_and_registry():
    from cijobs.app import build_app

    env = {"CI_BUCKET": BUCKET, "CI_REGION": REGION, "RESULT_SINK": f"cos://{BUCKET}.{REGION}/results",
           "PENDING_STORE": f"cos://{BUCKET}.{REGION}/state"}
    app = build_app(env)
    sink_cos = app.pipeline.sink.store._client  # type: ignore[attr-defined]
    registry_cos = app.pipeline.pending.store._client  # type: ignore[attr-defined]
    assert sink_cos is registry_cos
    assert sink_cos._session is app.pipeline.client._session  # type: ignore[attr-defined]
