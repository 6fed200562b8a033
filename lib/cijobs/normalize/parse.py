"""Safe, bounded parsing: bytes -> ElementTree root or JSON value.

Every failure becomes a ``NormalizeError`` subclass carrying the raw body.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional, Union
from xml.etree.ElementTree import Element, ParseError, TreeBuilder, XMLParser

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from .errors import (
    DocumentTooDeepError,
    DocumentTooLargeError,
    ForbiddenXMLError,
    MalformedDocumentError,
    NormalizeError,
    TooManyElementsError,
)

# Limits: together they bound what any document, accepted or refused, adds to peak memory
# (tests/test_normalize_limits.py measures the worst shapes at these limits).
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
DEFAULT_MAX_ELEMENTS = 100_000
XML, JSON = "xml", "json"
_BOM = b"\xef\xbb\xbf"


def to_bytes(body: Union[bytes, bytearray, memoryview, str]) -> bytes:
    if isinstance(body, str):
        try:
            return body.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates
            raise MalformedDocumentError("text is not encodable as UTF-8", 1, exc.start + 1) from None
    if isinstance(body, (bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, bytes):
        return body
    raise TypeError(f"body must be bytes or str, not {type(body).__name__}")


def check_size(raw: bytes, max_bytes: int) -> None:
    if len(raw) > max_bytes:
        raise DocumentTooLargeError(f"document is {len(raw)} bytes, limit {max_bytes}", max_bytes, raw)


def sniff(raw: bytes) -> str:
    """``"xml"`` or ``"json"`` from the first non-blank byte (after a UTF-8 BOM)."""
    head = raw[len(_BOM) :] if raw.startswith(_BOM) else raw
    head = head.lstrip()
    if not head:
        raise MalformedDocumentError("empty document", 1, 1, raw)
    first = head[:1]
    if first == b"<":
        return XML
    if first in (b"{", b"["):
        return JSON
    line, column = _line_col(raw, len(raw) - len(head))
    raise MalformedDocumentError("neither XML nor JSON", line, column + 1, raw)


def _line_col(raw: bytes, offset: int) -> tuple[int, int]:
    before = raw[:offset]
    line = before.count(b"\n") + 1
    return line, offset - (before.rfind(b"\n") + 1)


# Bounded parsing. The body is fed to expat in chunks of ``CHUNK`` bytes, and the limits are
# checked between chunks, so a refused document stops being read (and built) within one
# chunk of the point where it went over, and is never parsed a second time:
#
# * elements: before a chunk is fed, its elements and attributes are counted from above
#   with C-speed ``bytes.count`` calls: every "<" not followed by "/" (start tags, plus
#   comments, PIs and CDATA sections, which CI does not send) and every "=" (attributes,
#   plus any "=" in text). Attributes count because each one costs more memory than an
#   element (an attribute dict entry, and an "@name" member in the output). A body shorter
#   than 3 bytes per allowed item cannot go over (``<a>`` is the shortest element) and is
#   not counted.
# * depth: after each chunk, the chain of last children from the root is followed. The
#   elements still open are always on that chain, so a nest deeper than ``max_depth`` is
#   refused at the first chunk boundary after it got too deep. A nest opened and closed
#   again within one chunk (at most CHUNK/7 levels) is refused by the walk, which checks
#   every element's depth (walk.py), again without a second parse.
#
# A DTD is the only place where entities (billion laughs, quadratic blowup, external
# entities, DTD retrieval) can be declared, and it must start with "<!DOCTYPE" (XML is
# case-sensitive). A body that is ASCII-compatible (no NUL byte: UTF-16/32 have them;
# no declared encoding other than UTF-8) and contains neither marker cannot declare an
# entity, so it is parsed by the C tree builder (~4x faster than defusedxml's pure-Python
# one); anything else goes through defusedxml, which refuses the forbidden constructs,
# with a builder that checks both limits at every start tag.
CHUNK = 64 * 1024
_FIRST_PIECE = 512
_DTD_MARKERS = (b"<!DOCTYPE", b"<!ENTITY")
_ENCODING_DECL = re.compile(rb"""^(?:\xef\xbb\xbf)?\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")


def _dtd_free(raw: bytes) -> bool:
    if b"\x00" in raw or any(marker in raw for marker in _DTD_MARKERS):
        return False
    declared = _ENCODING_DECL.match(raw)
    # a declared non-UTF-8 encoding is defusedxml's (and expat's) to judge
    return declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")


def _malformed(exc: ParseError, raw: bytes) -> MalformedDocumentError:
    line, column = exc.position  # expat: column is 0-based
    msg = str(exc).split(": line", 1)[0]
    return MalformedDocumentError(f"malformed XML: {msg}", line, column + 1, raw)


def _too_many(max_elements: int, raw: bytes) -> TooManyElementsError:
    return TooManyElementsError(f"document has more than {max_elements} elements", max_elements, raw)


def _too_deep(max_depth: int, raw: bytes) -> DocumentTooDeepError:
    return DocumentTooDeepError(f"document nested deeper than {max_depth} levels", max_depth, raw)


