"""Job ID parsing and validation.

Real CI job IDs are one lowercase letter plus 32 lowercase hex digits
(``j8d121820f5e411ec926ef19d53ba9c6f``), but the docs also show placeholders
and other families, so the check is deliberately lenient: a lowercase letter
followed by 16-64 lowercase letters or digits. That is enough to keep
anything that could change the request path (``/``, ``?``, ``%``, ``,``, ``..``,
whitespace, non-ASCII) out of ``GET /jobs/<ids>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_JOB_ID_LEN = 65
JOB_ID_RE = re.compile(r"[a-z][0-9a-z]{16,64}")
_SEPARATORS = re.compile(r"[,\s]+")


def validate_job_id(value: object) -> bool:
    """True when ``value`` is a string that looks like a CI job ID (no surrounding whitespace)."""
    return (
        isinstance(value, str)
        and len(value) <= MAX_JOB_ID_LEN
        and JOB_ID_RE.fullmatch(value) is not None
    )


def split_ids(text: str) -> list[str]:
    """Split ``"jA,jB jC\\njD"`` on commas and whitespace; empty parts are dropped, order kept.

    Nothing is validated or de-duplicated here (see :func:`validate_job_id`, :func:`dedupe`).
    """
    return [part for part in _SEPARATORS.split(text) if part]


def dedupe(ids: Iterable[str]) -> list[str]:
    """The IDs with repeats removed, first occurrence wins, order kept."""
    return list(dict.fromkeys(ids))
