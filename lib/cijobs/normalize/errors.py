"""Exceptions raised by the normalizer. Every failure is a ``NormalizeError``."""

from __future__ import annotations

from typing import Any, Optional


class NormalizeError(ValueError):
    """Base class: the body could not be turned into a normalized document."""

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.message = message
        self.raw = raw


class MalformedDocumentError(NormalizeError):
    """Not well-formed XML / not valid JSON. ``line`` and ``column`` are both 1-based
    (expat's 0-based column is shifted by one). ``raw`` is the body as received."""

    def __init__(self, message: str, line: int, column: int, raw: bytes = b"") -> None:
        super().__init__(f"{message} (line {line}, column {column})", raw)
        self.line = line
        self.column = column


class ForbiddenXMLError(NormalizeError):
    """DTD, entity declaration or external entity reference: refused by defusedxml."""


class UnexpectedDocumentError(NormalizeError):
    """Well-formed, but not a CI jobs document (e.g. an ``<Error>`` body, another root).

    ``error`` holds ``parse_error()``'s dict when the body is a CI/COS ``<Error>``."""

    def __init__(self, message: str, raw: bytes = b"", error: Optional[dict[str, Any]] = None) -> None:
        super().__init__(message, raw)
        self.error = error


class LimitExceededError(NormalizeError):
    """A safety limit (size, element count, nesting depth) was exceeded. ``limit`` is the configured bound."""

    def __init__(self, message: str, limit: int, raw: bytes = b"") -> None:
        super().__init__(message, raw)
        self.limit = limit


class DocumentTooLargeError(LimitExceededError):
    """Body longer than ``max_bytes``."""


class TooManyElementsError(DocumentTooLargeError):
    """More items than ``max_elements`` (XML: elements plus attributes; JSON: values):
    refused while parsing, before the rest of the document is read."""


class DocumentTooDeepError(LimitExceededError):
    """Element/object nesting deeper than ``max_depth``."""
