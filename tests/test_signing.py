"""COS/CI request signature: fixed step-by-step vectors and the official SDK as an oracle.

The oracle is ``qcloud_cos.cos_auth.CosS3Auth`` from cos-python-sdk-v5 (a test
dependency). It reads ``time.time()``; the tests patch it so both sides use the
same key time.
"""

from __future__ import annotations

import string
from types import SimpleNamespace
from typing import Any

import pytest
import qcloud_cos.cos_auth as sdk_auth
import requests
import responses
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from qcloud_cos import CosConfig, CosS3Client

from cijobs import ci_client, cos, signing
from cijobs.credentials import Credentials

SECRET_ID = "AKIDtestSecretId0001"
SECRET_KEY = "test-secret-key"
CREDS = Credentials(SECRET_ID, SECRET_KEY)
CI_HOST = "examplebucket-1250000000.ci.ap-chongqing.myqcloud.com"
COS_HOST = "examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com"
NOW = 1700000000


def _conf(token: str | None = None) -> Any:
    return CosConfig(Region="ap-guangzhou", SecretId=SECRET_ID, SecretKey=SECRET_KEY, Token=token)


def sdk_sign(monkeypatch: pytest.MonkeyPatch, r: Any, path: str, params: dict[str, str], expire: int,
             now: float = NOW) -> str:
    """Sign ``r`` (anything with method/url/headers) with the official SDK; return its Authorization."""
    monkeypatch.setattr(sdk_auth.time, "time", lambda: now)
    sdk_auth.CosS3Auth(_conf(), path, params=params, expire=expire)(r)
    return str(r.headers["Authorization"])


# --------------------------------------------------------------------------- fixed vectors
# Each vector: inputs, then every intermediate value. http_string and
# string_to_sign are written out by hand; the hex values were produced once and
# are cross-checked against the SDK in test_vector_matches_sdk.
VECTORS = [
    dict(
        id="ci-query-two-ids",
        method="GET",
        path="/jobs/j8d121820f5e411ec926ef19d53ba9c6f,j9c0a4726f6ac11ec96aaa9b64ab18d00",
        params={},
        headers={"Host": CI_HOST},
        now=1497530262,
        expire=600,
        key_time="1497530202;1497530862",
        sign_key="dda893962761befc0b9ff10c74285a6c41781ec4",
        http_string=(
            "get\n/jobs/j8d121820f5e411ec926ef19d53ba9c6f,j9c0a4726f6ac11ec96aaa9b64ab18d00\n\n"
            f"host={CI_HOST}\n"
        ),
        string_to_sign="sha1\n1497530202;1497530862\nabc8605b3d65c45c72bf1b8bd1c57fd2758c8d45\n",
        signature="d00a7495c1c4b4ae27a29b97f017fd0c43a1641e",
        header_list="host",
        param_list="",
    ),
    dict(
        id="ci-query-with-token",
        method="GET",
        path="/jobs/j8d121820f5e411ec926ef19d53ba9c6f",
        params={},
        headers={"Host": CI_HOST, "x-ci-security-token": "tok/en+=", "User-Agent": "x"},
        now=1700000000,
        expire=600,
        key_time="1699999940;1700000600",
        sign_key="072acf837389660f2aec651f66bc51f79961f603",
        http_string=(
            "get\n/jobs/j8d121820f5e411ec926ef19d53ba9c6f\n\n"
            f"host={CI_HOST}&x-ci-security-token=tok%2Fen%2B%3D\n"
        ),
        string_to_sign="sha1\n1699999940;1700000600\n963db277bd8abd8dc785d05efb591518bfe896e0\n",
        signature="ac0290a65c98659c300a18db39c8150181e41f49",
        header_list="host;x-ci-security-token",
        param_list="",
    ),
    dict(
        id="cos-put-non-ascii-key-params",
        method="PUT",
        path="/results/Transcode/任务 a+b.json",
        params={"versionId": "", "response-content-type": "application/json"},
        headers={"Host": COS_HOST, "Content-Type": "application/json", "Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg==",
                 "x-cos-security-token": "T0k"},
        now=1700000000,
        expire=3600,
        key_time="1699999940;1700003600",
        sign_key="85e1e2ca2022f80b27655b71c2f4641233a6df23",
        http_string=(
            "put\n/results/Transcode/任务 a+b.json\nresponse-content-type=application%2Fjson&versionid=\n"
            "content-md5=1B2M2Y8AsgTpgAmY7PhCfg%3D%3D&content-type=application%2Fjson"
            f"&host={COS_HOST}&x-cos-security-token=T0k\n"
        ),
        string_to_sign="sha1\n1699999940;1700003600\n36759835a7e9ae521c91e81d253e612ac06cdc60\n",
        signature="da908379303113cb04cffc0f56e75b82778f70b8",
        header_list="content-md5;content-type;host;x-cos-security-token",
        param_list="response-content-type;versionid",
    ),
]


