"""Regression tests for the review findings (each failed before its fix)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from typing import Any

import pytest
import responses

from cijobs.ci_client import JobClient
from cijobs.credentials import Credentials
from cijobs.deadline import Deadline
from cijobs.models import QueryResult
from cijobs.pipeline import Pipeline
from cijobs.settings import Settings
from cijobs_tools.emulator import Emulator
from fakes import FakePending, load_module

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
SECRET_ID, SECRET_KEY = "AKIDreviewtest", "review-secret-key-value"
OK = "j9c0a4726f6ac11ec96aaa9b64ab18d00"
POISON = "j8d121820f5e411ec926ef19d53ba9c6f"
CB = "j035aca66f86211ec8a5a87e016101404"
CONTEXT = {"memory_limit_in_mb": 512, "time_limit_in_ms": 30000, "request_id": "req-review"}
SETTINGS = Settings.from_env({"CI_BUCKET": BUCKET, "CI_REGION": REGION})


def load_handler() -> Any:
    return load_module("scf_index_review", "handler", "index.py")


@pytest.fixture
def emu_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("CI_", "COS_", "CMQ_", "RESULT_", "PENDING_", "API_TOKEN", "TENCENTCLOUD_", "TRUST_",
                            "ALLOW_", "MAX_", "DEADLINE_", "CLAIM_", "LOG_LEVEL")):
            monkeypatch.delenv(name)
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, seed=3) as emu:
        env = emu.env(BUCKET, REGION) | {
            "RESULT_SINK": f"cos://{BUCKET}.{REGION}/results", "PENDING_STORE": f"cos://{BUCKET}.{REGION}/state",
            "API_TOKEN": "review-token-01234", "DEADLINE_MARGIN_S": "0.5", "HTTP_MAX_ATTEMPTS": "2",
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        handler = load_handler()
        yield emu, handler
        handler.reset()


def outcomes(summary: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    return {o["JobId"]: (o["Outcome"], o.get("Reason")) for o in summary["Outcomes"]}


def pending_ids(emu: Emulator) -> set[str]:
    return {k.rsplit("/", 1)[1][:-5] for (b, k) in list(emu.cos.objects) if k.startswith("state/.pending/")}


# -- 1. a non-string JobId / State in a CI answer --------------------------------------------------------


def test_client_skips_a_job_whose_jobid_is_a_container():
    body = (b"<Response><JobsDetail><JobId><x>1</x></JobId><State>Success</State></JobsDetail>"
            b"<JobsDetail><JobId>jaaaaaaaaaaaaaaaaaaaa</JobId><State>Success</State><Tag>Transcode</Tag></JobsDetail>"
            b"</Response>")
    with responses.RequestsMock() as r:
        r.add(responses.GET, re.compile(r"https://examplebucket-1250000000\.ci\.ap-guangzhou\.myqcloud\.com/jobs/.*"),
              body=body, status=200)
        client = JobClient(SETTINGS, credentials=lambda: Credentials("AKID", "k"))
        result = client.query(["jaaaaaaaaaaaaaaaaaaaa", "jbbbbbbbbbbbbbbbbbbbb"])
    assert [j["JobId"] for j in result.jobs] == ["jaaaaaaaaaaaaaaaaaaaa"]
    assert [(f.job_id, f.error.code, f.retryable) for f in result.failed] == [
        ("jbbbbbbbbbbbbbbbbbbbb", "MissingFromResponse", True)]


def test_client_ignores_a_container_in_nonexistent_ids():
    doc = {"JobsDetail": [], "NonExistJobIds": [{"x": "2"}, "jaaaaaaaaaaaaaaaaaaaa"]}
    with responses.RequestsMock() as r:
        r.add(responses.GET, re.compile(r"https://examplebucket-1250000000\.ci\.ap-guangzhou\.myqcloud\.com/jobs/.*"),
              body=b"<Response/>", status=200)
        client = JobClient(SETTINGS, credentials=lambda: Credentials("AKID", "k"), normalize=lambda _b: doc)
        result = client.query(["jaaaaaaaaaaaaaaaaaaaa"])
    assert result.nonexistent == ["jaaaaaaaaaaaaaaaaaaaa"] and result.failed == []


def test_pipeline_treats_a_container_state_as_not_finished():
    class Client:
        def query(self, ids, deadline=None):
            return QueryResult(jobs=[{"JobId": ids[0], "State": {"x": "1"}, "Tag": "Transcode"}])

    class Sink:
        def write(self, jobs, deadline=None):
            raise AssertionError("a job with an unknown state must not be written")

    out = Pipeline(SETTINGS, Client(), Sink(), FakePending()).process(["jaaaaaaaaaaaaaaaaaaaa"], "direct", Deadline(10))
    [o] = out.by_id.values()
    assert (o.status, o.reason, o.state) == ("pending", "NotFinished", None)


def poison(emu: Emulator, job_id: str) -> None:
    """CI answers this (terminal) job with a container where its JobId should be."""
    emu.ci.add_job(job_id, tag="Transcode", state="Success")
    emu.ci.jobs[job_id]._xml = b"<JobsDetail><JobId><x>1</x></JobId><State>Success</State></JobsDetail>"


def test_timer_tick_survives_a_poison_jobid_which_stays_pending_as_unanswered(emu_env):
    emu, handler = emu_env
    emu.ci.add_job(OK, tag="Transcode", state="Success")
    poison(emu, POISON)
    track = {"body": json.dumps({"JobIds": [POISON]}), "httpMethod": "POST", "path": "/jobs/track",
             "headers": {"authorization": "Bearer review-token-01234", "content-type": "application/json"}}
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


# -- 3. a registered ID that fails permanently still expires ---------------------------------------------


@pytest.mark.parametrize(("age_s", "answered", "expected", "removed"), [
    (2 * 86400, True, ("failed", "PendingExpired"), ["jaaaaaaaaaaaaaaaaaaaa"]),
    (2 * 86400, False, ("failed", "InvalidParameter"), []),  # never answered: kept, not expired
    (60, True, ("failed", "InvalidParameter"), []),
])
def test_permanent_failure_of_a_registered_id_follows_the_age_rule(age_s, answered, expected, removed):
    from cijobs.models import ErrorInfo, JobFailure, PendingEntry, PendingListing

    job_id, now = "jaaaaaaaaaaaaaaaaaaaa", 1_800_000_000.0

    class Client:
        def query(self, ids, deadline=None):
            return QueryResult(failed=[JobFailure(i, ErrorInfo("InvalidParameter", "no", 400, None), False)
                                       for i in ids])

    class Sink:
        def write(self, jobs, deadline=None):
            return []

    class Registry:
        def __init__(self) -> None:
            self.removed: list[str] = []

        def add(self, ids, **kw):
            raise AssertionError("a registered ID is not re-added")

        def listing(self, limit=50_000, deadline=None):
            return PendingListing([PendingEntry(job_id, now - age_s, "timer", answered)])

        def mark_answered(self, ids, deadline=None):
            return []

        def remove(self, ids, deadline=None):
            self.removed += list(ids)
            return []

    registry = Registry()
    out = Pipeline(SETTINGS, Client(), Sink(), registry, clock=lambda: now).tick(Deadline(10))
    [o] = out.by_id.values()
    assert (o.status, o.reason, o.retryable) == (*expected, False)
    assert registry.removed == removed
    if removed:
        assert "InvalidParameter" in (o.message or "")


# -- 2. the CMQ sink never raises out of write(); COS metadata is ASCII ------------------------------------


class RecordingCmq:
    max_batch = 16

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, target, bodies, tags=(), deadline=None):
        self.sent += bodies
        return ["m"] * len(bodies)


def cmq_sink_with_cos_claims(emu: Emulator, cmq: RecordingCmq) -> Any:
    from cijobs.cmq_client import CmqTarget
    from cijobs.cos import CosClient
    from cijobs.sinks.cmq import CmqSink
    from cijobs.store import CosLocation
    from cijobs.store.cos import CosObjectStore

    s = Settings(cos_endpoint=emu.url, ci_max_attempts=2)
    cos = CosClient(s, lambda: Credentials(SECRET_ID, SECRET_KEY), sleep=lambda _s: None)
    store = CosObjectStore(cos, CosLocation(BUCKET, REGION, "claims"))
    return CmqSink(cmq, CmqTarget("queue", REGION, "q"), store, 1024)


@pytest.mark.parametrize("tag", ["..", "a/b", "转码", "Tag\u2028x"])
def test_cmq_sink_claim_check_with_an_unsafe_tag_writes_every_job(tag):
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, seed=5) as emu:
        cmq = RecordingCmq()
        sink = cmq_sink_with_cos_claims(emu, cmq)
        jobs = [{"JobId": "jaaaaaaaaaaaaaaaaaaaa", "State": "Success", "Tag": "Transcode"},
                {"JobId": "jbbbbbbbbbbbbbbbbbbbb", "State": "Success", "Tag": tag, "Big": "x" * 2000}]
        results = sink.write(jobs)
        assert [(r.job_id, r.ok) for r in results] == [(j["JobId"], True) for j in jobs]
        [(_, key)] = [k for k in emu.cos.objects]
        assert key.startswith("claims/claim-check/Unknown/jbbbbbbbbbbbbbbbbbbbb/")
        pointer = json.loads(cmq.sent[1])
        assert pointer["Tag"] == tag and pointer["ClaimCheck"]["Key"] == key


def test_cmq_sink_fails_only_the_job_whose_claim_check_cannot_be_built():
    from cijobs.cmq_client import CmqTarget
    from cijobs.sinks.cmq import CmqSink
    from cijobs.store import FileObjectStore

    class BadKeys(FileObjectStore):
        def key(self, *parts: str) -> str:
            from cijobs.store import InvalidKeyError
            raise InvalidKeyError("object key has an empty, '.' or '..' segment")

    cmq = RecordingCmq()
    sink = CmqSink(cmq, CmqTarget("queue", REGION, "q"), BadKeys("/nonexistent-review-dir"), 1024)
    jobs = [{"JobId": "jaaaaaaaaaaaaaaaaaaaa", "State": "Success", "Tag": "Transcode"},
            {"JobId": "jbbbbbbbbbbbbbbbbbbbb", "State": "Success", "Tag": "T", "Big": "x" * 2000}]
    ok, bad = sink.write(jobs)
    assert ok.ok and len(cmq.sent) == 1
    assert not bad.ok and bad.error is not None and (bad.error.code, bad.retryable) == ("InvalidKey", False)


def test_cos_client_percent_encodes_non_ascii_metadata_and_reads_it_back():
    from cijobs.cos import CosClient, CosError, meta_from_headers

    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, seed=5) as emu:
        cos = CosClient(Settings(cos_endpoint=emu.url, ci_max_attempts=3), lambda: Credentials(SECRET_ID, SECRET_KEY),
                        sleep=lambda _s: None)
        meta = {"tag": "转码 100%", "plain": "Transcode"}
        cos.put_object(BUCKET, REGION, "m/one.json", b"{}", "application/json", meta)
        stored = emu.cos.objects[(BUCKET, "m/one.json")].headers
        assert stored["x-cos-meta-tag"] == "%E8%BD%AC%E7%A0%81 100%25" and stored["x-cos-meta-plain"] == "Transcode"
        assert meta_from_headers(cos.head_object(BUCKET, REGION, "m/one.json")) == meta

        before = len(emu.cos.requests)
        with pytest.raises(CosError) as exc:  # a header http.client cannot send: final, not retried
            cos.put_object(BUCKET, REGION, "m/two.json", b"{}", "text/转码")
        assert (exc.value.code, exc.value.retryable) == ("InvalidHeader", False)
        assert len(emu.cos.requests) == before


# -- 4. scripted emulator faults (deterministic fault injection for the soak tests) ---------------------


def test_scripted_faults_hit_the_next_requests_of_their_side_in_order():
    from cijobs_tools.emulator.faults import FaultConfigError, Faults

    faults = Faults(seed=1)
    faults.inject_next("cmq", "fail", "reset")
    assert faults.decide("ci").kind is None  # other sides are untouched
    assert [faults.decide("cmq").kind for _ in range(3)] == ["fail", "reset", None]
    assert faults.injected == {"cmq.fail": 1, "cmq.reset": 1}
    faults.inject_next("cos", "slowdown")
    faults.reset()
    assert faults.decide("cos").kind is None
    with pytest.raises(FaultConfigError):
        faults.inject_next("cos", "explode")
    with pytest.raises(FaultConfigError):
        faults.inject_next("nowhere", "fail")


# -- 5. config traps and silent CKafka losses -------------------------------------------------------------


@pytest.mark.parametrize("url", [f"cos://{BUCKET}.{REGION}/.pending", f"cos://{BUCKET}.{REGION}/results/.hidden",
                                 f"file:///tmp/x,cos://{BUCKET}.{REGION}/.pending"])
def test_a_result_sink_prefix_that_gives_unusable_keys_fails_at_startup(url):
    from cijobs.settings import SettingsError
    from cijobs.sinks import build_sinks

    with pytest.raises(SettingsError, match="RESULT_SINK") as exc:
        settings = Settings.from_env({"CI_BUCKET": BUCKET, "CI_REGION": REGION, "RESULT_SINK": url})
        build_sinks(settings, lambda: Credentials("AKID", "k"))
    assert ".pending" in str(exc.value) or ".hidden" in str(exc.value)


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


# -- RetryPolicy.run: the one retry loop of CI, COS and both CMQ clients -----------------------------------


class FixedRng:
    def uniform(self, a: float, b: float) -> float:
        return b


def test_retry_policy_run_retries_only_retryable_errors_within_attempts_and_deadline():
    from cijobs.http import RetryPolicy
    from cijobs.models import ServiceError

    policy = RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=1.0, rng=FixedRng())  # type: ignore[arg-type]
    slept: list[float] = []
    retried: list[tuple[int, str, float]] = []

    def flaky(n: int) -> str:
        if n < 3:
            raise ServiceError("InternalError", "try again", retryable=True)
        return f"ok after {n}"

    assert policy.run(flaky, Deadline.never(), slept.append, lambda n, e, d: retried.append((n, e.code, d))) \
        == "ok after 3"
    assert slept == [0.1, 0.2] and retried == [(1, "InternalError", 0.1), (2, "InternalError", 0.2)]

    calls: list[int] = []

    def always(code: str, retryable: bool):
        def attempt(n: int) -> str:
            calls.append(n)
            raise ServiceError(code, "no", retryable=retryable)
        return attempt

    with pytest.raises(ServiceError, match="AccessDenied"):
        policy.run(always("AccessDenied", False), Deadline.never(), slept.append)
    assert calls == [1]
    calls.clear()
    with pytest.raises(ServiceError, match="SlowDown"):  # max attempts
        policy.run(always("SlowDown", True), Deadline.never(), lambda _s: None)
    assert calls == [1, 2, 3]
    calls.clear()
    with pytest.raises(ServiceError):  # the 0.1 s backoff does not fit in 0.05 s
        policy.run(always("SlowDown", True), Deadline(0.05, clock=lambda: 0.0), lambda _s: None)
    assert calls == [1]

    now = [0.0]
    calls.clear()
    with pytest.raises(ServiceError, match="SlowDown"):  # the deadline passed while sleeping: no new attempt
        policy.run(always("SlowDown", True), Deadline(0.15, clock=lambda: now[0]),
                   lambda s: now.__setitem__(0, now[0] + 1.0))
    assert calls == [1]


def test_build_app_shares_one_cos_client_and_session_between_sink_and_registry():
    from cijobs.app import build_app

    env = {"CI_BUCKET": BUCKET, "CI_REGION": REGION, "RESULT_SINK": f"cos://{BUCKET}.{REGION}/results",
           "PENDING_STORE": f"cos://{BUCKET}.{REGION}/state"}
    app = build_app(env)
    sink_cos = app.pipeline.sink.store._client  # type: ignore[attr-defined]
    registry_cos = app.pipeline.pending.store._client  # type: ignore[attr-defined]
    assert sink_cos is registry_cos
    assert sink_cos._session is app.pipeline.client._session  # type: ignore[attr-defined]


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_cmq_dataflow_redirect_is_a_final_error_and_not_followed(status):
    from cijobs.cmq_client import CmqError, CmqTarget, DataflowCmqClient

    url = "http://gz.mqadapter.cmq.tencentyun.com/v2/index.php"
    with responses.RequestsMock() as r:
        r.add(responses.POST, url, status=status, headers={"Location": "https://evil.example/steal"})
        client = DataflowCmqClient(Settings(cmq_endpoint="http://gz.mqadapter.cmq.tencentyun.com"),
                                   lambda: Credentials("AKID", "k"), sleep=lambda _s: None)
        with pytest.raises(CmqError) as exc:
            client.send(CmqTarget("queue", REGION, "q"), ["{}"])
        assert len(r.calls) == 1  # nothing sent to the Location (responses would refuse an unknown URL)
    assert (exc.value.code, exc.value.status, exc.value.retryable) == (f"HTTP{status}", status, False)
