"""CI job queries: ``GET /jobs/<id>,<id>...`` signed, batched, parallel, retried.

``JobClient.query(ids, deadline)`` takes any number of IDs and returns a
:class:`~cijobs.models.QueryResult` in which every distinct requested ID is in
exactly one list: ``jobs`` (found), ``nonexistent`` (CI said so),
``invalid`` (never sent) or ``failed`` (with the error and whether a later
retry may help). One failed batch never fails the others.

An answer refused for its size (over the document limit, or more elements than
the normalizer takes) depends on which jobs were asked together: the batch is
asked again in halves, down to single IDs, so only a job whose own answer is
too large fails (``DocumentTooLarge``, final, with the answer's size); the
others of its batch are answered as usual.

Requests go to the CI host of the configured bucket only (see
:func:`ci_target`); they never follow redirects, so the Authorization and the
security token cannot reach another host.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

import requests

from . import failures, log
from .credentials import Credentials
from .deadline import Deadline
from .endpoints import Target, resolve
from .http import DEFAULT_MAX_BODY_BYTES, Reply, RetryPolicy, new_session
from .job_ids import dedupe, validate_job_id
from .models import ErrorInfo, Job, JobFailure, QueryResult, ServiceError
from .service_call import Failure, Refused, Service, call
from .settings import Settings
from .signing import CosSigner

T = TypeVar("T")

if TYPE_CHECKING:
    from .normalize.drift import DriftCallback
    from .ratelimit import Limiters

MAX_IDS_PER_CALL = 10  # documented limit of GET /jobs/<id>,<id>...
DOCUMENT_TOO_LARGE = "DocumentTooLarge"  # a job whose answer alone is over the normalizer's limits
TOKEN_HEADER = "x-ci-security-token"
SERVICE = Service("ci", request_id_headers=("x-ci-request-id", "x-cos-request-id"))

Normalizer = Callable[[bytes], dict[str, Any]]


class CIError(ServiceError):
    """One failed CI request (after retries), for the batch of ``job_ids`` it carried.

    ``failure_class`` is one of :data:`cijobs.failures.CLASSES`; ``retryable`` is true unless it is ``final``."""

    def __init__(
        self,
        status: Optional[int],
        code: str,
        message: str,
        request_id: Optional[str] = None,
        job_ids: Sequence[str] = (),
        retryable: bool = False,
        failure_class: Optional[str] = None,
    ) -> None:
        if failure_class is not None:
            retryable = failures.is_retryable(failure_class)
        super().__init__(code, message, retryable=retryable, status=status, request_id=request_id,
                         text=f"{code}: {message}" + (f" (HTTP {status})" if status else ""))
        self.job_ids = list(job_ids)
        self.failure_class = failure_class or (failures.TRANSIENT if retryable else failures.FINAL)

    @classmethod
    def from_failure(cls, failure: Failure, job_ids: Sequence[str] = ()) -> CIError:
        return cls(failure.status, failure.code, failure.message, failure.request_id, job_ids,
                   failure_class=failure.failure_class)

    def failures(self) -> list[JobFailure]:
        info = self.to_error_info()
        return [failures.ClassifiedJobFailure(job_id, info, self.retryable, self.failure_class)
                for job_id in self.job_ids]


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
        limiters: Optional[Limiters] = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_document_bytes: Optional[int] = None,
    ) -> None:
        self._settings = settings
        self._target = ci_target(settings)
        self._redactor = redactor
        self._on_drift = on_drift
        self._credentials = credentials
        self._session = session if session is not None else new_session(settings.ci_concurrency)
        self._normalize = normalize
        self._base_request: Optional[requests.PreparedRequest] = None
        self._sleep = sleep
        self._clock = clock
        policy_kwargs: dict[str, Any] = {"max_attempts": settings.max_attempts}
        if rng is not None:
            policy_kwargs["rng"] = rng
        self._policy = RetryPolicy(**policy_kwargs)
        self._limiter = limiters.get("ci") if limiters is not None else None
        self._max_body_bytes = max_body_bytes
        self._max_document_bytes = max_document_bytes  # None: the normalizer's default (8 MiB)
        self._log = log.get_logger("cijobs.ci_client")
        for warning in settings.alias_warnings():  # once per container: the client is built at cold start
            self._log.warning("settings.alias", message=warning)

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
        signer = self.signer()
        groups = batches(valid)
        workers = min(self._settings.ci_concurrency, len(groups))
        if workers <= 1:
            nested = [self._run_split(g, signer, deadline) for g in groups]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ci-query") as pool:
                nested = list(pool.map(lambda g: self._run_split(g, signer, deadline), groups))
        return self._merge(valid, [o for outcomes in nested for o in outcomes], result)

    # ------------------------------------------------------------------ oversized answers
    def _run_split(self, ids: list[str], signer: CosSigner, deadline: Deadline) -> list[_BatchOutcome]:
        """One batch; an answer too large for the batch is asked again in halves (down to single IDs)."""
        outcome = self._run_batch(ids, signer, deadline)
        if outcome.error is None or outcome.error.code != DOCUMENT_TOO_LARGE or len(ids) == 1:
            return [outcome]
        half = (len(ids) + 1) // 2
        self._log.info("ci.batch_split", batch_size=len(ids), first_id=ids[0], error=outcome.error.message[:200])
        return self._run_split(ids[:half], signer, deadline) + self._run_split(ids[half:], signer, deadline)

    # ------------------------------------------------------------------ one signed GET
    def signer(self) -> CosSigner:
        """A signer with the current credentials (registered with the log redactor)."""
        creds = self._credentials()
        if self._redactor is not None:
            self._redactor.add(creds.secrets())
        return CosSigner(creds, TOKEN_HEADER, clock=self._clock)

    def signed_get(self, path: str, accept: Callable[[Reply, int], T], deadline: Deadline, *,
                   signer: CosSigner, make_error: Callable[[Failure], CIError],
                   log_fields: Mapping[str, Any]) -> T:
        """``GET <endpoint><path>`` through the one call path (retries, deadline, rate limiter); ``accept``
        gets the answer and the attempt number. ``path`` is sent exactly as given (already encoded)."""
        url = f"{self._target.base_url}{path}"
        base = self._prepared_get()
        attempts = [0]

        def prepare(attempt: int) -> requests.PreparedRequest:
            attempts[0] = attempt
            prepared = base.copy()
            prepared.url = url  # exactly as encoded (a query's ``+`` as %2B) and signed
            prepared.prepare_auth(signer)
            return prepared

        return call(
            self._session, prepare, lambda reply: accept(reply, attempts[0]), service=SERVICE,
            host_port=self._target.host_port, deadline=deadline, connect_timeout_s=self._settings.connect_timeout_s,
            read_timeout_s=self._settings.read_timeout_s, policy=self._policy, make_error=make_error,
            sleep=self._sleep, limiter=self._limiter, max_body_bytes=self._max_body_bytes, log_fields=log_fields,
        )

    def _prepared_get(self) -> requests.PreparedRequest:
        """A ``GET`` prepared by requests with the session's headers (and the endpoint's ``Host``), built once
        per client: every request copies it, sets its own URL and signs the copy. The session's settings do
        not change after construction, and a cookie CI may set is not sent back (the API is signed, not
        stateful)."""
        base = self._base_request
        if base is None:  # two threads may both build it: the same value, the last one kept
            headers = {"Host": self._target.host_header} if self._target.host_header else {}
            base = self._session.prepare_request(requests.Request("GET", f"{self._target.base_url}/",
                                                                  headers=headers))
            base.headers.pop("Cookie", None)
            self._base_request = base
        return base

    def document(self, reply: Reply) -> dict[str, Any]:
        """The normalized answer (``ValueError``/``SyntaxError`` for a body that is not one)."""
        return self._normalizer()(reply.body)

    # ------------------------------------------------------------------ one batch
    def _run_batch(self, ids: list[str], signer: CosSigner, deadline: Deadline) -> _BatchOutcome:
        def accept(reply: Reply, _attempt: int) -> _BatchOutcome:
            request_id = reply.headers.get("x-ci-request-id") or reply.headers.get("x-cos-request-id")
            try:
                document = self.document(reply)
            except (ValueError, SyntaxError) as exc:
                if _is_size_error(exc):  # depends on the batch: _run_split asks again in halves
                    what = "the job's" if len(ids) == 1 else f"the {len(ids)} jobs'"
                    raise Refused(DOCUMENT_TOO_LARGE, f"{what} answer is {len(reply.body)} bytes and was refused: "
                                  f"{exc}", request_id, failures.FINAL) from None
                raise Refused(failures.MALFORMED_RESPONSE, f"unexpected response body: {type(exc).__name__}",
                              request_id,
                              failures.FINAL if _is_permanent_body_error(exc) else failures.TRANSIENT) from None
            return _BatchOutcome(ids, document=document, request_id=request_id)

        try:
            return self.signed_get(f"/jobs/{','.join(ids)}", accept, deadline, signer=signer,
                                   make_error=lambda f: CIError.from_failure(f, ids),
                                   log_fields={"batch_size": len(ids), "first_id": ids[0]})
        except CIError as err:
            return _BatchOutcome(ids, error=err)

    def _normalizer(self) -> Normalizer:
        if self._normalize is None:
            from functools import partial

            from .normalize import normalize_document

            if self._max_document_bytes is None:
                self._normalize = partial(normalize_document, on_drift=self._on_drift)
            else:
                self._normalize = partial(normalize_document, on_drift=self._on_drift,
                                          max_bytes=self._max_document_bytes)
        return self._normalize

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
                    failed[job_id] = failures.ClassifiedJobFailure(
                        job_id,
                        ErrorInfo("MissingFromResponse", "CI returned neither the job nor its ID in NonExistJobIds",
                                  200, outcome.request_id),
                        True, failures.TRANSIENT)
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


def _is_size_error(exc: BaseException) -> bool:
    """Over the document size or element limit: what a smaller batch may not be."""
    try:
        from .normalize.errors import DocumentTooLargeError  # TooManyElementsError is one
    except ImportError:  # pragma: no cover - normalizer not installed
        return False
    return isinstance(exc, DocumentTooLargeError)