@pytest.mark.parametrize("v", VECTORS, ids=[str(v["id"]) for v in VECTORS])
def test_vector_step_by_step(v: dict[str, Any]) -> None:
    kt = signing.key_time(v["now"], v["expire"])
    assert kt == v["key_time"]
    skey = signing.sign_key(SECRET_KEY, kt)
    assert skey == v["sign_key"]
    hdrs = signing.signed_headers(v["headers"])
    assert "User-Agent" not in hdrs
    hs = signing.http_string(v["method"], v["path"], v["params"], hdrs)
    assert hs == v["http_string"]
    sts = signing.string_to_sign(kt, hs)
    assert sts == v["string_to_sign"]
    sig = signing.signature(skey, sts)
    assert sig == v["signature"]
    expected = (
        f"q-sign-algorithm=sha1&q-ak={SECRET_ID}&q-sign-time={kt}&q-key-time={kt}"
        f"&q-header-list={v['header_list']}&q-url-param-list={v['param_list']}&q-signature={sig}"
    )
    assert signing.authorization(SECRET_ID, kt, v["params"], hdrs, sig) == expected
    assert signing.sign(CREDS, v["method"], v["path"], v["params"], v["headers"], v["now"], v["expire"]) == expected
    assert signing.parse_authorization(expected)["q-signature"] == sig


