"""Direct invocation (``Invoke`` API / console test): ``{"JobIds": [...]}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .base import Limits, Work, ids_from_value


@dataclass(frozen=True)
class DirectInvokeEvent:
    raw_job_ids: Any

    kind: ClassVar[str] = "direct"
    # An Invoke may be async (InvocationType=Event) and the context does not say which: raise, so that
    # nothing is lost silently (a synchronous caller gets the error, naming the jobs).
    raises_when_unparked: ClassVar[bool] = True

    @staticmethod
    def matches(event: dict[str, Any]) -> bool:
        return "JobIds" in event

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> DirectInvokeEvent:
        return cls(event["JobIds"])

    def work(self, limits: Limits) -> Work:
        """The named IDs; :class:`EventError` when ``JobIds`` is unusable (the caller learns why)."""
        return Work(ids=tuple(ids_from_value(self.raw_job_ids, "JobIds", limits)))
