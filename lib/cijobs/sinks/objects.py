"""Result sinks that store one JSON object per job: ``file://DIR`` and ``cos://bucket.region/prefix``.

Idempotency: each job is created with "forbid overwrite" semantics (COS
``x-cos-forbid-overwrite: true`` → ``409 FileAlreadyExists``; a hard link on
disk). When the key already exists the stored object is compared with ours:

* same content hash → ``ok, already=True`` (SCF retry, duplicate CI notification);
* same ``State``, different content (CI added a field to a finished job's
  document) → the first write is kept, ``ok, already=True``, warning ``result_differs``;
* different ``State`` (only possible with a custom template without
  ``{State}``, since terminal results never change in CI) → ``ConflictingResult``,
  not retryable; nothing is overwritten.

Daily index (``RESULT_INDEX=daily``): once a result is stored (or found already
stored), a small entry ``{"JobId", "Tag", "State", "Key", "EndTime"}`` is created
at ``<prefix>/_index/<YYYY-MM-DD>/<JobId>.json``, the date being the job's
``EndTime`` (else ``CreationTime``, else ``undated``) as CI gives it, so listing
one prefix finds a day's results. Created if absent, so retries and duplicate
notifications add nothing; if it cannot be written the job's write fails
(retryable) and the retry, finding the result already there, writes the entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from ..deadline import Deadline
from ..log import get_logger
from ..models import Job, WriteResult
from ..store import InvalidKeyError, ObjectStore, StoredObject, StoreError
from .base import KeyLayout, canonical_json, job_fields, not_confirmed, refuse, serialize, sha256_hex

CONTENT_TYPE = "application/json"
INDEX_DIR = "_index"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def index_date(job: Job) -> str:
    """The day a result is indexed under: ``EndTime``'s date, else ``CreationTime``'s, else ``undated``."""
    for name in ("EndTime", "CreationTime"):
        value = job.get(name)
        if isinstance(value, str) and _DATE.match(value):
            return value[:10]
    return "undated"


class ObjectSink:
    """One object per terminal job in ``store`` at ``layout.render(...)``."""

    def __init__(self, store: ObjectStore, layout: Optional[KeyLayout] = None, concurrency: int = 8,
                 index: bool = False) -> None:
        self.store = store
        self.layout = layout or KeyLayout()
        self.index = index
        self.name = store.description
        self._concurrency = max(1, concurrency)
        self._log = get_logger("cijobs.sinks")

    def key_for(self, job: Job) -> str:
        job_id, state, tag = job_fields(job)
        return self.layout.render(self.store.prefix, job_id, state or "", tag)

    def write(self, jobs: Sequence[Job], deadline: Optional[Deadline] = None) -> list[WriteResult]:
        deadline = deadline or Deadline.never()
        if len(jobs) <= 1 or self._concurrency == 1:
            return [self._write_one(job, deadline) for job in jobs]
        with ThreadPoolExecutor(max_workers=min(self._concurrency, len(jobs))) as pool:
            return list(pool.map(lambda j: self._write_one(j, deadline), jobs))

    def _write_one(self, job: Job, deadline: Deadline) -> WriteResult:
        try:
            result = self._write_result(job, deadline)
            if not self.index or not result.ok:
                return result
            return self._write_index(job, result, deadline) or result
        except Exception as exc:  # one job's surprise is that job's result, never the batch's
            job_id, state, _tag = job_fields(job)
            self._log.error("result_write_raised", job_id=job_id, sink=self.name, error_type=type(exc).__name__)
            return not_confirmed(job_id, state, self.name, exc)

    def _write_index(self, job: Job, result: WriteResult, deadline: Deadline) -> Optional[WriteResult]:
        """The job's daily index entry (created if absent); a failed WriteResult when it cannot be written."""
        job_id, state, tag = job_fields(job)
        state = state or ""
        key = self.key_for(job)
        index_key = self.store.key(INDEX_DIR, index_date(job), f"{job_id}.json")
        entry = canonical_json({"JobId": job_id, "Tag": tag, "State": state, "Key": key,
                                "EndTime": job.get("EndTime")})
        try:
            self.store.create(index_key, entry, CONTENT_TYPE, {"jobid": job_id, "state": state}, deadline)
        except StoreError as exc:
            self._log.warning("index_write_failed", job_id=job_id, key=index_key, sink=self.name, code=exc.code,
                              retryable=exc.retryable)
            return WriteResult.from_error(job_id, state, exc.to_error_info(), exc.retryable)
        return None

    def _write_result(self, job: Job, deadline: Deadline) -> WriteResult:
        refused = refuse(job)
        if refused is not None:
            return refused
        job_id, state, tag = job_fields(job)
        assert state is not None  # refuse() guarantees a terminal state
        try:
            key = self.layout.render(self.store.prefix, job_id, state, tag)
        except InvalidKeyError as exc:
            return WriteResult.failed(job_id, state, "InvalidKey", str(exc), retryable=False)
        body = serialize(job, job_id, state)
        if isinstance(body, WriteResult):
            self._log.warning("result_refused", job_id=job_id, sink=self.name,
                              error=body.error.message if body.error else None)
            return body
        digest = sha256_hex(body)
        meta = {"jobid": job_id, "tag": tag, "state": state, "sha256": digest}
        for _ in range(3):  # the existing object may vanish between 409 and HEAD: try again
            if deadline.expired():
                return WriteResult.failed(job_id, state, "DeadlineExceeded", "no time left to write", True)
            try:
                if self.store.create(key, body, CONTENT_TYPE, meta, deadline):
                    self._log.debug("result_written", job_id=job_id, state=state, key=key, sink=self.name)
                    return WriteResult.written(job_id, state)
                existing = self.store.head(key, deadline)
                if existing is not None and ("sha256" not in existing.meta or "state" not in existing.meta):
                    existing = self.store.get(key, deadline)  # written by something else: read the body
                if existing is None:
                    continue
                return self._compare(job_id, state, key, digest, existing)
            except StoreError as exc:
                self._log.warning("result_write_failed", job_id=job_id, key=key, sink=self.name, code=exc.code,
                                  retryable=exc.retryable)
                return WriteResult.from_error(job_id, state, exc.to_error_info(), exc.retryable)
        return WriteResult.failed(job_id, state, "ConcurrentModification",
                                  "the object kept appearing and disappearing", retryable=True)

    def _compare(self, job_id: str, state: str, key: str, digest: str, existing: StoredObject) -> WriteResult:
        stored_digest = existing.meta.get("sha256")
        stored_state = existing.meta.get("state")
        if existing.body is not None and (stored_digest is None or stored_state is None):
            stored_digest = sha256_hex(existing.body)
            stored_state = _state_of(existing.body)
        if stored_digest == digest:
            return WriteResult.written(job_id, state, already=True)
        if stored_state == state:
            self._log.warning("result_differs", job_id=job_id, state=state, key=key, sink=self.name,
                              kept="first", stored_sha256=stored_digest, new_sha256=digest)
            return WriteResult.written(job_id, state, already=True)
        self._log.error("result_conflict", job_id=job_id, state=state, stored_state=stored_state, key=key,
                        sink=self.name)
        return WriteResult.failed(
            job_id, state, "ConflictingResult",
            f"{key} already holds State={stored_state!r}; refusing to overwrite it with State={state!r}",
            retryable=False,
        )


def _state_of(body: bytes) -> Optional[str]:
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    state = doc.get("State") if isinstance(doc, dict) else None
    return state if isinstance(state, str) else None
