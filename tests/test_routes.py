"""HTTP routes with fakes: auth, status codes, bodies, limits, callbacks."""

from __future__ import annotations

import base64
import json
import os

import pytest

from cijobs.deadline import Deadline
from cijobs.events import detect
from cijobs.pipeline import Pipeline
from cijobs.routes import Router, match_route
from cijobs.settings import Settings
from fakes import FIXTURES, JOB_A, JOB_B, JOB_C, FakeCI, FakeClock, FakePending, FakeSink

TOKEN = "route-test-token-123"
CALLBACK_XML = open(os.path.join(FIXTURES, "events", "ci-taskfinish-callback.xml"), "rb").read()
CALLBACK_ID = "j035aca66f86211ec8a5a87e016101404"


def router(jobs=None, **overrides):
    settings = Settings(**{
        **dict(ci_bucket="examplebucket-1250000000", ci_region="ap-guangzhou", api_token=TOKEN,
                        max_body_bytes=4096, max_ids_per_request=5), **overrides})
    clock = FakeClock()
    ci, sink, pending = FakeCI(jobs or {}), FakeSink(), FakePending()
    return Router(settings, Pipeline(settings, ci, sink, pending, clock=clock)), ci, sink, pending


def call(r, method, path, body=None, token=TOKEN, query=None, apigw=False, b64=False, headers=None):
    event = {"httpMethod": method, "path": path, "headers": dict(headers or {}), "queryString": dict(query or {})}
    if token is not None:
        event["headers"]["authorization"] = f"Bearer {token}"
    if body is not None:
        event["body"] = base64.b64encode(body).decode() if b64 else body.decode()
    if apigw:
        event["requestContext"] = {"requestId": "r1", "stage": "release"}
        event["isBase64Encoded"] = b64
        event["headers"] = {k.title(): v for k, v in event["headers"].items()}
    resp = r.handle(detect(event), Deadline.never()).to_event_response()
    assert set(resp) == {"isBase64Encoded", "statusCode", "headers", "body"} and isinstance(resp["body"], str)
    return resp["statusCode"], json.loads(resp["body"]), resp["headers"]


@pytest.mark.parametrize(("path", "route"), [
    ("/jobs/abc", ("get_jobs", "abc")), ("/release/svc/jobs/a,b/", ("get_jobs", "a,b")),
    ("/jobs/track", ("track", None)), ("/x/callbacks/ci", ("callback", None)), ("/", (None, None)),
    ("/jobs", (None, None)), ("/callbacks", (None, None)),
])
def test_match_route_on_the_end_of_the_path(path, route):
    assert match_route(path) == route


@pytest.mark.parametrize("apigw", [False, True])
def test_get_jobs_returns_the_query_result_and_writes_nothing(apigw):
    r, ci, sink, pending = router({JOB_A: "Success", JOB_B: "Running"})
    status, body, headers = call(r, "GET", f"/release/jobs/{JOB_A},{JOB_B},{JOB_C}", apigw=apigw)
    assert status == 200
    assert [j["JobId"] for j in body["JobsDetail"]] == [JOB_A, JOB_B]
    assert body["NonExistJobIds"] == [JOB_C] and body["Failed"] == []
    assert headers["Content-Type"].startswith("application/json")
    assert sink.writes == 0 and pending.entries == {} and ci.calls == [[JOB_A, JOB_B, JOB_C]]


def test_get_jobs_url_encoded_commas():
    r, ci, _s, _p = router({JOB_A: "Success", JOB_B: "Success"})
    status, _body, _h = call(r, "GET", f"/jobs/{JOB_A}%2C{JOB_B}")
    assert status == 200 and ci.calls == [[JOB_A, JOB_B]]


def test_get_jobs_partial_and_total_failure():
    r, ci, _s, _p = router({JOB_A: "Success", JOB_B: "Success"})
    ci.fail = {JOB_B: ("InternalError", True)}
    status, body, _h = call(r, "GET", f"/jobs/{JOB_A},{JOB_B}")
    assert status == 207 and body["Failed"][0]["JobId"] == JOB_B
    ci.fail = {JOB_A: ("InternalError", True), JOB_B: ("InternalError", True)}
    assert call(r, "GET", f"/jobs/{JOB_A},{JOB_B}")[0] == 502
    ci.raise_exc = ConnectionError("unreachable")
    status, body, _h = call(r, "GET", f"/jobs/{JOB_A}")
    assert status == 502 and "CI could not be queried" in body["Error"]["Message"]


