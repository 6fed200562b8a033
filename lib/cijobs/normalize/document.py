"""Public entry points: ``normalize_document`` and ``parse_error``."""

from __future__ import annotations

import re
from typing import Any, Optional, Union
from xml.etree.ElementTree import Element

from . import repair as _repair
from .drift import DriftCallback, resolve
from .errors import MalformedDocumentError, NormalizeError, UnexpectedDocumentError
from .parse import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_ELEMENTS,
    JSON,
    check_json_elements,
    check_size,
    parse_json,
    parse_xml,
    sniff,
    to_bytes,
)
from .scalars import OBJECT
from .table import Spec, root_trie
from .walk import json_value, xml_document_value

Body = Union[bytes, bytearray, memoryview, str]
ROOT = "Response"
_ID_SPLIT = re.compile(r"[\s,]+")
_ERROR_FIELDS = ("Code", "Message", "RequestId", "TraceId")


def _root_spec() -> Spec:
    return (False, OBJECT, root_trie())


def normalize_document(
    body: Body,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
    repair: tuple[str, ...] = (),
    on_drift: Optional[DriftCallback] = None,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> dict[str, Any]:
    """Normalize a CI query response, list response or callback (XML or JSON).

    Returns ``{"JobsDetail": [...], "NonExistJobIds": [...], ...}``; callbacks keep
    ``EventName`` (and ``WorkflowExecution``), list responses ``NextToken``; other
    top-level children pass through. Raises a ``NormalizeError`` subclass on any
    bad input (never anything else for bytes/str input). ``max_bytes``, ``max_elements`` and
    ``max_depth`` are enforced while parsing: a refused body is not read further.

    ``on_drift(path, problem, sample)`` is called for every value that does not fit
    the table (kept as sent); ``None`` reports nothing. The normalizer does not
    deduplicate: pass a ``DriftReporter`` for once-per-(path, problem) reports.
    """
    drift = resolve(on_drift)
    raw = to_bytes(body)
    check_size(raw, max_bytes)
    _repair.validate(repair)
    if sniff(raw) == JSON:
        check_json_elements(raw, max_elements)
        return _from_json(raw, max_depth, drift)
    return _envelope(_xml_root_value(raw, max_depth, max_elements, repair, drift), raw)


def _parse_xml_with_repairs(raw: bytes, max_depth: int, max_elements: int, repairs: tuple[str, ...]) -> Element:
    body = raw
    for _ in range(_repair.MAX_REPAIRS + 1):
        try:
            return parse_xml(body, max_depth, max_elements)
        except MalformedDocumentError as exc:
            fixed = _repair.try_repair(body, exc.line, repairs) if repairs else None
            if fixed is None:
                exc.raw = raw
                raise
            body = fixed
    raise MalformedDocumentError("too many repairs needed", 1, 1, raw)


def _xml_root_value(
    raw: bytes, max_depth: int, max_elements: int, repairs: tuple[str, ...], on_drift: DriftCallback
) -> Any:
    root = _parse_xml_with_repairs(raw, max_depth, max_elements, repairs)
    if root.tag != ROOT:
        _unexpected_root(root, raw)
    # an attribute needs a "=" (repairs never add one): without any, the walk skips looking for them
    return xml_document_value(root, max_depth, attributes=b"=" in raw, on_drift=on_drift)


def _unexpected_root(root: Element, raw: bytes) -> None:
    if root.tag == "Error":
        err = _error_dict(root)
        raise UnexpectedDocumentError(
            f"CI error document: {err.get('Code', '')}: {err.get('Message', '')}", raw, error=err
        )
    raise UnexpectedDocumentError(f"unexpected root element <{str(root.tag)[:64]}>, expected <{ROOT}>", raw)


def _from_json(raw: bytes, max_depth: int, on_drift: DriftCallback) -> dict[str, Any]:
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise UnexpectedDocumentError(f"JSON document is a {type(data).__name__}, expected an object", raw)
    if set(data) == {ROOT} and isinstance(data[ROOT], dict):
        data = data[ROOT]
    if "Error" in data and "JobsDetail" not in data:
        err = data["Error"] if isinstance(data["Error"], dict) else None
        raise UnexpectedDocumentError("CI error document (JSON)", raw, error=err)
    return _envelope(json_value(data, _root_spec(), "", 1, max_depth, on_drift), raw)


def _envelope(value: Any, raw: bytes) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UnexpectedDocumentError(f"<{ROOT}> holds text, not a jobs document", raw)
    out = value
    jobs = out.get("JobsDetail")
    if jobs is None:
        out["JobsDetail"] = []
    for job in out["JobsDetail"]:
        if not isinstance(job, dict):
            raise UnexpectedDocumentError("a JobsDetail entry is not a container", raw)
    out["NonExistJobIds"] = _nonexistent(out.get("NonExistJobIds") or [], raw)
    return out


def _nonexistent(values: list[Any], raw: bytes) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str):
            raise UnexpectedDocumentError("NonExistJobIds holds a container, not ids", raw)
        for part in _ID_SPLIT.split(value):
            if part:
                seen.setdefault(part, None)
    return list(seen)


def _error_dict(root: Element) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in root:
        if isinstance(child.tag, str) and child.tag not in out:
            out[child.tag] = (child.text or "").strip()
    for field in _ERROR_FIELDS:
        out.setdefault(field, "")
    return out


def parse_error(body: Body, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Optional[dict[str, Any]]:
    """CI/COS ``<Error>`` body -> ``{"Code","Message","RequestId","TraceId", ...extra}``.

    Returns None when the body is not an ``<Error>`` document (including bodies that
    are not XML at all, malformed, or forbidden): callers use it on non-2xx bodies
    and fall back to the HTTP status."""
    try:
        raw = to_bytes(body)
        check_size(raw, max_bytes)
        if sniff(raw) == JSON:
            return None
        root = parse_xml(raw)
    except NormalizeError:
        return None
    if root.tag != "Error":
        return None
    return _error_dict(root)
