"""The emulator's COS side: PUT/GET/HEAD/DELETE Object and GET Bucket, signed like the real service."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import Any, Optional

import defusedxml.ElementTree as DET
import pytest
import requests

from cijobs import signing
from cijobs.credentials import Credentials
from cijobs_tools.emulator import Emulator

SID, SKEY = "AKIDtest", "test-secret-key"
CREDS = Credentials(SID, SKEY)
BUCKET = "examplebucket-1250000000"
HOST = f"{BUCKET}.cos.ap-guangzhou.myqcloud.com"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(secret_id=SID, secret_key=SKEY, seed=3) as e:
        yield e


@pytest.fixture
def s() -> Iterator[requests.Session]:
    with requests.Session() as sess:
        yield sess


def call(
    emu: Emulator, s: requests.Session, method: str, key: str, body: Optional[bytes] = None,
    headers: Optional[dict[str, str]] = None, params: Optional[dict[str, str]] = None,
    creds: Credentials = CREDS,
) -> requests.Response:
    h = {"Host": HOST}
    h.update(headers or {})
    return s.request(method, f"{emu.url}/{key}", data=body, headers=h, params=params,
                     auth=signing.CosSigner(creds, "x-cos-security-token"), allow_redirects=False, timeout=5)


def md5_b64(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body).digest()).decode()


def code_of(r: requests.Response) -> str:
    root: Any = DET.fromstring(r.content)
    assert root.tag == "Error"
    assert root.findtext("Resource")
    return str(root.findtext("Code"))


def test_put_get_head_delete(emu: Emulator, s: requests.Session) -> None:
    body = b'{"JobId": "j1"}'
    r = call(emu, s, "PUT", "results/j 1.json", body,
             {"Content-Type": "application/json", "Content-MD5": md5_b64(body), "x-cos-meta-state": "Success"})
    assert r.status_code == 200, r.text
    assert r.headers["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    assert r.headers["x-cos-request-id"]
    stored = emu.cos.objects[(BUCKET, "results/j 1.json")]
    assert stored.body == body
    assert stored.headers["content-type"] == "application/json"
    assert stored.headers["x-cos-meta-state"] == "Success"
    assert emu.cos.put_counts[(BUCKET, "results/j 1.json")] == 1

    g = call(emu, s, "GET", "results/j 1.json")
    assert g.status_code == 200
    assert g.content == body
    assert g.headers["Content-Type"] == "application/json"
    assert g.headers["x-cos-meta-state"] == "Success"

    h = call(emu, s, "HEAD", "results/j 1.json")
    assert h.status_code == 200
    assert h.content == b""
    assert h.headers["Content-Length"] == str(len(body))

    assert call(emu, s, "DELETE", "results/j 1.json").status_code == 204
    assert call(emu, s, "DELETE", "results/j 1.json").status_code == 204  # missing: still 204
    missing = call(emu, s, "GET", "results/j 1.json")
    assert missing.status_code == 404
    assert code_of(missing) == "NoSuchKey"
    head_missing = call(emu, s, "HEAD", "results/j 1.json")
    assert head_missing.status_code == 404
    assert head_missing.content == b""


def test_bad_digest_stores_nothing(emu: Emulator, s: requests.Session) -> None:
    r = call(emu, s, "PUT", "a.json", b"one", {"Content-MD5": md5_b64(b"two")})
    assert r.status_code == 400
    assert code_of(r) == "BadDigest"
    bad = call(emu, s, "PUT", "a.json", b"one", {"Content-MD5": "not-base64!"})
    assert bad.status_code == 400
    assert code_of(bad) == "InvalidDigest"
    assert (BUCKET, "a.json") not in emu.cos.objects


def test_forbid_overwrite(emu: Emulator, s: requests.Session) -> None:
    hdr = {"x-cos-forbid-overwrite": "true"}
    assert call(emu, s, "PUT", "once.json", b"1", hdr).status_code == 200
    r = call(emu, s, "PUT", "once.json", b"2", hdr)
    assert r.status_code == 409
    assert code_of(r) == "FileAlreadyExists"
    assert emu.cos.objects[(BUCKET, "once.json")].body == b"1"
    assert call(emu, s, "PUT", "once.json", b"3").status_code == 200  # without the header: overwrite
    assert emu.cos.objects[(BUCKET, "once.json")].body == b"3"
    assert emu.cos.put_counts[(BUCKET, "once.json")] == 2
    assert len(set(emu.cos.put_bodies[(BUCKET, "once.json")])) == 2


def test_list_prefix_marker_delimiter(emu: Emulator, s: requests.Session) -> None:
    for k in ("p/a.json", "p/b.json", "p/c.json", "p/sub/d.json", "q/e.json"):
        assert call(emu, s, "PUT", k, k.encode()).status_code == 200
    r = call(emu, s, "GET", "", params={"prefix": "p/", "max-keys": "2"})
    assert r.status_code == 200, r.text
    root: Any = DET.fromstring(r.content)
    assert root.tag == "ListBucketResult"
    assert root.findtext("Name") == BUCKET
    assert [c.findtext("Key") for c in root.findall("Contents")] == ["p/a.json", "p/b.json"]
    assert root.findtext("IsTruncated") == "true"
    assert root.findtext("NextMarker") == "p/b.json"
    first = root.find("Contents")
    assert first.findtext("Size") == str(len(b"p/a.json"))
    assert first.findtext("ETag") == f'"{hashlib.md5(b"p/a.json").hexdigest()}"'
    assert first.findtext("LastModified").endswith(".000Z")
    r2 = call(emu, s, "GET", "", params={"prefix": "p/", "marker": "p/b.json", "delimiter": "/"})
    root2: Any = DET.fromstring(r2.content)
    assert [c.findtext("Key") for c in root2.findall("Contents")] == ["p/c.json"]
    assert [c.findtext("Prefix") for c in root2.findall("CommonPrefixes")] == ["p/sub/"]
    assert root2.findtext("IsTruncated") == "false"
    assert root2.find("NextMarker") is None


def test_signature_checked_on_cos(emu: Emulator, s: requests.Session) -> None:
    r = call(emu, s, "PUT", "x.json", b"1", creds=Credentials(SID, "wrong"))
    assert r.status_code == 403
    assert code_of(r) == "SignatureDoesNotMatch"
    assert (BUCKET, "x.json") not in emu.cos.objects
    # a signed query parameter that is changed after signing
    auth = signing.sign(CREDS, "GET", "/", {"prefix": "a"}, {"host": HOST}, __import__("time").time())
    bad = s.get(f"{emu.url}/", params={"prefix": "b"}, headers={"Host": HOST, "Authorization": auth})
    assert bad.status_code == 403


def test_token_only_x_cos_header_on_cos_host(s: requests.Session) -> None:
    with Emulator(secret_id=SID, secret_key=SKEY, token="tok") as emu:
        ok = call(emu, s, "PUT", "t.json", b"1", creds=Credentials(SID, SKEY, "tok"))
        assert ok.status_code == 200
        h = {"Host": HOST, "x-ci-security-token": "tok"}
        r = s.put(f"{emu.url}/t2.json", data=b"1", headers=h,
                  auth=signing.CosSigner(Credentials(SID, SKEY), "x-cos-security-token"))
        assert r.status_code == 403


# -- the stock CosClient against the emulator (moved from the retired responses-based COS fake) -----------
def test_cos_client_forbids_overwrite_keeps_metadata_and_lists_pages() -> None:
    from cijobs.cos import CosError
    from fakes.cos import BUCKET, REGION, cos_client, emulated_cos

    with emulated_cos() as emu:
        c, _ = cos_client(emu)
        c.put_object(BUCKET, REGION, "p/a", b"1", forbid_overwrite=True)
        with pytest.raises(CosError) as ei:
            c.put_object(BUCKET, REGION, "p/a", b"2", forbid_overwrite=True)
        assert ei.value.status == 409 and ei.value.code == "FileAlreadyExists"
        c.put_object(BUCKET, REGION, "p/b", b"2", metadata={"state": "Success"})
        assert c.head_object(BUCKET, REGION, "p/b")["x-cos-meta-state"] == "Success"
        first = c.list_objects(BUCKET, REGION, "p/", max_keys=1)
        assert [o.key for o in first.objects] == ["p/a"] and first.is_truncated
        second = c.list_objects(BUCKET, REGION, "p/", first.next_marker, max_keys=1)
        assert [o.key for o in second.objects] == ["p/b"]
        assert [o.key for o in c.iter_objects(BUCKET, REGION, "p/")] == ["p/a", "p/b"]
