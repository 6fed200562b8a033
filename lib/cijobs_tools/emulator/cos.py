"""The COS side: an in-memory object store and PUT/GET/HEAD/DELETE Object + GET Bucket (list) on the ``.cos.`` host.

Buckets are created on first use. ``objects`` maps ``(bucket, key)`` to a
:class:`StoredObject`; ``put_counts`` counts successful PUTs per ``(bucket, key)``
and ``put_bodies`` keeps the MD5 of every body PUT to a key (so a soak can check
that no object was written twice with different content).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional
from urllib.parse import quote
from xml.sax.saxutils import escape

from .auth import AuthError, KeyRing, verify_cos
from .wire import XML, Request, RequestIds, Response, error_response

TOKEN_HEADERS = ("x-cos-security-token",)
# request headers kept as object metadata and returned by GET/HEAD
KEPT_HEADERS = (
    "content-type", "cache-control", "content-disposition", "content-encoding", "content-language", "expires",
    "x-cos-storage-class", "x-cos-tagging",
)
MAX_KEYS = 1000
REQUEST_LOG_CAP = 50_000


@dataclass
class StoredObject:
    body: bytes
    headers: dict[str, str]
    etag: str = ""
    last_modified: float = 0.0

    @property
    def size(self) -> int:
        return len(self.body)


@dataclass
class CosRequest:
    method: str
    bucket: str
    key: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


@dataclass
class CosStore:
    keys: KeyRing
    ids: RequestIds
    clock: Callable[[], float] = time.time
    objects: dict[tuple[str, str], StoredObject] = field(default_factory=dict)
    put_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    put_bodies: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    buckets: set[str] = field(default_factory=set)
    requests: list[CosRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()

    # -- direct access for tests ---------------------------------------------------------------
    def get(self, bucket: str, key: str) -> Optional[StoredObject]:
        with self._lock:
            return self.objects.get((bucket, key))

    def put(self, bucket: str, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        with self._lock:
            self._store(bucket, key, body, {"content-type": content_type})

    def clear(self) -> None:
        with self._lock:
            self.objects.clear()
            self.put_counts.clear()
            self.put_bodies.clear()
            self.buckets.clear()
            self.requests.clear()

    def _store(self, bucket: str, key: str, body: bytes, headers: dict[str, str]) -> StoredObject:
        md5 = hashlib.md5(body).hexdigest()  # noqa: S324 - ETag, not security
        obj = StoredObject(body, headers, f'"{md5}"', self.clock())
        self.buckets.add(bucket)
        self.objects[(bucket, key)] = obj
        self.put_counts[(bucket, key)] = self.put_counts.get((bucket, key), 0) + 1
        self.put_bodies.setdefault((bucket, key), []).append(md5)
        return obj

    # -- HTTP ------------------------------------------------------------------------------------
    def handle(self, req: Request, bucket: str, region: str) -> Response:
        key = req.path[1:] if req.path.startswith("/") else req.path
        resp = self._handle(req, bucket, key)
        with self._lock:
            if len(self.requests) >= REQUEST_LOG_CAP:
                del self.requests[: REQUEST_LOG_CAP // 2]
            self.requests.append(CosRequest(req.method, bucket, key, dict(req.query), dict(req.headers), resp.status))
        return resp

    def _err(self, status: int, code: str, message: str, resource: str, head: bool = False) -> Response:
        return error_response("cos", status, code, message, self.ids, resource=resource, head_only=head)

    def _ok(self, status: int, body: bytes = b"", headers: Optional[dict[str, str]] = None,
            ctype: Optional[str] = None, head: bool = False) -> Response:
        h = {"x-cos-request-id": self.ids.next()}
        h.update(headers or {})
        return Response(status, body, h, ctype, server="tencent-cos", head_only=head)

    def _handle(self, req: Request, bucket: str, key: str) -> Response:
        resource = f"{req.host}/{key}"
        head = req.method == "HEAD"
        try:
            verify_cos(req, self.keys, self.clock(), TOKEN_HEADERS)
        except AuthError as e:
            return self._err(e.status, e.code, e.message, resource, head)
        if not key:
            if req.method == "GET":
                return self._list(req, bucket)
            if req.method in ("PUT", "HEAD"):
                with self._lock:
                    self.buckets.add(bucket)
                return self._ok(200, head=head)
            return self._err(405, "MethodNotAllowed", f"{req.method} on a bucket is not emulated", resource)
        if req.method == "PUT":
            return self._put(req, bucket, key, resource)
        if req.method in ("GET", "HEAD"):
            with self._lock:
                obj = self.objects.get((bucket, key))
            if obj is None:
                return self._err(404, "NoSuchKey", "The specified key does not exist.", resource, head)
            headers = {"ETag": obj.etag, "Last-Modified": _http_date(obj.last_modified)}
            ctype = obj.headers.get("content-type", "application/octet-stream")
            headers.update({k: v for k, v in obj.headers.items() if k != "content-type"})
            return self._ok(200, obj.body, headers, ctype, head)
        if req.method == "DELETE":
            with self._lock:
                self.objects.pop((bucket, key), None)
            return self._ok(204)
        return self._err(405, "MethodNotAllowed", f"{req.method} is not emulated", resource)

    def _put(self, req: Request, bucket: str, key: str, resource: str) -> Response:
        md5_header = req.header("content-md5")
        if md5_header is not None:
            try:
                given = base64.b64decode(md5_header, validate=True)
            except (binascii.Error, ValueError):
                given = b""
            if len(given) != 16:
                return self._err(400, "InvalidDigest", "The Content-MD5 you specified is not valid.", resource)
            if given != hashlib.md5(req.body).digest():  # noqa: S324 - protocol checksum
                return self._err(400, "BadDigest", "The Content-MD5 you specified did not match what we received.",
                                 resource)
        headers = {k: v for k, v in req.headers.items() if k in KEPT_HEADERS or k.startswith("x-cos-meta-")}
        forbid = (req.header("x-cos-forbid-overwrite") or "").lower() == "true"
        with self._lock:
            if forbid and (bucket, key) in self.objects:
                return self._err(409, "FileAlreadyExists", "The object already exists.", resource)
            obj = self._store(bucket, key, req.body, headers)
        return self._ok(200, headers={"ETag": obj.etag})

    def _list(self, req: Request, bucket: str) -> Response:
        q = req.query
        prefix = q.get("prefix", "")
        marker = q.get("marker", "")
        delimiter = q.get("delimiter", "")
        url_enc = q.get("encoding-type") == "url"
        try:
            max_keys = int(q.get("max-keys") or MAX_KEYS)
        except ValueError:
            return self._err(400, "InvalidArgument", "max-keys must be an integer", f"{req.host}/")
        max_keys = max(0, min(MAX_KEYS, max_keys))
        with self._lock:
            self.buckets.add(bucket)
            keys = sorted(k for (b, k) in self.objects if b == bucket and k.startswith(prefix) and k > marker)
            snapshot = {k: self.objects[(bucket, k)] for k in keys}
        contents: list[str] = []
        prefixes: list[str] = []
        seen_prefixes: set[str] = set()
        truncated = False
        last = ""
        for k in keys:
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            if delimiter:
                rest = k[len(prefix):]
                pos = rest.find(delimiter)
                if pos >= 0:
                    cp = prefix + rest[: pos + len(delimiter)]
                    last = k
                    if cp not in seen_prefixes:
                        seen_prefixes.add(cp)
                        prefixes.append(cp)
                    continue
            contents.append(k)
            last = k

        def enc(s: str) -> str:
            return escape(quote(s, safe="/") if url_enc else s)

        parts = [
            "<?xml version='1.0' encoding='utf-8' ?>\n<ListBucketResult>",
            f"<Name>{escape(bucket)}</Name>",
        ]
        if url_enc:
            parts.append("<Encoding-Type>url</Encoding-Type>")
        parts.append(f"<Prefix>{enc(prefix)}</Prefix><Marker>{enc(marker)}</Marker><MaxKeys>{max_keys}</MaxKeys>")
        if delimiter:
            parts.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
        parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if truncated:
            parts.append(f"<NextMarker>{enc(last)}</NextMarker>")
        for cp in prefixes:
            parts.append(f"<CommonPrefixes><Prefix>{enc(cp)}</Prefix></CommonPrefixes>")
        for k in contents:
            obj = snapshot[k]
            parts.append(
                f"<Contents><Key>{enc(k)}</Key><LastModified>{_iso(obj.last_modified)}</LastModified>"
                f"<ETag>{escape(obj.etag)}</ETag><Size>{obj.size}</Size>"
                "<Owner><ID>1250000000</ID><DisplayName>1250000000</DisplayName></Owner>"
                f"<StorageClass>{escape(obj.headers.get('x-cos-storage-class', 'STANDARD'))}</StorageClass></Contents>"
            )
        parts.append("</ListBucketResult>")
        return self._ok(200, "".join(parts).encode("utf-8"), ctype=XML)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _http_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