@pytest.mark.parametrize("v", VECTORS, ids=[str(v["id"]) for v in VECTORS])
def test_vector_matches_sdk(v: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    r = SimpleNamespace(method=v["method"], url=f"https://{v['headers']['Host']}/x", headers=dict(v["headers"]))
    ours = signing.sign(CREDS, v["method"], v["path"], v["params"], v["headers"], v["now"], v["expire"])
    assert sdk_sign(monkeypatch, r, v["path"], v["params"], v["expire"], now=v["now"] + 0.9) == ours


def test_key_time_truncates_and_has_skew() -> None:
    assert signing.key_time(100.99, 10) == "40;110"
    assert signing.key_time(1000, expire_s=5, skew_s=0) == "1000;1005"


def test_signed_headers_choice() -> None:
    hdrs = {"Host": "h", "X-Cos-Meta-A": "1", "x-ci-security-token": "t", "Content-Type": "a/b", "Range": "bytes=0-1",
            "User-Agent": "u", "Accept": "*/*", "Accept-Encoding": "gzip", "Connection": "keep-alive", "Date": "d",
            "Authorization": "old", "Pic-Operations": "{}"}
    assert set(signing.signed_headers(hdrs)) == {"Host", "X-Cos-Meta-A", "x-ci-security-token", "Content-Type",
                                                  "Range", "Pic-Operations"}


def test_header_names_differing_in_case_collapse_like_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    hdrs = {"Host": "a.example", "host": "b.example"}
    r = SimpleNamespace(method="GET", url="https://a.example/", headers=dict(hdrs))
    ours = signing.sign(CREDS, "GET", "/p", {}, hdrs, NOW, 600)
    assert "q-header-list=host&" in ours
    assert sdk_sign(monkeypatch, r, "/p", {}, 600) == ours


# --------------------------------------------------------------------------- hypothesis oracle
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
_path = st.builds(
    lambda parts: "/" + "/".join(parts),
    st.lists(
        st.one_of(
            _text,
            st.text(alphabet=",;:@&=+$!*'()[]#?% ./~-_", max_size=8),
            st.just("jobs/j8d121820f5e411ec926ef19d53ba9c6f,j9c0a4726f6ac11ec96aaa9b64ab18d00"),
            st.text(alphabet="中文测试任务éß😀", min_size=1, max_size=5),
        ),
        min_size=1, max_size=4,
    ),
)
_KNOWN_HEADERS = ["host", "content-type", "content-md5", "content-length", "range", "x-cos-meta-a", "x-cos-acl",
                  "x-ci-security-token", "x-cos-security-token", "user-agent", "accept", "date", "pic-operations",
                  "if-match", "cache-control", "x-other", "origin"]
_header_name = st.one_of(
    st.builds(lambda n, flips: "".join(c.upper() if f else c for c, f in zip(n, flips)),
              st.sampled_from(_KNOWN_HEADERS), st.lists(st.booleans(), min_size=30, max_size=30)),
    st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=12),
)
_header_value = st.text(alphabet=string.ascii_letters + string.digits + " /+=;:,._-~%&?*()@!", max_size=20).map(
    lambda s: s.strip()
)
_params = st.dictionaries(
    st.one_of(st.text(string.ascii_letters + "-_", min_size=1, max_size=10),
              st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=6)),
    st.one_of(st.just(""), _text),
    max_size=4,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD"]), path=_path, params=_params,
       headers=st.dictionaries(_header_name, _header_value, max_size=6),
       now=st.integers(min_value=100, max_value=4_000_000_000), expire=st.integers(1, 100_000))
def test_pure_sign_matches_sdk(monkeypatch: pytest.MonkeyPatch, method: str, path: str, params: dict[str, str],
                               headers: dict[str, str], now: int, expire: int) -> None:
    host = CI_HOST
    r = SimpleNamespace(method=method, url=f"https://{host}/whatever", headers=dict(headers))
    expected = sdk_sign(monkeypatch, r, path, params, expire, now=now + 0.5)
    ours_headers = dict(headers)
    if not any(k.lower() == "host" for k in ours_headers):
        ours_headers["host"] = host
    assert signing.sign(CREDS, method, path, params, ours_headers, now + 0.5, expire) == expected


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_path, params=_params, headers=st.dictionaries(_header_name, _header_value, max_size=5),
       token=st.one_of(st.none(), st.text(string.ascii_letters + string.digits + "+/=", min_size=4, max_size=40)),
       ci=st.booleans())
def test_cos_signer_on_prepared_request_matches_sdk(monkeypatch: pytest.MonkeyPatch, path: str,
                                                    params: dict[str, str], headers: dict[str, str],
                                                    token: str | None, ci: bool) -> None:
    """Our requests auth on a real PreparedRequest (URL built the SDK's way) gives the SDK's header.

    Excluded: keys whose last segment is ``.`` or ``..``. urllib3 removes that dot
    segment from the URL it sends while the SDK signs the key as given, so the
    SDK's own request would be rejected; our signer signs the path actually sent.
    """
    assume(not (path.endswith("/.") or path.endswith("/..")))
    headers = {k: v for k, v in headers.items() if k.lower() not in ("x-ci-security-token", "x-cos-security-token")}
    conf = _conf()
    endpoint = "ci.ap-chongqing.myqcloud.com" if ci else "cos.ap-guangzhou.myqcloud.com"
    url = conf.uri(bucket="examplebucket-1250000000", path=path, endpoint=endpoint)
    token_header = ci_client.TOKEN_HEADER if ci else cos.TOKEN_HEADER  # what JobClient / CosClient send
    sdk_headers = dict(headers)
    if token:
        sdk_headers[token_header] = token
    sdk_req = requests.Request("GET", url, params=params, headers=sdk_headers).prepare()
    our_req = requests.Request("GET", url, params=params, headers=dict(headers)).prepare()
    expected = sdk_sign(monkeypatch, sdk_req, path, params, 600, now=NOW + 0.25)
    signer = signing.CosSigner(Credentials(SECRET_ID, SECRET_KEY, token), token_header, clock=lambda: NOW + 0.25)
    signer(our_req)
    assert our_req.headers["Authorization"] == expected
    if token:
        assert our_req.headers[token_header] == token
        assert token_header in signing.parse_authorization(expected)["q-header-list"].split(";")


