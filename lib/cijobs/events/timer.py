"""Timer trigger: ``{"Type": "Timer", "TriggerName", "Time", "Message"}`` (async)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .base import EventError, Limits, Work, as_str, ids_from_json_object, ids_from_value, looks_like_json_object


@dataclass(frozen=True)
class TimerEvent:
    trigger_name: str
    time: str
    message: str

    kind: ClassVar[str] = "timer"
    raises_when_unparked: ClassVar[bool] = True  # async: SCF retries, then the dead-letter queue

    @staticmethod
    def matches(event: dict[str, Any]) -> bool:
        return event.get("Type") == "Timer"

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> TimerEvent:
        return cls(
            trigger_name=as_str(event.get("TriggerName"), "TriggerName", required=False),
            time=as_str(event.get("Time"), "Time", required=False),
            message=as_str(event.get("Message"), "Message", required=False),
        )

    def job_ids(self, limits: Limits) -> list[str]:
        """IDs named by ``Message``: a comma list or ``{"JobIds": [...]}``.

        A Message in which no token looks like a job ID (e.g. a note such as
        "every 5 minutes") names no IDs: the tick then works the pending
        registry only. A JSON Message must be well formed.
        """
        text = self.message.strip()
        if not text:
            return []
        if looks_like_json_object(text):
            return ids_from_json_object(text, "Message", limits)
        from ..job_ids import validate_job_id

        ids = ids_from_value(text, "Message", limits)
        if not any(validate_job_id(i) for i in ids):
            return []
        return ids

    def work(self, limits: Limits) -> Work:
        """A tick: the pending registry, plus the IDs of ``Message``. A bad Message is reported (a retry of
        the same Message cannot help) and the tick still works the registry."""
        try:
            return Work(ids=tuple(self.job_ids(limits)), tick=True)
        except EventError as exc:
            return Work(tick=True, errors=(str(exc),))
