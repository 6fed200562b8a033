"""Webhook signatures: ``X-Cijobs-Signature: v1=<hex>[,v1=<hex>]`` (pure: no I/O, no clock of its own).

``<hex>`` is the lower-case hex HMAC-SHA256 of ``"<timestamp>." + body`` under one secret; during a
rotation there is one ``v1`` value per secret, in the order the secrets were given. A receiver accepts
a delivery when any ``v1`` value matches one of its secrets and the timestamp is recent. Shared by the
webhook sink (signing), ``cijobs webhook verify`` and the emulator's receiver (checking).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

SCHEME = "v1"
MIN_SECRET_CHARS = 32
MAX_SECRETS = 2
DEFAULT_TOLERANCE_S = 300
_VALUE_RE = re.compile(r"v1=[0-9a-f]{64}")
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()


def sign(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    """The signature header for ``body`` sent at ``timestamp`` (unix seconds): one ``v1=`` per secret."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return ",".join(f"{SCHEME}={_mac(s, timestamp, body)}" for s in secrets)


def parse_timestamp(value: str) -> int:
    """``X-Cijobs-Timestamp`` as an int; ValueError unless it is plain decimal digits."""
    value = value.strip()
    if not _TIMESTAMP_RE.fullmatch(value):
        raise ValueError("the timestamp must be unix seconds (decimal digits)")
    return int(value)


def signature_values(header: str) -> list[str]:
    """The hex values of a well-formed header (``v1=<64 hex>`` separated by ``,``, no spaces); ValueError else."""
    parts = header.split(",")
    if not header or len(parts) > 8 or not all(_VALUE_RE.fullmatch(p) for p in parts):
        raise ValueError("the signature must be v1=<64 lower-case hex>, or several separated by ','")
    return [p[len(SCHEME) + 1:] for p in parts]


def fresh(timestamp: int, now: float, tolerance: float = DEFAULT_TOLERANCE_S) -> bool:
    """True when ``timestamp`` is within ``tolerance`` seconds of ``now`` (either side)."""
    return abs(now - timestamp) <= tolerance


def verify(secrets: Sequence[str], timestamp: str, header: str, body: bytes, now: float,
           tolerance: float = DEFAULT_TOLERANCE_S) -> bool:
    """True when the timestamp is fresh and some ``v1`` value of ``header`` is the MAC under one of ``secrets``.

    Every comparison is constant-time (``hmac.compare_digest``); a malformed header or timestamp is False.
    """
    try:
        ts = parse_timestamp(timestamp)
        values = signature_values(header)
    except ValueError:
        return False
    if not fresh(ts, now, tolerance):
        return False
    ok = False
    for secret in secrets:
        expected = _mac(secret, ts, body)
        for value in values:
            ok |= hmac.compare_digest(expected, value)  # no early exit: the time does not depend on which matched
    return ok
