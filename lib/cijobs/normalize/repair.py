"""Opt-in, named repairs for typos known from CI's documentation samples.

Strict parsing is the default; a repair runs only when the caller names it, and
only after the strict parse failed at exactly the spot the repair addresses:

* ``"stray-close-tag"``: a line holding nothing but a closing tag with no opening
  tag (the seed samples' ``</Message>``) becomes the empty element ``<Message/>``.
* ``"unclosed-leaf-tag"``: a line ``<Tag>text<Tag>`` (the VideoTag sample) becomes
  ``<Tag>text</Tag>``.
"""

from __future__ import annotations

import re
from typing import Optional

STRAY_CLOSE_TAG = "stray-close-tag"
UNCLOSED_LEAF_TAG = "unclosed-leaf-tag"
REPAIRS = (STRAY_CLOSE_TAG, UNCLOSED_LEAF_TAG)
MAX_REPAIRS = 16

_STRAY = re.compile(rb"^([ \t]*)</([A-Za-z_][\w.-]*)>([ \t]*\r?)$")
_UNCLOSED = re.compile(rb"^([ \t]*)<([A-Za-z_][\w.-]*)>([^<>]*)<\2>([ \t]*\r?)$")


def _is_open(before: bytes, name: bytes) -> bool:
    """Is an element ``name`` still open in ``before``? (then its close tag is not
    stray: something inside it is unclosed, and this repair must not apply)."""
    opened = len(re.findall(rb"<" + re.escape(name) + rb"(?:\s[^>]*)?(?<!/)>", before))
    closed = before.count(b"</" + name + b">")
    return opened > closed


def validate(repairs: tuple[str, ...]) -> None:
    unknown = [r for r in repairs if r not in REPAIRS]
    if unknown:
        raise ValueError(f"unknown repair(s) {unknown}; known: {list(REPAIRS)}")


def try_repair(raw: bytes, line: int, repairs: tuple[str, ...]) -> Optional[bytes]:
    """One repair step after a strict parse failed at ``line`` (1-based).

    ``stray-close-tag`` only touches the line the parser complained about.
    ``unclosed-leaf-tag`` fixes the first line above ``line`` that has the exact
    ``<X>text<X>`` shape (expat reports an unclosed tag only where the enclosing
    element closes, possibly far below). Returns the new body, or None when no
    named repair applies."""
    lines = raw.split(b"\n")
    index = line - 1
    if STRAY_CLOSE_TAG in repairs and 0 <= index < len(lines):
        m = _STRAY.match(lines[index])
        if m and not _is_open(b"\n".join(lines[:index]), m.group(2)):
            lines[index] = m.group(1) + b"<" + m.group(2) + b"/>" + m.group(3)
            return b"\n".join(lines)
    if UNCLOSED_LEAF_TAG in repairs:
        for i in range(min(index, len(lines) - 1), -1, -1):
            m = _UNCLOSED.match(lines[i])
            if m:
                name = m.group(2)
                lines[i] = m.group(1) + b"<" + name + b">" + m.group(3) + b"</" + name + b">" + m.group(4)
                return b"\n".join(lines)
    return None
