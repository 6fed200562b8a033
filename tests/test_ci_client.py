"""JobClient against `responses` (no network): batching, merging, retries, errors, deadline, safety."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from typing import Any, Callable, Optional

import pytest
import requests
import responses

from cijobs import log, signing
from cijobs.ci_client import CIError, JobClient, batches, ci_target
from cijobs.credentials import Credentials
from cijobs.deadline import Deadline
from cijobs.settings import Settings, SettingsError
from fakes import job_id as jid

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"
HOST = f"{BUCKET}.ci.{REGION}.myqcloud.com"
BASE = f"https://{HOST}"
JOBS_URL = re.compile(re.escape(BASE) + r"/jobs/.*")
CREDS = Credentials("AKIDtest", "test-secret-key")


def tiny_normalize(body: bytes) -> dict[str, Any]:
    """Just enough of the normalizer for these tests (the real one is tested on its own)."""
    root = ET.fromstring(body)
    if root.tag != "Response":
        raise ValueError(f"unexpected root {root.tag}")
    jobs = [{c.tag: (c.text or "") for c in jd} for jd in root.findall("JobsDetail")]
    missing = [p for e in root.findall("NonExistJobIds") for p in (e.text or "").split(",") if p]
    return {"JobsDetail": jobs, "NonExistJobIds": missing}


def response_xml(found: list[str], missing_groups: Optional[list[list[str]]] = None) -> str:
    jobs = "".join(
        f"<JobsDetail><Code>Success</Code><JobId>{i}</JobId><State>Success</State><Tag>Transcode</Tag></JobsDetail>"
        for i in found
    )
    missing = "".join(f"<NonExistJobIds>{','.join(g)}</NonExistJobIds>" for g in (missing_groups or []))
    return f"<Response>{jobs}{missing}</Response>"


def error_xml(code: str, message: str, request_id: str = "") -> str:
    rid = f"<RequestId>{request_id}</RequestId>" if request_id else ""
    return f"<?xml version='1.0' encoding='utf-8' ?><Error><Code>{code}</Code><Message>{message}</Message>{rid}" \
           "<TraceId>trace</TraceId></Error>"


def ids_of(request: Any) -> list[str]:
    return str(request.path_url).split("/jobs/", 1)[1].split(",")


def echo(missing: Callable[[str], bool] = lambda i: False) -> Callable[[Any], tuple[int, dict[str, str], str]]:
    """Callback answering every requested ID (found, or non-existent when ``missing(id)``)."""

    def cb(request: Any) -> tuple[int, dict[str, str], str]:
        ids = ids_of(request)
        gone = [i for i in ids if missing(i)]
        return 200, {"x-ci-request-id": "rid-ok"}, response_xml([i for i in ids if not missing(i)], [gone] if gone
                                                                   else None)

    return cb


class FakeSleep:
    def __init__(self, clock: Optional[list[float]] = None) -> None:
        self.calls: list[float] = []
        self.clock = clock

    def __call__(self, s: float) -> None:
        self.calls.append(s)
        if self.clock is not None:
            self.clock[0] += s


class MaxRng:
    """Full jitter at its upper bound: deterministic backoff."""

    def uniform(self, a: float, b: float) -> float:
        return b


def make_client(
    settings: Optional[Settings] = None, creds: Credentials = CREDS, sleep: Optional[FakeSleep] = None, **kw: Any
) -> JobClient:
    s = settings or Settings(ci_bucket=BUCKET, ci_region=REGION, ci_concurrency=4, ci_max_attempts=4)
    return JobClient(s, credentials=lambda: creds, normalize=tiny_normalize, sleep=sleep or FakeSleep(),
                     clock=lambda: 1_700_000_000.0, **kw)


@responses.activate
def test_every_request_carries_the_session_headers_and_no_cookie_ci_set() -> None:
    def cb(request: Any) -> tuple[int, dict[str, str], str]:
        return 200, {"Set-Cookie": "tracking=abc; Path=/"}, response_xml(ids_of(request))

    responses.add_callback(responses.GET, JOBS_URL, callback=cb)
    client = make_client()
    client.query([jid(1)])
    client.query([jid(2), jid(3)])
    assert len(responses.calls) == 2
    for call in responses.calls:
        headers = call.request.headers
        assert headers["User-Agent"] == requests.utils.default_user_agent()  # the session's, on every request
        assert "Cookie" not in headers  # the signed API is not a cookie session
        assert headers["Authorization"].startswith("q-sign-algorithm=sha1")
    assert ids_of(responses.calls[1].request) == [jid(2), jid(3)]  # the base request's URL is never sent


# --------------------------------------------------------------------------- batching and merging
@responses.activate
def test_25_ids_make_3_requests_with_literal_commas_and_canonical_host() -> None:
    responses.add_callback(responses.GET, JOBS_URL, callback=echo())
    ids = [jid(n) for n in range(25)]
    result = make_client().query(ids)
    assert len(responses.calls) == 3
    sent = sorted((ids_of(c.request) for c in responses.calls), key=len, reverse=True)
    assert [len(s) for s in sent] == [10, 10, 5]
    assert sorted(i for s in sent for i in s) == sorted(ids)
    for call in responses.calls:
        assert call.request.url.startswith(f"{BASE}/jobs/") and "%2C" not in call.request.url
        fields = signing.parse_authorization(call.request.headers["Authorization"])
        assert fields["q-header-list"] == "host"
    assert [j["JobId"] for j in result.jobs] == ids  # request order, whatever order the batches finished in
    assert result.nonexistent == [] and result.failed == [] and result.invalid == []


@responses.activate
def test_dedupe_keeps_first_occurrence_order() -> None:
    responses.add_callback(responses.GET, JOBS_URL, callback=echo())
    a, b, c = jid(1), jid(2), jid(3)
    result = make_client().query([b, a, b, c, a])
    assert len(responses.calls) == 1
    assert ids_of(responses.calls[0].request) == [b, a, c]
    assert [j["JobId"] for j in result.jobs] == [b, a, c]


@responses.activate
def test_nonexistent_ids_merged_across_batches_and_elements() -> None:
    def cb(request: Any) -> tuple[int, dict[str, str], str]:
        ids = ids_of(request)
        gone = [i for i in ids if int(i[1:], 16) % 3 == 0]
        # several NonExistJobIds elements, one of them comma-joined
        return 200, {}, response_xml([i for i in ids if i not in gone], [gone[:2], gone[2:]] if gone else None)

    responses.add_callback(responses.GET, JOBS_URL, callback=cb)
    ids = [jid(n) for n in range(30)]
    result = make_client().query(ids)
    expected_gone = [i for i in ids if int(i[1:], 16) % 3 == 0]
    assert result.nonexistent == expected_gone
    assert len(result.jobs) == 30 - len(expected_gone)
    assert result.failed == []


@responses.activate
def test_one_failed_batch_does_not_fail_the_others() -> None:
    bad = jid(15)

    def cb(request: Any) -> tuple[int, dict[str, str], str]:
        ids = ids_of(request)
        if bad in ids:
            return 403, {"x-ci-request-id": "rid-403"}, error_xml("AccessDenied", "no")
        return echo()(request)

    responses.add_callback(responses.GET, JOBS_URL, callback=cb)
    ids = [jid(n) for n in range(25)]
    result = make_client().query(ids)
    assert [f.job_id for f in result.failed] == ids[10:20]
    assert [j["JobId"] for j in result.jobs] == ids[:10] + ids[20:]
    # AccessDenied is a configuration failure: not retried now, the jobs stay pending (retryable)
    assert all(f.error.code == "AccessDenied" and f.retryable for f in result.failed)


@responses.activate
def test_unasked_jobs_ignored_and_unanswered_ids_are_missing_failures() -> None:
    a, b, stranger = jid(1), jid(2), jid(99)
    responses.add(responses.GET, f"{BASE}/jobs/{a},{b}", body=response_xml([a, stranger]),
                  headers={"x-ci-request-id": "rid-7"})
    result = make_client().query([a, b])
    assert [j["JobId"] for j in result.jobs] == [a]
    assert [f.as_dict() for f in result.failed] == [{
        "JobId": b, "Retryable": True,
        "Error": {"Code": "MissingFromResponse", "Message": result.failed[0].error.message, "HttpStatus": 200,
                  "RequestId": "rid-7"},
    }]
    assert result.as_dict()["NonExistJobIds"] == []


# --------------------------------------------------------------------------- retries
@pytest.mark.parametrize(
    "first",
    [
        (500, error_xml("InternalError", "boom")),
        (503, "Service Unavailable"),
        (429, error_xml("TooManyRequests", "slow down")),
        requests.ConnectionError("reset"),
        requests.ReadTimeout("slow"),
        (200, "<Response><JobsDetail><JobId>j"),  # truncated body
        (200, "<html>proxy page</html>"),  # not the expected XML
    ],
    ids=["500", "503", "429", "conn", "timeout", "truncated", "garbage"],
)
@responses.activate
def test_retryable_failures_are_retried(first: Any) -> None:
    a = jid(1)
    url = f"{BASE}/jobs/{a}"
    if isinstance(first, Exception):
        responses.add(responses.GET, url, body=first)
    else:
        responses.add(responses.GET, url, status=first[0], body=first[1])
    responses.add(responses.GET, url, body=response_xml([a]))
    sleep = FakeSleep()
    result = make_client(sleep=sleep).query([a])
    assert len(responses.calls) == 2
    assert len(sleep.calls) == 1 and 0 <= sleep.calls[0] <= 0.1
    assert [j["JobId"] for j in result.jobs] == [a] and result.failed == []


@responses.activate
def test_retries_stop_after_max_attempts_and_stay_retryable() -> None:
    a = jid(1)
    responses.add(responses.GET, f"{BASE}/jobs/{a}", status=502, body=error_xml("BadGateway", "upstream"),
                  headers={"x-ci-request-id": "rid-502"})
    sleep = FakeSleep()
    result = make_client(sleep=sleep, rng=MaxRng()).query([a])
    assert len(responses.calls) == 4
    assert sleep.calls == [0.1, 0.2, 0.4]  # exponential backoff (jitter at its upper bound)
    (failure,) = result.failed
    assert failure.retryable and failure.error.http_status == 502 and failure.error.code == "BadGateway"
    assert failure.error.request_id == "rid-502"


@responses.activate
def test_403_is_not_retried_and_error_xml_parsed() -> None:
    a, b = jid(1), jid(2)
    responses.add(responses.GET, f"{BASE}/jobs/{a},{b}", status=403,
                  body=error_xml("SignatureDoesNotMatch", "The signature you specified is invalid.", "body-rid"),
                  headers={"x-ci-request-id": "hdr-rid"})
    sleep = FakeSleep()
    result = make_client(sleep=sleep).query([a, b])
    assert len(responses.calls) == 1 and sleep.calls == []
    assert [f.job_id for f in result.failed] == [a, b]
    err = result.failed[0].as_dict()["Error"]
    assert err == {"Code": "SignatureDoesNotMatch", "Message": "The signature you specified is invalid.",
                   "HttpStatus": 403, "RequestId": "body-rid"}
    assert result.failed[0].retryable is True  # configuration: not retried now, kept pending


@responses.activate
def test_request_id_from_header_when_body_has_none() -> None:
    a = jid(1)
    responses.add(responses.GET, f"{BASE}/jobs/{a}", status=400, body=error_xml("InvalidArgument", "bad id"),
                  headers={"x-ci-request-id": "NjMxMDJhYTNfMThhYTk0MGFfYmU1OV8zZjc="})
    (failure,) = make_client().query([a]).failed
    assert failure.error.request_id == "NjMxMDJhYTNfMThhYTk0MGFfYmU1OV8zZjc="
    assert failure.error.code == "InvalidArgument" and failure.error.http_status == 400 and not failure.retryable


@responses.activate
def test_non_xml_error_body_still_reports_status() -> None:
    a = jid(1)
    responses.add(responses.GET, f"{BASE}/jobs/{a}", status=404, body="not found")
    (failure,) = make_client().query([a]).failed
    assert failure.error.code == "HTTP404" and failure.error.http_status == 404 and not failure.retryable


# --------------------------------------------------------------------------- deadline
@responses.activate
def test_expired_deadline_sends_nothing() -> None:
    responses.add_callback(responses.GET, JOBS_URL, callback=echo())
    ids = [jid(n) for n in range(12)]
    result = make_client().query(ids, Deadline(0))
    assert len(responses.calls) == 0
    assert [f.job_id for f in result.failed] == ids
    assert all(f.error.code == "DeadlineExceeded" and f.retryable for f in result.failed)


@responses.activate
def test_deadline_bounds_retries() -> None:
    a = jid(1)
    responses.add(responses.GET, f"{BASE}/jobs/{a}", status=500, body=error_xml("InternalError", "x"))
    now = [0.0]
    sleep = FakeSleep(clock=now)
    settings = Settings(ci_bucket=BUCKET, ci_region=REGION, ci_max_attempts=10)
    result = make_client(settings, sleep=sleep, rng=MaxRng()).query([a], Deadline(0.5, clock=lambda: now[0]))
    # 0.1 and 0.2 fit in the 0.5 s budget, the next 0.4 s backoff does not
    assert len(responses.calls) == 3 and sleep.calls == [0.1, 0.2]
    assert result.failed[0].retryable and result.failed[0].error.code == "InternalError"


@responses.activate
def test_timeouts_are_clamped_to_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    a = jid(1)
    responses.add(responses.GET, f"{BASE}/jobs/{a}", body=response_xml([a]))
    real_send = requests.Session.send

    def spy(self: requests.Session, request: requests.PreparedRequest, **kw: Any) -> requests.Response:
        seen.append((kw["timeout"], kw["allow_redirects"]))
        return real_send(self, request, **kw)

    monkeypatch.setattr(requests.Session, "send", spy)
    make_client().query([a], Deadline(1.5))
    make_client().query([a])
    ((connect, read), allow_redirects), ((connect2, read2), _) = seen
    assert 1.0 < connect <= 1.5 and 1.0 < read <= 1.5 and allow_redirects is False
    assert (connect2, read2) == (3.05, 10.0)  # settings defaults when there is time


# --------------------------------------------------------------------------- signing, token, redirects, safety
@responses.activate
def test_token_header_sent_and_signed() -> None:
    responses.add_callback(responses.GET, JOBS_URL, callback=echo())
    creds = Credentials("AKIDtest", "test-secret-key", "sts-token-abc")
    a = jid(1)
    make_client(creds=creds).query([a])
    req = responses.calls[0].request
    assert req.headers["x-ci-security-token"] == "sts-token-abc"
    assert "x-cos-security-token" not in req.headers
    fields = signing.parse_authorization(req.headers["Authorization"])
    assert fields["q-header-list"] == "host;x-ci-security-token"
    kt = fields["q-key-time"]
    hs = signing.http_string("get", f"/jobs/{a}", {}, {"host": HOST, "x-ci-security-token": "sts-token-abc"})
    expected = signing.signature(signing.sign_key("test-secret-key", kt), signing.string_to_sign(kt, hs))
    assert fields["q-signature"] == expected


@responses.activate
def test_redirect_is_not_followed() -> None:
    a = jid(1)
    responses.add(responses.GET, f"{BASE}/jobs/{a}", status=302, headers={"Location": "https://evil.example/steal"})
    evil = responses.add(responses.GET, "https://evil.example/steal", body="thanks")
    result = make_client(creds=Credentials("AKIDtest", "k", "tok")).query([a])
    assert evil.call_count == 0 and len(responses.calls) == 1
    (failure,) = result.failed
    assert failure.error.http_status == 302 and failure.error.code == "Redirect" and not failure.retryable


@responses.activate
def test_invalid_ids_are_never_sent() -> None:
    responses.add_callback(responses.GET, JOBS_URL, callback=echo())
    good = jid(1)
    bad = ["../../x", f"{good},{jid(2)}", "J" + "A" * 32, "short", f"{good}?x=1", ""]
    result = make_client().query([*bad, good])
    assert len(responses.calls) == 1 and ids_of(responses.calls[0].request) == [good]
    assert result.invalid == bad
    assert result.as_dict()["Invalid"] == bad


@responses.activate
def test_only_invalid_ids_sends_nothing_and_needs_no_credentials() -> None:
    def no_creds() -> Credentials:
        raise AssertionError("credentials must not be read")

    client = JobClient(Settings(ci_bucket=BUCKET, ci_region=REGION), credentials=no_creds, normalize=tiny_normalize)
    result = client.query(["nope"])
    assert result.invalid == ["nope"] and len(responses.calls) == 0


@pytest.mark.parametrize(
    ("bucket", "region"),
    [
        ("evil.example.com/x", REGION),
        ("examplebucket-1250000000.evil.com#", REGION),
        ("examplebucket", REGION),
        (BUCKET, "ap-guangzhou.evil.com"),
        (BUCKET, "ap-guangzhou/x"),
        (BUCKET, None),
        (None, REGION),
    ],
)
def test_bucket_and_region_validated(bucket: Optional[str], region: Optional[str]) -> None:
    with pytest.raises(SettingsError):
        JobClient(Settings(ci_bucket=bucket, ci_region=region), credentials=lambda: CREDS)


def test_endpoint_overrides() -> None:
    plain = ci_target(Settings(ci_bucket=BUCKET, ci_region=REGION))
    assert (plain.base_url, plain.host_header, plain.signed_host) == (BASE, None, HOST)
    tmpl = ci_target(Settings(ci_bucket=BUCKET, ci_region=REGION,
                              ci_endpoint="https://{bucket}.ci-internal.{region}.example.cn"))
    assert tmpl.base_url == f"https://{BUCKET}.ci-internal.{REGION}.example.cn" and tmpl.host_header is None
    assert tmpl.signed_host == f"{BUCKET}.ci-internal.{REGION}.example.cn"
    emu = ci_target(Settings(ci_bucket=BUCKET, ci_region=REGION, ci_endpoint="http://127.0.0.1:8123"))
    assert emu.base_url == "http://127.0.0.1:8123" and emu.host_header == HOST
    for bad in ("http://127.0.0.1:8123/?x=1", "http://user:pw@127.0.0.1", "ftp://x", "https://{appid}.x"):
        with pytest.raises(SettingsError):
            ci_target(Settings(ci_bucket=BUCKET, ci_region=REGION, ci_endpoint=bad))


@responses.activate
def test_endpoint_without_bucket_sends_and_signs_canonical_host() -> None:
    responses.add_callback(responses.GET, re.compile(r"http://127\.0\.0\.1:8123/jobs/.*"), callback=echo())
    s = Settings(ci_bucket=BUCKET, ci_region=REGION, ci_endpoint="http://127.0.0.1:8123")
    a = jid(1)
    make_client(s).query([a])
    req = responses.calls[0].request
    assert req.headers["Host"] == HOST
    kt = signing.parse_authorization(req.headers["Authorization"])["q-key-time"]
    hs = signing.http_string("get", f"/jobs/{a}", {}, {"host": HOST})
    sig = signing.signature(signing.sign_key("test-secret-key", kt), signing.string_to_sign(kt, hs))
    assert signing.parse_authorization(req.headers["Authorization"])["q-signature"] == sig


# --------------------------------------------------------------------------- concurrency and logging
@responses.activate
def test_batches_run_concurrently() -> None:
    lock = threading.Lock()
    state = {"now": 0, "max": 0}

    def cb(request: Any) -> tuple[int, dict[str, str], str]:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return echo()(request)

    responses.add_callback(responses.GET, JOBS_URL, callback=cb)
    result = make_client().query([jid(n) for n in range(80)])
    assert len(result.jobs) == 80 and len(responses.calls) == 8
    assert 1 < state["max"] <= 4  # ci_concurrency=4


@responses.activate
def test_one_log_event_per_request_without_secrets() -> None:
    stream = io.StringIO()
    log.configure("debug", stream)
    try:
        a = jid(1)
        responses.add(responses.GET, f"{BASE}/jobs/{a}", status=500, body=error_xml("InternalError", "x"))
        responses.add(responses.GET, f"{BASE}/jobs/{a}", body=response_xml([a]), headers={"x-ci-request-id": "r2"})
        creds = Credentials("AKIDtest", "super-secret-key-1", "super-secret-token-1")
        make_client(creds=creds).query([a])
    finally:
        log.configure("info")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    reqs = [e for e in events if e["event"] == "http.request"]
    assert [(e["sent"], e["status"], e["batch_size"]) for e in reqs] == [(1, 500, 1), (2, 200, 1)]
    assert all(e["level"] == "debug" and e["service"] == "ci" for e in reqs)
    assert isinstance(reqs[1]["duration_ms"], float)
    text = stream.getvalue()
    assert "super-secret" not in text and "q-signature" not in text and "Authorization" not in text


def test_batches_helper() -> None:
    assert batches(list("abcdefghijklmnopqrstuvwxy")) == [list("abcdefghij"), list("klmnopqrst"), list("uvwxy")]
    assert batches([]) == []


def test_cierror_failures() -> None:
    err = CIError(403, "AccessDenied", "no", "rid", ["a", "b"], retryable=False)
    assert [f.as_dict() for f in err.failures()] == [
        {"JobId": i, "Retryable": False,
         "Error": {"Code": "AccessDenied", "Message": "no", "HttpStatus": 403, "RequestId": "rid"}}
        for i in ("a", "b")
    ]
    assert "AccessDenied" in str(err)


@responses.activate
def test_default_normalizer_on_doc_sample() -> None:
    """Without ``normalize=`` the real cijobs.normalize is used (Snapshot doc sample)."""
    from fakes import FIXTURES

    with open(f"{FIXTURES}/Snapshot.xml", "rb") as fh:
        body = fh.read()
    a, missing = "j4e431ba0f86711ecb8546d80f2baf56f", jid(5)
    responses.add(responses.GET, f"{BASE}/jobs/{a},{missing}", body=body, content_type="application/xml")
    client = JobClient(Settings(ci_bucket=BUCKET, ci_region=REGION), credentials=lambda: CREDS, sleep=FakeSleep())
    result = client.query([a, missing])
    assert [(j["JobId"], j["State"], j["Tag"]) for j in result.jobs] == [(a, "Success", "Snapshot")]
    assert [f.error.code for f in result.failed] == ["MissingFromResponse"] and result.nonexistent == []


# -- a non-string JobId in a CI answer (moved from the review-fixes file) ----------------------------------
def test_client_skips_a_job_whose_jobid_is_a_container():
    body = (b"<Response><JobsDetail><JobId><x>1</x></JobId><State>Success</State></JobsDetail>"
            b"<JobsDetail><JobId>jaaaaaaaaaaaaaaaaaaaa</JobId><State>Success</State><Tag>Transcode</Tag></JobsDetail>"
            b"</Response>")
    with responses.RequestsMock() as r:
        r.add(responses.GET, JOBS_URL, body=body, status=200)
        client = JobClient(Settings.from_env({"CI_BUCKET": BUCKET, "CI_REGION": REGION}),
                           credentials=lambda: Credentials("AKID", "k"))
        result = client.query(["jaaaaaaaaaaaaaaaaaaaa", "jbbbbbbbbbbbbbbbbbbbb"])
    assert [j["JobId"] for j in result.jobs] == ["jaaaaaaaaaaaaaaaaaaaa"]
    assert [(f.job_id, f.error.code, f.retryable) for f in result.failed] == [
        ("jbbbbbbbbbbbbbbbbbbbb", "MissingFromResponse", True)]


def test_client_ignores_a_container_in_nonexistent_ids():
    doc = {"JobsDetail": [], "NonExistJobIds": [{"x": "2"}, "jaaaaaaaaaaaaaaaaaaaa"]}
    with responses.RequestsMock() as r:
        r.add(responses.GET, JOBS_URL, body=b"<Response/>", status=200)
        client = JobClient(Settings.from_env({"CI_BUCKET": BUCKET, "CI_REGION": REGION}),
                           credentials=lambda: Credentials("AKID", "k"), normalize=lambda _b: doc)
        result = client.query(["jaaaaaaaaaaaaaaaaaaaa"])
    assert result.nonexistent == ["jaaaaaaaaaaaaaaaaaaaa"] and result.failed == []
