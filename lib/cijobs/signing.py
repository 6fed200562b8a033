"""COS XML request signature (``q-sign-algorithm=sha1``), one pure step per function.

The same scheme signs CI requests (``GET /jobs/<ids>`` on the ``.ci.`` host) and
COS object requests. Every step takes its inputs explicitly: the clock and the
credentials come in from the caller. Nothing here logs.

Steps (COS doc 436/7778)::

    key_time      "<start>;<end>"
    sign_key      hex(HMAC-SHA1(SecretKey, KeyTime))
    http_string   lower(method) \\n path \\n params \\n headers \\n
    string_to_sign "sha1\\n" KeyTime "\\n" hex(SHA1(http_string)) "\\n"
    signature     hex(HMAC-SHA1(SignKey, StringToSign))
    authorization q-sign-algorithm=sha1&q-ak=...&q-signature=...
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Callable
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import requests
from requests.auth import AuthBase

from .credentials import Credentials

# Headers that take part in the signature (as the official SDKs choose them);
# any x-cos-* / x-ci-* header is signed too, so the security token is covered.
SIGNED_HEADERS = frozenset(
    {
        "cache-control", "content-disposition", "content-encoding", "content-type", "content-md5",
        "content-length", "expect", "expires", "host", "if-match", "if-modified-since", "if-none-match",
        "if-unmodified-since", "origin", "range", "transfer-encoding", "pic-operations",
    }
)
DEFAULT_EXPIRE_S = 600
CLOCK_SKEW_S = 60


def key_time(now: float, expire_s: int = DEFAULT_EXPIRE_S, skew_s: int = CLOCK_SKEW_S) -> str:
    """Validity window ``start;end`` in unix seconds, starting ``skew_s`` in the past."""
    start = int(now)
    return f"{start - skew_s};{start + expire_s}"


def sign_key(secret_key: str, ktime: str) -> str:
    return hmac.new(secret_key.encode(), ktime.encode(), hashlib.sha1).hexdigest()


def _enc(value: str) -> str:
    return quote(value.encode("utf-8"), safe="-_.~")


def canonical_pairs(items: Mapping[str, str]) -> list[tuple[str, str]]:
    """Lower-cased, URL-encoded (safe ``-_.~``) ``(key, value)`` pairs, sorted by key.

    Keys that differ only in case collapse to one pair, the last one winning
    (as in the official SDK, which builds a dict of the lower-cased keys).
    """
    return sorted({_enc(k).lower(): _enc(v) for k, v in items.items()}.items())


def signed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The subset of ``headers`` that is signed."""
    out = {}
    for k, v in headers.items():
        low = k.lower()
        if low in SIGNED_HEADERS or low.startswith(("x-cos-", "x-ci-")):
            out[k] = v
    return out


def _joined(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{k}={v}" for k, v in pairs)


def http_string(method: str, path: str, params: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """``path`` is the decoded request path (e.g. ``/jobs/jA,jB`` or ``/dir/key.json``)."""
    return f"{method.lower()}\n{path}\n{_joined(canonical_pairs(params))}\n{_joined(canonical_pairs(headers))}\n"


def string_to_sign(ktime: str, http_str: str) -> str:
    digest = hashlib.sha1(http_str.encode("utf-8")).hexdigest()  # noqa: S324 - the protocol is sha1
    return f"sha1\n{ktime}\n{digest}\n"


def signature(skey: str, sts: str) -> str:
    return hmac.new(skey.encode(), sts.encode("utf-8"), hashlib.sha1).hexdigest()


def authorization(
    secret_id: str, ktime: str, params: Mapping[str, str], headers: Mapping[str, str], sig: str
) -> str:
    header_list = ";".join(k for k, _ in canonical_pairs(headers))
    param_list = ";".join(k for k, _ in canonical_pairs(params))
    return (
        f"q-sign-algorithm=sha1&q-ak={secret_id}&q-sign-time={ktime}&q-key-time={ktime}"
        f"&q-header-list={header_list}&q-url-param-list={param_list}&q-signature={sig}"
    )


def sign(
    creds: Credentials,
    method: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    now: float,
    expire_s: int = DEFAULT_EXPIRE_S,
) -> str:
    """All steps at once: the ``Authorization`` value for one request."""
    ktime = key_time(now, expire_s)
    hdrs = signed_headers(headers)
    sts = string_to_sign(ktime, http_string(method, path, params, hdrs))
    return authorization(creds.secret_id, ktime, params, hdrs, signature(sign_key(creds.secret_key, ktime), sts))


def parse_authorization(value: str) -> dict[str, str]:
    """Split an Authorization value into its ``q-*`` fields (used by the emulator to verify)."""
    return dict(parse_qsl(value, keep_blank_values=True))


class CosSigner(AuthBase):
    """``requests`` auth that signs a prepared request; the token header name depends on the host.

    ``token_header`` is ``x-ci-security-token`` for the CI host and
    ``x-cos-security-token`` for COS hosts. The token header is set before
    signing, so it is signed like every ``x-cos-*``/``x-ci-*`` header.
    """

    def __init__(
        self,
        creds: Credentials,
        token_header: str = "x-cos-security-token",
        clock: Callable[[], float] = time.time,
        expire_s: int = DEFAULT_EXPIRE_S,
    ) -> None:
        self._creds = creds
        self._token_header = token_header
        self._clock = clock
        self._expire_s = expire_s

    def __repr__(self) -> str:
        return f"CosSigner(secret_id={self._creds.secret_id!r}, token_header={self._token_header!r})"

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(r.url or "")
        if self._creds.token:
            r.headers[self._token_header] = self._creds.token
        headers = {k: v for k, v in r.headers.items() if isinstance(v, str)}
        if not any(k.lower() == "host" for k in headers):
            headers["host"] = parts.hostname or ""
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        r.headers["Authorization"] = sign(
            self._creds, r.method or "GET", unquote(parts.path) or "/", params, headers, self._clock(),
            self._expire_s,
        )
        return r
