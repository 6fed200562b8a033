"""Security checks end to end: where the signed request can go, token comparison, secrets in logs.

* Signed requests go only to the configured hosts: bucket/region/endpoint fields in events are ignored,
  job IDs with path characters are rejected before anything is sent, and a redirect (CI or COS) is not
  followed: a second local server named in ``Location`` receives nothing.
* HTTP routes compare tokens with ``hmac.compare_digest``; a missing or wrong token is a 401 without detail.
* A whole invocation's log and return value contain no secret key, session token, API token, signature or
  signing key (recomputed from the Authorization headers the emulator received), also when requests fail.
"""

from __future__ import annotations

import hmac
import io
import json
import os
import random
import threading
from collections.abc import Iterator
from contextlib import redirect_stdout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cijobs import routes
from cijobs.ci_client import JobClient
from cijobs.cos import CosClient, CosError
from cijobs.credentials import Credentials
from cijobs.signing import parse_authorization, sign_key
from cijobs_tools.emulator import Emulator
from fakes import load_module

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
SECRET_ID, SECRET_KEY, TOKEN = "AKIDsecuritytest", "security-secret-key-value", "security-session-token-value"
API_TOKEN = "security-api-token-value"
JOB = "j" + "5" * 32
JOB2 = "j" + "6" * 32
ENV_PREFIXES = ("CI_", "COS_", "CMQ_", "RESULT_", "PENDING_", "API_TOKEN", "TENCENTCLOUD_", "TRUST_", "ALLOW_",
                "MAX_", "DEADLINE_", "CLAIM_", "LOG_LEVEL")


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with ``server.status`` + ``Location: server.location``; records what it got."""

    def _any(self) -> None:
        srv: Any = self.server
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        srv.got.append((self.command, self.path, dict(self.headers)))
        self.send_response(srv.status)
        if srv.location:
            self.send_header("Location", srv.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _any

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def servers() -> Iterator[tuple[Any, Any]]:
    """A redirecting server and the redirect target."""
    target: Any = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    target.got, target.status, target.location = [], 200, None
    redirector: Any = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    redirector.got, redirector.status = [], 302
    redirector.location = f"http://127.0.0.1:{target.server_address[1]}/steal"
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (target, redirector)]
    for t in threads:
        t.start()
    yield redirector, target
    for s in (target, redirector):
        s.shutdown()
        s.server_close()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_are_not_followed_by_ci_or_cos(servers: tuple[Any, Any], status: int) -> None:
    from cijobs.settings import Settings

    redirector, target = servers
    redirector.status = status
    url = f"http://127.0.0.1:{redirector.server_address[1]}"
    s = Settings(ci_bucket=BUCKET, ci_region=REGION, ci_endpoint=url, cos_endpoint=url, ci_max_attempts=3)
    creds = Credentials(SECRET_ID, SECRET_KEY, TOKEN)
    result = JobClient(s, credentials=lambda: creds, sleep=lambda _s: None, rng=random.Random(1)).query([JOB])
    [failure] = result.failed
    assert failure.error.code == "Redirect" and not failure.retryable
    cos = CosClient(s, lambda: creds, sleep=lambda _s: None, rng=random.Random(2))
    with pytest.raises(CosError):
        cos.put_object(BUCKET, REGION, "results/x.json", b"{}", "application/json", {})
    with pytest.raises(CosError):
        cos.get_object(BUCKET, REGION, "results/x.json")
    assert len(redirector.got) >= 3 and all("Authorization" in h for _m, _p, h in redirector.got)
    assert target.got == []  # neither the signed request nor anything else reached the redirect target


# -- end to end through main_handler ------------------------------------------------------------------

def load_handler() -> Any:
    return load_module("scf_index_security", "handler", "index.py")


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Emulator, Any]]:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=TOKEN, seed=9) as emu:
        env = emu.env(BUCKET, REGION) | {
            "RESULT_SINK": f"cos://{BUCKET}.{REGION}/results", "PENDING_STORE": f"cos://{BUCKET}.{REGION}/state",
            "API_TOKEN": API_TOKEN, "HTTP_MAX_ATTEMPTS": "2", "DEADLINE_MARGIN_S": "0.5", "LOG_LEVEL": "debug",
            "TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
            "TENCENTCLOUD_SESSIONTOKEN": TOKEN,
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        emu.ci.add_job(JOB, state="Success")
        emu.ci.add_job(JOB2, state="Running")
        handler = load_handler()
        yield emu, handler
        handler.reset()


CTX = {"time_limit_in_ms": 20000, "request_id": "sec-1", "function_name": "cijobs"}


def http_event(method: str, path: str, body: Any = None, token: str = API_TOKEN, **extra: Any) -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    event: dict[str, Any] = {"httpMethod": method, "path": path, "headers": headers, "queryStringParameters": {},
                             "isBase64Encoded": False, "body": None if body is None else json.dumps(body)}
    event.update(extra)
    return event


def test_token_is_compared_with_compare_digest_and_401_has_no_detail(world: Any, monkeypatch) -> None:
    emu, handler = world
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(routes.hmac, "compare_digest", spy)
    ok = handler.main_handler(http_event("GET", f"/jobs/{JOB}"), CTX)
    assert ok["statusCode"] == 200 and (API_TOKEN.encode(), API_TOKEN.encode()) in calls
    for token in ("", "wrong-token", API_TOKEN + "x", API_TOKEN[:-1]):
        before = len(emu.ci.requests)
        resp = handler.main_handler(http_event("GET", f"/jobs/{JOB}", token=token), CTX)
        assert resp["statusCode"] == 401
        assert json.loads(resp["body"]) == {"Error": {"Code": "Unauthorized", "Message": "unauthorized"}}
        assert len(emu.ci.requests) == before  # nothing sent to CI
    assert sum(1 for _a, b in calls if b == API_TOKEN.encode()) >= 4  # every offered token went through it


def test_event_fields_cannot_redirect_the_signed_request(world: Any) -> None:
    emu, handler = world
    hostile = {"Bucket": "evil-1250000000", "Region": "ap-evil", "Endpoint": "http://127.0.0.1:9",
               "CI_ENDPOINT": "http://127.0.0.1:9", "Host": "evil.example.com"}
    handler.main_handler({"JobIds": [JOB], **hostile}, CTX)
    handler.main_handler({"Type": "Timer", "Message": json.dumps({"JobIds": [JOB2], **hostile}), **hostile}, CTX)
    body = {"JobIds": [JOB2], **hostile}
    resp = handler.main_handler(http_event("POST", "/jobs/track", body), CTX)
    assert resp["statusCode"] == 200
    assert emu.ci.requests and all(r.headers.get("host", r.headers.get("Host")) == f"{BUCKET}.ci.{REGION}.myqcloud.com"
                                   for r in emu.ci.requests)
    buckets = {b for (b, _k) in emu.cos.objects}
    assert buckets == {BUCKET}


@pytest.mark.parametrize("bad", ["../" + JOB, JOB + "%2F..", JOB + ",,", JOB + " x", "j" + "é" * 20,
                                 JOB + "\r\nX-Evil: 1", JOB + "/../../x"])
def test_ids_with_path_characters_never_reach_ci(world: Any, bad: str) -> None:
    emu, handler = world
    resp = handler.main_handler(http_event("POST", "/jobs/track", {"JobIds": [bad]}), CTX)
    assert resp["statusCode"] == 400
    summary = handler.main_handler({"JobIds": [bad, JOB]}, CTX)
    assert {o["JobId"]: o["Outcome"] for o in summary["Outcomes"]}.get(JOB) == "written"
    for r in emu.ci.requests:
        assert r.ids and all(i == JOB for i in r.ids) and r.path == f"/jobs/{JOB}"


def test_no_secret_in_logs_or_outputs_also_when_requests_fail(world: Any) -> None:
    emu, handler = world
    out = io.StringIO()
    with redirect_stdout(out):
        results = [handler.main_handler({"JobIds": [JOB, JOB2]}, CTX),
                   handler.main_handler(http_event("GET", f"/jobs/{JOB},{JOB2}"), CTX)]
        emu.faults.update({"fail_rate": 1.0})  # every CI and COS request fails: errors are logged
        try:
            results.append(handler.main_handler({"Type": "Timer", "Message": JOB}, CTX))
        except Exception as exc:  # the timer raises (nothing could be parked): its message is an output too
            results.append(str(exc))
        results.append(handler.main_handler(http_event("GET", f"/jobs/{JOB}"), CTX))
        results.append(handler.main_handler(http_event("POST", "/callbacks/ci", None, token="",
                                                       queryStringParameters={"token": "wrong"}), CTX))
    logs = out.getvalue()
    assert "http.request" in logs and "error" in logs  # failures were logged
    secrets = {SECRET_KEY, TOKEN, API_TOKEN}
    auths = [r.headers.get("Authorization") or r.headers.get("authorization") or "" for r in emu.ci.requests]
    auths += [r.headers.get("Authorization") or r.headers.get("authorization") or "" for r in emu.cos.requests]
    assert auths and all(auths)
    for auth in auths:
        fields = parse_authorization(auth)
        secrets.add(fields["q-signature"])
        secrets.add(sign_key(SECRET_KEY, fields["q-key-time"]))
    text = logs + json.dumps(results, default=str)
    leaked = sorted(s for s in secrets if s in text)
    assert leaked == [], f"{len(leaked)} secret value(s) in logs/outputs"
