"""CKafka trigger (sync, SCF's own consumer): ``Records[].Ckafka{topic, partition, offset, msgKey, msgBody}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from .base import EventError
from .queues import QueueEvent, QueueRecord


@dataclass(frozen=True)
class CKafkaRecord(QueueRecord):
    index: int
    topic: str
    partition: int
    offset: int
    msg_key: Optional[str]
    msg_body: str

    @property
    def ref(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @classmethod
    def from_record(cls, record: Any, index: int) -> CKafkaRecord:
        kafka = record.get("Ckafka") if isinstance(record, dict) else None
        if not isinstance(kafka, dict):
            raise EventError(f"Records[{index}].Ckafka must be an object", f"Records[{index}].Ckafka")
        body = kafka.get("msgBody")
        if not isinstance(body, str):
            raise EventError(f"Records[{index}].Ckafka.msgBody must be a string",
                             f"Records[{index}].Ckafka.msgBody")
        key = kafka.get("msgKey")
        return cls(
            index=index,
            topic=str(kafka.get("topic") or ""),
            partition=_int(kafka.get("partition")),
            offset=_int(kafka.get("offset")),
            msg_key=None if key in (None, "None", "") else str(key),  # "None" is str(None) leaking through
            msg_body=body,
        )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: 1e400 in the JSON is float("inf")
        return -1


@dataclass(frozen=True)
class CKafkaEvent(QueueEvent):
    """Never raises after processing: raising would block the partition (the summary is its signal)."""

    kind: ClassVar[str] = "ckafka"
    wrapper: ClassVar[str] = "Ckafka"
    record_class: ClassVar[Any] = CKafkaRecord
    raises_when_unparked: ClassVar[bool] = False
