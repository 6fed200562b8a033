"""CosClient against `responses`: signing, host routing, retries, error parsing, deadline."""

from __future__ import annotations

import base64
import hashlib
import random

import pytest
import requests
import responses

from cijobs.cos import CosClient, CosError, parse_list
from cijobs.credentials import Credentials
from cijobs.deadline import Deadline
from cijobs.service_call import Refused
from cijobs.settings import Settings
from cijobs.signing import parse_authorization
from cijobs.store import InvalidKeyError, parse_cos_url, validate_key
from fakes import Sleeps

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
HOST = f"{BUCKET}.cos.{REGION}.myqcloud.com"
URL = f"https://{HOST}"
CREDS = Credentials("AKIDtest", "test-secret-key", "tmp-token-xyz")


pytestmark = pytest.mark.usefixtures("log_stream")  # each test logs to a private buffer


def error_xml(code: str, message: str = "msg", request_id: str = "rid-1") -> str:
    return (f"<?xml version='1.0' encoding='utf-8' ?><Error><Code>{code}</Code><Message>{message}</Message>"
            f"<Resource>{HOST}/k</Resource><RequestId>{request_id}</RequestId><TraceId>t</TraceId></Error>")


def client(**kw: object) -> tuple[CosClient, Sleeps]:
    sleeps = Sleeps()
    settings = Settings(ci_max_attempts=4, **kw)  # type: ignore[arg-type]
    return CosClient(settings, lambda: CREDS, sleep=sleeps, clock=lambda: 1_700_000_000.0,
                     rng=random.Random(1)), sleeps


@responses.activate
def test_put_sends_signed_headers_md5_meta_and_forbid_overwrite() -> None:
    responses.put(f"{URL}/results/Transcode/j1.json", status=200, headers={"ETag": '"abc"', "x-cos-request-id": "r"})
    c, _ = client()
    body = b'{"JobId":"j1"}'
    res = c.put_object(BUCKET, REGION, "results/Transcode/j1.json", body, "application/json",
                       {"jobid": "j1", "state": "Success"}, forbid_overwrite=True)
    assert res.etag == '"abc"' and res.request_id == "r"
    req = responses.calls[0].request
    assert req.body == body
    assert req.headers["Content-MD5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
    assert req.headers["x-cos-forbid-overwrite"] == "true"
    assert req.headers["x-cos-meta-jobid"] == "j1" and req.headers["x-cos-meta-state"] == "Success"
    assert req.headers["x-cos-security-token"] == "tmp-token-xyz"
    auth = parse_authorization(req.headers["Authorization"])
    assert auth["q-ak"] == "AKIDtest"
    signed = auth["q-header-list"].split(";")
    for h in ("host", "content-md5", "content-type", "x-cos-security-token", "x-cos-meta-jobid",
              "x-cos-forbid-overwrite"):
        assert h in signed


@responses.activate
def test_override_without_bucket_placeholder_sends_canonical_host() -> None:
    responses.get("http://127.0.0.1:8123/a/b.json", body=b"x")
    c, _ = client(cos_endpoint="http://127.0.0.1:8123")
    assert c.get_object(BUCKET, REGION, "a/b.json").body == b"x"
    req = responses.calls[0].request
    assert req.headers["Host"] == HOST
    assert "host" in parse_authorization(req.headers["Authorization"])["q-header-list"]


def test_override_with_placeholders_is_formatted() -> None:
    c, _ = client(cos_endpoint="https://{bucket}.cos-internal.{region}.tencentcos.cn")
    assert c.endpoint(BUCKET, REGION) == (f"https://{BUCKET}.cos-internal.{REGION}.tencentcos.cn", None)
    c2, _ = client()
    assert c2.endpoint(BUCKET, REGION) == (URL, None)
    with pytest.raises(ValueError, match="BucketName"):
        c2.endpoint("evil.com/x", REGION)


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, error_xml("InternalError")), (503, error_xml("SlowDown")), (400, error_xml("RequestTimeout")),
     (503, "")],
)
@responses.activate
def test_retryable_failures_are_retried_with_the_same_body(status: int, body: str) -> None:
    responses.put(f"{URL}/k.json", status=status, body=body)
    responses.put(f"{URL}/k.json", status=200)
    c, sleeps = client()
    c.put_object(BUCKET, REGION, "k.json", b"payload")
    assert len(responses.calls) == 2 and len(sleeps) == 1
    first, second = (call.request for call in responses.calls)
    assert first.body == second.body == b"payload"
    assert first.headers["Content-MD5"] == second.headers["Content-MD5"]


