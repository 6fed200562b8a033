"""CMQ topic trigger (legacy, async): ``Records[].CMQ{topicName, msgId, msgBody, msgTag, ...}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .base import EventError
from .queues import QueueEvent, QueueRecord


@dataclass(frozen=True)
class CMQRecord(QueueRecord):
    index: int
    type: str
    topic_name: str
    subscription_name: str
    publish_time: str
    msg_id: str
    request_id: str
    msg_body: str
    msg_tags: tuple[str, ...]

    @property
    def ref(self) -> str:
        return f"{self.topic_name}/{self.msg_id}"

    @classmethod
    def from_record(cls, record: Any, index: int) -> CMQRecord:
        cmq = record.get("CMQ") if isinstance(record, dict) else None
        if not isinstance(cmq, dict):
            raise EventError(f"Records[{index}].CMQ must be an object", f"Records[{index}].CMQ")
        body = cmq.get("msgBody")
        if not isinstance(body, str):
            raise EventError(f"Records[{index}].CMQ.msgBody must be a string", f"Records[{index}].CMQ.msgBody")
        tag = cmq.get("msgTag")
        if isinstance(tag, list):  # the zh doc shows a list, the en doc a comma string: accept both
            tags = tuple(str(t) for t in tag)
        elif isinstance(tag, str):
            tags = tuple(t.strip() for t in tag.split(",") if t.strip())
        else:
            tags = ()
        return cls(
            index=index,
            type=str(cmq.get("type") or ""),
            topic_name=str(cmq.get("topicName") or ""),
            subscription_name=str(cmq.get("subscriptionName") or ""),
            publish_time=str(cmq.get("publishTime") or ""),
            msg_id=str(cmq.get("msgId") or ""),
            request_id=str(cmq.get("requestId") or ""),
            msg_body=body,
            msg_tags=tags,
        )


@dataclass(frozen=True)
class CMQTopicEvent(QueueEvent):
    """Async: an invocation that could not park a retryable failure raises, so SCF retries the event."""

    kind: ClassVar[str] = "cmq"
    wrapper: ClassVar[str] = "CMQ"
    record_class: ClassVar[Any] = CMQRecord
