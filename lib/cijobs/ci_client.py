"""CI job queries: ``GET /jobs/<id>,<id>...`` signed, batched, parallel, retried.

``JobClient.query(ids, deadline)`` takes any number of IDs and returns a
:class:`~cijobs.models.QueryResult` in which every distinct requested ID is in
exactly one list: ``jobs`` (found), ``nonexistent`` (CI said so),
``invalid`` (never sent) or ``failed`` (with the error and whether a later
retry may help). One failed batch never fails the others.

Requests go to the CI host of the configured bucket only (see
:func:`ci_target`); they never follow redirects, so the Authorization and the
security token cannot reach another host.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

import requests

from . import log
from .credentials import Credentials
from .deadline import Deadline
from .endpoints import Target, resolve
from .http import (
    RETRYABLE_EXCEPTIONS,
    RetryPolicy,
    is_retryable_status,
    new_session,
    prepare_get,
    timeouts,
)
from .job_ids import dedupe, validate_job_id
from .models import ErrorInfo, Job, JobFailure, QueryResult, ServiceError
from .settings import Settings
from .signing import CosSigner

if TYPE_CHECKING:
    from .normalize.drift import DriftCallback
from .transport import CertificateVerifyError

MAX_IDS_PER_CALL = 10  # documented limit of GET /jobs/<id>,<id>...
TOKEN_HEADER = "x-ci-security-token"

Normalizer = Callable[[bytes], dict[str, Any]]


class CIError(ServiceError):
    """One failed CI request (after retries), for the batch of ``job_ids`` it carried."""

    def __init__(
        self,
        status: Optional[int],
        code: str,
        message: str,
        request_id: Optional[str] = None,
        job_ids: Sequence[str] = (),
        retryable: bool = False,
    ) -> None:
        super().__init__(code, message, retryable=retryable, status=status, request_id=request_id,
                         text=f"{code}: {message}" + (f" (HTTP {status})" if status else ""))
        self.job_ids = list(job_ids)

    def failures(self) -> list[JobFailure]:
        info = self.to_error_info()
        return [JobFailure(job_id, info, self.retryable) for job_id in self.job_ids]


def ci_target(settings: Settings) -> Target:
    """The CI endpoint for the configured bucket/region (never from an event); see :mod:`cijobs.endpoints`."""
    settings.require_ci_target()
    return resolve(settings.ci_endpoint, settings.ci_bucket or "", settings.ci_region or "", "ci")


def batches(ids: Sequence[str], size: int = MAX_IDS_PER_CALL) -> list[list[str]]:
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


@dataclass
class _BatchOutcome:
    ids: list[str]
    document: Optional[dict[str, Any]] = None
    error: Optional[CIError] = None
    request_id: Optional[str] = None


class JobClient:
    """Queries CI jobs for one bucket. Thread-safe; one pooled keep-alive session."""

    def __init__(
        self,
        settings: Settings,
        credentials: Callable[[], Credentials],
        session: Optional[requests.Session] = None,
        normalize: Optional[Normalizer] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: Optional[Any] = None,
        redactor: Optional[log.Redactor] = None,
        on_drift: Optional[DriftCallback] = None,
    ) -> None:
        self._settings = settings
        self._target = ci_target(settings)
        self._redactor = redactor
        self._on_drift = on_drift
        self._credentials = credentials
        self._session = session if session is not None else new_session(settings.ci_concurrency)
        self._normalize = normalize
        self._sleep = sleep
        self._clock = clock
        policy_kwargs: dict[str, Any] = {"max_attempts": settings.ci_max_attempts}
        if rng is not None:
            policy_kwargs["rng"] = rng
        self._policy = RetryPolicy(**policy_kwargs)
        self._log = log.get_logger("cijobs.ci_client")

    @property
    def target(self) -> Target:
        return self._target

    # ------------------------------------------------------------------ public
    def query(self, job_ids: Iterable[str], deadline: Optional[Deadline] = None) -> QueryResult:
        """Query every ID (any number): deduplicated, validated, ≤10 per request, in parallel."""
        deadline = deadline or Deadline.never()
        valid: list[str] = []
        invalid: list[str] = []
        for job_id in dedupe(job_ids):
            (valid if validate_job_id(job_id) else invalid).append(job_id)
        result = QueryResult(invalid=invalid)
        if not valid:
            return result
        creds = self._credentials()
        if self._redactor is not None:
            self._redactor.add(creds.secrets())
        signer = CosSigner(creds, TOKEN_HEADER, clock=self._clock)
        groups = batches(valid)
        workers = min(self._settings.ci_concurrency, len(groups))
        if workers <= 1:
            outcomes = [self._run_batch(g, signer, deadline) for g in groups]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ci-query") as pool:
                outcomes = list(pool.map(lambda g: self._run_batch(g, signer, deadline), groups))
        return self._merge(valid, outcomes, result)

    # ------------------------------------------------------------------ one batch
    def _run_batch(self, ids: list[str], signer: CosSigner, deadline: Deadline) -> _BatchOutcome:
        if deadline.expired():
            return _BatchOutcome(ids, error=CIError(
                None, "DeadlineExceeded", "no time left to send this request", None, ids, retryable=True))
        url = f"{self._target.base_url}/jobs/{','.join(ids)}"
        headers = {"Host": self._target.host_header} if self._target.host_header else {}

        def once(attempt: int) -> _BatchOutcome:
            outcome = self._attempt(url, headers, ids, signer, deadline, attempt)
            if outcome.error is not None:
                raise outcome.error
            return outcome

        try:
            return self._policy.run(once, deadline, self._sleep)
        except CIError as err:
            return _BatchOutcome(ids, error=err)

    def _attempt(
        self, url: str, headers: dict[str, str], ids: list[str], signer: CosSigner, deadline: Deadline, attempt: int
    ) -> _BatchOutcome:
        started = time.monotonic()
        fields: dict[str, Any] = {"batch_size": len(ids), "attempt": attempt, "first_id": ids[0]}
        try:
            resp = self._session.send(
                prepare_get(self._session, url, headers, signer), allow_redirects=False,
                timeout=timeouts(self._settings.ci_connect_timeout_s, self._settings.ci_read_timeout_s, deadline),
            )
        except CertificateVerifyError as exc:  # its own code; still retryable: the jobs stay pending until fixed
            err = CIError(None, "CertificateVerifyFailed", str(exc), None, ids, retryable=True)
            self._log_request(started, fields, status=None, request_id=None, error=err.code)
            return _BatchOutcome(ids, error=err)
        except RETRYABLE_EXCEPTIONS as exc:
            code = "Timeout" if isinstance(exc, requests.Timeout) else "ConnectionError"
            err = CIError(None, code, type(exc).__name__, None, ids, retryable=True)
            self._log_request(started, fields, status=None, request_id=None, error=code)
            return _BatchOutcome(ids, error=err)
        except requests.RequestException as exc:
            err = CIError(None, "RequestError", type(exc).__name__, None, ids, retryable=False)
            self._log_request(started, fields, status=None, request_id=None, error=err.code)
            return _BatchOutcome(ids, error=err)
        request_id = resp.headers.get("x-ci-request-id") or resp.headers.get("x-cos-request-id")
        status = resp.status_code
        if status == 200:
            try:
                document = self._normalizer()(resp.content)
            except (ValueError, SyntaxError) as exc:
                retryable = not _is_permanent_body_error(exc)
                err = CIError(status, "MalformedResponse", f"unexpected response body: {type(exc).__name__}",
                              request_id, ids, retryable=retryable)
                self._log_request(started, fields, status=status, request_id=request_id, error=err.code)
                return _BatchOutcome(ids, error=err)
            self._log_request(started, fields, status=status, request_id=request_id, error=None)
            return _BatchOutcome(ids, document=document, request_id=request_id)
        err = self._http_error(resp, ids, request_id)
        self._log_request(started, fields, status=status, request_id=request_id, error=err.code)
        return _BatchOutcome(ids, error=err)

    def _http_error(self, resp: requests.Response, ids: list[str], request_id: Optional[str]) -> CIError:
        status = resp.status_code
        parsed: Optional[dict[str, Any]] = None
        try:
            from .normalize import parse_error

            parsed = parse_error(resp.content)
        except (ValueError, SyntaxError):
            parsed = None
        parsed = parsed or {}
        if 300 <= status < 400:
            default_code, default_msg = "Redirect", f"refused to follow HTTP {status} redirect"
        else:
            default_code, default_msg = f"HTTP{status}", resp.reason or f"HTTP {status}"
        rid = parsed.get("RequestId") or request_id
        return CIError(
            status,
            str(parsed.get("Code") or default_code),
            str(parsed.get("Message") or default_msg),
            str(rid) if rid else None,
            ids,
            retryable=is_retryable_status(status),
        )

    def _normalizer(self) -> Normalizer:
        if self._normalize is None:
            from functools import partial

            from .normalize import normalize_document

            self._normalize = partial(normalize_document, on_drift=self._on_drift)
        return self._normalize

    def _log_request(
        self, started: float, fields: dict[str, Any], *, status: Optional[int], request_id: Optional[str],
        error: Optional[str],
    ) -> None:
        event = dict(fields, status=status, ci_request_id=request_id,
                     duration_ms=round((time.monotonic() - started) * 1000, 1))
        if error:
            self._log.warning("ci.request", error=error, **event)
        else:
            self._log.info("ci.request", **event)

    # ------------------------------------------------------------------ merge
    def _merge(self, valid: list[str], outcomes: list[_BatchOutcome], result: QueryResult) -> QueryResult:
        order = {job_id: n for n, job_id in enumerate(valid)}
        found: dict[str, Job] = {}
        missing: set[str] = set()
        failed: dict[str, JobFailure] = {}
        for outcome in outcomes:
            asked = set(outcome.ids)
            if outcome.error is not None:
                for f in outcome.error.failures():
                    failed[f.job_id] = f
                continue
            doc = outcome.document or {}
            for job in doc.get("JobsDetail") or []:
                job_id = job.get("JobId") if isinstance(job, dict) else None
                if not isinstance(job_id, str):
                    # A container or a missing JobId names no ID: skip the job (the ID it was meant
                    # to answer then ends as MissingFromResponse); never hash it.
                    self._log.warning("ci.job_without_string_id", job_id_type=type(job_id).__name__,
                                      batch_first_id=outcome.ids[0])
                elif job_id in asked and job_id not in found:
                    found[job_id] = job
                else:
                    self._log.warning("ci.unexpected_job", job_id=job_id[:80], batch_first_id=outcome.ids[0])
            for job_id in doc.get("NonExistJobIds") or []:
                if isinstance(job_id, str) and job_id in asked:
                    missing.add(job_id)
                else:
                    self._log.warning("ci.unexpected_nonexistent_id", job_id=str(job_id)[:80])
            for job_id in outcome.ids:
                if job_id not in found and job_id not in missing:
                    failed[job_id] = JobFailure(
                        job_id,
                        ErrorInfo("MissingFromResponse", "CI returned neither the job nor its ID in NonExistJobIds",
                                  200, outcome.request_id),
                        True)
        result.jobs = [found[i] for i in sorted(found, key=order.__getitem__)]
        result.nonexistent = sorted(missing - set(found), key=order.__getitem__)
        result.failed = [failed[i] for i in sorted(failed, key=order.__getitem__)]
        return result


def _is_permanent_body_error(exc: BaseException) -> bool:
    """Refused XML (entities/DTD) and oversized documents will not get better on retry."""
    try:
        from .normalize.errors import ForbiddenXMLError, LimitExceededError
    except ImportError:  # pragma: no cover - normalizer not installed
        return False
    return isinstance(exc, (ForbiddenXMLError, LimitExceededError))
