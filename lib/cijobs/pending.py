"""The pending-jobs registry: jobs seen but not finished yet, one small object per job ID.

``PENDING_STORE`` is ``cos://BUCKET-APPID.REGION/PREFIX`` or ``file://DIR``. Under its prefix:

* ``.pending/<JobId>.json``: the entry, ``{"JobId","FirstSeen","Source"}`` (unix seconds), written once
  with create-if-absent (COS ``x-cos-forbid-overwrite``). Because it is never rewritten, the object's
  ``LastModified`` *is* its ``FirstSeen``: a tick lists the registry (one request per 1,000 entries)
  and reads nothing per entry (only entries listed without a usable ``LastModified`` are read).
* ``.answered/<JobId>``: created (once per job, ever) the first time CI answers for the job. An entry
  without one has never been answered, e.g. because every query failed (wrong key, unreachable
  endpoint): such an entry never expires, it waits until CI answers.
* ``.list-marker``: where the last tick's bounded listing stopped. A tick lists at most ``limit``
  entries, from the marker on, so every entry is reached within ⌈N / limit⌉ ticks.

Result keys never start a segment with ``.`` (see :class:`cijobs.sinks.base.KeyLayout`), so none of
these can collide with results under the same bucket and prefix. Every call takes the invocation
deadline; ``add``/``remove``/``mark_answered`` return the failures, ``listing`` raises
:class:`PendingError`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Callable, Optional

from .cos import CosClient, CredentialsSource
from .deadline import Deadline
from .log import get_logger
from .models import PendingEntry, PendingListing, WriteResult
from .settings import Settings
from .store import ObjectStore, StoreError, open_store
from .targets import PENDING_DIR

SUFFIX = ".json"
ANSWERED_DIR = ".answered"
LIST_MARKER = ".list-marker"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class PendingError(Exception):
    def __init__(self, code: str, message: str, retryable: bool) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


def encode_entry(entry: PendingEntry) -> bytes:
    doc = {"JobId": entry.job_id, "FirstSeen": entry.first_seen, "Source": entry.source}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def decode_entry(job_id: str, body: bytes) -> Optional[PendingEntry]:
    try:
        doc = json.loads(body.decode("utf-8"))
        return PendingEntry(job_id, float(doc["FirstSeen"]), str(doc.get("Source") or ""))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return None


class PendingStore:
    """The registry over an :class:`~cijobs.store.ObjectStore` (COS or files)."""

    def __init__(self, store: ObjectStore, concurrency: int = 8, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._concurrency = max(1, concurrency)
        self._clock = clock
        self._marker: Optional[str] = None  # where the next bounded listing starts (None: read it)
        self._log = get_logger("cijobs.pending")

    def key(self, job_id: str) -> str:
        if not _usable_id(job_id):
            raise ValueError(f"not a usable job ID: {job_id!r}")
        return self.store.key(PENDING_DIR, job_id + SUFFIX)

    def answered_key(self, job_id: str) -> str:
        if not _usable_id(job_id):
            raise ValueError(f"not a usable job ID: {job_id!r}")
        return self.store.key(ANSWERED_DIR, job_id)

    @property
    def list_prefix(self) -> str:
        return self.store.key(PENDING_DIR) + "/"

    @property
    def answered_prefix(self) -> str:
        return self.store.key(ANSWERED_DIR) + "/"

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1 or self._concurrency == 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(self._concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    # -- mutations --------------------------------------------------------------------------------
    def add(self, job_ids: Iterable[str], *, now: float, source: str,
            deadline: Optional[Deadline] = None) -> list[WriteResult]:
        """Register jobs (idempotent: an existing entry keeps its FirstSeen and Source), in parallel;
        returns the failures."""
        ids = list(dict.fromkeys(job_ids))
        results = self._map(lambda j: self._add_one(j, now, source, deadline), ids)
        return [r for r in results if r is not None]

    def _add_one(self, job_id: str, now: float, source: str, deadline: Optional[Deadline]) -> Optional[WriteResult]:
        try:
            key = self.key(job_id)
        except ValueError as exc:
            return WriteResult.failed(job_id, None, "InvalidJobId", str(exc), retryable=False)
        try:
            self.store.create(key, encode_entry(PendingEntry(job_id, now, source)), "application/json",
                              {"jobid": job_id}, deadline)
        except StoreError as exc:
            self._log.debug("pending_add_failed", job_id=job_id, code=exc.code, retryable=exc.retryable)
            return WriteResult.from_error(job_id, None, exc.to_error_info(), exc.retryable)
        return None

    def mark_answered(self, job_ids: Iterable[str], deadline: Optional[Deadline] = None) -> list[WriteResult]:
        """Record that CI has answered for these jobs (create-if-absent, once per job); returns failures."""
        def one(job_id: str) -> Optional[WriteResult]:
            try:
                self.store.create(self.answered_key(job_id), b"1", "text/plain", {}, deadline)
            except ValueError as exc:
                return WriteResult.failed(job_id, None, "InvalidJobId", str(exc), retryable=False)
            except StoreError as exc:
                return WriteResult.from_error(job_id, None, exc.to_error_info(), exc.retryable)
            return None

        return [r for r in self._map(one, list(dict.fromkeys(job_ids))) if r is not None]

    def remove(self, job_ids: Iterable[str], deadline: Optional[Deadline] = None) -> list[WriteResult]:
        """Forget jobs: entry and marker, all deleted in parallel (absent is fine); returns the failures."""
        ids = list(dict.fromkeys(job_ids))
        keys: list[tuple[str, str]] = []
        failures: dict[str, WriteResult] = {}
        for job_id in ids:
            try:
                keys += [(job_id, self.key(job_id)), (job_id, self.answered_key(job_id))]
            except ValueError as exc:
                failures[job_id] = WriteResult.failed(job_id, None, "InvalidJobId", str(exc), retryable=False)

        def one(item: tuple[str, str]) -> Optional[WriteResult]:
            job_id, key = item
            try:
                self.store.delete(key, deadline)
            except StoreError as exc:
                self._log.debug("pending_remove_failed", job_id=job_id, code=exc.code, retryable=exc.retryable)
                return WriteResult.from_error(job_id, None, exc.to_error_info(), exc.retryable)
            return None

        for r in self._map(one, keys):
            if r is not None:
                failures.setdefault(r.job_id, r)
        return [failures[i] for i in ids if i in failures]

    # -- reads ------------------------------------------------------------------------------------
    def get(self, job_id: str, deadline: Optional[Deadline] = None) -> Optional[PendingEntry]:
        try:
            entry = self._read(job_id, self.key(job_id), deadline)
            if entry is None:
                return None
            answered = self.store.get(self.answered_key(job_id), deadline) is not None
        except StoreError as exc:
            raise PendingError(exc.code, exc.message, exc.retryable) from None
        return PendingEntry(entry.job_id, entry.first_seen, entry.source, answered)

    def _read(self, job_id: str, key: str, deadline: Optional[Deadline]) -> Optional[PendingEntry]:
        obj = self.store.get(key, deadline)
        if obj is None or obj.body is None:
            return None
        entry = decode_entry(job_id, obj.body)
        if entry is None:
            self._log.warning("pending_entry_unreadable", job_id=job_id, key=key)
            return PendingEntry(job_id, self._clock())
        return entry

    def _ids(self, listed: Iterable[Any], prefix: str, suffix: str) -> list[tuple[str, Optional[float]]]:
        out = []
        for obj in listed:
            rest = obj.key[len(prefix):]
            if obj.key.startswith(prefix) and rest.endswith(suffix) and "/" not in rest and rest != suffix:
                job_id = rest[: len(rest) - len(suffix)] if suffix else rest
                out.append((job_id, parse_last_modified(obj.last_modified)))
        return out

    def list_ids(self, limit: Optional[int] = None, deadline: Optional[Deadline] = None) -> list[str]:
        """Job IDs in the registry (listing only, no reads), sorted."""
        try:
            listed, _more = self.store.list_page(self.list_prefix, "", limit if limit is not None else 10**9,
                                                 deadline)
        except StoreError as exc:
            raise PendingError(exc.code, exc.message, exc.retryable) from None
        return sorted(job_id for job_id, _ in self._ids(listed, self.list_prefix, SUFFIX))

    def listing(self, limit: int = 50_000, deadline: Optional[Deadline] = None, *,
                resume: bool = True) -> PendingListing:
        """Up to ``limit`` entries, oldest ``FirstSeen`` first, each with its ``answered`` flag.

        With ``resume`` the listing starts where the previous bounded listing stopped (``.list-marker``,
        remembered by a warm container) and moves the marker on; ``complete`` is True only when the whole
        registry was listed in this call. The entries and their ``.answered`` markers are listed at the
        same time (one round trip, not two). The deadline stops the listing early (what was listed is
        returned, ``complete`` False).
        """
        start = self._start_key(deadline) if resume else ""
        start_id = start[len(self.list_prefix):-len(SUFFIX)] if start.endswith(SUFFIX) else ""
        with ThreadPoolExecutor(max_workers=1) as pool:
            markers = pool.submit(self._list_answered, start_id, limit, deadline)
            try:
                listed, more = self.store.list_page(self.list_prefix, start, limit, deadline)
            except StoreError as exc:
                raise PendingError(exc.code, exc.message, exc.retryable) from None
            answered_ids, answered_more = markers.result()
        found = self._ids(listed, self.list_prefix, SUFFIX)
        if resume:
            self._write_marker(listed[-1].key if more and listed else "", start, deadline)
        answered = _flags(found, answered_ids, answered_more)
        entries: list[PendingEntry] = []
        unknown: list[str] = []
        for job_id, modified in found:
            if modified is not None:
                entries.append(PendingEntry(job_id, modified, "", answered.get(job_id)))
            elif _usable_id(job_id):
                unknown.append(job_id)
            else:  # not ours (cannot be read by ID); listed so that the pipeline reports it
                entries.append(PendingEntry(job_id, self._clock(), "", answered.get(job_id)))
        if unknown:
            try:
                read = self._map(lambda j: self._read(j, self.key(j), deadline), unknown)
            except StoreError as exc:
                raise PendingError(exc.code, exc.message, exc.retryable) from None
            entries.extend(PendingEntry(e.job_id, e.first_seen, e.source, answered.get(e.job_id))
                           for e in read if e is not None)  # removed while listing: gone
        entries.sort(key=lambda e: (e.first_seen, e.job_id))
        return PendingListing(entries, complete=not more and not start)

    def _list_answered(self, start_id: str, limit: int,
                       deadline: Optional[Deadline]) -> tuple[Optional[set[str]], bool]:
        """The IDs with an ``.answered`` marker from ``start_id`` on (markers sort like the entries), and
        whether more remain; ``None`` when they could not be listed (unknown: no entry expires this tick)."""
        start = self.store.key(ANSWERED_DIR, start_id) if start_id else ""
        try:
            markers, more = self.store.list_page(self.answered_prefix, start, limit + 10, deadline)
        except StoreError as exc:
            self._log.warning("pending_answered_list_failed", code=exc.code)
            return None, False
        return {job_id for job_id, _ in self._ids(markers, self.answered_prefix, "")}, more

    def _start_key(self, deadline: Optional[Deadline]) -> str:
        """Where this listing starts: the marker this container wrote last, else the stored one."""
        if self._marker is None:
            self._marker = self._read_marker(deadline)
        return self._marker

    def _read_marker(self, deadline: Optional[Deadline]) -> str:
        try:
            obj = self.store.get(self.store.key(LIST_MARKER), deadline)
        except StoreError:
            return ""  # start from the beginning: at worst some entries are listed twice as often
        if obj is None or not obj.body:
            return ""
        key = obj.body.decode("utf-8", "replace").strip()
        return key if key.startswith(self.list_prefix) else ""

    def _write_marker(self, key: str, previous: str, deadline: Optional[Deadline]) -> None:
        self._marker = key
        if key == previous:
            return
        try:
            self.store.put(self.store.key(LIST_MARKER), key.encode("utf-8"), "text/plain", {}, deadline)
        except StoreError as exc:
            self._log.warning("pending_list_marker_failed", code=exc.code)


def _flags(found: list[tuple[str, Optional[float]]], answered: Optional[set[str]],
           more: bool) -> dict[str, bool]:
    """``{JobId: has a marker}`` for the listed IDs; an ID whose marker was not reached is left out."""
    if answered is None:
        return {}
    if not more:
        return {job_id: job_id in answered for job_id, _ in found}
    reached = max(answered, default="")
    return {job_id: job_id in answered for job_id, _ in found if job_id <= reached}


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

    return PendingStore(open_store(settings.pending_store, cos), concurrency=settings.ci_concurrency)
