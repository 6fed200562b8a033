"""Safe parsing: bytes -> ElementTree root (defusedxml only) or JSON value.

Every failure becomes a ``NormalizeError`` subclass carrying the raw body.
"""

from __future__ import annotations

import json
import re
from typing import Any, Union
from xml.etree.ElementTree import Element, ParseError, XMLParser

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

from .errors import DocumentTooDeepError, DocumentTooLargeError, ForbiddenXMLError, MalformedDocumentError

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64
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


# A DTD is the only place where entities (billion laughs, quadratic blowup,
# external entities, DTD retrieval) can be declared, and it must start with
# "<!DOCTYPE" (XML is case-sensitive). A strictly UTF-8 document that contains
# neither marker cannot declare an entity, so it is parsed by the C expat
# builder (~4x faster than defusedxml's pure-Python tree builder); anything
# else, and any document the fast parser rejects, goes through defusedxml,
# which refuses the forbidden constructs and reports the canonical error.
_DTD_MARKERS = ("<!DOCTYPE", "<!ENTITY")
_ENCODING_DECL = re.compile(r"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")


def _dtd_free_text(raw: bytes) -> Union[str, None]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(marker in text for marker in _DTD_MARKERS):
        return None
    declared = _ENCODING_DECL.match(text)
    if declared and declared.group(1).lower() not in ("utf-8", "utf8"):
        return None  # a declared non-UTF-8 encoding is defusedxml's (and expat's) to judge
    return text


def _fast_parse(raw: bytes) -> Union[Element, None]:
    text = _dtd_free_text(raw)
    if text is None:
        return None
    parser = XMLParser()  # noqa: S314 - DTD-free by construction (see above); fed str, expat reads UTF-8
    try:
        parser.feed(text)
        root: Element = parser.close()
    except (ParseError, ValueError, LookupError):
        return None  # let the defusedxml path produce the canonical error
    return root


def parse_xml(raw: bytes) -> Element:
    fast = _fast_parse(raw)
    if fast is not None:
        return fast
    try:
        root: Element = safe_et.fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ForbiddenXMLError(f"forbidden XML construct refused: {type(exc).__name__}: {exc}", raw) from None
    except ParseError as exc:
        line, column = exc.position  # expat: column is 0-based
        msg = str(exc).split(": line", 1)[0]
        raise MalformedDocumentError(f"malformed XML: {msg}", line, column + 1, raw) from None
    except (ValueError, LookupError) as exc:  # e.g. unknown encoding in the XML declaration
        raise MalformedDocumentError(f"malformed XML: {exc}", 1, 1, raw) from None
    return root


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