class _ElementBudget:
    """Upper bound of the elements and attributes fed so far (see above); raises past ``max_elements``."""

    __slots__ = ("counting", "limit", "raw", "starts")

    def __init__(self, raw: bytes, max_elements: int) -> None:
        self.raw = raw
        self.limit = max_elements
        self.counting = len(raw) // 3 > max_elements
        self.starts = 0

    def take(self, start: int, end: int) -> None:
        if self.counting:
            raw = self.raw
            # a "</" that straddles the chunk end belongs to this chunk (its "<" is counted here)
            ends = raw.count(b"</", start, min(end + 1, len(raw)))
            self.starts += raw.count(b"<", start, end) - ends + raw.count(b"=", start, end)
            if self.starts > self.limit:
                raise _too_many(self.limit, raw)


def _check_chain(root: Element, max_depth: int, raw: bytes) -> None:
    elem, depth = root, 1
    while len(elem):
        elem = elem[-1]
        depth += 1
        if depth > max_depth:
            raise _too_deep(max_depth, raw)


def _parse_fast(raw: bytes, max_depth: int, max_elements: int) -> Element:
    parser = XMLParser()  # noqa: S314 - DTD-free by construction (see above)
    # "start" events only until the root element is seen (its chain is walked between chunks)
    events: list[tuple[str, Element]] = []
    parser._setevents(events, ("start",))  # type: ignore[attr-defined]  # XMLPullParser's event switch
    budget = _ElementBudget(raw, max_elements)
    view = memoryview(raw)
    root: Optional[Element] = None
    pos, size, piece = 0, len(raw), _FIRST_PIECE
    try:
        while pos < size:
            end = min(pos + piece, size)
            budget.take(pos, end)
            parser.feed(view[pos:end])
            pos = end
            if root is None:
                if not events:
                    piece = min(piece * 2, CHUNK)
                    continue
                root = events[0][1]
                parser._setevents(events, ())  # type: ignore[attr-defined]
                events.clear()
                piece = CHUNK
            _check_chain(root, max_depth, raw)
        result: Element = parser.close()
    except NormalizeError:
        raise
    except ParseError as exc:
        raise _malformed(exc, raw) from None
    except (ValueError, LookupError) as exc:
        raise MalformedDocumentError(f"malformed XML: {exc}", 1, 1, raw) from None
    return result


class _BoundedBuilder(TreeBuilder):
    """Tree builder for the defusedxml path: both limits checked at every start tag."""

    def __init__(self, raw: bytes, max_depth: int, max_elements: int) -> None:
        super().__init__()
        self._raw = raw
        self._max_depth = max_depth
        self._max_elements = max_elements
        self._depth = 0
        self._count = 0

    def start(self, tag: Any, attrs: Any, /) -> Element:
        self._depth += 1
        self._count += 1 + len(attrs)
        if self._depth > self._max_depth:
            raise _too_deep(self._max_depth, self._raw)
        if self._count > self._max_elements:
            raise _too_many(self._max_elements, self._raw)
        return super().start(tag, attrs)

    def end(self, tag: Any, /) -> Element:
        self._depth -= 1
        return super().end(tag)


def _parse_defused(raw: bytes, max_depth: int, max_elements: int) -> Element:
    parser = safe_et.DefusedXMLParser(
        target=_BoundedBuilder(raw, max_depth, max_elements), forbid_dtd=True, forbid_entities=True,
        forbid_external=True,
    )
    try:
        for pos in range(0, len(raw), CHUNK):
            parser.feed(raw[pos : pos + CHUNK])
        root: Element = parser.close()
    except NormalizeError:
        raise
    except DefusedXmlException as exc:
        raise ForbiddenXMLError(f"forbidden XML construct refused: {type(exc).__name__}: {exc}", raw) from None
    except ParseError as exc:
        raise _malformed(exc, raw) from None
    except (ValueError, LookupError) as exc:  # e.g. unknown encoding in the XML declaration
        raise MalformedDocumentError(f"malformed XML: {exc}", 1, 1, raw) from None
    return root


def parse_xml(raw: bytes, max_depth: int = DEFAULT_MAX_DEPTH, max_elements: int = DEFAULT_MAX_ELEMENTS) -> Element:
    """Parse with both limits enforced while parsing (see above); every failure is a
    ``NormalizeError`` carrying ``raw``."""
    if _dtd_free(raw):
        return _parse_fast(raw, max_depth, max_elements)
    return _parse_defused(raw, max_depth, max_elements)


def check_json_elements(raw: bytes, max_elements: int) -> None:
    """Refuse JSON with more values than ``max_elements`` before ``json.loads`` builds them.

    Every value but the first of an array/object follows a ",", the first one a "[" or
    "{": their count (plus the top-level value) bounds the number of values from above."""
    if len(raw) // 2 <= max_elements:  # a value and its separator take at least 2 bytes
        return
    values = raw.count(b",") + raw.count(b"[") + raw.count(b"{") + 1
    if values > max_elements:
        raise TooManyElementsError(f"JSON document has more than {max_elements} values", max_elements, raw)


class _NonFiniteNumber(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFiniteNumber(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise MalformedDocumentError(f"malformed JSON: {exc.msg}", exc.lineno, exc.colno, raw) from None
    except UnicodeDecodeError as exc:
        line, column = _line_col(raw, exc.start)
        raise MalformedDocumentError("malformed JSON: invalid UTF-8", line, column + 1, raw) from None
    except RecursionError:
        raise DocumentTooDeepError("JSON nested too deeply to parse", DEFAULT_MAX_DEPTH, raw) from None
    except ValueError as exc:  # NaN/Infinity, integers longer than int() accepts
        raise MalformedDocumentError(f"malformed JSON: {exc}", 1, 1, raw) from None