@responses.activate
def test_connection_error_is_retried() -> None:
    responses.get(f"{URL}/k", body=requests.ConnectionError("reset"))
    responses.get(f"{URL}/k", body=b"ok")
    c, sleeps = client()
    assert c.get_object(BUCKET, REGION, "k").body == b"ok"
    assert len(sleeps) == 1


@pytest.mark.parametrize("code,status", [("AccessDenied", 403), ("InvalidArgument", 400), ("BadDigest", 400),
                                         ("FileAlreadyExists", 409)])
@responses.activate
def test_final_errors_are_not_retried_and_parsed(code: str, status: int) -> None:
    responses.put(f"{URL}/k", status=status, body=error_xml(code, "nope", "rid-9"))
    c, sleeps = client()
    with pytest.raises(CosError) as ei:
        c.put_object(BUCKET, REGION, "k", b"x")
    err = ei.value
    # AccessDenied is a configuration failure (not retried now; retryable = kept for later), the others final
    assert (err.status, err.code, err.message, err.request_id, err.retryable) == (status, code, "nope", "rid-9",
                                                                                 code == "AccessDenied")
    assert len(responses.calls) == 1 and sleeps == []
    assert err.to_error_info().code == code


@responses.activate
def test_retries_stop_after_max_attempts() -> None:
    responses.get(f"{URL}/k", status=503, body=error_xml("SlowDown"))
    c, sleeps = client()
    with pytest.raises(CosError) as ei:
        c.get_object(BUCKET, REGION, "k")
    assert ei.value.code == "SlowDown" and ei.value.retryable
    assert len(responses.calls) == 4 and len(sleeps) == 3


@responses.activate
def test_head_error_falls_back_to_headers() -> None:
    responses.head(f"{URL}/missing", status=404, headers={"x-cos-request-id": "rid-h"})
    responses.head(f"{URL}/denied", status=403,
                   headers={"x-cos-error-code": "AccessDenied", "x-cos-error-message": "no"})
    c, _ = client()
    with pytest.raises(CosError) as ei:
        c.head_object(BUCKET, REGION, "missing")
    assert (ei.value.status, ei.value.code, ei.value.request_id) == (404, "NoSuchKey", "rid-h")
    with pytest.raises(CosError) as ei:
        c.head_object(BUCKET, REGION, "denied")
    assert (ei.value.code, ei.value.message) == ("AccessDenied", "no")


@responses.activate
def test_redirects_are_not_followed() -> None:
    responses.get(f"{URL}/k", status=302, headers={"Location": "https://evil.example/"})
    c, _ = client()
    with pytest.raises(CosError) as ei:
        c.get_object(BUCKET, REGION, "k")
    assert ei.value.code == "Redirect" and not ei.value.retryable  # final, one call
    assert len(responses.calls) == 1


@responses.activate
def test_expired_deadline_sends_nothing_and_is_retryable() -> None:
    c, _ = client()
    with pytest.raises(CosError) as ei:
        c.get_object(BUCKET, REGION, "k", deadline=Deadline(0))
    assert ei.value.code == "DeadlineExceeded" and ei.value.retryable
    assert len(responses.calls) == 0


@responses.activate
def test_no_retry_when_backoff_does_not_fit_the_deadline() -> None:
    responses.get(f"{URL}/k", status=500, body=error_xml("InternalError"))
    t = [0.0]
    c, sleeps = client()
    # a deadline with 1 ms left: the first failure is final
    with pytest.raises(CosError):
        c.get_object(BUCKET, REGION, "k", deadline=Deadline(0.001, clock=lambda: t[0]))
    assert len(responses.calls) == 1 and sleeps == []


