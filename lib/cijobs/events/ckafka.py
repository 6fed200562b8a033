"""CKafka trigger (sync, SCF's own consumer): ``Records[].Ckafka{topic, partition, offset, msgKey, msgBody}``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from .base import EventError, Limits
from .queues import RecordResult, parse_record_body, record_key, records_of


@dataclass(frozen=True)
class CKafkaRecord:
    index: int
    topic: str
    partition: int
    offset: int
    msg_key: Optional[str]
    msg_body: str

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
class CKafkaEvent:
    records: tuple[CKafkaRecord, ...]
    malformed: tuple[tuple[int, str], ...] = ()  # (index, error) of records that could not be read

    kind = "ckafka"

    @staticmethod
    def matches(event: dict[str, Any]) -> bool:
        return record_key(event) == "Ckafka"

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> CKafkaEvent:
        good: list[CKafkaRecord] = []
        bad: list[tuple[int, str]] = []
        for i, r in enumerate(records_of(event)):
            try:
                good.append(CKafkaRecord.from_record(r, i))
            except EventError as exc:
                bad.append((i, str(exc)))
        return cls(tuple(good), tuple(bad))

    def parse_records(self, limits: Limits) -> list[RecordResult]:
        """One result per record, in record order; unreadable records carry their error."""
        results = [parse_record_body(r.index, f"{r.topic}/{r.partition}/{r.offset}",
                                     r.msg_body, self.kind, limits) for r in self.records]
        results += [RecordResult(i, f"Records[{i}]", error=err) for i, err in self.malformed]
        return sorted(results, key=lambda x: x.index)
