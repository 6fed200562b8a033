"""An in-memory COS behind `responses` (PUT with forbid-overwrite, GET, HEAD, DELETE, GET Bucket),
with injectable failures; used by the sink and pending tests. Its own behaviour is tested at the end."""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
import requests
import responses

from cijobs.cos import CosClient, CosError
from cijobs.credentials import Credentials
from cijobs.settings import Settings
from cijobs.signing import parse_authorization
from fakes import Sleeps

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
HOST = f"{BUCKET}.cos.{REGION}.myqcloud.com"
CREDS = Credentials("AKIDtest", "test-secret-key", None)


pytestmark = pytest.mark.usefixtures("log_stream")  # each test logs to a private buffer


def _err(status: int, code: str) -> tuple[int, dict[str, str], str]:
    return status, {"x-cos-request-id": "fake-rid"}, f"<Error><Code>{code}</Code><Message>{code}</Message>" \
        f"<RequestId>fake-rid</RequestId></Error>"


@dataclass
class FakeCos:
    objects: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    faults: list[Any] = field(default_factory=list)  # (status, code) or an exception, consumed per request
    log: list[tuple[str, str]] = field(default_factory=list)
    page_size: int = 1000

    def _fault(self) -> Optional[Any]:
        return self.faults.pop(0) if self.faults else None

    def handle(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], Any]:
        assert "Authorization" in request.headers
        assert parse_authorization(request.headers["Authorization"])["q-ak"] == CREDS.secret_id
        parts = urlsplit(request.url or "")
        key = unquote(parts.path)[1:]
        method = request.method or "GET"
        self.log.append((method, key))
        fault = self._fault()
        if isinstance(fault, BaseException):
            raise fault
        if fault is not None:
            return _err(*fault)
        if method == "PUT":
            body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
            if request.headers.get("x-cos-forbid-overwrite") == "true" and key in self.objects:
                return _err(409, "FileAlreadyExists")
            meta = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-cos-meta-")}
            meta["Content-Type"] = request.headers.get("Content-Type", "")
            self.objects[key] = (body, meta)
            return 200, {"ETag": '"e"'}, ""
        if method in ("GET", "HEAD") and key == "":
            return self._list(parse_qs(parts.query))
        if key not in self.objects:
            return _err(404, "NoSuchKey") if method != "DELETE" else (204, {}, "")
        body, meta = self.objects[key]
        if method == "DELETE":
            del self.objects[key]
            return 204, {}, ""
        return 200, dict(meta), (body if method == "GET" else "")

    def _list(self, q: dict[str, list[str]]) -> tuple[int, dict[str, str], str]:
        prefix = q.get("prefix", [""])[0]
        marker = q.get("marker", [""])[0]
        limit = min(int(q.get("max-keys", ["1000"])[0]), self.page_size)
        keys = sorted(k for k in self.objects if k.startswith(prefix) and k > marker)
        page, truncated = keys[:limit], len(keys) > limit
        contents = "".join(f"<Contents><Key>{k}</Key><Size>{len(self.objects[k][0])}</Size></Contents>"
                           for k in page)
        nm = f"<NextMarker>{page[-1]}</NextMarker>" if truncated else ""
        return 200, {}, (f"<ListBucketResult><IsTruncated>{str(truncated).lower()}</IsTruncated>{nm}"
                         f"{contents}</ListBucketResult>")


@contextlib.contextmanager
def serve_fake_cos() -> Iterator[FakeCos]:
    """Intercept requests to the canonical COS host and answer from memory."""
    fake = FakeCos()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        pattern = re.compile(rf"https://{re.escape(HOST)}/.*")
        for method in ("GET", "PUT", "HEAD", "DELETE"):
            rsps.add_callback(method, pattern, callback=fake.handle)
        yield fake


@pytest.fixture
def fake_cos() -> Iterator[FakeCos]:
    with serve_fake_cos() as fake:
        yield fake


def make_client(max_attempts: int = 4, **settings: Any) -> tuple[CosClient, Sleeps]:
    sleeps = Sleeps()
    return CosClient(Settings(ci_max_attempts=max_attempts, **settings), lambda: CREDS, sleep=sleeps,
                     rng=random.Random(7)), sleeps


def test_fake_forbids_overwrite_and_lists_pages(fake_cos: FakeCos) -> None:
    c, _ = make_client()
    c.put_object(BUCKET, REGION, "p/a", b"1", forbid_overwrite=True)
    with pytest.raises(CosError) as ei:
        c.put_object(BUCKET, REGION, "p/a", b"2", forbid_overwrite=True)
    assert ei.value.status == 409 and ei.value.code == "FileAlreadyExists"
    c.put_object(BUCKET, REGION, "p/b", b"2", metadata={"state": "Success"})
    assert c.head_object(BUCKET, REGION, "p/b")["x-cos-meta-state"] == "Success"
    fake_cos.page_size = 1
    assert [o.key for o in c.iter_objects(BUCKET, REGION, "p/")] == ["p/a", "p/b"]
