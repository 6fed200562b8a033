"""Discovery cursors: how far the job listing of one Tag (and queue) has been handled, kept next to the
pending registry.

**Position.** CI job creation times are whole seconds, and CI does not document whether the
``startCreationTime``/``endCreationTime`` bounds of ``GET /jobs?...`` are inclusive. A
:class:`Position` is ``(second, ids)``: every job created *before* ``second`` is handled, and so are
the jobs created *in* ``second`` whose IDs are in ``ids``. Then:

* the listing window (:func:`window`) starts one second before the cursor second and ends at
  ``now - settle`` (whole seconds). With exclusive bounds it lists ``second .. end-1``, with inclusive
  bounds ``second-1 .. end``; either way it lists every job of ``second`` and later up to ``end-1``.
  Jobs the position already covers (the earlier second, the IDs handled in the cursor second) are
  skipped (:meth:`Position.covers`), so a second that spans a page boundary is neither skipped nor
  handled again, and no window repeats a second without end: it re-lists at most the jobs of the
  cursor second. When ``end <= second`` there is nothing to list yet.
* once every job of a page is written or parked, :meth:`Position.after_page` moves the position to the
  last second on the page, with the IDs of that second (plus those already handled if it is the same
  second). Listings are ascending (``orderByTime=Asc``), so every earlier job came on this or an
  earlier page of the same window. After the window's last page, :meth:`Position.after_window` moves it
  to ``(end, {})`` unless it is already further: every job created before ``end`` has been listed in
  both bound modes.
* A crash or a deadline in the middle of a page leaves the position where it was; the next tick lists
  that page again, and idempotent writes make that harmless.
* Re-listing the cursor second costs at most the pages of the IDs already handled in it, but a tick
  that can list no more than those (a second holding more jobs than a tick's pages hold, or ticks cut
  short by their deadline) would repeat that second forever. So the cursor also keeps the window and
  ``NextToken`` of a listing left unfinished (:class:`Resume`); the next tick continues that listing
  (skipping covered jobs as always) and opens a fresh window only when it is done. A refused token
  (expired, or from an older CI) just falls back to a fresh window. A merge of two different positions
  keeps only the winner's ``Resume`` (one of the same second with different IDs keeps none), so a
  ``Resume`` always belongs to a listing that handled everything its position claims.

**Persistence: sequence-named, create-if-absent objects** at
``<prefix>/.cursor/<Tag>[-<QueueId>]/<seq>.json`` (``seq`` zero-padded to 12 digits; the highest
``seq`` is the cursor). Each advance creates ``seq + 1`` with create-if-absent (COS
``x-cos-forbid-overwrite``, a hard link on disk). If that object already exists, another tick moved the
cursor meanwhile: the highest object is read, the two positions are merged (:meth:`Position.merge`:
the later second wins; the same second unions the IDs), and the merge is created one higher, unless the
stored cursor already covers it. Both positions are true statements ("all of this is handled"), so
their merge is too: two ticks at once never lose a job and never move the cursor backwards, and no
clock, lease or expiry is involved. A lease object with expiry was the alternative; it was not chosen
because its safety rests on clocks and on a paused tick noticing that its lease has expired before it
overwrites the cursor (a tick that stalls past the expiry, e.g. in a long GC pause or a slow request,
could write an older position over a newer one), and a crashed holder blocks the tag until the lease
expires. Sequence objects cost one create per page and need no read on the common path.

Old objects are deleted when a cursor is loaded (all but the newest :data:`KEEP`). Deleting cannot let
a stale writer win: the newest object is never deleted and a writer only ever creates ``seq + 1`` of
the last ``seq`` it knows, so on its way up it meets an existing object (and merges) before it could
create one above the newest; a low ``seq`` it re-creates in the deleted range is simply not the
highest.

Each object holds ``{"Tag", "QueueId", "Seq", "Second", "Time", "Ids", "Resume", "Updated"}``
(``Time`` is ``Second`` as a CI time, for people; ``Resume`` is ``{"Start", "End", "Token"}`` or null;
``Updated`` unix seconds of the write).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .deadline import Deadline
from .store import ObjectStore, StoreError

CURSOR_DIR = ".cursor"
SEQ_WIDTH = 12
KEEP = 4
MAX_MERGE_ATTEMPTS = 8
_NAME_RE = re.compile(r"^[A-Za-z0-9_.]{1,64}$")


class CursorError(Exception):
    """A cursor could not be read or written (``code``; ``retryable`` when a later tick may succeed)."""

    def __init__(self, code: str, message: str, retryable: bool = True) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class Position:
    """Every job created before ``second`` is handled, and so are those created in ``second`` with an ID in
    ``ids``."""

    second: int
    ids: frozenset[str] = field(default_factory=frozenset)

    def covers(self, second: Optional[int], job_id: str) -> bool:
        """Whether a job (its creation second; None = unknown, never covered) is already handled."""
        if second is None:
            return False
        return second < self.second or (second == self.second and job_id in self.ids)

    def merge(self, other: Position) -> Position:
        """What both positions together say is handled."""
        if self.second != other.second:
            return self if self.second > other.second else other
        if other.ids <= self.ids:
            return self
        return Position(self.second, self.ids | other.ids)

    def after_page(self, jobs: Iterable[tuple[Optional[int], str]]) -> Position:
        """The position once every ``(creation second, JobId)`` of an ascending page is handled (jobs
        without a usable creation time are handled but move nothing)."""
        timed = [(s, j) for s, j in jobs if s is not None]
        if not timed:
            return self
        last = max(s for s, _ in timed)
        return self.merge(Position(last, frozenset(j for s, j in timed if s == last)))

    def after_window(self, end: int) -> Position:
        """The position once a window ending at ``end`` has been listed to its last page."""
        return self.merge(Position(end))

    def ahead_of(self, other: Position) -> bool:
        """True when this position covers everything ``other`` does and more."""
        return self.merge(other) == self and self != other


def window(position: Position, now: float, settle_s: float) -> Optional[tuple[int, int]]:
    """``(start, end)`` unix seconds to list for ``position``, or None when nothing can be listed yet.

    ``start`` is one second before the cursor second (so the cursor second is listed whether CI's bounds
    are exclusive or inclusive); ``end`` is ``now - settle_s`` rounded down."""
    end = int(now - settle_s)
    if end <= position.second:
        return None
    return position.second - 1, end


def cursor_name(tag: str, queue_id: Optional[str] = None) -> str:
    """``<Tag>`` or ``<Tag>-<QueueId>`` (both checked: letters, digits, ``_`` and ``.``)."""
    for part in (tag, queue_id) if queue_id else (tag,):
        if not part or not _NAME_RE.match(part):
            raise ValueError(f"unusable tag or queue ID for a cursor name: {part!r}")
    return f"{tag}-{queue_id}" if queue_id else tag


@dataclass(frozen=True)
class Resume:
    """An unfinished listing: its window and the ``NextToken`` of its next page."""

    start: int
    end: int
    token: str


@dataclass(frozen=True)
class StoredCursor:
    tag: str
    queue_id: Optional[str]
    seq: int
    position: Position
    updated: Optional[float] = None
    resume: Optional[Resume] = None

    def as_dict(self) -> dict[str, Any]:
        from .ci_list import format_list_time

        return {"Tag": self.tag, "QueueId": self.queue_id, "Seq": self.seq, "Second": self.position.second,
                "Time": format_list_time(self.position.second), "Ids": sorted(self.position.ids),
                "Resume": None if self.resume is None else {
                    "Start": self.resume.start, "End": self.resume.end, "Token": self.resume.token},
                "Updated": self.updated}

    def encode(self) -> bytes:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, body: bytes) -> StoredCursor:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("a cursor is a JSON object")
        ids = data.get("Ids") or []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ValueError("Ids must be a list of strings")
        updated = data.get("Updated")
        raw = data.get("Resume")
        resume = None
        if isinstance(raw, dict) and isinstance(raw.get("Token"), str) and raw["Token"]:
            resume = Resume(int(raw["Start"]), int(raw["End"]), raw["Token"])
        return cls(str(data["Tag"]), data.get("QueueId") or None, int(data["Seq"]),
                   Position(int(data["Second"]), frozenset(ids)),
                   float(updated) if isinstance(updated, (int, float)) else None, resume)


class CursorStore:
    """Discovery cursors in an object store (the pending registry's store: same bucket and prefix)."""

    def __init__(self, store: ObjectStore, clock: Callable[[], float] = time.time, keep: int = KEEP) -> None:
        self._store = store
        self._clock = clock
        self._keep = max(1, keep)

    def _dir(self, name: str) -> str:
        return self._store.key(CURSOR_DIR, name) + "/"

    def _key(self, name: str, seq: int) -> str:
        return self._store.key(CURSOR_DIR, name, f"{seq:0{SEQ_WIDTH}d}.json")

    @staticmethod
    def _seq_of(key: str) -> Optional[int]:
        base = key.rsplit("/", 1)[-1]
        if not base.endswith(".json") or not base[:-5].isdigit():
            return None
        return int(base[:-5])

    def load(self, tag: str, queue_id: Optional[str] = None,
             deadline: Optional[Deadline] = None) -> Optional[StoredCursor]:
        """The highest cursor object (None when there is none); deletes all but the newest ``keep``."""
        name = cursor_name(tag, queue_id)
        try:
            listed = self._store.list(self._dir(name), deadline)
        except StoreError as exc:
            raise CursorError(exc.code, f"cannot list cursor {name}: {exc.message}", exc.retryable) from None
        seqs = sorted(s for s in (self._seq_of(o.key) for o in listed) if s is not None)
        cursor: Optional[StoredCursor] = None
        for seq in reversed(seqs):  # an unreadable newest object falls back to the one before
            cursor = self._read(name, seq, deadline)
            if cursor is not None:
                break
        for seq in seqs[:-self._keep]:
            if deadline is not None and deadline.expired():
                break
            try:
                self._store.delete(self._key(name, seq), deadline)
            except StoreError:
                break  # best effort; the next load tries again
        return cursor

    def _read(self, name: str, seq: int, deadline: Optional[Deadline]) -> Optional[StoredCursor]:
        try:
            obj = self._store.get(self._key(name, seq), deadline)
        except StoreError as exc:
            raise CursorError(exc.code, f"cannot read cursor {name}/{seq}: {exc.message}", exc.retryable) from None
        if obj is None or obj.body is None:
            return None
        try:
            cur = StoredCursor.decode(obj.body)
        except (ValueError, KeyError, TypeError):
            return None
        return StoredCursor(cur.tag, cur.queue_id, seq, cur.position, cur.updated, cur.resume)

    def advance(self, tag: str, queue_id: Optional[str], known: Optional[StoredCursor], position: Position,
                deadline: Optional[Deadline] = None, resume: Optional[Resume] = None) -> StoredCursor:
        """Record ``position`` (merged with what is stored) and the unfinished listing ``resume`` (None: the
        listing is done) as the next cursor object; returns the cursor now in force. ``known`` is the last
        cursor this caller loaded or advanced to (None: none yet). Writes nothing when ``known`` already
        says the same."""
        name = cursor_name(tag, queue_id)
        if known is not None and known.position.merge(position) == known.position and (
                known.position != position or known.resume == resume):
            return known
        base = known
        for _ in range(MAX_MERGE_ATTEMPTS):
            if base is None:
                merged, keep_resume = position, resume
            else:
                merged = base.position.merge(position)
                if merged == position:
                    keep_resume = resume
                elif merged == base.position:
                    keep_resume = base.resume
                else:
                    keep_resume = None
            seq = 1 if base is None else base.seq + 1
            new = StoredCursor(tag, queue_id, seq, merged, self._clock(), keep_resume)
            try:
                created = self._store.create(self._key(name, seq), new.encode(), "application/json", {}, deadline)
            except StoreError as exc:
                raise CursorError(exc.code, f"cannot write cursor {name}/{seq}: {exc.message}",
                                  exc.retryable) from None
            if created:
                return new
            latest = self.load(tag, queue_id, deadline)  # another tick got there first
            if latest is None or latest.seq < seq:
                # the object we collided with is unreadable or gone: step over it
                latest = StoredCursor(tag, queue_id, seq, merged if latest is None else latest.position)
            if latest.position.ahead_of(position) or (latest.position == position and (
                    resume is None or latest.resume == resume)):
                return latest
            base = latest
        raise CursorError("CursorContention", f"cursor {name} kept moving; gave up after {MAX_MERGE_ATTEMPTS} tries")

    def status(self, deadline: Optional[Deadline] = None) -> list[StoredCursor]:
        """The cursor in force for every tag/queue that has one (read-only: nothing is deleted)."""
        try:
            listed = self._store.list(self._store.key(CURSOR_DIR) + "/", deadline)
        except StoreError as exc:
            raise CursorError(exc.code, f"cannot list cursors: {exc.message}", exc.retryable) from None
        newest: dict[str, list[int]] = {}
        for o in listed:
            seq = self._seq_of(o.key)
            name = o.key.rsplit("/", 2)[-2] if o.key.count("/") >= 1 else ""
            if seq is not None and name:
                newest.setdefault(name, []).append(seq)
        out: list[StoredCursor] = []
        for name in sorted(newest):
            for seq in sorted(newest[name], reverse=True):
                cur = self._read(name, seq, deadline)
                if cur is not None:
                    out.append(cur)
                    break
        return out


def describe(cursors: Iterable[StoredCursor]) -> list[Mapping[str, Any]]:
    """JSON-ready view of cursors (``cijobs discover --status``)."""
    return [c.as_dict() for c in cursors]
