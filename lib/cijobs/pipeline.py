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
goes, pending). A failure of the configuration class (credentials, permissions,
a bucket or host that does not exist, a refused certificate) parks its jobs:
they complete once the operator fixes the setting. A registry entry expires
(``PendingExpired``) only once CI has reported the job as unfinished: an entry
whose queries have always failed waits until CI answers. It never imports ``app``.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from . import failures
from .deadline import Deadline
from .job_ids import dedupe, validate_job_id
from .log import get_logger
from .models import TERMINAL_STATES, ErrorInfo, Job, PendingEntry, PendingListing, QueryResult, WriteResult
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
# Final failures no later query can change (a job whose document is over the size limit): a registered
# job that fails so leaves the registry instead of being queried, and failing, on every tick.
NEVER_BETTER = frozenset({"DocumentTooLarge"})

# What to check for each, named in the invocation summary's hint.
CONFIGURATION_HINTS = {
    "CredentialsError": "the credentials: bind an execution role (or set TENCENTCLOUD_SECRETID/SECRETKEY)",
    "SignatureDoesNotMatch": "the credentials' SecretKey (TENCENTCLOUD_SECRETKEY / the execution role)",
    "InvalidAccessKeyId": "the credentials' SecretId (TENCENTCLOUD_SECRETID / the execution role)",
    "AccessDenied": "the execution role's permissions (docs/permissions/execution-role.json)",
    "NoSuchBucket": "the bucket names in CI_BUCKET, RESULT_SINK, PENDING_STORE and CLAIM_CHECK_STORE",
    # a ConnectionError of the configuration class is a host name that did not resolve (NXDOMAIN)
    "ConnectionError": "CI_REGION and the endpoint overrides CI_ENDPOINT / COS_ENDPOINT / CMQ_ENDPOINT "
                       "(a host name did not resolve)",
    "CertificateVerifyFailed": "the endpoint overrides CI_ENDPOINT / COS_ENDPOINT / CMQ_ENDPOINT (TLS certificate)",
}


class JobQuerier(Protocol):
    def query(self, job_ids: Sequence[str], deadline: Optional[Deadline] = None) -> QueryResult: ...


class JobSink(Protocol):
    def write(self, jobs: Sequence[Job], deadline: Optional[Deadline] = None) -> list[WriteResult]: ...


class PendingRegistry(Protocol):
    def add(self, job_ids: Iterable[str], *, now: float, source: str,
            deadline: Optional[Deadline] = None) -> list[WriteResult]: ...

    def mark_answered(self, job_ids: Iterable[str], deadline: Optional[Deadline] = None) -> list[WriteResult]: ...

    def listing(self, limit: int = 50_000, deadline: Optional[Deadline] = None) -> PendingListing: ...

    def remove(self, job_ids: Iterable[str], deadline: Optional[Deadline] = None) -> list[WriteResult]: ...


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
    configuration: bool = False  # parked by a configuration-class failure (the operator must act)

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
    registry: dict[str, Any] = field(default_factory=dict)  # what a tick learned of the registry
    discovery: Optional[dict[str, Any]] = None  # a tick's discovery sweep

    def set(self, outcome: Outcome) -> None:
        if outcome.job_id in self.by_id:
            raise DuplicateOutcomeError(f"job {outcome.job_id} already has outcome {self.by_id[outcome.job_id].status}")
        self.by_id[outcome.job_id] = outcome

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

    def config_errors(self) -> dict[str, int]:
        """Counts by code of the configuration-class failures (their jobs are parked)."""
        return dict(Counter(o.reason or "" for o in self.by_id.values() if o.configuration))

    def retry_needed(self) -> bool:
        """True when a retryable failure could not be parked (a retry of the event may complete it)."""
        return bool(self.errors) or any(o.status == FAILED and o.retryable for o in self.by_id.values())

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Counts": self.counts(), "Outcomes": [o.as_dict() for o in self.by_id.values()]}
        if self.errors:
            out["Errors"] = list(self.errors)
        return out


