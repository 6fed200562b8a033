"""What the two HTTP event shapes (API Gateway, function URL) have in common."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Optional

from .base import EventError, Headers, QueryParams


class BodyTooLargeError(EventError):
    """The request body is over MAX_BODY_BYTES (HTTP 413)."""


@dataclass(frozen=True)
class HttpEvent:
    """One HTTP request. Header names are case-insensitive; secrets are hidden from repr."""

    method: str
    path: str
    headers: Headers
    query: QueryParams
    body: Optional[str] = field(default=None, repr=False)
    is_base64: bool = False
    request_id: Optional[str] = None
    source_ip: Optional[str] = None

    kind = "http"

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name)

    def body_bytes(self, max_bytes: int) -> bytes:
        """The raw body: Base64-decoded when flagged, at most ``max_bytes`` (413/400 errors otherwise)."""
        text = self.body or ""
        if self.is_base64:
            # 4 Base64 characters carry 3 bytes: refuse before decoding a huge string.
            if len(text) > (max_bytes + 2) // 3 * 4 + 4:
                raise BodyTooLargeError(f"body is larger than {max_bytes} bytes", "body")
            try:
                raw = base64.b64decode("".join(text.split()), validate=True)
            except (binascii.Error, ValueError):
                raise EventError("body is flagged isBase64Encoded but is not valid Base64", "body") from None
        else:
            if len(text) > max_bytes:  # each character is at least one byte
                raise BodyTooLargeError(f"body is larger than {max_bytes} bytes", "body")
            raw = text.encode("utf-8", errors="surrogatepass")
        if len(raw) > max_bytes:
            raise BodyTooLargeError(f"body is larger than {max_bytes} bytes", "body")
        return raw


def common_fields(event: dict[str, Any]) -> dict[str, Any]:
    method = event.get("httpMethod")
    if not isinstance(method, str) or not method:
        raise EventError("httpMethod must be a non-empty string", "httpMethod")
    path = event.get("path")
    if path is None:
        path = "/"
    if not isinstance(path, str):
        raise EventError("path must be a string", "path")
    headers = event.get("headers") or {}
    if not isinstance(headers, dict):
        raise EventError("headers must be an object", "headers")
    query = event.get("queryString") or {}
    if not isinstance(query, dict):
        raise EventError("queryString must be an object", "queryString")
    body = event.get("body")
    if body is not None and not isinstance(body, str):
        raise EventError("body must be a string", "body")
    flag = event.get("isBase64Encoded", False)
    is_b64 = flag is True or (isinstance(flag, str) and flag.lower() == "true")
    return {
        "method": method.upper(),
        "path": path,
        "headers": Headers(headers),
        "query": QueryParams(query),
        "body": body,
        "is_base64": is_b64,
    }
