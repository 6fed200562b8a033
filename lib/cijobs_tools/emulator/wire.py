"""The emulator's request/response values and the ``<Error>`` body, independent of the HTTP plumbing.

Each side (``ci``, ``cos``, ``cmq``, ``control``) turns a :class:`Request` into a
:class:`Response`; ``server.py`` reads the one and writes the other.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Optional
from xml.sax.saxutils import escape

XML = "application/xml"
JSON = "application/json"


@dataclass
class Request:
    method: str
    path: str  # decoded path, e.g. "/jobs/jA,jB" or "/dir/my key.json"
    raw_path: str  # as sent, without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    host: str = ""  # Host header without the port, lower-cased

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: Optional[str] = None
    server: str = "tencent-ci"
    # HEAD responses: headers (incl. Content-Length of the would-be body) but no body
    head_only: bool = False


class RequestIds:
    """Base64-looking request IDs like CI's ``NjMxMDJhYTNfMThhYTk0MGFfYmU1OV8zZjc=``, unique per emulator."""

    def __init__(self, seed: int = 0) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._seed = seed & 0xFFFF

    def next(self) -> str:
        with self._lock:
            n = next(self._counter)
        raw = f"{int(time.time()):08x}_{self._seed:04x}{n:06x}_emu_{n % 4096:x}"
        return base64.b64encode(raw.encode()).decode()


def error_xml(code: str, message: str, request_id: str, trace_id: str, resource: Optional[str] = None) -> bytes:
    """CI/COS ``<Error>`` document (COS adds ``<Resource>``)."""
    parts = [
        "<?xml version='1.0' encoding='utf-8' ?>\n<Error>",
        f"<Code>{escape(code)}</Code>",
        f"<Message>{escape(message)}</Message>",
    ]
    if resource is not None:
        parts.append(f"<Resource>{escape(resource)}</Resource>")
    parts.append(f"<RequestId>{escape(request_id)}</RequestId><TraceId>{escape(trace_id)}</TraceId></Error>")
    return "".join(parts).encode("utf-8")


def error_response(
    side: str,
    status: int,
    code: str,
    message: str,
    ids: RequestIds,
    resource: Optional[str] = None,
    head_only: bool = False,
) -> Response:
    """An XML error with the side's request-id / trace-id headers (``x-ci-*`` or ``x-cos-*``)."""
    request_id = ids.next()
    trace_id = ids.next()
    prefix = "x-ci" if side == "ci" else "x-cos"
    headers = {f"{prefix}-request-id": request_id, f"{prefix}-trace-id": trace_id}
    if head_only:
        # HEAD errors carry the code in headers only (COS behaviour)
        headers["x-cos-error-code"] = code
    body = error_xml(code, message, request_id, trace_id, resource)
    return Response(
        status, body, headers, XML, server="tencent-ci" if side == "ci" else "tencent-cos", head_only=head_only
    )