def configuration_hint(config_errors: dict[str, int]) -> str:
    """One line naming what to check for the configuration failures seen (their jobs are parked)."""
    checks = [CONFIGURATION_HINTS.get(code, f"the setting behind {code}") for code in config_errors]
    return ("jobs are parked, nothing is lost; check " + "; ".join(dict.fromkeys(checks))
            + " (cijobs doctor checks every setting)")


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
        sweep: Optional[Callable[[Run], None]] = None,
        rate: Optional[Callable[[], float]] = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.sink = sink
        self.pending = pending
        self.clock = clock
        # IDs per round (query, then write). A round waits for its slowest request (retries and backoff
        # included), so rounds start at one wave of CI requests and grow up to ROUND_WAVES waves while a
        # round takes under a quarter of the time left: short deadlines keep small rounds (each one
        # writes what it found), long ones few barriers.
        self.wave_size = max(10, settings.ci_concurrency * 10)
        self.chunk_size = chunk_size or self.wave_size
        self.adaptive = chunk_size is None
        self.sweep = sweep  # the discovery sweep a tick runs first (None: discovery off)
        self.rate = rate  # CI requests per second the rate limiter allows now (None: no pacing)
        self.log = get_logger("cijobs.pipeline")

    def grace(self, deadline: Deadline) -> Deadline:
        """The deadline for parking and bookkeeping: half the margin past the work deadline."""
        return deadline.extended(self.settings.deadline_margin_s / 2)

    # -- public entry points -------------------------------------------------------------------

    def lookup(self, job_ids: Sequence[str], deadline: Optional[Deadline] = None) -> QueryResult:
        """Read-only query (``GET /jobs/{ids}``): nothing is written, not even to the registry."""
        return self.client.query(list(job_ids), deadline or Deadline.never())

    def track(self, job_ids: Sequence[str], source: str, deadline: Optional[Deadline] = None) -> Outcomes:
        """Put IDs in the pending registry (``POST /jobs/track``); the timer does the rest."""
        run = Run(self, source, deadline or Deadline.never())
        valid = run.split_invalid(dedupe(job_ids))
        run.park(valid, TRACKED, None)
        return run.out

    def process(self, job_ids: Sequence[str], source: str, deadline: Deadline,
                jobs: Sequence[Job] = (), trust_jobs: bool = False) -> Outcomes:
        """IDs from a one-off source (callback, queue record, timer Message, direct invoke).

        ``jobs`` are job bodies from a CI notification; used instead of a query only
        when ``trust_jobs`` (TRUST_CALLBACK_BODY) is on.
        """
        run = Run(self, source, deadline)
        if trust_jobs:  # a body job is trusted only when its JobId and State are strings
            run.trusted = {j["JobId"]: j for j in jobs
                           if isinstance(j, dict) and isinstance(j.get("JobId"), str) and _state(j) is not None}
        run.settle(dedupe(job_ids))
        return run.out

    def tick(self, deadline: Deadline, message_ids: Sequence[str] = (), source: str = "timer") -> Outcomes:
        """A timer tick: the discovery sweep (when on), the Message's IDs, then the registry's entries
        (at most PENDING_LIST_MAX, continuing where the last tick stopped), oldest first."""
        run = Run(self, source, deadline)
        if self.sweep is not None:
            self.sweep(run)
        listing = run.list_registry()
        # a registered job the sweep already wrote (or found gone) leaves the registry now
        run.remove([e.job_id for e in listing.entries
                    if e.job_id in run.out and run.out.by_id[e.job_id].status in (WRITTEN, NONEXISTENT)])
        fresh = [i for i in dedupe(message_ids) if i not in run.registered and i not in run.out]
        ids = fresh + [e.job_id for e in listing.entries if e.job_id not in run.out]
        run.settle(ids)
        run.mark_answered()
        return run.out


