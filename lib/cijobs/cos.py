"""Signed COS object requests: PUT/GET/HEAD/DELETE one object and list by prefix.

Every request is signed with :class:`cijobs.signing.CosSigner` (token header
``x-cos-security-token``), never follows redirects, and is retried with
exponential backoff + full jitter (:class:`cijobs.http.RetryPolicy`) within the
caller's deadline on: network errors and timeouts, every 5xx, 429, and the
400 ``RequestTimeout`` (the body is replayable: every attempt re-sends the full
body with the same ``Content-MD5``). Any other 4xx is final.

Host routing follows the endpoint contract: without ``COS_ENDPOINT`` the URL is
``https://<bucket>.cos.<region>.myqcloud.com``; an override with a ``{bucket}``
placeholder is formatted and its host is signed; an override without one
(e.g. the local emulator) is connected to while ``Host`` is the canonical
``<bucket>.cos.<region>.myqcloud.com`` (sent and signed).
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import quote, unquote

import requests
from defusedxml import ElementTree as DET

from .credentials import Credentials
from .deadline import Deadline
from .endpoints import resolve
from .http import RetryPolicy, is_retryable_status, new_session, request_failure, timeouts
from .log import get_logger
from .models import ServiceError
from .settings import Settings
from .signing import CosSigner
from .store.keys import validate_key
from .store.urls import BUCKET_RE, REGION_RE

TOKEN_HEADER = "x-cos-security-token"
META_PREFIX = "x-cos-meta-"
MAX_LIST_KEYS = 1000
# 4xx codes COS (S3 semantics) marks as safe to retry.
RETRYABLE_CODES = frozenset({"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"})
_META_NAME_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")

CredentialsSource = Callable[[], Credentials]


class CosError(ServiceError):
    """A COS request failed. ``status`` is None for network errors and timeouts."""

    def __init__(
        self,
        status: Optional[int],
        code: str,
        message: str,
        request_id: Optional[str] = None,
        retryable: bool = False,
    ) -> None:
        super().__init__(code, message, retryable=retryable, status=status, request_id=request_id,
                         text=f"{code} ({status}): {message}" if status else f"{code}: {message}")


def content_md5(body: bytes) -> str:
    """Base64 of the binary MD5 (what ``Content-MD5`` carries)."""
    return base64.b64encode(hashlib.md5(body).digest()).decode("ascii")  # noqa: S324 - protocol field


@dataclass(frozen=True)
class CosObject:
    key: str
    body: bytes
    headers: Mapping[str, str]

    @property
    def metadata(self) -> dict[str, str]:
        return meta_from_headers(self.headers)


@dataclass(frozen=True)
class PutResult:
    key: str
    etag: Optional[str]
    request_id: Optional[str]


@dataclass(frozen=True)
class ObjectSummary:
    key: str
    size: int
    etag: str = ""
    last_modified: str = ""


@dataclass(frozen=True)
class ListPage:
    objects: list[ObjectSummary] = field(default_factory=list)
    is_truncated: bool = False
    next_marker: Optional[str] = None


# Metadata values are sent as printable ASCII: HTTP header values are Latin-1 at best (http.client
# refuses anything else with a UnicodeEncodeError) and COS documents URL-encoding for non-ASCII header
# text. Everything outside 0x20-0x7E, and '%' itself, is percent-encoded (UTF-8), so unquote() restores it.
_META_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def meta_value(value: str) -> str:
    """An ``x-cos-meta-*`` value as printable ASCII (non-ASCII, control characters and ``%`` percent-encoded)."""
    return quote(value, safe=_META_SAFE)


def meta_from_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``x-cos-meta-<name>`` headers as ``{name: value}`` (names lower-cased, values as sent by :func:`meta_value`)."""
    n = len(META_PREFIX)
    return {k.lower()[n:]: unquote(v) for k, v in headers.items() if k.lower().startswith(META_PREFIX)}


def _text(el: Any, tag: str) -> str:
    child = el.find(tag)
    return (child.text or "") if child is not None else ""