@pytest.mark.parametrize("segment", ["bad!", f"{JOB_A},UPPER0000000000000000", ",", "x" * 70])
def test_get_jobs_invalid_ids_are_400_naming_the_field(segment):
    r, ci, _s, _p = router()
    status, body, _h = call(r, "GET", f"/jobs/{segment}")
    assert status == 400 and "JobIds" in body["Error"]["Message"] and ci.calls == []


def test_get_jobs_too_many_ids():
    r, ci, _s, _p = router()
    ids = ",".join(f"j{i:032x}" for i in range(6))
    status, body, _h = call(r, "GET", f"/jobs/{ids}")
    assert status == 400 and "at most 5" in body["Error"]["Message"] and ci.calls == []


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
def test_bad_or_missing_token_is_401_without_detail(token):
    r, ci, _s, _p = router({JOB_A: "Success"})
    status, body, headers = call(r, "GET", f"/jobs/{JOB_A}", token=token)
    assert status == 401 and body == {"Error": {"Code": "Unauthorized", "Message": "unauthorized"}}
    assert headers["WWW-Authenticate"] == "Bearer" and ci.calls == []


def test_token_query_parameter_only_for_callbacks():
    r, _ci, _s, _p = router({JOB_A: "Success", CALLBACK_ID: "Success"})
    assert call(r, "GET", f"/jobs/{JOB_A}", token=None, query={"token": TOKEN})[0] == 401
    assert call(r, "POST", "/callbacks/ci", CALLBACK_XML, token=None, query={"token": TOKEN})[0] == 200
    assert call(r, "POST", "/callbacks/ci", CALLBACK_XML, token=None, query={"token": "nope"})[0] == 401


def test_authorization_header_is_case_insensitive_apigw_title_case():
    r, _ci, _s, _p = router({JOB_A: "Success"})
    assert call(r, "GET", f"/jobs/{JOB_A}", apigw=True, headers={"AUTHORIZATION": f"bearer {TOKEN}"},
                token=None)[0] == 200


def test_no_api_token_is_503_unless_unauthenticated_allowed():
    r, ci, _s, _p = router({JOB_A: "Success"}, api_token=None)
    status, body, _h = call(r, "GET", f"/jobs/{JOB_A}")
    assert status == 503 and "API_TOKEN" in body["Error"]["Message"] and ci.calls == []
    r2, _ci, _s, _p = router({JOB_A: "Success"}, api_token=None, allow_unauthenticated=True)
    assert call(r2, "GET", f"/jobs/{JOB_A}", token=None)[0] == 200


def test_unknown_route_404_and_wrong_method_405():
    r, _ci, _s, _p = router()
    assert call(r, "GET", "/nothing/here")[0] == 404
    status, _b, headers = call(r, "GET", "/jobs/track")
    assert status == 405 and headers["Allow"] == "POST"
    status, _b, headers = call(r, "DELETE", f"/jobs/{JOB_A}")
    assert status == 405 and headers["Allow"] == "GET"
    assert call(r, "GET", "/callbacks/ci")[0] == 405


def test_track_adds_ids_to_the_registry():
    r, ci, sink, pending = router()
    status, body, _h = call(r, "POST", "/jobs/track", json.dumps({"JobIds": [JOB_A, JOB_B]}).encode())
    assert status == 200 and set(pending.entries) == {JOB_A, JOB_B}
    assert [o["Outcome"] for o in body["Outcomes"]] == ["pending", "pending"]
    assert ci.calls == [] and sink.writes == 0


@pytest.mark.parametrize(("body", "field"), [
    (b"{not json", "JobIds"), (b'{"Ids": []}', "JobIds"), (b'{"JobIds": [1]}', "JobIds"),
    (b'{"JobIds": ["bad id"]}', "JobIds"), (b'{"JobIds": []}', "JobIds"), (b"", "body"),
    (b"\xff\xfe", "body"),
])
def test_track_bad_bodies_are_400_naming_the_field(body, field):
    r, _ci, _s, pending = router()
    status, resp, _h = call(r, "POST", "/jobs/track", body, b64=True, apigw=True)  # b64: any bytes fit
    assert status == 400 and field in resp["Error"]["Message"] and pending.entries == {}


