"""The HTTP routes (API Gateway and function URL events) → integration responses.

Routes match on the END of the path: API Gateway paths carry the API's prefix
(``/release/cijobs/jobs/...``), function URL paths do not.

=======  ==================  ==============================================
method   path ends with      does
=======  ==================  ==============================================
GET      ``/jobs/{ids}``     query CI, return ``QueryResult.as_dict()``; writes nothing
POST     ``/jobs/track``     ``{"JobIds": [...]}`` → pending registry
POST     ``/callbacks/ci``   CI TaskFinish / WorkflowFinish notification (XML or JSON)
=======  ==================  ==============================================

Every route needs ``API_TOKEN``: ``Authorization: Bearer <token>``, or for
``/callbacks/ci`` only (CI cannot set headers) the ``token`` query parameter.
Without ``API_TOKEN`` the routes answer 503 unless ``ALLOW_UNAUTHENTICATED``.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import unquote

from .deadline import Deadline
from .events import (
    BodyTooLargeError,
    CINotification,
    EventError,
    HttpEvent,
    Limits,
)
from .events.base import ids_from_json_object
from .job_ids import dedupe, split_ids, validate_job_id
from .log import get_logger
from .pipeline import FAILED, Outcomes, Pipeline, error_fields
from .settings import Settings

JSON_TYPE = "application/json; charset=utf-8"
GET_JOBS, TRACK, CALLBACK = "get_jobs", "track", "callback"
ALLOWED = {GET_JOBS: "GET", TRACK: "POST", CALLBACK: "POST"}


@dataclass(frozen=True)
class HttpResponse:
    """An API Gateway integration response (the function URL accepts the same shape)."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    outcomes: Optional[Outcomes] = None  # for the invocation summary; not sent

    def to_event_response(self) -> dict[str, Any]:
        headers = {"Content-Type": JSON_TYPE, "Cache-Control": "no-store", **self.headers}
        return {
            "isBase64Encoded": False,
            "statusCode": self.status,
            "headers": headers,
            "body": json.dumps(self.body, ensure_ascii=False, separators=(",", ":")),
        }


def error(status: int, code: str, message: str, headers: Optional[dict[str, str]] = None) -> HttpResponse:
    return HttpResponse(status, {"Error": {"Code": code, "Message": message}}, headers or {})


def match_route(path: str) -> tuple[Optional[str], Optional[str]]:
    """``(route, ids segment)`` from the end of the path; ``(None, None)`` when nothing matches."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[-2:] == ["callbacks", "ci"]:
        return CALLBACK, None
    if len(parts) >= 2 and parts[-2:] == ["jobs", "track"]:
        return TRACK, None
    if len(parts) >= 2 and parts[-2] == "jobs":
        return GET_JOBS, parts[-1]
    return None, None


def bearer_token(request: HttpEvent) -> Optional[str]:
    value = request.header("authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authorized(settings: Settings, request: HttpEvent, route: Optional[str]) -> bool:
    expected = settings.api_token
    if not expected:
        return settings.allow_unauthenticated
    offered = [bearer_token(request)]
    if route == CALLBACK:
        offered.append(request.query.get("token"))
    ok = False
    for token in offered:  # constant-time compare, and always compare both candidates
        if token is not None:
            ok = hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8")) or ok
    return ok


class Router:
    """Answers one HTTP event. Collaborators come in through the constructor."""

    def __init__(self, settings: Settings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.limits = Limits(settings.max_body_bytes, settings.max_ids_per_request)
        self.log = get_logger("cijobs.routes")

    def handle(self, request: HttpEvent, deadline: Deadline) -> HttpResponse:
        route, segment = match_route(request.path)
        if not self.settings.api_token and not self.settings.allow_unauthenticated:
            return error(503, "NotConfigured",
                         "the HTTP routes are disabled: set API_TOKEN (or ALLOW_UNAUTHENTICATED=true for local use)")
        if not authorized(self.settings, request, route):
            return error(401, "Unauthorized", "unauthorized", {"WWW-Authenticate": "Bearer"})
        if route is None:
            return error(404, "NotFound", "no route for this path; routes: GET /jobs/{ids}, POST /jobs/track, "
                                          "POST /callbacks/ci")
        if request.method != ALLOWED[route]:
            return error(405, "MethodNotAllowed", f"use {ALLOWED[route]} for this route", {"Allow": ALLOWED[route]})
        try:
            if route == GET_JOBS:
                return self.get_jobs(segment or "", deadline)
            body = request.body_bytes(self.settings.max_body_bytes)
            if route == TRACK:
                return self.track(body, deadline)
            return self.callback(body, deadline)
        except BodyTooLargeError as exc:
            return error(413, "PayloadTooLarge", str(exc))
        except EventError as exc:
            return error(400, "BadRequest", str(exc))

    # -- routes ---------------------------------------------------------------------------------

    def get_jobs(self, segment: str, deadline: Deadline) -> HttpResponse:
        ids = dedupe(split_ids(unquote(segment)))
        if len(ids) > self.limits.max_ids:
            raise EventError(f"JobIds: at most {self.limits.max_ids} job IDs per request, got {len(ids)}", "JobIds")
        _require_valid(ids, "JobIds: the path names no job ID (GET /jobs/{id1,id2,...})")
        try:
            result = self.pipeline.lookup(ids, deadline)
        except Exception as exc:
            code, message = error_fields(exc)
            self.log.warning("lookup_failed", error_code=code, error=message)
            return error(502, code, f"CI could not be queried: {message}")
        answered = len(result.jobs) + len(result.nonexistent) + len(result.invalid)
        status = 200 if not result.failed else (207 if answered else 502)
        return HttpResponse(status, result.as_dict())

    def track(self, body: bytes, deadline: Deadline) -> HttpResponse:
        ids = ids_from_json_object(_text(body), "JobIds" if body.strip() else "body", self.limits)
        _require_valid(ids)
        outcomes = self.pipeline.track(ids, source="http", deadline=deadline)
        return self._outcome_response(outcomes, all_or_nothing=False)

    def callback(self, body: bytes, deadline: Deadline) -> HttpResponse:
        try:
            note = CINotification.parse(body, self.limits, "body")
        except EventError:
            self.log.warning("callback_rejected", body_preview=body[:200].decode("utf-8", "replace"))
            raise
        outcomes = self.pipeline.process(note.job_ids, "callback", deadline, jobs=note.jobs,
                                         trust_jobs=self.settings.trust_callback_body)
        # CI's retry is undocumented: 200 only when every ID is written or safely pending.
        return self._outcome_response(outcomes, all_or_nothing=True, event_name=note.event_name)

    def _outcome_response(self, outcomes: Outcomes, all_or_nothing: bool,
                          event_name: Optional[str] = None) -> HttpResponse:
        failed = len(outcomes.of(FAILED))
        if not failed:
            status = 200
        elif all_or_nothing or failed == len(outcomes):
            status = 502
        else:
            status = 207
        body = outcomes.as_dict()
        if event_name:
            body = {"EventName": event_name, **body}
        return HttpResponse(status, body, outcomes=outcomes)


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise EventError("body is not UTF-8 text", "body") from None


def _require_valid(ids: list[str], empty: str = "JobIds must name at least one job ID") -> None:
    """At least one ID, and every ID a valid CI job ID (else a 400 naming the first bad ones)."""
    if not ids:
        raise EventError(empty, "JobIds")
    bad = [i for i in ids if not validate_job_id(i)]
    if bad:
        shown = ", ".join(repr(b[:70]) for b in bad[:5])
        raise EventError(f"JobIds: invalid job ID(s): {shown}", "JobIds")
