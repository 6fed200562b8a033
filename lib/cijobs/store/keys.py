"""The object-key model shared by every store: safe keys that cannot escape their prefix."""

from __future__ import annotations

MAX_KEY_BYTES = 850


class InvalidKeyError(ValueError):
    """An object key is unsafe or malformed."""


def join_key(*parts: str) -> str:
    """The parts joined with ``/``, each stripped of ``/`` at both ends, empty ones left out."""
    return "/".join(p.strip("/") for p in parts if p.strip("/"))


def validate_key(key: str) -> str:
    """Refuse keys that could escape a prefix or confuse COS: leading ``/``, ``.``/``..``, empty segments."""
    if not key or key.startswith("/"):
        raise InvalidKeyError(f"object key must be non-empty and not start with '/': {key!r}")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKeyError(f"object key longer than {MAX_KEY_BYTES} bytes")
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in key):
        raise InvalidKeyError(f"object key contains a control character or backslash: {key!r}")
    for seg in key.split("/"):
        if seg in ("", ".", ".."):
            raise InvalidKeyError(f"object key has an empty, '.' or '..' segment: {key!r}")
    return key
