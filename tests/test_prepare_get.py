"""``prepare_get`` builds exactly the request ``Session.prepare_request`` builds, and falls back to it."""

import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from cijobs.credentials import Credentials
from cijobs.http import new_session, prepare_get
from cijobs.signing import CosSigner

SIGNER = CosSigner(Credentials("AKIDprep", "prep-key", "tok"), "x-ci-security-token", clock=lambda: 1_700_000_000)
HOST = {"Host": "examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"}


def reference(session: requests.Session, url: str, headers: dict, auth) -> requests.PreparedRequest:
    return session.prepare_request(requests.Request("GET", url, headers=headers, auth=auth))


def same(a: requests.PreparedRequest, b: requests.PreparedRequest) -> bool:
    return (a.method, a.url, dict(a.headers), a.body) == (b.method, b.url, dict(b.headers), b.body)


_ids = st.lists(st.from_regex(r"[a-z][0-9a-z]{16,64}", fullmatch=True), min_size=1, max_size=10)
_bases = st.sampled_from(["http://127.0.0.1:8123", "https://examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com",
                          "http://localhost", "https://a-b.c:443"])


@settings(max_examples=150, deadline=None)
@given(base=_bases, ids=_ids, with_host=st.booleans())
def test_plain_job_urls_prepare_exactly_as_requests_does(base, ids, with_host):
    session = new_session(4)
    url = f"{base}/jobs/{','.join(ids)}"
    headers = dict(HOST) if with_host else {}
    fast = prepare_get(session, url, headers, SIGNER)
    assert same(fast, reference(session, url, headers, SIGNER))
    assert fast.headers["Authorization"].startswith("q-sign-algorithm=sha1&")
    assert fast.headers["x-ci-security-token"] == "tok"


def test_urls_requests_would_rewrite_take_requests_path():
    session = new_session(4)
    for url in ["http://127.0.0.1:1/jobs/a b", "http://127.0.0.1:1/jobs/%7e", "HTTP://Example.com/jobs/x",
                "http://127.0.0.1:1/jobs/j?x=1", "http://127.0.0.1:1/a/../jobs", "http://127.0.0.1:1/jobs/ü",
                "http://user:pw@127.0.0.1:1/jobs/x"]:
        assert same(prepare_get(session, url, {}, None), reference(session, url, {}, None)), url


def test_a_session_with_state_of_its_own_takes_requests_path():
    session = new_session(4)
    session.cookies.set("c", "1")
    session.params = {"p": "1"}
    url = "http://127.0.0.1:1/jobs/jabcdefabcdefabcdef"
    prepared = prepare_get(session, url, HOST, SIGNER)
    assert prepared.url == url + "?p=1"
    assert prepared.headers["Cookie"] == "c=1"
    assert same(prepared, reference(session, url, HOST, SIGNER))
