"""Shared record handling for the queue triggers (CMQ topic, CKafka)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .base import EventError, JobRequest, Limits
from .notification import parse_message


@dataclass(frozen=True)
class RecordResult:
    """What one queue record turned into: a request, or the reason it was skipped."""

    index: int
    ref: str
    request: Optional[JobRequest] = None
    error: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Index": self.index, "Ref": self.ref}
        if self.request is not None:
            out["JobIds"] = list(self.request.job_ids)
        if self.error is not None:
            out["Error"] = self.error
        return out


def parse_record_body(index: int, ref: str, body: str, source: str, limits: Limits) -> RecordResult:
    try:
        return RecordResult(index, ref, request=parse_message(body, source, limits, f"Records[{index}].msgBody"))
    except EventError as exc:
        return RecordResult(index, ref, error=str(exc))


def records_of(event: dict[str, Any]) -> list[Any]:
    records = event.get("Records")
    if not isinstance(records, list):
        raise EventError("Records must be a list", "Records")
    return records


def record_key(event: dict[str, Any]) -> Optional[str]:
    """The key of the first record's single wrapper (``CMQ``, ``Ckafka``, ``cos``), if any."""
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        for key in ("CMQ", "Ckafka", "cos"):
            if key in records[0]:
                return key
    return None
