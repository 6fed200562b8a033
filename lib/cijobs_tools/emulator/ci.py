"""The CI side: a job store and ``GET /jobs/<id>[,<id>...]`` / ``GET /jobs?tag=...`` on the ``.ci.`` host.

Lifecycle helpers for tests and the soak: :meth:`CIStore.add_job`,
:meth:`CIStore.set_state`, :meth:`CIStore.advance` (Submitted -> Running -> Success,
optionally with a probability per job), :meth:`CIStore.finish_after` (the job
turns terminal once it has been answered ``n`` times) and ``auto_jobs`` (every
well-formed ID not added explicitly is a ``Success`` job of a tag derived from the
ID, except IDs starting with ``jnone``).
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional
from xml.etree.ElementTree import tostring

from . import samples
from .auth import AuthError, KeyRing, verify_cos
from .wire import XML, Request, RequestIds, Response, error_response

MAX_IDS = 10
MAX_LIST_SIZE = 100
JOB_ID_RE = re.compile(r"^[a-z][0-9a-z]{16,64}$")
STATES = ("Submitted", "Running", "Success", "Failed", "Pause", "Cancel")
TERMINAL = frozenset({"Success", "Failed", "Cancel"})
NEXT_STATE = {"Submitted": "Running", "Running": "Success", "Pause": "Running"}
NEVER_PREFIX = "jnone"
TOKEN_HEADERS = ("x-ci-security-token", "x-cos-security-token")
REQUEST_LOG_CAP = 50_000


class JobStateError(ValueError):
    pass


@dataclass
class JobRecord:
    job_id: str
    tag: str
    state: str
    created: float
    started: Optional[float] = None
    ended: Optional[float] = None
    code: str = "Success"
    message: str = ""
    finish_after: Optional[int] = None  # queries left before the job turns terminal
    final_state: str = "Success"
    queries: int = 0
    auto: bool = False
    _xml: Optional[bytes] = field(default=None, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "job_id": self.job_id, "tag": self.tag, "state": self.state, "queries": self.queries,
            "finish_after": self.finish_after, "auto": self.auto,
        }


@dataclass
class CIRequest:
    method: str
    path: str
    ids: list[str]
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


class CIStore:
    def __init__(
        self,
        keys: KeyRing,
        ids: RequestIds,
        clock: Callable[[], float] = time.time,
        auto_jobs: bool = False,
        seed: Optional[int] = None,
        pretty_xml: bool = False,
    ) -> None:
        self.jobs: dict[str, JobRecord] = {}
        self.requests: list[CIRequest] = []
        self.auto_jobs = auto_jobs
        self.finish_probability = 0.0  # per query of a non-terminal job: chance it moves one step
        self._pretty_xml = pretty_xml  # indent job XML as the docs print it (CI itself sends it compact)
        self._keys = keys
        self._ids = ids
        self._clock = clock
        self._rng = random.Random(seed)
        self._lock = threading.RLock()

    # -- lifecycle -------------------------------------------------------------------------------
    def add_job(
        self,
        job_id: str,
        tag: str = "Transcode",
        state: str = "Running",
        finish_after: Optional[int] = None,
        final_state: str = "Success",
    ) -> JobRecord:
        if state not in STATES:
            raise JobStateError(f"unknown state {state!r} (expected one of {', '.join(STATES)})")
        if final_state not in TERMINAL:
            raise JobStateError(f"final_state must be terminal, got {final_state!r}")
        now = self._clock()
        rec = JobRecord(job_id, tag, "Submitted", created=now - 5, finish_after=finish_after,
                        final_state=final_state)
        with self._lock:
            self.jobs[job_id] = rec
            self._move(rec, state, now)
        return rec

    def set_state(self, job_id: str, state: str, code: Optional[str] = None, message: Optional[str] = None) -> None:
        if state not in STATES:
            raise JobStateError(f"unknown state {state!r} (expected one of {', '.join(STATES)})")
        with self._lock:
            rec = self.jobs.get(job_id)
            if rec is None:
                raise KeyError(job_id)
            self._move(rec, state, self._clock(), code, message)

    def finish_after(self, job_id: str, n_queries: int, state: str = "Success") -> None:
        """The job is answered ``n_queries`` more times as it is, then turns ``state``."""
        if state not in TERMINAL:
            raise JobStateError(f"finish state must be terminal, got {state!r}")
        with self._lock:
            rec = self.jobs[job_id]
            rec.finish_after = max(0, int(n_queries))
            rec.final_state = state

    def advance(self, probability: float = 1.0) -> int:
        """Move every non-terminal job one step (with ``probability`` each); returns how many moved."""
        moved = 0
        now = self._clock()
        with self._lock:
            for rec in self.jobs.values():
                nxt = NEXT_STATE.get(rec.state)
                if nxt is None:
                    continue
                if probability < 1.0 and self._rng.random() >= probability:
                    continue
                self._move(rec, nxt, now)
                moved += 1
        return moved

    def clear(self) -> None:
        with self._lock:
            self.jobs.clear()
            self.requests.clear()

    def _move(self, rec: JobRecord, state: str, now: float, code: Optional[str] = None,
              message: Optional[str] = None) -> None:
        rec.state = state
        if state == "Submitted":
            rec.started = rec.ended = None
        elif state in ("Running", "Pause"):
            rec.started = rec.started or now
            rec.ended = None
        else:  # terminal
            rec.started = rec.started or now
            rec.ended = now
        if state == "Failed":
            rec.code = code or "InternalError"
            rec.message = message if message is not None else "emulated job failure"
        else:
            rec.code = code or "Success"
            rec.message = message or ""
        rec._xml = None

    @property
    def pretty_xml(self) -> bool:
        return self._pretty_xml

    @pretty_xml.setter
    def pretty_xml(self, value: bool) -> None:
        with self._lock:
            self._pretty_xml = bool(value)
            for rec in self.jobs.values():
                rec._xml = None

    def _xml_of(self, rec: JobRecord) -> bytes:
        if rec._xml is None:
            el = samples.render(rec.job_id, rec.tag, rec.state, rec.created, rec.started, rec.ended,
                                rec.code, rec.message, pretty=self._pretty_xml)
            rec._xml = tostring(el, encoding="utf-8", xml_declaration=False)
        return rec._xml

    def _lookup(self, job_id: str) -> Optional[JobRecord]:
        rec = self.jobs.get(job_id)
        if rec is None and self.auto_jobs and JOB_ID_RE.match(job_id) and not job_id.startswith(NEVER_PREFIX):
            rec = JobRecord(job_id, samples.tag_for_id(job_id), "Success", created=self._clock() - 60, auto=True)
            self._move(rec, "Success", self._clock())
            rec.started = rec.created + 1
            self.jobs[job_id] = rec
        return rec

    def _on_query(self, rec: JobRecord) -> None:
        if rec.state in TERMINAL:
            rec.queries += 1
            return
        if rec.finish_after is not None:
            if rec.queries >= rec.finish_after:
                self._move(rec, rec.final_state, self._clock())
        elif self.finish_probability > 0 and self._rng.random() < self.finish_probability:
            nxt = NEXT_STATE.get(rec.state)
            if nxt:
                self._move(rec, nxt, self._clock())
        rec.queries += 1

    # -- HTTP ------------------------------------------------------------------------------------
    def _log(self, req: Request, ids: list[str], status: int) -> None:
        with self._lock:
            if len(self.requests) >= REQUEST_LOG_CAP:
                del self.requests[: REQUEST_LOG_CAP // 2]
            self.requests.append(CIRequest(req.method, req.path, ids, dict(req.query), dict(req.headers), status))

    def handle(self, req: Request, bucket: str, region: str) -> Response:
        ids: list[str] = []
        resp = self._handle(req, ids)
        self._log(req, ids, resp.status)
        return resp

    def _err(self, status: int, code: str, message: str) -> Response:
        return error_response("ci", status, code, message, self._ids)

    def _handle(self, req: Request, ids: list[str]) -> Response:
        try:
            verify_cos(req, self._keys, self._clock(), TOKEN_HEADERS)
        except AuthError as e:
            return self._err(e.status, e.code, e.message)
        if req.method != "GET":
            return self._err(405, "MethodNotAllowed", f"{req.method} is not supported by the emulator on {req.path}")
        if req.path == "/jobs":
            return self._list(req)
        if not req.path.startswith("/jobs/"):
            return self._err(400, "InvalidArgument", f"unknown path {req.path}")
        parts = req.path[len("/jobs/"):].split(",")
        ids.extend(parts)
        if any(not p for p in parts):
            return self._err(400, "InvalidArgument", "jobId is empty")
        if len(parts) > MAX_IDS:
            return self._err(400, "InvalidArgument", f"too many jobIds: {len(parts)} (at most {MAX_IDS})")
        found: list[bytes] = []
        missing: list[str] = []
        seen: set[str] = set()
        with self._lock:
            for job_id in parts:
                if job_id in seen:
                    continue
                seen.add(job_id)
                rec = self._lookup(job_id)
                if rec is None:
                    missing.append(job_id)
                    continue
                self._on_query(rec)
                found.append(self._xml_of(rec))
        body = [b"<Response>"]
        body.extend(found)
        if missing:
            body.append(b"<NonExistJobIds>" + ",".join(missing).encode() + b"</NonExistJobIds>")
        body.append(b"</Response>")
        return Response(200, b"".join(body), {"x-ci-request-id": self._ids.next()}, XML)

    def _list(self, req: Request) -> Response:
        q = {k.lower(): v for k, v in req.query.items()}
        tag = q.get("tag")
        if not tag:
            return self._err(400, "InvalidArgument", "tag is required")
        try:
            size = int(q.get("size") or 10)
            offset = int(q.get("nexttoken") or "0", 16)
        except ValueError:
            return self._err(400, "InvalidArgument", "size / nextToken is invalid")
        if not 1 <= size <= MAX_LIST_SIZE:
            return self._err(400, "InvalidArgument", f"size must be within 1..{MAX_LIST_SIZE}")
        states = [s for s in (q.get("states") or "All").split(",") if s]
        with self._lock:
            jobs = [r for r in self.jobs.values() if r.tag == tag and ("All" in states or r.state in states)]
            jobs.sort(key=lambda r: (r.created, r.job_id), reverse=(q.get("orderbytime") or "Desc") != "Asc")
            page = jobs[offset: offset + size]
            body = [b"<Response>"] + [self._xml_of(r) for r in page]
        more = offset + size < len(jobs)
        token = f"{offset + size:x}" if more else ""
        body.append(f"<NextToken>{token}</NextToken></Response>".encode())
        return Response(200, b"".join(body), {"x-ci-request-id": self._ids.next()}, XML)