def parse_error_response(status: int, body: bytes, headers: Mapping[str, str]) -> CosError:
    """A typed error from a COS ``<Error>`` body, or from ``x-cos-*`` headers when the body is empty."""
    code = message = request_id = ""
    if body.strip():
        try:
            root = DET.fromstring(body)
        except Exception:
            root = None
        if root is not None and root.tag == "Error":
            code, message, request_id = _text(root, "Code"), _text(root, "Message"), _text(root, "RequestId")
    code = code or headers.get("x-cos-error-code", "") or _default_code(status)
    message = message or headers.get("x-cos-error-message", "") or f"HTTP {status}"
    request_id = request_id or headers.get("x-cos-request-id", "")
    retryable = is_retryable_status(status) or status >= 500 or code in RETRYABLE_CODES
    return CosError(status, code, message, request_id or None, retryable)


def _default_code(status: int) -> str:
    return {404: "NoSuchKey", 403: "AccessDenied", 409: "Conflict", 412: "PreconditionFailed"}.get(
        status, f"HTTP{status}"
    )


def parse_list(body: bytes) -> ListPage:
    """Parse a GET Bucket ``ListBucketResult`` (defusedxml: no entities, no DTD)."""
    try:
        root = DET.fromstring(body)
    except Exception as exc:
        raise CosError(200, "MalformedListResult", f"cannot parse ListBucketResult: {type(exc).__name__}") from None
    if root.tag != "ListBucketResult":
        raise CosError(200, "MalformedListResult", f"expected ListBucketResult, got <{root.tag}>")
    objects = []
    for c in root.findall("Contents"):
        size = _text(c, "Size")
        objects.append(
            ObjectSummary(_text(c, "Key"), int(size) if size.isdigit() else 0, _text(c, "ETag").strip('"'),
                          _text(c, "LastModified"))
        )
    truncated = _text(root, "IsTruncated").strip().lower() == "true"
    next_marker = _text(root, "NextMarker") or (objects[-1].key if truncated and objects else None)
    return ListPage(objects, truncated, next_marker if truncated else None)