@responses.activate
def test_delete_absent_is_fine_and_other_errors_raise() -> None:
    responses.delete(f"{URL}/gone", status=404, body=error_xml("NoSuchKey"))
    responses.delete(f"{URL}/denied", status=403, body=error_xml("AccessDenied"))
    c, _ = client()
    c.delete_object(BUCKET, REGION, "gone")
    with pytest.raises(CosError):
        c.delete_object(BUCKET, REGION, "denied")


def list_xml(keys: list[str], truncated: bool, next_marker: str = "") -> str:
    contents = "".join(f"<Contents><Key>{k}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                       f"<ETag>\"e\"</ETag><Size>12</Size></Contents>" for k in keys)
    nm = f"<NextMarker>{next_marker}</NextMarker>" if next_marker else ""
    return (f"<ListBucketResult><Name>{BUCKET}</Name><Prefix>p/</Prefix><MaxKeys>1000</MaxKeys>"
            f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>{nm}{contents}</ListBucketResult>")


@responses.activate
def test_list_paginates_with_markers() -> None:
    responses.get(f"{URL}/", body=list_xml(["p/a", "p/b"], True, "p/b"),
                  match=[responses.matchers.query_param_matcher({"prefix": "p/", "max-keys": "1000"})])
    responses.get(f"{URL}/", body=list_xml(["p/c"], False),
                  match=[responses.matchers.query_param_matcher({"prefix": "p/", "max-keys": "1000",
                                                                 "marker": "p/b"})])
    c, _ = client()
    objs = c.iter_objects(BUCKET, REGION, "p/")
    assert [o.key for o in objs] == ["p/a", "p/b", "p/c"] and objs[0].size == 12
    auth = parse_authorization(responses.calls[1].request.headers["Authorization"])
    assert set(auth["q-url-param-list"].split(";")) == {"prefix", "max-keys", "marker"}


def test_parse_list_without_next_marker_uses_last_key_and_refuses_entities() -> None:
    page = parse_list(list_xml(["a", "b"], True).encode())
    assert page.is_truncated and page.next_marker == "b"
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><ListBucketResult>&a;</ListBucketResult>'
    with pytest.raises(Refused, match="MalformedResponse"):
        parse_list(bomb)


def test_keys_and_urls_are_validated() -> None:
    for bad in ["", "/abs", "a/../b", "a//b", "a/./b", "a\nb", "x" * 900]:
        with pytest.raises(InvalidKeyError):
            validate_key(bad)
    assert validate_key("a/b c/中文.json") == "a/b c/中文.json"
    loc = parse_cos_url(f"cos://{BUCKET}.{REGION}/results/x/")
    assert (loc.bucket, loc.region, loc.prefix) == (BUCKET, REGION, "results/x")
    assert loc.key("Tag", "j.json") == "results/x/Tag/j.json"
    assert parse_cos_url(f"cos://{BUCKET}.{REGION}").prefix == ""
    for bad in ["cos://nobucket/x", f"cos://{BUCKET}.BAD_REGION/x", f"cos://{BUCKET}.{REGION}/../x"]:
        with pytest.raises(ValueError):
            parse_cos_url(bad)


@responses.activate
def test_key_is_url_encoded_but_signed_decoded() -> None:
    responses.put(f"{URL}/a%20b/%E4%B8%AD.json", status=200)
    c, _ = client()
    c.put_object(BUCKET, REGION, "a b/中.json", b"{}")
    assert responses.calls[0].request.url == f"{URL}/a%20b/%E4%B8%AD.json"


# -- metadata is ASCII on the wire (moved from the review-fixes file) --------------------------------------
def test_cos_client_percent_encodes_non_ascii_metadata_and_reads_it_back():
    from cijobs.cos import meta_from_headers
    from cijobs_tools.emulator import Emulator

    secret_id, secret_key = "AKIDreviewtest", "review-secret-key-value"
    with Emulator(secret_id=secret_id, secret_key=secret_key, seed=5) as emu:
        cos = CosClient(Settings(cos_endpoint=emu.url, ci_max_attempts=3), lambda: Credentials(secret_id, secret_key),
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
