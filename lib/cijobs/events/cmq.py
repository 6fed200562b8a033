"""CMQ topic trigger (legacy, async): ``Records[].CMQ{topicName, msgId, msgBody, msgTag, ...}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import EventError, Limits
from .queues import RecordResult, parse_record_body, record_key, records_of


@dataclass(frozen=True)
class CMQRecord:
    index: int
    type: str
    topic_name: str
    subscription_name: str
    publish_time: str
    msg_id: str
    request_id: str
    msg_body: str
    msg_tags: tuple[str, ...]

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
class CMQTopicEvent:
    records: tuple[CMQRecord, ...]
    malformed: tuple[tuple[int, str], ...] = ()  # (index, error) of records that could not be read

    kind = "cmq"

    @staticmethod
    def matches(event: dict[str, Any]) -> bool:
        return record_key(event) == "CMQ"

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> CMQTopicEvent:
        good: list[CMQRecord] = []
        bad: list[tuple[int, str]] = []
        for i, r in enumerate(records_of(event)):
            try:
                good.append(CMQRecord.from_record(r, i))
            except EventError as exc:
                bad.append((i, str(exc)))
        return cls(tuple(good), tuple(bad))

    def parse_records(self, limits: Limits) -> list[RecordResult]:
        """One result per record, in record order; unreadable records carry their error."""
        results = [parse_record_body(r.index, f"{r.topic_name}/{r.msg_id}",
                                     r.msg_body, self.kind, limits) for r in self.records]
        results += [RecordResult(i, f"Records[{i}]", error=err) for i, err in self.malformed]
        return sorted(results, key=lambda x: x.index)
