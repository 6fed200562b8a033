"""Verify a COS ``q-sign-algorithm=sha1`` Authorization the way the service does (CI and COS hosts).

The expected signature is recomputed with :mod:`cijobs.signing` from the request
itself: method, decoded path, the query parameters named in ``q-url-param-list``
and the headers named in ``q-header-list`` (a named header that is missing is a
mismatch). Any failure raises :class:`AuthError` (always HTTP 403).
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass
from typing import Optional

from cijobs import signing

from .wire import Request


class AuthError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = 403


@dataclass(frozen=True)
class Key:
    secret_key: str
    token: Optional[str] = None


class KeyRing:
    """The credentials the emulator accepts: SecretId -> (SecretKey, token or None)."""

    def __init__(self) -> None:
        self._keys: dict[str, Key] = {}
        self._lock = threading.Lock()

    def add(self, secret_id: str, secret_key: str, token: Optional[str] = None) -> None:
        with self._lock:
            self._keys[secret_id] = Key(secret_key, token)

    def get(self, secret_id: str) -> Optional[Key]:
        with self._lock:
            return self._keys.get(secret_id)


def _window(value: str) -> tuple[int, int]:
    start, _, end = value.partition(";")
    return int(start), int(end)


def verify_cos(req: Request, keys: KeyRing, now: float, token_headers: tuple[str, ...]) -> str:
    """Check the request's Authorization; return the SecretId or raise :class:`AuthError`."""
    value = req.header("authorization")
    if not value:
        raise AuthError("AccessDenied", "Access Denied. (no Authorization header)")
    fields = signing.parse_authorization(value)
    if fields.get("q-sign-algorithm") != "sha1":
        raise AuthError("AccessDenied", "unsupported q-sign-algorithm (expected sha1)")
    required = ("q-ak", "q-sign-time", "q-key-time", "q-header-list", "q-url-param-list", "q-signature")
    missing = [f for f in required if f not in fields]
    if missing:
        raise AuthError("AccessDenied", f"malformed Authorization: missing {', '.join(missing)}")
    key = keys.get(fields["q-ak"])
    if key is None:
        raise AuthError("InvalidAccessKeyId", "The access key Id format you provided is invalid or does not exist")
    try:
        start, end = _window(fields["q-key-time"])
        sign_start, sign_end = _window(fields["q-sign-time"])
    except ValueError:
        raise AuthError("AccessDenied", "malformed q-key-time / q-sign-time") from None
    if now > min(end, sign_end):
        raise AuthError("AccessDenied", "Request has expired")
    if now < max(start, sign_start):
        raise AuthError("RequestTimeTooSkewed", "The request time is too far from the server time")
    if key.token is not None:
        sent = next((req.header(h) for h in token_headers if req.header(h)), None)
        if sent is None:
            raise AuthError("InvalidAccessKeyId", "temporary credentials need a security token header")
        if not hmac.compare_digest(sent.encode(), key.token.encode()):
            raise AuthError("AccessDenied", "The security token is invalid")
    header_names = [h for h in fields["q-header-list"].split(";") if h]
    if "host" not in header_names:
        raise AuthError("SignatureDoesNotMatch", "the host header must be signed (q-header-list)")
    headers: dict[str, str] = {}
    for name in header_names:
        got = req.header(name)
        if got is None:
            raise AuthError("SignatureDoesNotMatch", f"signed header {name!r} is missing from the request")
        headers[name] = got
    # q-url-param-list holds lower-cased, URL-encoded names: map them back to the parameters as sent
    sent_params = {signing.canonical_pairs({k: ""})[0][0]: k for k in req.query}
    params: dict[str, str] = {}
    for name in (p for p in fields["q-url-param-list"].split(";") if p):
        original = sent_params.get(name)
        if original is None:
            raise AuthError("SignatureDoesNotMatch", f"signed parameter {name!r} is missing from the request")
        params[original] = req.query[original]
    http_str = signing.http_string(req.method, req.path, params, headers)
    sts = signing.string_to_sign(fields["q-key-time"], http_str)
    expected = signing.signature(signing.sign_key(key.secret_key, fields["q-key-time"]), sts)
    if not hmac.compare_digest(expected.encode(), fields["q-signature"].encode()):
        raise AuthError(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
    return fields["q-ak"]
