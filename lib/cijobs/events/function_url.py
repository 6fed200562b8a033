"""Function URL event (sync): API-GW-like minus requestContext, lower-case headers, no isBase64Encoded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .http import HttpEvent, common_fields


@dataclass(frozen=True)
class FunctionURLEvent(HttpEvent):
    kind = "function_url"

    @staticmethod
    def matches(event: dict[str, Any]) -> bool:
        return "httpMethod" in event and "requestContext" not in event

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> FunctionURLEvent:
        fields = common_fields(event)
        remote = fields["headers"].get("x-scf-remote-addr")
        return cls(**fields, source_ip=remote)
