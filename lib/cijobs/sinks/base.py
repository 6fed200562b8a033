"""What every sink shares: the ``WriteResult``, the ``Sink`` protocol, the canonical body and the key layout.

One bad job fails alone: a job that cannot be serialized (e.g. a string holding a lone surrogate, which
UTF-8 cannot encode) or keyed becomes that job's failed result (``InvalidJob`` / ``InvalidKey``, not
retryable), and an unexpected exception while writing one job becomes that job's ``WriteNotConfirmed``
(retryable: the write may or may not have happened); the batch's other jobs are written as usual.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Sequence
from typing import Any, Optional, Protocol, Union

from ..deadline import Deadline
from ..errors import SettingsError
from ..models import TERMINAL_STATES, ErrorInfo, Job, WriteResult
from ..store import ObjectStore, StoreError
from ..store.keys import InvalidKeyError, validate_key
from ..targets import PENDING_DIR

INVALID_JOB = "InvalidJob"  # the job cannot be written anywhere (no usable JobId, not serializable): final
WRITE_NOT_CONFIRMED = "WriteNotConfirmed"  # the sink raised: whether it wrote is unknown (retryable)
UNKNOWN_TAG = "Unknown"
TEMPLATE_FIELDS = frozenset({"prefix", "Tag", "JobId", "State"})
DEFAULT_TEMPLATE = "{prefix}/{Tag}/{JobId}.json"
# Values that become key segments: no '/', no leading '.', nothing that needs escaping.
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


class Sink(Protocol):
    """Writes terminal jobs somewhere. ``write`` returns exactly one result per job, in order,
    and never raises for a per-job problem."""

    name: str

    def write(self, jobs: Sequence[Job], deadline: Optional[Deadline] = None) -> list[WriteResult]: ...


class SinkConfigError(SettingsError):
    """RESULT_SINK / CLAIM_CHECK_STORE / RESULT_KEY_TEMPLATE / CMQ settings are unusable (names the setting)."""


def canonical_json(job: Job) -> bytes:
    """The same job always gives the same bytes (sorted keys, no spaces, UTF-8)."""
    return json.dumps(job, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def serialize(job: Job, job_id: str, state: Optional[str]) -> Union[bytes, WriteResult]:
    """``canonical_json(job)``, or the job's ``InvalidJob`` failure when it cannot be serialized."""
    try:
        return canonical_json(job)
    except (ValueError, TypeError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        return WriteResult.failed(job_id, state, INVALID_JOB,
                                  f"the job cannot be serialized as UTF-8 JSON ({type(exc).__name__}: "
                                  f"{ascii(str(exc))[1:-1][:200]})", retryable=False)


def not_confirmed(job_id: str, state: Optional[str], sink: str, exc: BaseException) -> WriteResult:
    """The result of a job whose write raised unexpectedly (``WriteNotConfirmed``, retryable)."""
    return WriteResult.failed(job_id, state, WRITE_NOT_CONFIRMED,
                              f"{sink}: the write raised {type(exc).__name__}; not confirmed", retryable=True)


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def job_fields(job: Job) -> tuple[str, Optional[str], str]:
    """``(JobId, State, Tag)``; missing Tag → ``Unknown``; JobId ``""`` when missing."""
    job_id = job.get("JobId")
    state = job.get("State")
    tag = job.get("Tag")
    return (
        job_id if isinstance(job_id, str) else "",
        state if isinstance(state, str) else None,
        tag if isinstance(tag, str) and tag else UNKNOWN_TAG,
    )


def key_segment(value: str, fallback: str = UNKNOWN_TAG) -> str:
    """``value`` when it is safe as one object-key segment (letters, digits, ``_``, ``-``), else ``fallback``."""
    return value if _SEGMENT_RE.match(value) else fallback


def refuse(job: Job) -> Optional[WriteResult]:
    """A failure result for a job no sink may write (no usable JobId, or not terminal), else None."""
    job_id, state, _tag = job_fields(job)
    if not job_id or not _SEGMENT_RE.match(job_id):
        return WriteResult.failed(job_id, state, INVALID_JOB, "job has no usable JobId", retryable=False)
    if state not in TERMINAL_STATES:
        return WriteResult.failed(
            job_id, state, "NotTerminal",
            f"only terminal jobs ({', '.join(sorted(TERMINAL_STATES))}) are written, got State={state!r}",
            retryable=False,
        )
    return None


class KeyLayout:
    """Renders ``RESULT_KEY_TEMPLATE`` into safe object keys that never fall under ``.pending/``."""

    def __init__(self, template: str = DEFAULT_TEMPLATE) -> None:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        unknown = fields - TEMPLATE_FIELDS
        if unknown:
            raise SinkConfigError(
                f"RESULT_KEY_TEMPLATE may only use {{prefix}}, {{Tag}}, {{JobId}}, {{State}}; got {sorted(unknown)}"
            )
        if "JobId" not in fields:
            raise SinkConfigError("RESULT_KEY_TEMPLATE must contain {JobId} (one object per job)")
        sample = template.format(prefix="p", Tag="T", JobId="j", State="S")
        if any(seg.startswith(".") for seg in sample.split("/")) or PENDING_DIR in sample:
            raise SinkConfigError(
                "RESULT_KEY_TEMPLATE must not contain a segment starting with '.' (reserved for .pending/)"
            )
        self.template = template
        self.render("", "jexample00000000000000", "Success", "Transcode")  # fails now, not per job

    def render(self, prefix: str, job_id: str, state: str, tag: str) -> str:
        """The key for one job; raises ``InvalidKeyError`` for values that are unsafe in a key."""
        for name, value in (("JobId", job_id), ("Tag", tag), ("State", state)):
            if not _SEGMENT_RE.match(value):
                raise InvalidKeyError(f"{name} {value!r} cannot be used in an object key")
        key = self.template.format(prefix=prefix.strip("/"), JobId=job_id, State=state, Tag=tag)
        key = re.sub(r"/{2,}", "/", key).lstrip("/")
        validate_key(key)
        if any(seg.startswith(".") for seg in key.split("/")):
            raise InvalidKeyError(f"result key {key!r} has a segment starting with '.'")
        return key


def combine(job_id: str, state: Optional[str], parts: Sequence[tuple[str, WriteResult]]) -> WriteResult:
    """One result from several sinks' results: ok only when every sink wrote the job."""
    failures = [(name, r) for name, r in parts if not r.ok]
    if not failures:
        return WriteResult.written(job_id, state, already=all(r.already for _, r in parts))
    _name, first = failures[0]
    err = first.error or ErrorInfo("WriteFailed", "write failed")
    names = ", ".join(n for n, _ in failures)
    message = f"{names}: {err.message}" if len(failures) == 1 else f"{len(failures)} sinks failed ({names}): " \
        f"{err.message}"
    # Retrying only helps when every failing sink can succeed later.
    return WriteResult.from_error(
        job_id, state, ErrorInfo(err.code, message, err.http_status, err.request_id),
        retryable=all(r.retryable for _, r in failures),
    )


def claim_check(store: ObjectStore, job: Job, job_id: str, state: str, body: bytes, deadline: Optional[Deadline],
                log: Any) -> Union[dict[str, Any], WriteResult]:
    """Store an oversized body in the claim-check store (content-addressed, create-if-absent) and return the
    pointer document a message or delivery carries instead; or this job's failure.

    The key and metadata use the Tag only when it is a safe key segment (any other Tag, e.g. "..", "a/b" or
    non-ASCII, is stored under the unknown-tag name); the pointer document keeps the raw Tag.
    """
    tag = key_segment(job_fields(job)[2])
    digest = sha256_hex(body)
    try:
        key = store.key("claim-check", tag, job_id, f"{state}-{digest[:16]}.json")
        created = store.create(key, body, "application/json",
                               {"jobid": job_id, "tag": tag, "state": state, "sha256": digest}, deadline)
    except StoreError as exc:
        return WriteResult.from_error(job_id, state, exc.to_error_info(), exc.retryable)
    except ValueError as exc:  # InvalidKeyError: this job fails alone
        return WriteResult.failed(job_id, state, "InvalidKey", str(exc), retryable=False)
    log.info("claim_check_stored", job_id=job_id, key=key, size=len(body), created=created)
    pointer: dict[str, Any] = {**dict(store.pointer(key)), "Size": len(body), "Sha256": digest}
    return {"JobId": job_id, "Tag": job.get("Tag"), "State": state, "ClaimCheck": pointer}
