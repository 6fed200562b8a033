"""Discovery: find CI jobs nobody named, by listing them per Tag (and queue) on every timer tick.

:func:`sweep` takes its collaborators as arguments, so the timer tick decides how jobs are written and
parked:

* ``lister(query, deadline) -> ListPage`` lists one page (:meth:`cijobs.ci_list.JobLister.list_page`);
* ``write_terminal(jobs, deadline) -> failed IDs`` writes finished jobs (``Success``, ``Failed``,
  ``Cancel``) to the sinks as listed (no second query), with source :data:`SOURCE`;
* ``park(ids, states, deadline) -> failed IDs`` puts unfinished ones (``Submitted``, ``Running``,
  ``Pause``, or a state this code does not know) in the pending registry with source :data:`SOURCE`;
  the ordinary registry work of the tick (and later ticks) finishes them;
* ``cursors`` is a :class:`~cijobs.discovery_cursor.CursorStore` on the pending registry's store.

For every tag (and every queue when queues are given) one *stream* lists the jobs created in the
cursor's window (see :mod:`cijobs.discovery_cursor`), ascending, ``size`` a page, following
``NextToken``. Streams take pages in turns (one page each per round), so one tag with a backlog does not
use up the tick's ``max_pages`` alone. After each page whose jobs were all written or parked, the
stream's cursor advances; a page with a failed write or park leaves the cursor where it was and ends
that stream for this tick (the next tick lists the page again). A failed listing or cursor access ends
only its own stream and is reported in :attr:`SweepReport.failures`. The sweep stops starting pages
once less than ``reserve_s`` of the deadline is left, so a started page still has time to be written
and parked; whatever is left continues next tick from the cursor.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .ci_client import CIError
from .ci_list import ListPage, ListQuery, parse_job_time, queue_required
from .deadline import Deadline
from .discovery_cursor import CursorError, CursorStore, Position, Resume, StoredCursor, window
from .models import ServiceError

SOURCE = "discovery"
TERMINAL_STATES = frozenset({"Success", "Failed", "Cancel"})
QUEUE_HINT = "CI requires queueId for job listings: set DISCOVER_QUEUE_IDS to the queue IDs to sweep"

Lister = Callable[[ListQuery, Deadline], ListPage]
WriteTerminal = Callable[[list[dict[str, Any]], Deadline], Sequence[str]]
Park = Callable[[list[str], Mapping[str, str], Deadline], Sequence[str]]


@dataclass
class StreamReport:
    """What one tag (and queue) did in one sweep."""

    tag: str
    queue_id: Optional[str] = None
    discovered: int = 0
    written: int = 0
    parked: int = 0
    skipped: int = 0  # listed again but already handled (cursor second, earlier second, another tick)
    pages: int = 0
    complete: bool = False  # listed up to the window's end
    window: Optional[tuple[int, int]] = None
    cursor_second: Optional[int] = None
    error: Optional[dict[str, Any]] = None

    def as_dict(self) -> dict[str, Any]:
        return {"Tag": self.tag, "QueueId": self.queue_id, "Discovered": self.discovered, "Written": self.written,
                "Parked": self.parked, "Skipped": self.skipped, "Pages": self.pages, "Complete": self.complete,
                "Window": list(self.window) if self.window else None, "CursorSecond": self.cursor_second,
                "Error": self.error}


@dataclass
class SweepReport:
    streams: list[StreamReport] = field(default_factory=list)
    stopped: Optional[str] = None  # "deadline" or "max_pages" when work was left for the next tick

    @property
    def discovered(self) -> int:
        return sum(s.discovered for s in self.streams)

    @property
    def written(self) -> int:
        return sum(s.written for s in self.streams)

    @property
    def parked(self) -> int:
        return sum(s.parked for s in self.streams)

    @property
    def pages(self) -> int:
        return sum(s.pages for s in self.streams)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [dict(s.error, Tag=s.tag, QueueId=s.queue_id) for s in self.streams if s.error]

    @property
    def queue_required(self) -> bool:
        return any(s.error and s.error.get("QueueRequired") for s in self.streams)

    def as_dict(self) -> dict[str, Any]:
        """The summary part: ``discovered`` and friends, per-stream details, failures (with the queue hint)."""
        out: dict[str, Any] = {"discovered": self.discovered, "written": self.written, "parked": self.parked,
                               "pages": self.pages, "stopped": self.stopped, "failures": self.failures,
                               "streams": [s.as_dict() for s in self.streams]}
        if self.queue_required:
            out["hint"] = QUEUE_HINT
        return out


@dataclass
class _Stream:
    report: StreamReport
    cursor: Optional[StoredCursor] = None
    start: int = 0
    end: int = 0
    token: Optional[str] = None
    resumed: bool = False  # continuing a listing a previous tick left unfinished
    now: float = 0.0
    settle_s: float = 0.0
    done: bool = False


def known_job_tags() -> list[str]:
    """Every real job ``Tag`` the normalizer knows (``DISCOVER_TAGS=all``), without template variants such as
    ``HighSpeedHd`` (whose jobs carry ``Tag`` ``Transcode``)."""
    import json
    from importlib import resources

    table = json.loads(resources.files("cijobs.normalize").joinpath("paths.json").read_text(encoding="utf-8"))
    types: dict[str, dict[str, Any]] = table["jobTypes"]
    return sorted({str(spec.get("tag", name)) for name, spec in types.items()})


def parse_tags(value: str) -> list[str]:
    """``DISCOVER_TAGS``: a comma list (blank = discovery off, ``all`` = :func:`known_job_tags`), de-duplicated
    in order. Raises ValueError for a tag that cannot name a cursor."""
    from .discovery_cursor import cursor_name

    items = [t.strip() for t in value.split(",") if t.strip()]
    if any(t.lower() == "all" for t in items):
        return known_job_tags()
    out: list[str] = []
    for t in items:
        cursor_name(t)
        if t not in out:
            out.append(t)
    return out


def resolve_since(since: Optional[str], now: float, lookback_s: float = 3600.0) -> int:
    """Where a stream without a cursor starts: ``DISCOVER_SINCE`` (ISO 8601 with an offset, e.g.
    ``2026-12-04T20:00:00+0800``) or, when unset, ``now - DISCOVER_LOOKBACK_S``. Only the very first sweep
    of a Tag uses it (the cursor it writes then wins). Raises ValueError for a time without an offset."""
    if since is None or not since.strip():
        return int(now - lookback_s)
    t = parse_job_time(since.strip())
    if t is None:
        raise ValueError(f"DISCOVER_SINCE must be an ISO 8601 time with a UTC offset, got {since!r}")
    return t


def _error(code: str, message: str, retryable: bool = True, **extra: Any) -> dict[str, Any]:
    return {"Code": code, "Message": message, "Retryable": retryable, **extra}


def sweep(
    tags: Sequence[str],
    queues: Sequence[str],
    cursors: CursorStore,
    lister: Lister,
    write_terminal: WriteTerminal,
    park: Park,
    *,
    deadline: Deadline,
    since: int,
    max_pages: int = 50,
    settle_s: float = 10.0,
    reserve_s: float = 1.0,
    page_size: int = 100,
    now: Callable[[], float] = time.time,
) -> SweepReport:
    """List and hand over the jobs created since each cursor (``since``: where a stream without a cursor
    starts, unix seconds). Never raises for a failing tag; see the module docstring."""
    report = SweepReport()
    started = now()
    streams: list[_Stream] = []
    queue_ids: list[Optional[str]] = list(queues) or [None]
    for tag in tags:
        for queue in queue_ids:
            s = _Stream(StreamReport(tag, queue))
            report.streams.append(s.report)
            streams.append(s)
    for s in streams:
        if deadline.remaining() <= reserve_s:
            report.stopped = "deadline"
            return report
        _open(s, cursors, since, started, settle_s, deadline)
    budget = max_pages
    while True:
        active = [s for s in streams if not s.done]
        if not active:
            return report
        for s in active:
            if budget <= 0:
                report.stopped = "max_pages"
                return report
            if deadline.remaining() <= reserve_s:
                report.stopped = "deadline"
                return report
            budget -= 1
            _page(s, cursors, lister, write_terminal, park, deadline, page_size)


def _open(s: _Stream, cursors: CursorStore, since: int, now: float, settle_s: float, deadline: Deadline) -> None:
    r = s.report
    try:
        s.cursor = cursors.load(r.tag, r.queue_id, deadline)
        if s.cursor is None:  # the very first sweep of this stream pins its start
            s.cursor = cursors.advance(r.tag, r.queue_id, None, Position(int(since)), deadline)
    except (CursorError, ValueError) as exc:
        code, retryable = (exc.code, exc.retryable) if isinstance(exc, CursorError) else ("BadCursorName", False)
        r.error = _error(code, str(exc), retryable, Step="cursor")
        s.done = True
        return
    r.cursor_second = s.cursor.position.second
    s.now, s.settle_s = now, settle_s
    resume = s.cursor.resume
    if resume is not None:
        s.start, s.end, s.token, s.resumed = resume.start, resume.end, resume.token, True
        r.window = (resume.start, resume.end)
        return
    _fresh_window(s)


def _fresh_window(s: _Stream) -> None:
    assert s.cursor is not None
    s.token, s.resumed = None, False
    span = window(s.cursor.position, s.now, s.settle_s)
    if span is None:
        s.report.complete = s.done = True
        return
    s.start, s.end = span
    s.report.window = span


def _page(s: _Stream, cursors: CursorStore, lister: Lister, write_terminal: WriteTerminal, park: Park,
          deadline: Deadline, page_size: int) -> None:
    r = s.report
    assert s.cursor is not None
    query = ListQuery(r.tag, start=s.start, end=s.end, queue_id=r.queue_id, size=page_size, order="Asc",
                      next_token=s.token)
    try:
        page = lister(query, deadline)
    except ServiceError as exc:
        if s.resumed and not exc.retryable:  # e.g. the saved NextToken is refused: list afresh
            _fresh_window(s)
            return
        extra: dict[str, Any] = {"Step": "list", "Status": exc.status, "RequestId": exc.request_id}
        if isinstance(exc, CIError) and queue_required(exc):
            extra.update(QueueRequired=True, Hint=QUEUE_HINT)
        r.error = _error(exc.code, exc.message, exc.retryable, **extra)
        s.done = True
        return
    r.pages += 1
    position = s.cursor.position
    seen: set[str] = set()
    keyed: list[tuple[Optional[int], str]] = []
    terminal: list[dict[str, Any]] = []
    pending: dict[str, str] = {}
    for job in page.jobs:
        job_id = job.get("JobId")
        if not isinstance(job_id, str) or not job_id or job_id in seen:
            continue
        seen.add(job_id)
        second = parse_job_time(job.get("CreationTime"))
        keyed.append((second, job_id))
        if position.covers(second, job_id):
            r.skipped += 1
            continue
        state = job.get("State")
        if isinstance(state, str) and state in TERMINAL_STATES:
            terminal.append(job)
        else:
            pending[job_id] = state if isinstance(state, str) else ""
    failed_w = set(write_terminal(terminal, deadline)) if terminal else set()
    failed_p = set(park(list(pending), pending, deadline)) if pending else set()
    r.written += len(terminal) - len(failed_w)
    r.parked += len(pending) - len(failed_p)
    r.discovered += len(terminal) + len(pending) - len(failed_w) - len(failed_p)
    if failed_w or failed_p:
        r.error = _error("HandOverFailed", f"{len(failed_w)} job(s) not written, {len(failed_p)} not parked; "
                         "the page is listed again next tick", True, Step="write")
        s.done = True
        return
    new = position.after_page(keyed)
    resume = None if page.next_token is None else Resume(s.start, s.end, page.next_token)
    if page.next_token is None:
        new = new.after_window(s.end)
    try:
        s.cursor = cursors.advance(r.tag, r.queue_id, s.cursor, new, deadline, resume)
    except CursorError as exc:
        r.error = _error(exc.code, exc.message, exc.retryable, Step="cursor")
        s.done = True
        return
    r.cursor_second = s.cursor.position.second
    s.token = page.next_token
    if s.token is None:
        if s.resumed:  # the previous tick's listing is done: now the window up to this tick's end
            _fresh_window(s)
        else:
            r.complete = s.done = True


class TickSweep:
    """The sweep a timer tick runs before its registry work (``Pipeline(sweep=...)``; wired by the app when
    ``DISCOVER_TAGS`` is set). Discovered jobs get outcomes with source :data:`SOURCE` in the tick's run:
    finished ones are written as listed, unfinished ones parked (and marked as answered by CI)."""

    def __init__(self, tags: Sequence[str], queues: Sequence[str], cursors: CursorStore, lister: Lister, *,
                 since: Optional[str], lookback_s: float, settle_s: float, max_pages: int,
                 now: Callable[[], float] = time.time) -> None:
        self.tags, self.queues, self.cursors, self.lister = list(tags), list(queues), cursors, lister
        self.since, self.lookback_s, self.settle_s, self.max_pages = since, lookback_s, settle_s, max_pages
        self.now = now

    def __call__(self, run: Any) -> None:
        from .pipeline import NOT_FINISHED, Run

        sub = Run(run.pipeline, SOURCE, run.deadline, out=run.out)

        def write_terminal(jobs: list[dict[str, Any]], _deadline: Deadline) -> Sequence[str]:
            return sub.write([j for j in jobs if j.get("JobId") not in run.out])

        def park(ids: list[str], states: Mapping[str, str], _deadline: Deadline) -> Sequence[str]:
            return sub.park([i for i in ids if i not in run.out], NOT_FINISHED, None, dict(states))

        report = sweep(self.tags, self.queues, self.cursors, self.lister, write_terminal, park,
                       deadline=run.deadline, since=resolve_since(self.since, self.now(), self.lookback_s),
                       max_pages=self.max_pages, settle_s=self.settle_s,
                       reserve_s=max(1.0, run.park_s * 2), now=self.now)
        run.out.discovery = report.as_dict()
