"""One run: job IDs → CI query → sink / pending registry → one outcome per ID.

Every ID that enters leaves with exactly one outcome:

* ``written``      terminal job written to the sink (``already`` when it was there);
* ``pending``      not finished yet, or could not be completed now for a retryable
                   reason: it is in the pending registry and the next timer tick
                   picks it up (``reason`` says why);
* ``nonexistent``  CI does not know the ID;
* ``invalid``      the ID is malformed (never sent to CI);
* ``failed``       with ``reason`` (``retryable`` tells whether a later retry can help).

The pipeline never raises for a per-job problem; it knows the deadline and
stops starting new work when time runs out (what it did not reach stays, or
goes, pending). It never imports ``app``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Optional, Protocol

from .deadline import Deadline
from .job_ids import dedupe, validate_job_id
from .log import get_logger
from .models import TERMINAL_STATES, ErrorInfo, Job, QueryResult
from .settings import Settings

WRITTEN, PENDING, NONEXISTENT, INVALID, FAILED = "written", "pending", "nonexistent", "invalid", "failed"
STATUSES = (WRITTEN, PENDING, NONEXISTENT, INVALID, FAILED)

# Reasons (``Outcome.reason``).
NOT_FINISHED = "NotFinished"
DEADLINE = "DeadlineReached"
PENDING_EXPIRED = "PendingExpired"
PENDING_STORE_FAILED = "PendingStoreFailed"
TRACKED = "Tracked"

ROUND_WAVES = 8  # a round is this many waves of CI_CONCURRENCY requests of 10 IDs


class JobQuerier(Protocol):
    def query(self, job_ids: Sequence[str], deadline: Optional[Deadline] = None) -> QueryResult: ...


class JobSink(Protocol):
    def write(self, jobs: Sequence[Job], deadline: Optional[Deadline] = None) -> list[Any]: ...


class PendingRegistry(Protocol):
    def add(self, job_ids: Sequence[str], *, now: float, source: str, state: Optional[str] = None) -> list[Any]: ...
    def list(self, limit: Optional[int] = None) -> list[Any]: ...
    def remove(self, job_ids: Sequence[str]) -> Any: ...


@dataclass(frozen=True)
class Outcome:
    job_id: str
    status: str
    source: str
    state: Optional[str] = None
    reason: Optional[str] = None
    message: Optional[str] = None
    retryable: bool = False
    already: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"JobId": self.job_id, "Outcome": self.status, "Source": self.source}
        if self.state is not None:
            out["State"] = self.state
        if self.reason is not None:
            out["Reason"] = self.reason
        if self.message is not None:
            out["Message"] = self.message
        if self.status == FAILED:
            out["Retryable"] = self.retryable
        if self.already:
            out["Already"] = True
        return out


class DuplicateOutcomeError(RuntimeError):
    """A job ID was given two outcomes in one run (a bug; never expected)."""


@dataclass
class Outcomes:
    """The outcomes of one run, by job ID (insertion order), plus what was queried."""

    by_id: dict[str, Outcome] = field(default_factory=dict)
    queried: int = 0
    errors: list[str] = field(default_factory=list)  # run-level problems (e.g. registry unreadable)

    def set(self, outcome: Outcome) -> None:
        if outcome.job_id in self.by_id:
            raise DuplicateOutcomeError(f"job {outcome.job_id} already has outcome {self.by_id[outcome.job_id].status}")
        self.by_id[outcome.job_id] = outcome

    def merge(self, other: Outcomes) -> None:
        for o in other.by_id.values():
            self.set(o)
        self.queried += other.queried
        self.errors.extend(other.errors)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self.by_id

    def __len__(self) -> int:
        return len(self.by_id)

    def of(self, status: str) -> list[Outcome]:
        return [o for o in self.by_id.values() if o.status == status]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for o in self.by_id.values():
            counts[o.status] += 1
        return {"queried": self.queried, **counts}

    def retry_needed(self) -> bool:
        """True when a retryable failure could not be parked (a retry of the event may complete it)."""
        return bool(self.errors) or any(o.status == FAILED and o.retryable for o in self.by_id.values())

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Counts": self.counts(), "Outcomes": [o.as_dict() for o in self.by_id.values()]}
        if self.errors:
            out["Errors"] = list(self.errors)
        return out


def _epoch(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def error_fields(error: Any) -> tuple[str, str]:
    """``(code, message)`` of an ErrorInfo, a ServiceError-like exception, or any exception."""
    if isinstance(error, ErrorInfo):
        return error.code, error.message
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    if code or message:
        return str(code or type(error).__name__), str(message or "")
    return type(error).__name__, str(error)


class Pipeline:
    """ids → query → write/park → outcomes. Collaborators come in through the constructor."""

    def __init__(
        self,
        settings: Settings,
        client: JobQuerier,
        sink: JobSink,
        pending: PendingRegistry,
        clock: Callable[[], float] = time.time,
        chunk_size: Optional[int] = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.sink = sink
        self.pending = pending
        self.clock = clock
        # IDs per round (query, then write). A round waits for its slowest request (retries and backoff
        # included), so one-wave rounds spent most of a 10,000-job tick waiting on tails (bench/soak.py: 25 s
        # for the query alone). Without an explicit chunk_size, rounds start at one wave of CI requests and
        # grow up to ROUND_WAVES waves while a round takes under a quarter of the time left, so that short
        # deadlines keep small rounds (each one writes what it found) and long ones few barriers.
        self.wave_size = max(10, settings.ci_concurrency * 10)
        self.chunk_size = chunk_size or self.wave_size
        self.adaptive = chunk_size is None
        self.log = get_logger("cijobs.pipeline")

    # -- public entry points -------------------------------------------------------------------

    def lookup(self, job_ids: Sequence[str], deadline: Optional[Deadline] = None) -> QueryResult:
        """Read-only query (``GET /jobs/{ids}``): nothing is written, not even to the registry."""
        return self.client.query(list(job_ids), deadline or Deadline.never())

    def track(self, job_ids: Sequence[str], source: str) -> Outcomes:
        """Put IDs in the pending registry (``POST /jobs/track``); the timer does the rest."""
        out = Outcomes()
        valid = self._split_invalid(dedupe(job_ids), source, {}, out)
        self._park(valid, source, None, TRACKED, None, out)
        return out

    def process(self, job_ids: Sequence[str], source: str, deadline: Deadline,
                jobs: Sequence[Job] = (), trust_jobs: bool = False) -> Outcomes:
        """IDs from a one-off source (callback, queue record, timer Message, direct invoke).

        ``jobs`` are job bodies from a CI notification; used instead of a query only
        when ``trust_jobs`` (TRUST_CALLBACK_BODY) is on.
        """
        out = Outcomes()
        # A body job is trusted only when its JobId and State are strings; any other shape is re-queried.
        trusted = {j["JobId"]: j for j in jobs
                   if isinstance(j, dict) and isinstance(j.get("JobId"), str) and _state(j) is not None} \
            if trust_jobs else {}
        self._settle(dedupe(job_ids), source, deadline, {}, trusted, out)
        return out

    def tick(self, deadline: Deadline, message_ids: Sequence[str] = (), source: str = "timer") -> Outcomes:
        """A timer tick: the Message's IDs plus every ID in the pending registry."""
        out = Outcomes()
        try:
            entries = list(self.pending.list())
        except Exception as exc:  # registry unreadable: still do the Message's IDs, then report
            code, message = error_fields(exc)
            self.log.error("pending_list_failed", error_code=code, error=message)
            out.errors.append(f"pending registry could not be listed: {code}: {message}")
            entries = []
        registered = {e.job_id: e for e in entries}
        fresh = [i for i in dedupe(message_ids) if i not in registered]
        # Oldest registration first (closest to PENDING_MAX_AGE_S). The registry keeps no per-tick
        # LastSeen (entries are written once, see cijobs.pending), so "least recently checked" is the
        # first-seen order.
        entries.sort(key=lambda e: _epoch(getattr(e, "last_seen", None)) or 0.0)
        ids = fresh + [e.job_id for e in entries]
        self._settle(ids, source, deadline, registered, {}, out)
        return out

    # -- the run -------------------------------------------------------------------------------

    def _split_invalid(self, ids: list[str], source: str, registered: dict[str, Any], out: Outcomes) -> list[str]:
        valid: list[str] = []
        dropped: list[str] = []
        for job_id in ids:
            if validate_job_id(job_id):
                valid.append(job_id)
            else:
                out.set(Outcome(job_id, INVALID, source, reason="InvalidJobId",
                                message="not a CI job ID (a lowercase letter and 16-64 lowercase letters/digits)"))
                if job_id in registered:
                    dropped.append(job_id)
        self._remove(dropped)
        return valid

    def _settle(self, ids: list[str], source: str, deadline: Deadline, registered: dict[str, Any],
                trusted: dict[str, Job], out: Outcomes) -> None:
        valid = self._split_invalid(ids, source, registered, out)
        start, size = 0, self.chunk_size
        while start < len(valid):
            chunk = valid[start:start + size]
            if deadline.expired():
                rest = valid[start:]
                self.log.warning("deadline_reached", left=len(rest))
                self._defer(rest, source, registered, {}, DEADLINE, None, out)
                return
            before = deadline.remaining()
            self._round(chunk, source, deadline, registered, trusted, out)
            start += len(chunk)
            if self.adaptive:
                size = self._next_size(len(chunk), before - deadline.remaining(), deadline.remaining())

    def _next_size(self, size: int, took: float, left: float) -> int:
        """Waves for the next round: as many as fit in a quarter of the time left (1..ROUND_WAVES)."""
        waves = max(1, size // self.wave_size)
        if not math.isfinite(left) or took <= 0 or not math.isfinite(took):
            return self.wave_size * ROUND_WAVES
        fit = int(left / 4 / (took / waves))
        return self.wave_size * max(1, min(ROUND_WAVES, fit))

    def _round(self, chunk: list[str], source: str, deadline: Deadline, registered: dict[str, Any],
               trusted: dict[str, Job], out: Outcomes) -> None:
        jobs: list[Job] = [trusted[i] for i in chunk if i in trusted]
        to_query = [i for i in chunk if i not in trusted]
        answered: set[str] = {j["JobId"] for j in jobs}
        if to_query:
            out.queried += len(to_query)
            try:
                result = self.client.query(to_query, deadline)
            except Exception as exc:
                code, message = error_fields(exc)
                retryable = bool(getattr(exc, "retryable", True))
                self.log.warning("query_failed", error_code=code, error=message, ids=len(to_query))
                self._defer_failures(to_query, source, registered, code, message, retryable, out)
                return
            asked = set(to_query)
            for job in result.jobs:
                job_id = job.get("JobId")
                if isinstance(job_id, str) and job_id in asked and job_id not in answered:
                    jobs.append(job)
                    answered.add(job_id)
            gone = [i for i in dedupe(result.nonexistent) if i in asked and i not in answered]
            for job_id in gone:
                out.set(Outcome(job_id, NONEXISTENT, source, reason="NonExistJobId"))
                answered.add(job_id)
            bad = [i for i in dedupe(result.invalid) if i in asked and i not in answered]
            for job_id in bad:
                out.set(Outcome(job_id, INVALID, source, reason="InvalidJobId", message="CI rejected the ID"))
                answered.add(job_id)
            self._remove([i for i in gone + bad if i in registered])
            for failure in result.failed:
                if failure.job_id in asked and failure.job_id not in answered:
                    answered.add(failure.job_id)
                    self._defer_failures([failure.job_id], source, registered, failure.error.code,
                                         failure.error.message, failure.retryable, out)
            missing = [i for i in to_query if i not in answered]
            if missing:  # the client must account for every ID; if not, treat it as a transient gap
                self._defer_failures(missing, source, registered, "NotReturned",
                                     "CI returned nothing for this ID", True, out)

        terminal = [j for j in jobs if _is_terminal(j)]
        unfinished = [j for j in jobs if not _is_terminal(j)]
        for job in unfinished:
            self._defer([job["JobId"]], source, registered, {job["JobId"]: _state(job)}, NOT_FINISHED, None, out)
        if not terminal:
            return
        if deadline.expired():
            self._defer([j["JobId"] for j in terminal], source, registered,
                        {j["JobId"]: _state(j) for j in terminal}, DEADLINE, None, out)
            return
        self._write(terminal, source, deadline, registered, out)

    def _write(self, jobs: list[Job], source: str, deadline: Deadline, registered: dict[str, Any],
               out: Outcomes) -> None:
        try:
            results = list(self.sink.write(jobs, deadline))
        except Exception as exc:  # a sink must not raise per job; if it does, nothing was confirmed
            code, message = error_fields(exc)
            self.log.error("sink_raised", error_code=code, error=message)
            results = []
        by_id = {r.job_id: r for r in results}
        done: list[str] = []
        for job in jobs:
            job_id, state = job["JobId"], _state(job)
            r = by_id.get(job_id)
            if r is not None and r.ok:
                out.set(Outcome(job_id, WRITTEN, source, state=state, already=bool(r.already)))
                if job_id in registered:
                    done.append(job_id)
                continue
            if r is None:
                code, message, retryable = "WriteNotConfirmed", "the sink did not confirm the write", True
            else:
                code, message = error_fields(r.error) if r.error is not None else ("WriteFailed", "write failed")
                retryable = bool(r.retryable)
            self.log.warning("write_failed", job_id=job_id, error_code=code, error=message, retryable=retryable)
            self._defer_failures([job_id], source, registered, code, message, retryable, out, state=state)
        self._remove(done)

    # -- parking in the registry ----------------------------------------------------------------

    def _defer_failures(self, ids: list[str], source: str, registered: dict[str, Any], code: str, message: str,
                        retryable: bool, out: Outcomes, state: Optional[str] = None) -> None:
        """A query/write failure: retryable → pending (registry); otherwise failed (kept if registered)."""
        if retryable:
            self._defer(ids, source, registered, dict.fromkeys(ids, state), code, message, out)
            return
        now = self.clock()
        expired: list[str] = []
        for job_id in ids:
            if job_id in registered and self._expire(job_id, registered[job_id], state, now, source, out,
                                                     last_error=f"{code}: {message}"):
                expired.append(job_id)
                continue
            out.set(Outcome(job_id, FAILED, source, state=state, reason=code, message=message, retryable=False))
        self._drop_expired(expired)

    def _expire(self, job_id: str, entry: Any, state: Optional[str], now: float, source: str,
                out: Outcomes, last_error: Optional[str] = None) -> bool:
        """Registered longer than PENDING_MAX_AGE_S: give it its final ``PendingExpired`` outcome (True)."""
        first = _epoch(getattr(entry, "first_seen", None))
        if first is None or now - first < self.settings.pending_max_age_s:
            return False
        out.set(Outcome(job_id, FAILED, source, state=state or _last_state(entry), reason=PENDING_EXPIRED,
                        retryable=False,
                        message=f"not finished {int(now - first)} s after it was first registered "
                                f"(PENDING_MAX_AGE_S={self.settings.pending_max_age_s})"
                                + (f"; last error {last_error}" if last_error else "")))
        return True

    def _drop_expired(self, expired: list[str]) -> None:
        if expired:
            self.log.warning("pending_expired", count=len(expired))
            self._remove(expired)

    def _defer(self, ids: list[str], source: str, registered: dict[str, Any], states: dict[str, Optional[str]],
               reason: str, message: Optional[str], out: Outcomes) -> None:
        """Leave (registry IDs) or put (new IDs) these IDs in the registry as pending."""
        now = self.clock()
        known = [i for i in ids if i in registered]
        fresh = [i for i in ids if i not in registered]
        expired: list[str] = []
        for job_id in known:
            entry = registered[job_id]
            if self._expire(job_id, entry, states.get(job_id), now, source, out):
                expired.append(job_id)
                continue
            # Still registered: nothing to write (entries are written once, so that a tick costs a
            # listing and not a read+write per entry; the outcome carries the state seen now).
            state = states.get(job_id)
            out.set(Outcome(job_id, PENDING, source, state=state or _last_state(entry), reason=reason,
                            message=message))
        self._drop_expired(expired)
        if fresh:
            self._park(fresh, source, states, reason, message, out)

    def _park(self, ids: list[str], source: str, states: Optional[dict[str, Optional[str]]], reason: str,
              message: Optional[str], out: Outcomes) -> None:
        if not ids:
            return
        now = self.clock()
        groups: dict[Optional[str], list[str]] = {}
        for job_id in ids:
            groups.setdefault((states or {}).get(job_id), []).append(job_id)
        for state, group in groups.items():
            failed: dict[str, str] = {}
            try:
                for f in self.pending.add(group, now=now, source=source, state=state) or []:
                    fid = getattr(f, "job_id", None)
                    if isinstance(fid, str):
                        err = getattr(f, "error", None)
                        failed[fid] = "{}: {}".format(*error_fields(err)) if err is not None else "add failed"
            except Exception as exc:
                text = "{}: {}".format(*error_fields(exc))
                failed = dict.fromkeys(group, text)
            for job_id in group:
                if job_id in failed:
                    self.log.error("pending_add_failed", job_id=job_id, error=failed[job_id])
                    out.set(Outcome(job_id, FAILED, source, state=state, reason=PENDING_STORE_FAILED,
                                    message=f"{reason}" + (f" ({message})" if message else "")
                                    + f"; could not be registered as pending: {failed[job_id]}",
                                    retryable=True))
                else:
                    out.set(Outcome(job_id, PENDING, source, state=state, reason=reason, message=message))

    def _remove(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if not ids:
            return
        try:
            self.pending.remove(ids)
        except Exception as exc:  # harmless: the next tick sees them again and the writes are idempotent
            code, message = error_fields(exc)
            self.log.warning("pending_remove_failed", ids=len(ids), error_code=code, error=message)


def _state(job: Job) -> Optional[str]:
    state = job.get("State")
    return state if isinstance(state, str) else None


def _is_terminal(job: Job) -> bool:
    """A job whose State is a terminal state string (a non-string State counts as unknown: not terminal)."""
    return _state(job) in TERMINAL_STATES


def _last_state(entry: Any) -> Optional[str]:
    state = getattr(entry, "last_state", None)
    return state if isinstance(state, str) else None
