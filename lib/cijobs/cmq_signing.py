"""TDMQ CMQ HTTP data-flow API signature (the v2 "HmacSHA1/HmacSHA256" style), one pure step per function.

Used by the CMQ sink to sign and by the local emulator to verify. Steps
(CMQ "Signature Method", https://intl.cloud.tencent.com/document/api/406/5906)::

    canonical_query  "&".join(f"{k.replace('_', '.')}={v}" for k in sorted(params))   # Signature excluded,
                                                                                      # values NOT url-encoded
    plain_text       "POST" + host + "/v2/index.php" + "?" + canonical_query           # host: no scheme
    signature        base64(HMAC_<SHA1|SHA256>(SecretKey, plain_text))

then every parameter (``Signature`` included) is form-encoded into the body.
``host`` is the ``Host`` the request is sent with (``cmq-gz.public.tencenttdmq.com``
or ``127.0.0.1:8123`` for the emulator; a non-default port is part of it).
The clock and the nonce are inputs; nothing here does I/O or logs.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import Optional, Union
from urllib.parse import urlsplit

PATH = "/v2/index.php"
DEFAULT_METHOD = "HmacSHA256"
# SignatureMethod value -> hashlib digest name
METHODS: dict[str, str] = {
    "HmacSHA1": "sha1",
    "HmacSHA256": "sha256",
}
# How far the Timestamp may be from the server clock (the Cloud API v2 rule is 5 minutes).
MAX_SKEW_S = 300

ParamValue = Union[str, int]


class CmqSignatureError(ValueError):
    """Unsupported signature method or missing signing parameter (never carries a key)."""


def host_of(endpoint: str) -> str:
    """The host to sign for an endpoint URL: ``https://h:8443/x`` -> ``h:8443``; a bare host is kept."""
    if "//" not in endpoint:
        return endpoint.strip().rstrip("/")
    parts = urlsplit(endpoint)
    return parts.netloc


def canonical_query(params: Mapping[str, ParamValue]) -> str:
    """Sorted ``k=v`` joined by ``&`` over the unencoded values; ``_`` in keys becomes ``.``; no ``Signature``."""
    return "&".join(f"{k.replace('_', '.')}={params[k]}" for k in sorted(params) if k != "Signature")


def plain_text(host: str, params: Mapping[str, ParamValue], method: str = "POST", path: str = PATH) -> str:
    """The string that is signed: ``POST`` + host + ``/v2/index.php`` + ``?`` + canonical query."""
    return f"{method.upper()}{host}{path}?{canonical_query(params)}"


def signature(secret_key: str, text: str, signature_method: str = DEFAULT_METHOD) -> str:
    """Base64 of ``HMAC_<alg>(secret_key, text)``."""
    digest = METHODS.get(signature_method)
    if digest is None:
        raise CmqSignatureError(
            f"unsupported SignatureMethod {signature_method!r} (expected one of {', '.join(sorted(METHODS))})"
        )
    mac = hmac.new(secret_key.encode("utf-8"), text.encode("utf-8"), digest).digest()
    return base64.b64encode(mac).decode("ascii")


def common_params(
    action: str,
    secret_id: str,
    now: float,
    nonce: int,
    signature_method: str = DEFAULT_METHOD,
    token: Optional[str] = None,
    region: Optional[str] = None,
) -> dict[str, str]:
    """The common request parameters (``Action``, ``Timestamp``, ``Nonce``, ``SecretId``, ...)."""
    if nonce <= 0:
        raise CmqSignatureError("Nonce must be a positive integer")
    if signature_method not in METHODS:
        raise CmqSignatureError(f"unsupported SignatureMethod {signature_method!r}")
    out = {
        "Action": action,
        "Timestamp": str(int(now)),
        "Nonce": str(int(nonce)),
        "SecretId": secret_id,
        "SignatureMethod": signature_method,
    }
    if token:
        out["Token"] = token
    if region:
        out["Region"] = region
    return out


def sign_params(
    params: Mapping[str, ParamValue],
    secret_key: str,
    host: str,
    method: str = "POST",
    path: str = PATH,
) -> dict[str, str]:
    """A copy of ``params`` (which must already hold the common params) with ``Signature`` added."""
    sig_method = str(params.get("SignatureMethod") or "HmacSHA1")
    out = {k: str(v) for k, v in params.items() if k != "Signature"}
    out["Signature"] = signature(secret_key, plain_text(host, out, method, path), sig_method)
    return out


def verify(
    params: Mapping[str, str],
    secret_key: str,
    host: str,
    method: str = "POST",
    path: str = PATH,
) -> bool:
    """True when ``params['Signature']`` is the signature of the other params (constant-time compare)."""
    given = params.get("Signature")
    if not given:
        return False
    try:
        expected = sign_params(params, secret_key, host, method, path)["Signature"]
    except CmqSignatureError:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
