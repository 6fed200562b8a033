"""The CI side: a job store and ``GET /jobs/<id>[,<id>...]`` / ``GET /jobs?tag=...`` on the ``.ci.`` host.

Lifecycle helpers for tests and the soak: :meth:`CIStore.add_job`,
:meth:`CIStore.set_state`, :meth:`CIStore.advance` (Submitted -> Running -> Success,
optionally with a probability per job), :meth:`CIStore.finish_after` (the job
turns terminal once it has been answered ``n`` times) and ``auto_jobs`` (every
well-formed ID not added explicitly is a ``Success`` job of a tag derived from the
ID, except IDs starting with ``jnone`` and ``cijobs doctor``'s probe ID).

The list route ``GET /jobs?tag=...`` (CI doc 460/84766) filters by ``tag``
(required), ``states`` (comma list, ``All`` = every state), ``queueId`` and the
creation window ``startCreationTime``/``endCreationTime``
(``%Y-%m-%dT%H:%M:%S%z``, whole seconds). Whether the window's bounds are
inclusive is undocumented, so it is a switch: :attr:`CIStore.list_bounds` is
``"exclusive"`` (default) or ``"inclusive"``; :attr:`CIStore.list_requires_queue`
makes ``queueId`` mandatory (400, as older doc pages say). Results are ordered by
(creation second, JobId), ``orderByTime`` ``Desc`` (default) or ``Asc``, ``size``
1..100 (default 10), and ``nextToken`` is an opaque keyset token (the position
after the page's last job, tied to the query's filters by an HMAC; anything else
is a 400). Every query parameter must be signed (``q-url-param-list``), else 403.
A listing does not count as a query for ``finish_after``. :meth:`CIStore.load_catalog`
loads many jobs with their own tag, creation time, state and queue.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Optional
from xml.etree.ElementTree import tostring

from cijobs import signing

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
DOCTOR_PROBE_ID = "jcijobsdoctorprobe000000000000000"  # cijobs.doctor.PROBE_JOB_ID: never exists, even with auto_jobs
TOKEN_HEADERS = ("x-ci-security-token", "x-cos-security-token")
REQUEST_LOG_CAP = 50_000
DEFAULT_QUEUE_ID = "p2242ab62c7c94486915508540933a2c6"
LIST_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
LIST_BOUNDS = ("exclusive", "inclusive")
LIST_PARAMS = frozenset({"tag", "states", "queueid", "startcreationtime", "endcreationtime", "orderbytime", "size",
                         "nexttoken", "workflowid", "inventorytriggerjobid", "inputobject"})


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
    queue_id: str = DEFAULT_QUEUE_ID
    _xml: Optional[bytes] = field(default=None, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {
            "job_id": self.job_id, "tag": self.tag, "state": self.state, "queries": self.queries,
            "finish_after": self.finish_after, "auto": self.auto, "created": self.created,
            "queue_id": self.queue_id,
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
        self.list_bounds = "exclusive"  # creation window bounds of GET /jobs?...: "exclusive" or "inclusive"
        self.list_requires_queue = False  # answer GET /jobs?... without queueId with 400 (older doc pages)
        self._token_key = os.urandom(16)
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
        created: Optional[float] = None,
        queue_id: Optional[str] = None,
    ) -> JobRecord:
        """Add (or replace) a job; ``created`` defaults to 5 s ago, ``queue_id`` to the sample queue."""
        if state not in STATES:
            raise JobStateError(f"unknown state {state!r} (expected one of {', '.join(STATES)})")
        if final_state not in TERMINAL:
            raise JobStateError(f"final_state must be terminal, got {final_state!r}")
        now = self._clock()
        rec = JobRecord(job_id, tag, "Submitted", created=now - 5 if created is None else float(created),
                        finish_after=finish_after, final_state=final_state, queue_id=queue_id or DEFAULT_QUEUE_ID)
        with self._lock:
            self.jobs[job_id] = rec
            self._move(rec, state, max(now, rec.created))
        return rec

    def load_catalog(self, jobs: Iterable[Mapping[str, Any]]) -> list[JobRecord]:
        """Add many jobs at once; each mapping has ``job_id`` and optionally ``tag``, ``state``,
        ``created`` (unix seconds or a CI time such as ``2026-12-04T20:00:00+0800``), ``queue_id``,
        ``finish_after`` (queries by ID before it turns terminal) and ``final_state``.
        Every entry is checked before any is added (a bad entry raises and adds nothing)."""
        checked: list[dict[str, Any]] = []
        for j in jobs:
            if "job_id" not in j:
                raise JobStateError(f"catalog entry without job_id: {dict(j)!r}")
            state = str(j.get("state", "Success"))
            final_state = str(j.get("final_state", "Success"))
            if state not in STATES or final_state not in TERMINAL:
                raise JobStateError(f"catalog entry {j['job_id']!r}: bad state {state!r} / final_state "
                                    f"{final_state!r}")
            created = j.get("created")
            finish_after = j.get("finish_after")
            checked.append({
                "job_id": str(j["job_id"]), "tag": str(j.get("tag", "Transcode")), "state": state,
                "final_state": final_state, "queue_id": j.get("queue_id"),
                "finish_after": None if finish_after is None else int(finish_after),
                "created": None if created is None else parse_created(created),
            })
        return [self.add_job(**c) for c in checked]

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
            self.list_bounds = "exclusive"
            self.list_requires_queue = False

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
                                rec.code, rec.message, pretty=self._pretty_xml, queue_id=rec.queue_id)
            rec._xml = tostring(el, encoding="utf-8", xml_declaration=False)
        return rec._xml

    def _lookup(self, job_id: str) -> Optional[JobRecord]:
        rec = self.jobs.get(job_id)
        if rec is None and self.auto_jobs and JOB_ID_RE.match(job_id) and not job_id.startswith(NEVER_PREFIX) \
                and job_id != DOCTOR_PROBE_ID:
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
        unsigned = _unsigned_params(req)
        if unsigned:
            return self._err(403, "SignatureDoesNotMatch",
                             f"query parameter(s) {', '.join(sorted(unsigned))} are not in q-url-param-list")
        unknown = sorted(set(q) - LIST_PARAMS)
        if unknown:
            return self._err(400, "InvalidArgument", f"unknown query parameter(s): {', '.join(unknown)}")
        tag = q.get("tag")
        if not tag:
            return self._err(400, "InvalidArgument", "tag is required")
        queue = q.get("queueid") or None
        if queue is None and self.list_requires_queue:
            return self._err(400, "InvalidArgument", "queueId is required")
        try:
            size = int(q.get("size") or 10)
        except ValueError:
            return self._err(400, "InvalidArgument", "size is invalid")
        if not 1 <= size <= MAX_LIST_SIZE:
            return self._err(400, "InvalidArgument", f"size must be within 1..{MAX_LIST_SIZE}")
        order = q.get("orderbytime") or "Desc"
        if order not in ("Asc", "Desc"):
            return self._err(400, "InvalidArgument", "orderByTime must be Asc or Desc")
        states = [s for s in (q.get("states") or "All").split(",") if s]
        bad_states = [s for s in states if s != "All" and s not in STATES]
        if bad_states:
            return self._err(400, "InvalidArgument", f"unknown state(s) in states: {', '.join(bad_states)}")
        try:
            start = _list_time(q.get("startcreationtime"))
            end = _list_time(q.get("endcreationtime"))
        except ValueError:
            return self._err(400, "InvalidArgument",
                             "startCreationTime / endCreationTime must look like 2001-01-01T00:00:00+0800")
        fingerprint = "|".join([tag, queue or "", ",".join(states), str(start), str(end), order])
        after: Optional[tuple[int, str]] = None
        if q.get("nexttoken"):
            after = self._read_token(q["nexttoken"], fingerprint)
            if after is None:
                return self._err(400, "InvalidArgument", "nextToken is invalid")
        inclusive = self.list_bounds == "inclusive"
        desc = order == "Desc"
        with self._lock:
            jobs = []
            for r in self.jobs.values():
                sec = int(r.created)
                if r.tag != tag or (queue is not None and r.queue_id != queue):
                    continue
                if "All" not in states and r.state not in states:
                    continue
                if start is not None and (sec < start if inclusive else sec <= start):
                    continue
                if end is not None and (sec > end if inclusive else sec >= end):
                    continue
                key = (sec, r.job_id)
                if after is not None and (key >= after if desc else key <= after):
                    continue
                jobs.append((key, r))
            jobs.sort(key=lambda kr: kr[0], reverse=desc)
            page = jobs[:size]
            body = [b"<Response>"] + [self._xml_of(r) for _, r in page]
        token = self._token(page[-1][0], fingerprint) if len(jobs) > size else ""
        body.append(f"<NextToken>{token}</NextToken></Response>".encode())
        return Response(200, b"".join(body), {"x-ci-request-id": self._ids.next()}, XML)

    def _mac(self, payload: str) -> str:
        return hmac.new(self._token_key, payload.encode(), hashlib.sha256).hexdigest()[:16]

    def _token(self, key: tuple[int, str], fingerprint: str) -> str:
        payload = f"{key[0]}:{key[1]}"
        mac = self._mac(payload + "|" + fingerprint)
        return base64.urlsafe_b64encode(f"{payload}:{mac}".encode()).decode().rstrip("=")

    def _read_token(self, token: str, fingerprint: str) -> Optional[tuple[int, str]]:
        """The (second, JobId) a token continues after, or None when it is not ours or not for this query."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            sec, job_id, mac = raw.split(":")
            if not hmac.compare_digest(mac, self._mac(f"{sec}:{job_id}|{fingerprint}")):
                return None
            return int(sec), job_id
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return None


def parse_created(value: Any) -> float:
    """Unix seconds from a number or a CI time string (``2026-12-04T20:00:00+0800``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return datetime.strptime(value, LIST_TIME_FORMAT).timestamp()
    raise JobStateError(f"created must be unix seconds or {LIST_TIME_FORMAT}, got {value!r}")


def _list_time(value: Optional[str]) -> Optional[int]:
    if not value:
        return None
    parsed = datetime.strptime(value, LIST_TIME_FORMAT)
    if parsed.tzinfo is None:
        raise ValueError("no UTC offset")
    return int(parsed.timestamp())


def _unsigned_params(req: Request) -> set[str]:
    """Names of query parameters that the Authorization does not sign (the caller has verified it)."""
    fields = signing.parse_authorization(req.header("authorization") or "")
    signed = {p for p in fields.get("q-url-param-list", "").split(";") if p}
    return {k for k in req.query if signing.canonical_pairs({k: ""})[0][0] not in signed}
