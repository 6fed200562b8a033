"""The queue triggers (CMQ topic, CKafka): one implementation, a record class per wrapper.

Each record's ``msgBody`` is a CI notification or ``{"JobIds": [...]}``. A record that cannot be read,
or one that would take the event past MAX_IDS_PER_EVENT, is skipped whole and reported (``Records[]``
in the answer, an error log naming it) so an operator can replay it; the others are processed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from ..job_ids import dedupe
from .base import EventError, Limits, RecordResult, Work
from .notification import parse_message


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


class QueueRecord:
    """What the shared code reads of a record; subclasses are frozen dataclasses with these fields."""

    index: int
    msg_body: str

    @property
    def ref(self) -> str:
        """How an operator finds the record again (topic/message ID, topic/partition/offset)."""
        raise NotImplementedError


@dataclass(frozen=True)
class QueueEvent:
    """``Records[]`` of one wrapper; subclasses name the wrapper, the record class and the trigger kind."""

    records: tuple[Any, ...]
    malformed: tuple[tuple[int, str], ...] = ()  # (index, error) of records that could not be read

    kind: ClassVar[str] = ""
    wrapper: ClassVar[str] = ""
    record_class: ClassVar[Any] = None
    raises_when_unparked: ClassVar[bool] = True

    @classmethod
    def matches(cls, event: dict[str, Any]) -> bool:
        return record_key(event) == cls.wrapper

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Any:
        good: list[Any] = []
        bad: list[tuple[int, str]] = []
        for i, r in enumerate(records_of(event)):
            try:
                good.append(cls.record_class.from_record(r, i))
            except EventError as exc:
                bad.append((i, str(exc)))
        return cls(tuple(good), tuple(bad))

    def parse_records(self, limits: Limits) -> list[RecordResult]:
        """One result per record, in record order; unreadable records and records past the event's ID
        limit carry their error."""
        results: list[RecordResult] = []
        total = 0
        for r in self.records:
            field = f"Records[{r.index}].msgBody"
            try:
                request = parse_message(r.msg_body, limits, field)
            except EventError as exc:
                results.append(RecordResult(r.index, r.ref, error=str(exc)))
                continue
            if total + len(request.job_ids) > limits.max_ids_per_event:
                results.append(RecordResult(
                    r.index, r.ref, error=f"skipped: the event's records name more than MAX_IDS_PER_EVENT="
                                          f"{limits.max_ids_per_event} job IDs; replay this record"))
                continue
            total += len(request.job_ids)
            results.append(RecordResult(r.index, r.ref, request=request))
        results += [RecordResult(i, f"Records[{i}]", error=err) for i, err in self.malformed]
        return sorted(results, key=lambda x: x.index)

    def work(self, limits: Limits) -> Work:
        records = self.parse_records(limits)
        return Work(ids=tuple(dedupe(_ids(records))), jobs=tuple(j for r in records if r.request
                                                               for j in r.request.jobs),
                    records=tuple(records))


def _ids(records: Sequence[RecordResult]) -> list[str]:
    return [i for r in records if r.request is not None for i in r.request.job_ids]
