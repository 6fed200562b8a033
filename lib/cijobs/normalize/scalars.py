"""Typed scalar conversion for declared paths.

Conversions are strict (no "looks numeric" guessing and no Python leniency such as
``int(" 1_0 ")`` or ``float("nan")``): a value that does not parse as its declared
type is returned unchanged (as the original string) and reported to the drift
callback (see ``drift.py``).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Callable, Optional

from .drift import DriftCallback, ignore_drift, report

STRING, INT, FLOAT, BOOL, TIMESTAMP, OBJECT = "string", "int", "float", "bool", "timestamp", "object"
KINDS = (STRING, INT, FLOAT, BOOL, TIMESTAMP, OBJECT)

_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\Z")
# 2022-06-27T15:23:12+0800 | 2022-08-09 14:54:17+0800 | ...+08:00 | ...Z, optional fraction
_TS_RE = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)(?:([+-]\d{2}):?(\d{2})|(Z))\Z"
)
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})

def parse_int(text: str) -> Optional[int]:
    if text.isdigit() and text.isascii():  # fast path: plain unsigned digits, the usual case
        try:
            return int(text)
        except ValueError:  # more digits than int() accepts (3.11 str-digits limit)
            return None
    body = text[1:] if text[:1] in ("+", "-") else text
    if not body or not body.isascii() or not body.isdigit():
        return None
    try:
        return int(text)
    except ValueError:  # more digits than int() accepts (3.11 str-digits limit)
        return None


def parse_float(text: str) -> Optional[float]:
    if not text.isascii():
        return None
    # fast path: unsigned "123", "123.", ".5", "123.456" (a subset of what _FLOAT_RE accepts) skip the regex
    if not text.replace(".", "", 1).isdigit() and _FLOAT_RE.match(text) is None:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def parse_bool(text: str) -> Optional[bool]:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return None


# Valid timestamp conversions seen recently: the jobs of one batch mostly share a few
# timestamps and a miss costs a regex and a datetime parse (~0.9 us). Bounded: emptied
# when full. Plain dict get/set are atomic under the GIL, so threads may share it.
_TS_CACHE: dict[str, str] = {}
_TS_CACHE_MAX = 4096


def parse_timestamp(text: str) -> Optional[str]:
    """CI timestamp -> ISO 8601 with a colon offset, or None if it is not one."""
    cached = _TS_CACHE.get(text)
    if cached is not None:
        return cached
    iso = _parse_timestamp(text)
    if iso is not None:
        if len(_TS_CACHE) >= _TS_CACHE_MAX:
            _TS_CACHE.clear()
        _TS_CACHE[text] = iso
    return iso


def _parse_timestamp(text: str) -> Optional[str]:
    m = _TS_RE.match(text)
    if m is None:
        return None
    date, time_, hours, minutes, zulu = m.groups()
    offset = "+00:00" if zulu else f"{hours}:{minutes}"
    iso = f"{date}T{time_}{offset}"
    try:
        datetime.fromisoformat(iso if len(time_) in (8, 15) else _pad_fraction(date, time_, offset))
    except ValueError:  # 2022-13-45T99:..: shape right, calendar wrong
        return None
    return iso


def _pad_fraction(date: str, time_: str, offset: str) -> str:
    # py3.9's fromisoformat wants exactly 3 or 6 fraction digits; only for validation
    whole, _, frac = time_.partition(".")
    return f"{date}T{whole}.{frac.ljust(6, '0')}{offset}"


_PARSERS: dict[str, Callable[[str], Any]] = {
    INT: parse_int,
    FLOAT: parse_float,
    BOOL: parse_bool,
    TIMESTAMP: parse_timestamp,
}


def convert(kind: Optional[str], text: str, path: str, on_drift: DriftCallback = ignore_drift) -> Any:
    """Convert one (already stripped) text value found at a declared path.

    * ``timestamp``: ``-`` and empty -> None; else ISO 8601 (``+08:00``).
    * ``object`` (a declared container that came out empty): ``""`` -> ``{}``.
    * empty text on any other path -> ``""`` (CI sent an empty value).
    * unparsable -> the original string, reported to ``on_drift``.
    """
    if kind is None or kind == STRING:
        return text
    if kind == OBJECT:
        if not text:
            return {}
        report(on_drift, path, "text where a container was expected", text)
        return text
    if not text or (text == "-" and kind == TIMESTAMP):
        return None if kind == TIMESTAMP else ""
    value = _PARSERS[kind](text)
    if value is None:
        report(on_drift, path, f"not a valid {kind}", text)
        return text
    return value


Converter = Callable[[str, str, DriftCallback], Any]


def _int_converter(text: str, path: str, on_drift: DriftCallback) -> Any:
    if text.isdigit() and text.isascii():  # parse_int's fast path, inlined
        try:
            return int(text)
        except ValueError:
            pass
    return convert(INT, text, path, on_drift)


def _float_converter(text: str, path: str, on_drift: DriftCallback) -> Any:
    if text.isascii() and text.replace(".", "", 1).isdigit():  # parse_float's fast path, inlined
        value = float(text)
        if math.isfinite(value):
            return value
    return convert(FLOAT, text, path, on_drift)


def _timestamp_converter(text: str, path: str, on_drift: DriftCallback) -> Any:
    cached = _TS_CACHE.get(text)
    return cached if cached is not None else convert(TIMESTAMP, text, path, on_drift)


_FAST_CONVERTERS: dict[str, Converter] = {
    INT: _int_converter,
    FLOAT: _float_converter,
    TIMESTAMP: _timestamp_converter,
}


def converter(kind: str) -> Converter:
    """``convert`` for one kind, as a function of (text, path, on_drift): the same results, with the common
    cases (plain digits, a timestamp seen before) answered without the general dispatch."""
    fast = _FAST_CONVERTERS.get(kind)
    if fast is not None:
        return fast

    def general(text: str, path: str, on_drift: DriftCallback) -> Any:
        return convert(kind, text, path, on_drift)

    return general
