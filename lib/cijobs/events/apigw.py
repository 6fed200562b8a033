"""API Gateway trigger, integration request (sync; Tencent retires API Gateway on 2025-06-30)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .http import HttpEvent, common_fields


@dataclass(frozen=True)
class APIGatewayEvent(HttpEvent):
    stage: Optional[str] = None
    service_id: Optional[str] = None
    path_template: Optional[str] = None

    kind = "apigw"

    @staticmethod
    def matches(event: dict[str, Any]) -> bool:
        return "httpMethod" in event and "requestContext" in event

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> APIGatewayEvent:
        ctx = event.get("requestContext")
        ctx = ctx if isinstance(ctx, dict) else {}
        return cls(
            **common_fields(event),
            request_id=_opt(ctx.get("requestId")),
            source_ip=_opt(ctx.get("sourceIp")),
            stage=_opt(ctx.get("stage")),
            service_id=_opt(ctx.get("serviceId")),
            path_template=_opt(ctx.get("path")),
        )


def _opt(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None
