"""The pending-jobs registry: jobs seen but not finished yet, one small object per job ID.

``PENDING_STORE`` is ``cos://BUCKET-APPID.REGION/PREFIX`` or ``file://DIR``.
Each entry lives at ``<prefix>/.pending/<JobId>.json`` and holds
``{"JobId","FirstSeen","LastSeen","LastState","Source","Attempts"}`` (times in
unix seconds) as they were when the job was first registered. Result keys never
start a segment with ``.`` (see :class:`cijobs.sinks.base.KeyLayout`), so
``.pending/`` cannot collide with results under the same bucket and prefix.

**Entries are written once.** A timer tick must cost one listing (one request per
1,000 entries), not one request per entry: 10,000 pending jobs at 20 ms a request
would otherwise spend most of a tick reading and rewriting the registry. So:

* ``add`` creates with create-if-absent (COS ``x-cos-forbid-overwrite``) and does
  nothing more when the entry exists: ``FirstSeen`` and ``Source`` of the first
  registration are kept, with one request and no read.
* ``list`` is one listing by prefix (paginated on COS). Because an entry is never
  rewritten, the object's ``LastModified`` *is* the time it was first registered and
  serves as ``FirstSeen`` (``LastSeen`` = ``FirstSeen``, ``LastState`` unknown). Only
  an entry whose listing has no usable ``LastModified`` (the ``file://`` store, or an
  odd server) is read (cheap on local disk); an entry that cannot be read as JSON
  still appears (its ``JobId`` from the key, times from ``now`` of the listing).
* ``update`` records nothing per observation any more (that would rewrite the object
  and move its ``LastModified``, i.e. ``FirstSeen``); it only re-creates a missing entry.
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
from datetime import datetime
from typing import Any, Callable, Optional

from .cos import CosClient, CredentialsSource
from .deadline import Deadline
from .log import get_logger
from .models import WriteResult
from .settings import Settings
from .store import ObjectStore, StoreError, open_store
from .targets import PENDING_DIR

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
    """The registry over an :class:`~cijobs.store.ObjectStore` (COS or files)."""

    def __init__(self, store: ObjectStore, concurrency: int = 8, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._concurrency = max(1, concurrency)
        self._clock = clock
        self._log = get_logger("cijobs.pending")

    def key(self, job_id: str) -> str:
        if not _usable_id(job_id):
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
            # Written once: an existing entry keeps its FirstSeen/Source (and its LastModified).
            self.store.create(key, fresh.encode(), "application/json", {"jobid": job_id}, deadline)
        except StoreError as exc:
            self._log.warning("pending_add_failed", job_id=job_id, code=exc.code, retryable=exc.retryable)
            return WriteResult.from_error(job_id, state, exc.to_error_info(), exc.retryable)
        return None

    def update(self, job_id: str, state: Optional[str], now: float,
               deadline: Optional[Deadline] = None) -> Optional[WriteResult]:
        """Another observation of a still-pending job: re-creates the entry if it is missing.

        An existing entry is not rewritten (its ``LastModified`` is its ``FirstSeen``).
        """
        return self._add_one(job_id, now, "update", state, deadline)

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

    def _listed(self, deadline: Optional[Deadline]) -> list[tuple[str, Optional[float]]]:
        """``(job_id, LastModified as unix seconds or None)`` for every entry, sorted by ID."""
        try:
            listed = self.store.list(self.list_prefix, deadline)
        except StoreError as exc:
            raise PendingError(exc.code, exc.message, exc.retryable) from None
        prefix = self.list_prefix
        out = []
        for obj in listed:
            rest = obj.key[len(prefix):]
            if obj.key.startswith(prefix) and rest.endswith(SUFFIX) and "/" not in rest:
                out.append((rest[: -len(SUFFIX)], parse_last_modified(obj.last_modified)))
        out.sort()
        return out

    def list_ids(self, limit: Optional[int] = None, deadline: Optional[Deadline] = None) -> list[str]:
        """Job IDs in the registry (one listing, no reads), sorted."""
        ids = [job_id for job_id, _ in self._listed(deadline)]
        return ids if limit is None else ids[: max(0, limit)]

    def list(self, limit: Optional[int] = None, deadline: Optional[Deadline] = None) -> list[PendingEntry]:
        """Every entry (oldest ``FirstSeen`` first); ``limit`` caps how many are returned.

        One listing; ``FirstSeen`` comes from ``LastModified`` (entries are written once).
        Only entries listed without a usable ``LastModified`` are read.
        """
        listed = self._listed(deadline)
        entries: list[PendingEntry] = []
        unknown: list[str] = []
        for job_id, modified in listed:
            if modified is not None:
                entries.append(PendingEntry(job_id, modified, modified, None, "", 1))
            elif _usable_id(job_id):
                unknown.append(job_id)
            else:  # not ours (cannot be read by ID); listed so that the pipeline reports it
                now = self._clock()
                entries.append(PendingEntry(job_id, now, now, None, "", 1))

        def one(job_id: str) -> Optional[PendingEntry]:
            return self._read(job_id, self.key(job_id), deadline)

        if unknown:
            try:
                read = self._map(one, unknown)
            except StoreError as exc:
                raise PendingError(exc.code, exc.message, exc.retryable) from None
            entries.extend(e for e in read if e is not None)  # removed while listing: gone
        entries.sort(key=lambda e: (e.first_seen, e.job_id))
        return entries if limit is None else entries[: max(0, limit)]


def _usable_id(job_id: str) -> bool:
    return bool(job_id) and set(job_id) <= _ID_CHARS and job_id[0] not in "-_"


def parse_last_modified(value: str) -> Optional[float]:
    """COS ``LastModified`` (ISO 8601, e.g. ``2026-01-01T00:00:00.000Z``) → unix seconds; None if unusable."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:  # COS always says UTC; a naive time would be read as local time
        return None
    return parsed.timestamp()


def build_pending_store(
    settings: Settings,
    credentials: CredentialsSource,
    cos_client: Optional[CosClient] = None,
) -> PendingStore:
    """The registry named by ``PENDING_STORE``; a COS client is built only for ``cos://`` when none is given."""

    def cos() -> CosClient:
        return cos_client if cos_client is not None else CosClient(settings, credentials)

    store = open_store(settings.pending_store, cos)
    return PendingStore(store, concurrency=settings.ci_concurrency)
