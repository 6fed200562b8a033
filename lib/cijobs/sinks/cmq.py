"""Result sink for TDMQ CMQ queues (``cmq-queue://REGION/NAME``) and topics (``cmq-topic://REGION/NAME``).

* Message body: the canonical JSON of the normalized job.
* Topic messages carry ``msgTag`` = the job's ``Tag`` and ``State`` (a tag longer
  than 16 characters, e.g. ``ExtractDigitalWatermark``, is left off, never
  truncated; the JobId is never a tag). Queue messages carry no tags.
* Batches: up to the client's ``max_batch`` (16 for the data-flow API) and
  64 KB of bodies; messages with the same tags share a batch.
* Claim check: a body over ``CLAIM_CHECK_BYTES`` is stored in
  ``CLAIM_CHECK_STORE`` (content-addressed key, create-if-absent) and the message
  is the pointer ``{"JobId","Tag","State","ClaimCheck":{"Bucket","Region","Key","Size","Sha256"}}``
  (``{"Path","Key",...}`` for a ``file://`` store). Without a store the job
  fails with ``MessageTooLarge`` (not retryable).
* Delivery is at least once (a retried batch, a retried invocation): consumers
  deduplicate on ``JobId`` + ``State``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from ..cmq_client import MAX_BATCH_BYTES, MAX_TAG_CHARS, MAX_TAGS, CmqClient, CmqError, encode_message
from ..deadline import Deadline
from ..log import get_logger
from ..models import Job, WriteResult
from ..store import ObjectStore
from ..targets import CmqTarget
from .base import claim_check, job_fields, not_confirmed, refuse, serialize


@dataclass(frozen=True)
class _Message:
    index: int
    job_id: str
    state: str
    body: str
    size: int
    tags: tuple[str, ...]


def topic_tags(job: Job) -> tuple[str, ...]:
    """``(Tag, State)`` without values longer than 16 characters (never truncated), at most 5."""
    values = [job.get("Tag"), job.get("State")]
    return tuple(v for v in values if isinstance(v, str) and 0 < len(v) <= MAX_TAG_CHARS)[:MAX_TAGS]


class CmqSink:
    def __init__(
        self,
        client: CmqClient,
        target: CmqTarget,
        claim_store: Optional[ObjectStore] = None,
        claim_check_bytes: int = 64 * 1024,
    ) -> None:
        self.client = client
        self.target = target
        self.claim_store = claim_store
        self.claim_check_bytes = claim_check_bytes
        self.name = target.url
        self._log = get_logger("cijobs.sinks")

    def write(self, jobs: Sequence[Job], deadline: Optional[Deadline] = None) -> list[WriteResult]:
        deadline = deadline or Deadline.never()
        results: list[Optional[WriteResult]] = [None] * len(jobs)
        messages: list[_Message] = []
        for i, job in enumerate(jobs):
            refused = refuse(job)
            if refused is not None:
                results[i] = refused
                continue
            msg_or_fail = self._message(i, job, deadline)
            if isinstance(msg_or_fail, WriteResult):
                results[i] = msg_or_fail
            else:
                messages.append(msg_or_fail)
        for batch in self._batches(messages):
            for m, r in zip(batch, self._send(batch, deadline)):
                results[m.index] = r
        out = [r for r in results if r is not None]
        assert len(out) == len(jobs)
        return out

    def _message(self, index: int, job: Job, deadline: Deadline) -> Any:
        job_id, state, _tag = job_fields(job)
        assert state is not None
        body_bytes = serialize(job, job_id, state)
        if isinstance(body_bytes, WriteResult):  # not serializable: this job fails alone
            self._log.warning("cmq_message_refused", job_id=job_id,
                              error=body_bytes.error.message if body_bytes.error else None)
            return body_bytes
        try:
            return self._build(index, job, job_id, state, body_bytes, deadline)
        except ValueError as exc:  # InvalidKeyError or another bad value: this job fails alone, not the round
            self._log.warning("cmq_message_refused", job_id=job_id, error=ascii(str(exc))[1:-1][:200])
            return WriteResult.failed(job_id, state, "InvalidKey", ascii(str(exc))[1:-1][:300], retryable=False)
        except Exception as exc:  # the claim-check store raised unexpectedly: this job only
            self._log.error("cmq_message_raised", job_id=job_id, error_type=type(exc).__name__)
            return not_confirmed(job_id, state, self.name, exc)

    def _build(self, index: int, job: Job, job_id: str, state: str, body_bytes: bytes, deadline: Deadline) -> Any:
        tags = topic_tags(job) if self.target.kind == "topic" else ()
        if len(body_bytes) <= self.claim_check_bytes:
            return _Message(index, job_id, state, body_bytes.decode("utf-8"), len(body_bytes), tags)
        if self.claim_store is None:
            return WriteResult.failed(
                job_id, state, "MessageTooLarge",
                f"message is {len(body_bytes)} bytes > CLAIM_CHECK_BYTES={self.claim_check_bytes} and "
                "CLAIM_CHECK_STORE is not set", retryable=False,
            )
        pointer_doc = claim_check(self.claim_store, job, job_id, state, body_bytes, deadline, self._log)
        if isinstance(pointer_doc, WriteResult):
            return pointer_doc
        body = encode_message(pointer_doc)
        return _Message(index, job_id, state, body, len(body.encode("utf-8")), tags)

    def _batches(self, messages: list[_Message]) -> list[list[_Message]]:
        limit = max(1, self.client.max_batch)
        open_batches: dict[tuple[str, ...], list[_Message]] = {}
        out: list[list[_Message]] = []
        for m in messages:
            current = open_batches.get(m.tags)
            if current is not None and (len(current) >= limit or
                                        sum(x.size for x in current) + m.size > MAX_BATCH_BYTES):
                current = None
            if current is None:
                current = []
                open_batches[m.tags] = current
                out.append(current)
            current.append(m)
        return out

    def _send(self, batch: list[_Message], deadline: Deadline) -> list[WriteResult]:
        if deadline.expired():
            return [WriteResult.failed(m.job_id, m.state, "DeadlineExceeded", "no time left to send", True)
                    for m in batch]
        try:
            self.client.send(self.target, [m.body for m in batch], batch[0].tags, deadline)
        except CmqError as exc:
            self._log.warning("cmq_send_failed", target=self.name, jobs=len(batch), code=exc.code,
                              retryable=exc.retryable)
            return [WriteResult.from_error(m.job_id, m.state, exc.to_error_info(), exc.retryable) for m in batch]
        except Exception as exc:  # unexpected: this batch's messages are not confirmed, the other batches go on
            self._log.error("cmq_send_raised", target=self.name, jobs=len(batch), error_type=type(exc).__name__)
            return [not_confirmed(m.job_id, m.state, self.name, exc) for m in batch]
        return [WriteResult.written(m.job_id, m.state) for m in batch]
