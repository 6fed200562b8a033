"""HTTP/1.1 response heads read strictly: the status line and header section (RFC 9112 sections 4-6).

:class:`StrictResponse` is the ``http.client`` response class the transport uses. It reads the head
itself and leaves the body to ``http.client`` (Content-Length, chunked, or up to the close), so:

* a head cut off by the close (no empty line) is an error, not a response whose body ends at once;
* interim 1xx responses are skipped (``http.client`` skips only 100), so the final answer is the one
  returned and nothing is left on the connection for the next request to read;
* ``Content-Length`` must be digits, and repeated ones must agree;
* a field line without a colon, a field name with whitespace, more than 100 fields or a line over
  64 KiB is an error;
* and it is cheaper: ``http.client`` parses every head with the ``email`` package (~0.1 ms per
  response, a tenth of a query request's client CPU).
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from typing import Optional

from requests.structures import CaseInsensitiveDict

MAX_LINE = 65536
MAX_FIELDS = 100
_NO_BODY_STATUS = (204, 304)
_OWS = " \t"


class BadResponseHead(http.client.HTTPException):
    """The status line and header section did not arrive whole, or are not valid HTTP/1.x."""


class Fields:
    """A response's header fields in arrival order (names as sent, values Latin-1 decoded, trimmed)."""

    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._items = items

    def get_all(self, name: str, failobj: Optional[list[str]] = None) -> Optional[list[str]]:
        low = name.lower()
        found = [v for k, v in self._items if k.lower() == low]
        return found or failobj

    def get(self, name: str, failobj: Optional[str] = None) -> Optional[str]:
        values = self.get_all(name)
        return ", ".join(values) if values else failobj

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def merged(self) -> CaseInsensitiveDict[str]:
        """Repeated fields joined with ", " (RFC 9110 section 5.3), as requests presents them."""
        out: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for name, value in self._items:
            out[name] = f"{out[name]}, {value}" if name in out else value
        return out


def _tokens(value: Optional[str]) -> list[str]:
    return [t.strip().lower() for t in value.split(",")] if value else []


class StrictResponse(http.client.HTTPResponse):
    """``http.client.HTTPResponse`` with the head read by this module (see the module doc)."""

    def begin(self) -> None:
        if self.headers is not None:
            return
        while True:
            version, status, reason = self._status_line()
            fields = self._fields()
            if not 100 <= status < 200 or status == 101:  # 1xx other than 101 are interim: skip them
                break
        self.version = 11 if version == "HTTP/1.1" else 10
        self.code = self.status = status
        self.reason = reason
        self.headers = self.msg = Fields(fields)
        self.chunk_left = None
        self.length = None
        coding = _tokens(self.headers.get("Transfer-Encoding"))
        self.chunked = bool(coding) and coding[-1] == "chunked"
        lengths = {v for k, v in fields if k.lower() == "content-length"}
        if len(lengths) > 1 or not all(v.isdigit() and v.isascii() for v in lengths):
            raise BadResponseHead(f"invalid Content-Length {sorted(lengths)!r:.200}")
        if lengths and not coding:  # with a Transfer-Encoding, Content-Length is ignored
            self.length = int(lengths.pop())
        if status in _NO_BODY_STATUS or 100 <= status < 200 or self._method == "HEAD":
            self.length = 0
            self.chunked = False
        self.will_close = self._closes(coding)

    def _closes(self, coding: list[str]) -> bool:
        connection = _tokens(self.headers.get("Connection"))
        if "close" in connection:
            return True
        if coding and not self.chunked:
            return True  # a body with a final coding other than chunked ends at the close
        keep_alive = self.version == 11 or "keep-alive" in connection
        return not keep_alive or (self.length is None and not self.chunked)

    def _line(self) -> bytes:
        assert self.fp is not None
        line: bytes = self.fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("response head line")
        return line

    def _status_line(self) -> tuple[str, int, str]:
        raw = self._line()
        if not raw:
            raise http.client.RemoteDisconnected("the connection closed without a response")
        if not raw.endswith(b"\n"):
            raise BadResponseHead("the connection closed inside the status line")
        line = raw.decode("iso-8859-1").rstrip("\r\n")
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit() or not code.isascii():
            raise http.client.BadStatusLine(line[:200])
        return version, int(code), reason.strip()

    def _fields(self) -> list[tuple[str, str]]:
        fields: list[tuple[str, str]] = []
        while True:
            raw = self._line()
            if raw in (b"\r\n", b"\n"):
                return fields
            if not raw.endswith(b"\n"):
                raise BadResponseHead("the connection closed inside the response head")
            line = raw.decode("iso-8859-1").rstrip("\r\n")
            if line[:1] in (" ", "\t"):  # obsolete line folding: one space joins it to the last field
                if not fields:
                    raise BadResponseHead("a folded line before any field")
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {line.strip(_OWS)}".strip(_OWS))
                continue
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip(_OWS) or " " in name or "\t" in name:
                raise BadResponseHead(f"malformed field line {line[:100]!r}")
            if len(fields) >= MAX_FIELDS:
                raise http.client.HTTPException(f"more than {MAX_FIELDS} header fields")
            fields.append((name, value.strip(_OWS)))