def test_track_registry_down_is_502():
    r, _ci, _s, pending = router()
    pending.broken = True
    status, body, _h = call(r, "POST", "/jobs/track", json.dumps({"JobIds": [JOB_A]}).encode())
    assert status == 502 and body["Outcomes"][0]["Outcome"] == "failed"


def test_body_limits_and_base64():
    r, _ci, _s, _p = router()
    assert call(r, "POST", "/jobs/track", b"x" * 5000)[0] == 413
    assert call(r, "POST", "/jobs/track", b"x" * 4000, b64=True, apigw=True)[0] == 400  # decodes, not JSON
    assert call(r, "POST", "/jobs/track", b"x" * 5000, b64=True, apigw=True)[0] == 413
    event = {"httpMethod": "POST", "path": "/jobs/track", "isBase64Encoded": True, "body": "%%%not-base64",
             "headers": {"authorization": f"Bearer {TOKEN}"}, "requestContext": {}}
    out = r.handle(detect(event), Deadline.never()).to_event_response()
    assert out["statusCode"] == 400 and "Base64" in json.loads(out["body"])["Error"]["Message"]
    ok = json.dumps({"JobIds": [JOB_A]}).encode()
    assert call(r, "POST", "/jobs/track", ok, b64=True, apigw=True)[0] == 200


def test_callback_requeries_ci_by_default_forged_body_is_not_written():
    forged = CALLBACK_XML.replace(b"This is my NoiseReduction job.", b"FORGED")
    r, ci, sink, _p = router({CALLBACK_ID: "Success"})
    status, body, _h = call(r, "POST", "/callbacks/ci", forged)
    assert status == 200 and body["EventName"] == "TaskFinish"
    assert ci.calls == [[CALLBACK_ID]] and sink.written[CALLBACK_ID]["Source"] == "ci"
    assert "FORGED" not in json.dumps(sink.written)


def test_callback_body_trusted_when_configured():
    r, ci, sink, _p = router({CALLBACK_ID: "Success"}, trust_callback_body=True)
    assert call(r, "POST", "/callbacks/ci", CALLBACK_XML)[0] == 200
    assert ci.calls == [] and sink.written[CALLBACK_ID]["Operation"]["UserData"] == "This is my NoiseReduction job."


def test_workflow_callback_queries_every_task():
    body = open(os.path.join(FIXTURES, "callback-WorkflowFinish.json"), "rb").read()
    ids = ["j23c11e1e17b011edaab4ab15ec33d076", "j168668b217b011ed8efb27bb229e2d11"]
    r, ci, sink, pending = router({ids[0]: "Success", ids[1]: "Running"}, trust_callback_body=True)
    status, resp, _h = call(r, "POST", "/callbacks/ci", body)
    assert status == 200 and resp["EventName"] == "WorkflowFinish"
    assert ci.calls == [ids] and set(sink.written) == {ids[0]} and set(pending.entries) == {ids[1]}


def test_callback_answers_200_once_parked_and_5xx_when_neither():
    r, _ci, sink, pending = router({CALLBACK_ID: "Success"})
    sink.fail = {CALLBACK_ID: ("SlowDown", True)}
    status, body, _h = call(r, "POST", "/callbacks/ci", CALLBACK_XML)
    assert status == 200 and body["Outcomes"][0]["Outcome"] == "pending" and CALLBACK_ID in pending.entries
    r2, _ci2, sink2, pending2 = router({CALLBACK_ID: "Success"})
    sink2.fail = {CALLBACK_ID: ("SlowDown", True)}
    pending2.broken = True
    assert call(r2, "POST", "/callbacks/ci", CALLBACK_XML)[0] == 502


@pytest.mark.parametrize("body", [b"<Response><EventName>TaskFinish</Event", b"{\"EventName\": \"Nope\"}",
                                  b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]><Response>&e;</Response>'])
def test_callback_bad_bodies_are_400(body):
    r, ci, _s, _p = router()
    status, resp, _h = call(r, "POST", "/callbacks/ci", body)
    assert status == 400 and resp["Error"]["Code"] == "BadRequest" and ci.calls == []
