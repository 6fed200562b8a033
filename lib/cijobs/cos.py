"""Signed COS object requests: PUT/GET/HEAD/DELETE one object and list by prefix.

Every request is signed with :class:`cijobs.signing.CosSigner` (token header
``x-cos-security-token``), never follows redirects, and goes through the one call path
(:func:`cijobs.service_call.call`): classified by the COS table of :mod:`cijobs.failures`, retried within
the caller's deadline when transient (network errors, timeouts, 5xx, the 400 ``RequestTimeout``, malformed
listings; the body is replayable: every attempt re-sends the full body with the same ``Content-MD5``) or
throttled (``503 SlowDown``, 429). Configuration failures (``AccessDenied``, ``NoSuchBucket``, ...) and
other 4xx are not retried.

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
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import quote, unquote

import requests
from defusedxml import ElementTree as DET

from . import failures
from .credentials import Credentials, CredentialsError
from .deadline import Deadline
from .endpoints import Target, resolve
from .http import DEFAULT_MAX_BODY_BYTES, Reply, RetryPolicy, new_session
from .log import get_logger
from .models import ServiceError
from .service_call import Failure, Refused, Service, call, error_from_answer
from .settings import Settings
from .signing import CosSigner
from .store.keys import validate_key
from .store.urls import BUCKET_RE, REGION_RE

TOKEN_HEADER = "x-cos-security-token"
META_PREFIX = "x-cos-meta-"
MAX_LIST_KEYS = 1000
SERVICE = Service("cos", request_id_headers=("x-cos-request-id",),
                  default_codes={404: "NoSuchKey", 403: "AccessDenied", 409: "Conflict", 412: "PreconditionFailed"})
_META_NAME_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")

CredentialsSource = Callable[[], Credentials]

if TYPE_CHECKING:
    from .ratelimit import Limiters


class CosError(ServiceError):
    """A COS request failed. ``status`` is None for network errors and timeouts."""

    def __init__(
        self,
        status: Optional[int],
        code: str,
        message: str,
        request_id: Optional[str] = None,
        retryable: bool = False,
        failure_class: Optional[str] = None,
    ) -> None:
        if failure_class is not None:
            retryable = failures.is_retryable(failure_class)
        super().__init__(code, message, retryable=retryable, status=status, request_id=request_id,
                         text=f"{code} ({status}): {message}" if status else f"{code}: {message}")
        self.failure_class = failure_class or (failures.TRANSIENT if retryable else failures.FINAL)

    @classmethod
    def from_failure(cls, failure: Failure) -> CosError:
        return cls(failure.status, failure.code, failure.message, failure.request_id,
                   failure_class=failure.failure_class)


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
    """A typed, classified error from a COS answer (``<Error>`` body, else ``x-cos-*`` headers, else status)."""
    from requests.structures import CaseInsensitiveDict

    return CosError.from_failure(error_from_answer(SERVICE, Reply(status, "", CaseInsensitiveDict(headers), body)))


def parse_list(body: bytes) -> ListPage:
    """Parse a GET Bucket ``ListBucketResult`` (defusedxml: no entities, no DTD)."""
    try:
        root = DET.fromstring(body)
    except Exception as exc:
        raise Refused(failures.MALFORMED_RESPONSE,
                      f"cannot parse ListBucketResult: {type(exc).__name__}") from None
    if root.tag != "ListBucketResult":
        raise Refused(failures.MALFORMED_RESPONSE, f"expected ListBucketResult, got <{root.tag}>")
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
        limiters: Optional[Limiters] = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._session = session or new_session(settings.ci_concurrency)
        self._sleep = sleep
        self._clock = clock
        self._policy = RetryPolicy(max_attempts=settings.max_attempts, rng=rng or random.Random())
        self._limiter = limiters.get("cos") if limiters is not None else None
        self._max_body_bytes = max_body_bytes
        self._log = get_logger("cijobs.cos")

    # -- addressing -------------------------------------------------------------------------------
    def target(self, bucket: str, region: str) -> Target:
        """The endpoint of a bucket (:mod:`cijobs.endpoints`); the bucket and region are validated first."""
        if not BUCKET_RE.match(bucket):
            raise ValueError(f"COS bucket must look like <BucketName>-<APPID>, got {bucket!r}")
        if not REGION_RE.match(region):
            raise ValueError(f"COS region must look like ap-guangzhou, got {region!r}")
        return resolve(self._settings.cos_endpoint, bucket, region, "cos")

    def endpoint(self, bucket: str, region: str) -> tuple[str, Optional[str]]:
        """``(base_url, host_header)``: host_header is set when it differs from the URL's host."""
        target = self.target(bucket, region)
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
        return CosObject(key, resp.body, dict(resp.headers))

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
        page: ListPage = self._request("GET", bucket, region, None, params=params, deadline=deadline,
                                       accept=_accept_list)
        return page

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

    # -- the call path ---------------------------------------------------------------------------------
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
        accept: Callable[[Reply], Any] = lambda reply: reply,
    ) -> Any:
        deadline = deadline or Deadline.never()
        target = self.target(bucket, region)
        if key is None:
            url = target.base_url + "/"
        else:
            url = f"{target.base_url}/{quote(validate_key(key), safe='/-_.~')}"
        hdrs = dict(headers or {})
        if target.host_header:
            hdrs["Host"] = target.host_header
        what = f"{method} {key or '/'}"

        def prepare(_attempt: int) -> requests.PreparedRequest:
            try:
                creds = self._credentials()
            except CredentialsError as exc:
                raise _NoCredentials(str(exc)) from None
            return self._session.prepare_request(requests.Request(
                method, url, params=params, data=body, headers=hdrs, auth=CosSigner(creds, TOKEN_HEADER, self._clock)))

        def make_error(failure: Failure) -> CosError:
            if failure.status is not None:  # the service's own message
                return CosError.from_failure(failure)
            return CosError.from_failure(Failure(failure.code, f"{what}: {failure.message}", failure.failure_class,
                                                 failure.status, failure.request_id))

        try:
            return call(self._session, prepare, accept, service=SERVICE, host_port=target.host_port,
                        deadline=deadline, connect_timeout_s=self._settings.connect_timeout_s,
                        read_timeout_s=self._settings.read_timeout_s, policy=self._policy, make_error=make_error,
                        sleep=self._sleep, limiter=self._limiter, max_body_bytes=self._max_body_bytes,
                        log_fields={"method": method, "key": key})
        except _NoCredentials as exc:
            raise CosError(None, "InvalidCredentials", f"{what}: {exc}",
                           failure_class=failures.CONFIGURATION) from None


class _NoCredentials(Exception):
    pass


def _accept_list(reply: Reply) -> ListPage:
    return parse_list(reply.body)
