"""The pending-jobs registry: jobs seen but not finished yet, one small object per job ID.

``PENDING_STORE`` is ``cos://BUCKET-APPID.REGION/PREFIX`` or ``file://DIR``.
Each entry lives at ``<prefix>/.pending/<JobId>.json`` and holds
``{"JobId","FirstSeen","LastSeen","LastState","Source","Attempts"}`` (times in
unix seconds). One object per ID means concurrent timer ticks never
read-modify-write a shared list; the only race is two writers updating the
same job's ``LastSeen``/``Attempts``, where the last one wins (harmless).
Result keys never start a segment with ``.`` (see :class:`cijobs.sinks.base.KeyLayout`),
so ``.pending/`` cannot collide with results under the same bucket and prefix.

* ``add`` keeps ``FirstSeen`` and ``Source`` of an existing entry: it creates
  with create-if-absent, and when the entry exists reads it and updates it.
* ``list`` lists by prefix (paginated on COS) and reads each entry; an entry
  that cannot be read as JSON still appears (its ``JobId`` from the key,
  times from nothing but ``now`` of the listing, ``LastState`` ``None``).
* ``update`` sets ``LastState``/``LastSeen`` and counts ``Attempts``.
* ``remove`` deletes (absent is fine).

``add``/``remove`` return the failures (``WriteResult`` with ``ok=False``);
``update`` returns its failure or ``None``; ``list`` raises :class:`PendingError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional

from .cos import CosClient, CredentialsSource
from .http import Deadline
from .log import get_logger
from .settings import Settings
from .sinks.base import PENDING_DIR, WriteResult
from .sinks.store import ObjectStore, StoreError, store_from_url

SUFFIX = ".json"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class PendingError(Exception):
    def __init__(self, code: str, message: str, retryable: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class PendingEntry:
    job_id: str
    first_seen: float
    last_seen: float
    last_state: Optional[str]
    source: str
    attempts: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"JobId": self.job_id, "FirstSeen": self.first_seen, "LastSeen": self.last_seen,
                "LastState": self.last_state, "Source": self.source, "Attempts": self.attempts}

    def encode(self) -> bytes:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, job_id: str, body: bytes) -> Optional[PendingEntry]:
        try:
            doc = json.loads(body.decode("utf-8"))
            first = float(doc["FirstSeen"])
            state = doc.get("LastState")
            return cls(
                job_id=job_id,
                first_seen=first,
                last_seen=float(doc.get("LastSeen", first)),
                last_state=state if isinstance(state, str) else None,
                source=str(doc.get("Source") or ""),
                attempts=int(doc.get("Attempts", 1)),
            )
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            return None


class PendingStore:
    """The registry over an :class:`~cijobs.sinks.store.ObjectStore` (COS or files)."""

    def __init__(self, store: ObjectStore, concurrency: int = 8, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._concurrency = max(1, concurrency)
        self._clock = clock
        self._log = get_logger("cijobs.pending")

    def key(self, job_id: str) -> str:
        if not job_id or not set(job_id) <= _ID_CHARS or job_id[0] in "-_":
            raise ValueError(f"not a usable job ID: {job_id!r}")
        return self.store.key(PENDING_DIR, job_id + SUFFIX)

    @property
    def list_prefix(self) -> str:
        return self.store.key(PENDING_DIR) + "/"

    def _map(self, fn: Callable[[str], Any], items: Sequence[str]) -> list[Any]:
        if len(items) <= 1 or self._concurrency == 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(self._concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    # -- mutations --------------------------------------------------------------------------------
    def add(self, job_ids: Iterable[str], *, now: float, source: str, state: Optional[str] = None,
            deadline: Optional[Deadline] = None) -> list[WriteResult]:
        """Register jobs (idempotent); returns the failures."""
        ids = list(dict.fromkeys(job_ids))
        results = self._map(lambda j: self._add_one(j, now, source, state, deadline), ids)
        return [r for r in results if r is not None]

    def _add_one(self, job_id: str, now: float, source: str, state: Optional[str],
                 deadline: Optional[Deadline]) -> Optional[WriteResult]:
        try:
            key = self.key(job_id)
        except ValueError as exc:
            return WriteResult.failed(job_id, state, "InvalidJobId", str(exc), retryable=False)
        fresh = PendingEntry(job_id, now, now, state, source, 1)
        try:
            if self.store.create(key, fresh.encode(), "application/json", {"jobid": job_id}, deadline):
                return None
            existing = self._read(job_id, key, deadline)
            if existing is None:  # vanished between the two calls: write ours
                self.store.put(key, fresh.encode(), "application/json", {"jobid": job_id}, deadline)
                return None
            merged = PendingEntry(job_id, min(existing.first_seen, now), max(existing.last_seen, now),
                                  state or existing.last_state, existing.source or source, existing.attempts + 1)
            self.store.put(key, merged.encode(), "application/json", {"jobid": job_id}, deadline)
            return None
        except StoreError as exc:
            self._log.warning("pending_add_failed", job_id=job_id, code=exc.code, retryable=exc.retryable)
            return WriteResult.from_error(job_id, state, exc.to_error_info(), exc.retryable)

    def update(self, job_id: str, state: Optional[str], now: float,
               deadline: Optional[Deadline] = None) -> Optional[WriteResult]:
        """Record another observation of a still-pending job; creates the entry if missing."""
        try:
            key = self.key(job_id)
        except ValueError as exc:
            return WriteResult.failed(job_id, state, "InvalidJobId", str(exc), retryable=False)
        try:
            existing = self._read(job_id, key, deadline)
            if existing is None:
                entry = PendingEntry(job_id, now, now, state, "update", 1)
            else:
                entry = PendingEntry(job_id, existing.first_seen, max(existing.last_seen, now),
                                     state or existing.last_state, existing.source, existing.attempts + 1)
            self.store.put(key, entry.encode(), "application/json", {"jobid": job_id}, deadline)
        except StoreError as exc:
            self._log.warning("pending_update_failed", job_id=job_id, code=exc.code, retryable=exc.retryable)
            return WriteResult.from_error(job_id, state, exc.to_error_info(), exc.retryable)
        return None

    def remove(self, job_ids: Iterable[str], deadline: Optional[Deadline] = None) -> list[WriteResult]:
        """Forget jobs (absent is fine); returns the failures."""
        def one(job_id: str) -> Optional[WriteResult]:
            try:
                self.store.delete(self.key(job_id), deadline)
            except ValueError as exc:
                return WriteResult.failed(job_id, None, "InvalidJobId", str(exc), retryable=False)
            except StoreError as exc:
                self._log.warning("pending_remove_failed", job_id=job_id, code=exc.code, retryable=exc.retryable)
                return WriteResult.from_error(job_id, None, exc.to_error_info(), exc.retryable)
            return None

        return [r for r in self._map(one, list(dict.fromkeys(job_ids))) if r is not None]

    # -- reads ------------------------------------------------------------------------------------
    def get(self, job_id: str, deadline: Optional[Deadline] = None) -> Optional[PendingEntry]:
        try:
            return self._read(job_id, self.key(job_id), deadline)
        except StoreError as exc:
            raise PendingError(exc.code, exc.message, exc.retryable) from None

    def _read(self, job_id: str, key: str, deadline: Optional[Deadline]) -> Optional[PendingEntry]:
        obj = self.store.get(key, deadline)
        if obj is None or obj.body is None:
            return None
        entry = PendingEntry.decode(job_id, obj.body)
        if entry is None:
            self._log.warning("pending_entry_unreadable", job_id=job_id, key=key)
            now = self._clock()
            return PendingEntry(job_id, now, now, None, "", 1)
        return entry

    def list_ids(self, limit: Optional[int] = None, deadline: Optional[Deadline] = None) -> list[str]:
        """Job IDs in the registry (one listing, no reads), sorted."""
        try:
            listed = self.store.list(self.list_prefix, deadline)
        except StoreError as exc:
            raise PendingError(exc.code, exc.message, exc.retryable) from None
        prefix = self.list_prefix
        ids = []
        for obj in listed:
            rest = obj.key[len(prefix):]
            if obj.key.startswith(prefix) and rest.endswith(SUFFIX) and "/" not in rest:
                ids.append(rest[: -len(SUFFIX)])
        ids.sort()
        return ids if limit is None else ids[: max(0, limit)]

    def list(self, limit: Optional[int] = None, deadline: Optional[Deadline] = None) -> list[PendingEntry]:
        """Every entry (oldest ``FirstSeen`` first); ``limit`` caps how many are read."""
        ids = self.list_ids(limit, deadline)

        def one(job_id: str) -> Optional[PendingEntry]:
            return self._read(job_id, self.key(job_id), deadline)

        try:
            entries = self._map(one, ids)
        except StoreError as exc:
            raise PendingError(exc.code, exc.message, exc.retryable) from None
        found = [e for e in entries if e is not None]  # removed while listing: gone
        return sorted(found, key=lambda e: (e.first_seen, e.job_id))


def build_pending_store(
    settings: Settings,
    credentials: CredentialsSource,
    cos_client: Optional[CosClient] = None,
) -> PendingStore:
    """The registry named by ``PENDING_STORE``; a COS client is built only for ``cos://`` when none is given."""

    def cos() -> CosClient:
        return cos_client if cos_client is not None else CosClient(settings, credentials)

    store = store_from_url(settings.pending_store, "PENDING_STORE", cos)
    return PendingStore(store, concurrency=settings.ci_concurrency)