# --------------------------------------------------------------------------- token header + whole-SDK request
@responses.activate
def test_ci_request_with_token_matches_sdk_ci_get_media_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's own ci_get_media_jobs request (captured) carries the same token header and signature."""
    monkeypatch.setattr(sdk_auth.time, "time", lambda: NOW + 0.1)
    ids = "j8d121820f5e411ec926ef19d53ba9c6f,j9c0a4726f6ac11ec96aaa9b64ab18d00"
    responses.add(responses.GET, f"https://{CI_HOST}/jobs/{ids.replace(',', '%2C')}", body="<Response/>",
                  content_type="application/xml")
    conf = CosConfig(Region="ap-chongqing", SecretId=SECRET_ID, SecretKey=SECRET_KEY, Token="sts-token-value")
    CosS3Client(conf, retry=0).ci_get_media_jobs(Bucket="examplebucket-1250000000", JobIDs=ids)
    sent = responses.calls[0].request
    assert sent.headers["x-ci-security-token"] in (b"sts-token-value", "sts-token-value")  # the SDK sends bytes

    ours = requests.Request("GET", f"https://{CI_HOST}/jobs/{ids}").prepare()
    signing.CosSigner(Credentials(SECRET_ID, SECRET_KEY, "sts-token-value"), "x-ci-security-token",
                      clock=lambda: NOW + 0.1, expire_s=10000)(ours)  # the SDK's default validity
    assert ours.url is not None and ours.url.endswith(f"/jobs/{ids}")  # commas stay literal when we send
    assert ours.headers["x-ci-security-token"] == "sts-token-value"
    fields = signing.parse_authorization(ours.headers["Authorization"])
    assert fields["q-header-list"] == "host;x-ci-security-token"
    # Same signed headers (host + token) and key time: identical signature.
    assert fields == signing.parse_authorization(sent.headers["Authorization"])


def test_signer_repr_and_authorization_hide_secrets() -> None:
    creds = Credentials(SECRET_ID, "very-secret-key", "very-secret-token")
    signer = signing.CosSigner(creds, "x-ci-security-token", clock=lambda: NOW)
    assert "very-secret" not in repr(signer) and "very-secret" not in repr(creds)
    req = signer(requests.Request("GET", f"https://{CI_HOST}/jobs/jx").prepare())
    assert "very-secret-key" not in req.headers["Authorization"]


def test_explicit_host_header_is_signed_instead_of_url_host() -> None:
    req = requests.Request("GET", "http://127.0.0.1:8123/jobs/ja,jb", headers={"Host": CI_HOST}).prepare()
    signing.CosSigner(CREDS, clock=lambda: NOW)(req)
    kt = signing.key_time(NOW)
    hs = signing.http_string("GET", "/jobs/ja,jb", {}, {"host": CI_HOST})
    sig = signing.signature(signing.sign_key(SECRET_KEY, kt), signing.string_to_sign(kt, hs))
    assert signing.parse_authorization(req.headers["Authorization"])["q-signature"] == sig