@dataclass
class Run:
    """One run of the pipeline: its source, deadline, the registry entries it works, the bodies it
    trusts, and the outcomes it collects. Parking and bookkeeping may run until ``grace``."""

    pipeline: Pipeline
    source: str
    deadline: Deadline
    registered: dict[str, PendingEntry] = field(default_factory=dict)
    trusted: dict[str, Job] = field(default_factory=dict)
    out: Outcomes = field(default_factory=Outcomes)
    unfinished: set[str] = field(default_factory=set)  # IDs CI reported as not finished in this run
    park_s: float = 0.0  # the longest registry write of this run (one parallel add), reserved before a round

    def __post_init__(self) -> None:
        self.grace = self.pipeline.grace(self.deadline)
        self.log = self.pipeline.log
        self.settings = self.pipeline.settings

    # -- the registry --------------------------------------------------------------------------

    def list_registry(self) -> PendingListing:
        now = self.pipeline.clock()
        try:
            listing = self.pipeline.pending.listing(self.settings.pending_list_max, self.deadline)
        except Exception as exc:  # registry unreadable: still do the Message's IDs, then report
            code, message = error_fields(exc)
            self.log.error("pending_list_failed", error_code=code, error=message)
            self.out.errors.append(f"pending registry could not be listed: {code}: {message}")
            return PendingListing([], complete=False)
        self.registered = {e.job_id: e for e in listing.entries}
        stats: dict[str, Any] = {"unanswered": listing.unanswered}
        if listing.complete:
            stats["pending_total"] = len(listing.entries)
            stats["pending_oldest_s"] = int(now - listing.entries[0].first_seen) if listing.entries else 0
        else:
            stats["pending_listed"] = len(listing.entries)
            stats["pending_truncated"] = True
        self.out.registry = stats
        return listing

    def mark_answered(self) -> None:
        """Create the ``.answered`` marker of every registered job CI reported as unfinished for the first
        time (one write per job, ever)."""
        todo = [i for i in self.unfinished if i in self.registered and self.registered[i].answered is not True
                and i in self.out and self.out.by_id[i].status == PENDING]
        if todo and not self.grace.expired():
            self._mark(todo)

    # -- the run -------------------------------------------------------------------------------

    def split_invalid(self, ids: list[str]) -> list[str]:
        valid: list[str] = []
        dropped: list[str] = []
        for job_id in ids:
            if validate_job_id(job_id):
                valid.append(job_id)
            else:
                self.out.set(Outcome(job_id, INVALID, self.source, reason="InvalidJobId",
                                     message="not a CI job ID (a lowercase letter and 16-64 lowercase "
                                             "letters/digits)"))
                if job_id in self.registered:
                    dropped.append(job_id)
        self.remove(dropped)
        return valid

    def settle(self, ids: list[str]) -> None:
        valid = self.split_invalid(ids)
        pipeline = self.pipeline
        start, size = 0, pipeline.chunk_size
        while start < len(valid):
            if pipeline.rate is not None:  # at a rate cap, a round is what the rate allows in a quarter of the time
                rate, left = pipeline.rate(), self.deadline.remaining()
                if math.isfinite(rate) and math.isfinite(left):
                    size = min(size, max(10, int(rate * left / 4) * 10))
            chunk = valid[start:start + size]
            # keep time to park what this round leaves unfinished (measured; parking may also use the grace)
            if self.deadline.remaining() <= self.park_s - self.settings.deadline_margin_s / 2:
                rest = valid[start:]
                self.log.warning("deadline_reached", left=len(rest))
                self.defer(rest, {}, DEADLINE, None)
                return
            before = self.deadline.remaining()
            self.round(chunk)
            start += len(chunk)
            if pipeline.adaptive:
                size = pipeline_next_size(pipeline, len(chunk), before - self.deadline.remaining(),
                                          self.deadline.remaining())


    def round(self, chunk: list[str]) -> None:
        jobs: list[Job] = [self.trusted[i] for i in chunk if i in self.trusted]
        to_query = [i for i in chunk if i not in self.trusted]
        answered: set[str] = {j["JobId"] for j in jobs}
        if to_query:
            self.out.queried += len(to_query)
            try:
                result = self.pipeline.client.query(to_query, self.deadline)
            except Exception as exc:
                code, message = error_fields(exc)
                self.log.warning("query_failed", error_code=code, error=message, ids=len(to_query))
                self.defer_failures(to_query, code, message, bool(getattr(exc, "retryable", True)),
                                    getattr(exc, "failure_class", None))
                return
            asked = set(to_query)
            for job in result.jobs:
                job_id = job.get("JobId")
                if isinstance(job_id, str) and job_id in asked and job_id not in answered:
                    jobs.append(job)
                    answered.add(job_id)
            gone = [i for i in dedupe(result.nonexistent) if i in asked and i not in answered]
            for job_id in gone:
                self.out.set(Outcome(job_id, NONEXISTENT, self.source, reason="NonExistJobId"))
                answered.add(job_id)
            bad = [i for i in dedupe(result.invalid) if i in asked and i not in answered]
            for job_id in bad:
                self.out.set(Outcome(job_id, INVALID, self.source, reason="InvalidJobId",
                                     message="CI rejected the ID"))
                answered.add(job_id)
            self.remove([i for i in gone + bad if i in self.registered])
            by_error: dict[tuple[str, str, bool, Optional[str]], list[str]] = {}
            for failure in result.failed:
                if failure.job_id in asked and failure.job_id not in answered:
                    answered.add(failure.job_id)
                    key = (failure.error.code, failure.error.message, failure.retryable,
                           failure.error.failure_class)
                    by_error.setdefault(key, []).append(failure.job_id)
            for (code, message, retryable, failure_class), ids in by_error.items():
                self.defer_failures(ids, code, message, retryable, failure_class)
            missing = [i for i in to_query if i not in answered]
            if missing:  # the client must account for every ID; if not, treat it as a transient gap
                self.defer_failures(missing, "NotReturned", "CI returned nothing for this ID", True)

        terminal = [j for j in jobs if _is_terminal(j)]
        unfinished = [j for j in jobs if not _is_terminal(j)]
        self.unfinished.update(j["JobId"] for j in unfinished)
        if unfinished:
            self.defer([j["JobId"] for j in unfinished], {j["JobId"]: _state(j) for j in unfinished},
                       NOT_FINISHED, None)
        if not terminal:
            return
        if self.deadline.expired():
            self.defer([j["JobId"] for j in terminal], {j["JobId"]: _state(j) for j in terminal}, DEADLINE, None,
                       finished=True)
            return
        self.write(terminal)

    def write(self, jobs: list[Job]) -> list[str]:
        """Write terminal jobs; returns the IDs that were not written (parked or failed)."""
        try:
            results = list(self.pipeline.sink.write(jobs, self.deadline))
        except Exception as exc:  # a sink must not raise per job; if it does, nothing was confirmed
            code, message = error_fields(exc)
            self.log.error("sink_raised", error_code=code, error=message)
            results = []
        by_id = {r.job_id: r for r in results}
        done: list[str] = []
        not_written: list[str] = []
        for job in jobs:
            job_id, state = job["JobId"], _state(job)
            r = by_id.get(job_id)
            if r is not None and r.ok:
                self.out.set(Outcome(job_id, WRITTEN, self.source, state=state, already=bool(r.already)))
                if job_id in self.registered:
                    done.append(job_id)
                continue
            not_written.append(job_id)
            failure_class: Optional[str] = None
            if r is None:
                code, message, retryable = "WriteNotConfirmed", "the sink did not confirm the write", True
            else:
                code, message = error_fields(r.error) if r.error is not None else ("WriteFailed", "write failed")
                retryable = bool(r.retryable)
                failure_class = r.error.failure_class if r.error is not None else None
            self.log.warning("write_failed", job_id=job_id, error_code=code, error=message, retryable=retryable)
            self.defer_failures([job_id], code, message, retryable, failure_class, state=state, finished=True)
        self.remove(done)
        return not_written

    # -- parking in the registry ----------------------------------------------------------------

    def defer_failures(self, ids: list[str], code: str, message: str, retryable: bool,
                       failure_class: Optional[str] = None, state: Optional[str] = None,
                       finished: bool = False) -> None:
        """A query/write failure: retryable or configuration → pending (registry); otherwise failed (the
        entry of a registered job is kept, so the next tick tries again)."""
        configuration = failures.is_configuration(code, failure_class)
        if retryable or configuration:
            self.defer(ids, dict.fromkeys(ids, state), code, message, configuration=configuration,
                       finished=finished)
            return
        now = self.pipeline.clock()
        expired: list[str] = []
        for job_id in ids:
            if not finished and self.expire(job_id, state, now, last_error=f"{code}: {message}"):
                expired.append(job_id)
                continue
            self.out.set(Outcome(job_id, FAILED, self.source, state=state, reason=code, message=message,
                                 retryable=False))
        self.drop_expired(expired)
        if code in NEVER_BETTER:  # asking again cannot help: reported failed, out of the registry
            self.remove([i for i in ids if i in self.registered and i not in expired])

    def expire(self, job_id: str, state: Optional[str], now: float, last_error: Optional[str] = None) -> bool:
        """A registered job CI has reported as unfinished (now or before: its ``.answered`` marker) and
        registered longer than PENDING_MAX_AGE_S gets its final ``PendingExpired`` outcome (True)."""
        entry = self.registered.get(job_id)
        if entry is None or now - entry.first_seen < self.settings.pending_max_age_s:
            return False
        if job_id not in self.unfinished and entry.answered is not True:
            return False  # never answered: it waits until CI answers (nothing is lost)
        self.out.set(Outcome(job_id, FAILED, self.source, state=state, reason=PENDING_EXPIRED, retryable=False,
                             message=f"not finished {int(now - entry.first_seen)} s after it was first registered "
                                     f"(PENDING_MAX_AGE_S={self.settings.pending_max_age_s})"
                                     + (f"; last error {last_error}" if last_error else "")))
        return True

    def drop_expired(self, expired: list[str]) -> None:
        if expired:
            self.log.warning("pending_expired", count=len(expired))
            self.remove(expired)

    def defer(self, ids: list[str], states: dict[str, Optional[str]], reason: str, message: Optional[str], *,
              configuration: bool = False, finished: bool = False) -> None:
        """Leave (registered IDs) or put (new IDs) these IDs in the registry as pending. ``finished``: CI
        reported them finished (a write is what failed): they never expire."""
        now = self.pipeline.clock()
        fresh: list[str] = []
        expired: list[str] = []
        for job_id in ids:
            if job_id not in self.registered:
                fresh.append(job_id)
            elif not finished and self.expire(job_id, states.get(job_id), now):
                expired.append(job_id)
            else:  # still registered: nothing to write (entries are written once)
                self.out.set(Outcome(job_id, PENDING, self.source, state=states.get(job_id), reason=reason,
                                     message=message, configuration=configuration))
        self.drop_expired(expired)
        if fresh:
            self.park(fresh, reason, message, states, configuration=configuration)

    def park(self, ids: list[str], reason: str, message: Optional[str],
             states: Optional[dict[str, Optional[str]]] = None, *, configuration: bool = False) -> list[str]:
        """Register new IDs as pending, in one parallel call under the grace deadline; returns the IDs that
        could not be registered (failed, retryable)."""
        if not ids:
            return []
        states = states or {}
        started = time.monotonic()
        if reason == NOT_FINISHED:  # CI answered for these: the marker that lets them expire one day, meanwhile
            with ThreadPoolExecutor(max_workers=1) as pool:
                marked = pool.submit(self._mark, ids)
                failed = self._register(ids)
                marked.result()
        else:
            failed = self._register(ids)
        self.park_s = max(self.park_s, time.monotonic() - started)
        for job_id in ids:
            state = states.get(job_id)
            if job_id in failed:
                self.log.error("pending_add_failed", job_id=job_id, error=failed[job_id])
                self.out.set(Outcome(job_id, FAILED, self.source, state=state, reason=PENDING_STORE_FAILED,
                                     message=f"{reason}" + (f" ({message})" if message else "")
                                     + f"; could not be registered as pending: {failed[job_id]}",
                                     retryable=True, configuration=configuration))
            else:
                self.out.set(Outcome(job_id, PENDING, self.source, state=state, reason=reason, message=message,
                                     configuration=configuration))
        return list(failed)

    def _register(self, ids: list[str]) -> dict[str, str]:
        """One parallel registry add under the grace deadline; ``{JobId: why}`` for those not registered."""
        try:
            return {f.job_id: "{}: {}".format(*error_fields(f.error)) if f.error is not None else "add failed"
                    for f in self.pipeline.pending.add(ids, now=self.pipeline.clock(), source=self.source,
                                                       deadline=self.grace)}
        except Exception as exc:
            return dict.fromkeys(ids, "{}: {}".format(*error_fields(exc)))

    def _mark(self, ids: list[str]) -> None:
        """The ``.answered`` markers; a failure only delays expiry (the next tick writes them)."""
        try:
            if self.pipeline.pending.mark_answered(ids, self.grace):
                self.log.warning("pending_mark_answered_failed", count=len(ids))
        except Exception as exc:
            self.log.warning("pending_mark_answered_failed", count=len(ids), error=str(exc))

    def remove(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if not ids:
            return
        try:
            failures = self.pipeline.pending.remove(ids, self.grace)
        except Exception as exc:  # harmless: the next tick sees them again and the writes are idempotent
            code, message = error_fields(exc)
            self.log.warning("pending_remove_failed", ids=len(ids), error_code=code, error=message)
            return
        if failures:
            self.log.warning("pending_remove_failed", ids=len(failures))


def pipeline_next_size(pipeline: Pipeline, size: int, took: float, left: float) -> int:
    """IDs for the next round: as many waves as fit in a quarter of the time left (1..ROUND_WAVES)."""
    waves = max(1, size // pipeline.wave_size)
    if not math.isfinite(left) or took <= 0 or not math.isfinite(took):
        return pipeline.wave_size * ROUND_WAVES
    fit = int(left / 4 / (took / waves))
    return pipeline.wave_size * max(1, min(ROUND_WAVES, fit))


def _state(job: Job) -> Optional[str]:
    state = job.get("State")
    return state if isinstance(state, str) else None


def _is_terminal(job: Job) -> bool:
    """A job whose State is a terminal state string (a non-string State counts as unknown: not terminal)."""
    return _state(job) in TERMINAL_STATES