class CosClient:
    """Signed, retried COS object client. One instance per container; thread-safe."""

    def __init__(
        self,
        settings: Settings,
        credentials: CredentialsSource,
        session: Optional[requests.Session] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: Optional[random.Random] = None,
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._session = session or new_session(settings.ci_concurrency)
        self._sleep = sleep
        self._clock = clock
        self._policy = RetryPolicy(max_attempts=settings.ci_max_attempts, rng=rng or random.Random())
        self._log = get_logger("cijobs.cos")

    # -- addressing -------------------------------------------------------------------------------
    def endpoint(self, bucket: str, region: str) -> tuple[str, Optional[str]]:
        """``(base_url, host_header)``: host_header is set when it differs from the URL's host."""
        if not BUCKET_RE.match(bucket):
            raise ValueError(f"COS bucket must look like <BucketName>-<APPID>, got {bucket!r}")
        if not REGION_RE.match(region):
            raise ValueError(f"COS region must look like ap-guangzhou, got {region!r}")
        target = resolve(self._settings.cos_endpoint, bucket, region, "cos")
        return target.base_url, target.host_header

    def object_url(self, bucket: str, region: str, key: str) -> tuple[str, Optional[str]]:
        base, host = self.endpoint(bucket, region)
        return f"{base}/{quote(validate_key(key), safe='/-_.~')}", host

    # -- operations -------------------------------------------------------------------------------
    def put_object(
        self,
        bucket: str,
        region: str,
        key: str,
        body: bytes,
        content_type: str = "application/octet-stream",
        metadata: Optional[Mapping[str, str]] = None,
        forbid_overwrite: bool = False,
        deadline: Optional[Deadline] = None,
    ) -> PutResult:
        headers = {"Content-Type": content_type, "Content-MD5": content_md5(body)}
        for name, value in (metadata or {}).items():
            if not _META_NAME_RE.match(name):
                raise ValueError(f"metadata name must be letters, digits and '-': {name!r}")
            headers[META_PREFIX + name.lower()] = meta_value(value)
        if forbid_overwrite:
            headers["x-cos-forbid-overwrite"] = "true"
        resp = self._request("PUT", bucket, region, key, headers=headers, body=body, deadline=deadline)
        return PutResult(key, resp.headers.get("ETag"), resp.headers.get("x-cos-request-id"))

    def get_object(self, bucket: str, region: str, key: str, deadline: Optional[Deadline] = None) -> CosObject:
        resp = self._request("GET", bucket, region, key, deadline=deadline)
        return CosObject(key, resp.content, dict(resp.headers))

    def head_object(
        self, bucket: str, region: str, key: str, deadline: Optional[Deadline] = None
    ) -> dict[str, str]:
        """The object's response headers (``x-cos-meta-*`` included); ``CosError`` 404 if absent."""
        return dict(self._request("HEAD", bucket, region, key, deadline=deadline).headers)

    def delete_object(self, bucket: str, region: str, key: str, deadline: Optional[Deadline] = None) -> None:
        """Delete; deleting a key that does not exist is not an error."""
        try:
            self._request("DELETE", bucket, region, key, deadline=deadline)
        except CosError as exc:
            if exc.status != 404:
                raise

    def list_objects(
        self,
        bucket: str,
        region: str,
        prefix: str = "",
        marker: Optional[str] = None,
        max_keys: int = MAX_LIST_KEYS,
        deadline: Optional[Deadline] = None,
    ) -> ListPage:
        """One page of GET Bucket (``ListBucketResult``); pass ``next_marker`` for the next page."""
        params = {"prefix": prefix, "max-keys": str(max(1, min(max_keys, MAX_LIST_KEYS)))}
        if marker:
            params["marker"] = marker
        resp = self._request("GET", bucket, region, None, params=params, deadline=deadline)
        return parse_list(resp.content)

    def iter_objects(
        self, bucket: str, region: str, prefix: str = "", deadline: Optional[Deadline] = None
    ) -> list[ObjectSummary]:
        """Every object under ``prefix`` (follows the markers)."""
        out: list[ObjectSummary] = []
        marker: Optional[str] = None
        while True:
            page = self.list_objects(bucket, region, prefix, marker, deadline=deadline)
            out.extend(page.objects)
            if not page.is_truncated or not page.next_marker or page.next_marker == marker:
                return out
            marker = page.next_marker

    # -- transport --------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        bucket: str,
        region: str,
        key: Optional[str],
        headers: Optional[dict[str, str]] = None,
        body: Optional[bytes] = None,
        params: Optional[dict[str, str]] = None,
        deadline: Optional[Deadline] = None,
    ) -> requests.Response:
        deadline = deadline or Deadline.never()
        if key is None:
            base, host = self.endpoint(bucket, region)
            url = base + "/"
        else:
            url, host = self.object_url(bucket, region, key)
        hdrs = dict(headers or {})
        if host:
            hdrs["Host"] = host
        if deadline.expired():
            raise CosError(None, "DeadlineExceeded", f"{method} {key or '/'}: no time left", retryable=True)

        def once(_attempt: int) -> requests.Response:
            error: CosError
            try:
                creds = self._credentials()
                resp = self._session.request(
                    method, url, params=params, data=body, headers=hdrs,
                    auth=CosSigner(creds, TOKEN_HEADER, self._clock),
                    timeout=timeouts(self._settings.ci_connect_timeout_s, self._settings.ci_read_timeout_s, deadline),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                code, detail, retryable = request_failure(exc)
                error = CosError(None, code, f"{method} {key or '/'}: {detail}", retryable=retryable)
            except UnicodeError:  # a header http.client cannot encode: the same request will never go out
                error = CosError(None, "InvalidHeader", f"{method} {key or '/'}: a header value is not Latin-1",
                                 retryable=False)
            else:
                if resp.status_code < 300:
                    return resp
                error = parse_error_response(resp.status_code, resp.content, resp.headers)
                if resp.status_code < 400:
                    error = CosError(resp.status_code, "UnexpectedRedirect",
                                     f"COS answered {resp.status_code}; redirects are not followed",
                                     error.request_id, False)
            raise error

        def on_retry(attempt: int, error: ServiceError, delay: float) -> None:
            self._log.info("cos_retry", method=method, key=key, attempt=attempt, code=error.code,
                           status=error.status, delay_s=round(delay, 3))

        return self._policy.run(once, deadline, self._sleep, on_retry)
