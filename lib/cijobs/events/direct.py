"""Direct invocation (``Invoke`` API / console test): ``{"JobIds": [...]}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import JobRequest, Limits, ids_from_value


@dataclass(frozen=True)
class DirectInvokeEvent:
    raw_job_ids: Any

    kind = "direct"

    @staticmethod
    def matches(event: dict[str, Any]) -> bool:
        return "JobIds" in event

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> DirectInvokeEvent:
        return cls(event["JobIds"])

    def request(self, limits: Limits) -> JobRequest:
        return JobRequest(tuple(ids_from_value(self.raw_job_ids, "JobIds", limits)), self.kind)
