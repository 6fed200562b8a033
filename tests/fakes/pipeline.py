"""In-memory fakes of the pipeline's collaborators: CI client, sink, pending registry, clocks."""

from __future__ import annotations

from typing import Any, Optional

from cijobs.models import ErrorInfo, JobFailure, PendingEntry, PendingListing, QueryResult, WriteResult

JOB_A = "j" + "a" * 32
JOB_B = "j" + "b" * 32
JOB_C = "j" + "c" * 32
JOB_D = "j" + "d" * 32


def job_id(n: int, prefix: str = "j") -> str:
    """A well-formed job ID (``prefix`` + 32 hex digits); ``n`` makes it distinct."""
    return f"{prefix}{n:032x}"


class FakeClock:
    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeCI:
    """``jobs``: id → State; unknown ids are nonexistent; ``fail``: id → (code, retryable)."""

    def __init__(self, jobs: Optional[dict[str, str]] = None, clock: Optional[FakeClock] = None,
                 cost_s: float = 0.0) -> None:
        self.jobs = dict(jobs or {})
        self.fail: dict[str, tuple[str, bool]] = {}
        self.raise_exc: Optional[BaseException] = None
        self.calls: list[list[str]] = []
        self.bodies: dict[str, dict[str, Any]] = {}
        self.clock = clock
        self.cost_s = cost_s

    def job(self, jid: str) -> dict[str, Any]:
        return self.bodies.get(jid) or {"JobId": jid, "State": self.jobs[jid], "Tag": "Transcode",
                                        "Source": "ci"}

    def query(self, job_ids: Any, deadline: Any = None) -> QueryResult:
        ids = list(job_ids)
        self.calls.append(ids)
        if self.clock is not None:
            self.clock.advance(self.cost_s)
        if self.raise_exc is not None:
            raise self.raise_exc
        out = QueryResult()
        for jid in ids:
            if jid in self.fail:
                code, retryable = self.fail[jid]
                out.failed.append(JobFailure(jid, ErrorInfo(code, "boom", 503), retryable))
            elif jid in self.jobs:
                out.jobs.append(self.job(jid))
            else:
                out.nonexistent.append(jid)
        return out

    @property
    def queried(self) -> list[str]:
        return [i for c in self.calls for i in c]


class FakeSink:
    name = "fake"

    def __init__(self) -> None:
        self.written: dict[str, dict[str, Any]] = {}
        self.fail: dict[str, tuple[str, bool]] = {}
        self.writes = 0

    def write(self, jobs: Any, deadline: Any = None) -> list[WriteResult]:
        self.writes += 1
        out = []
        for job in jobs:
            jid, state = job["JobId"], job.get("State")
            if jid in self.fail:
                code, retryable = self.fail[jid]
                out.append(WriteResult.failed(jid, state, code, "write boom", retryable))
                continue
            already = jid in self.written
            self.written[jid] = job
            out.append(WriteResult.written(jid, state, already))
        return out


class FakePending:
    """The pending registry in memory, with the registry's API (entries, ``.answered`` markers, listing)."""

    def __init__(self) -> None:
        self.entries: dict[str, PendingEntry] = {}
        self.answered: set[str] = set()
        self.fail_add: set[str] = set()
        self.broken = False
        self.adds: list[list[str]] = []  # the IDs of each add() call

    def add(self, job_ids: Any, *, now: float, source: str, deadline: Any = None) -> list[WriteResult]:
        if self.broken:
            raise OSError("registry down")
        ids = list(job_ids)
        self.adds.append(ids)
        failures = []
        for jid in ids:
            if jid in self.fail_add:
                failures.append(WriteResult.failed(jid, None, "SlowDown", "no", True))
                continue
            if jid not in self.entries:  # written once: FirstSeen and Source of the first registration
                self.entries[jid] = PendingEntry(jid, now, source)
        return failures

    def mark_answered(self, job_ids: Any, deadline: Any = None) -> list[WriteResult]:
        self.answered.update(job_ids)
        return []

    def listing(self, limit: int = 50_000, deadline: Any = None) -> PendingListing:
        if self.broken:
            raise OSError("registry down")
        entries = sorted(self.entries.values(), key=lambda e: (e.first_seen, e.job_id))
        return PendingListing([PendingEntry(e.job_id, e.first_seen, e.source, e.job_id in self.answered)
                               for e in entries[:limit]], complete=len(entries) <= limit)

    def remove(self, job_ids: Any, deadline: Any = None) -> list[WriteResult]:
        for jid in job_ids:
            self.entries.pop(jid, None)
            self.answered.discard(jid)
        return []
