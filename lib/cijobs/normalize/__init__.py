"""Normalize CI's XML/JSON job documents into stable, typed JSON-ready dicts.

Pure package: bytes in, dict out (no I/O). See docs/normalized-json.md.
"""

from __future__ import annotations

from .document import normalize_document, parse_error
from .drift import DriftCallback, DriftReporter
from .errors import (
    DocumentTooDeepError,
    DocumentTooLargeError,
    ForbiddenXMLError,
    LimitExceededError,
    MalformedDocumentError,
    NormalizeError,
    TooManyElementsError,
    UnexpectedDocumentError,
)
from .parse import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, DEFAULT_MAX_ELEMENTS
from .repair import REPAIRS, STRAY_CLOSE_TAG, UNCLOSED_LEAF_TAG

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_ELEMENTS",
    "REPAIRS",
    "STRAY_CLOSE_TAG",
    "UNCLOSED_LEAF_TAG",
    "DocumentTooDeepError",
    "DocumentTooLargeError",
    "DriftCallback",
    "DriftReporter",
    "ForbiddenXMLError",
    "LimitExceededError",
    "MalformedDocumentError",
    "NormalizeError",
    "TooManyElementsError",
    "UnexpectedDocumentError",
    "normalize_document",
    "parse_error",
]
