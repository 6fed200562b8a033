"""Result sink for webhooks (``https://host[:port]/path``): one signed HTTPS POST per finished job.

* Body: the canonical job JSON (the bytes the COS sink stores). Headers: ``Content-Type: application/json``,
  ``User-Agent: cijobs/<version>``, ``X-Cijobs-Event: job.finished``, ``X-Cijobs-Delivery: <JobId>.<State>``
  (the same on every retry: the receiver's idempotency key), ``X-Cijobs-Timestamp: <unix seconds>`` and
  ``X-Cijobs-Signature: v1=<hex>[,v1=<hex>]`` (:mod:`cijobs.webhook_signature`).
* Outcomes: 2xx = written. 408, 425, 429, 5xx, timeouts and connection errors are retried in the
  invocation (full-jitter backoff, ``Retry-After`` honoured when it fits in the deadline) and, when
  attempts or time run out, reported retryable. A redirect is never followed (``Redirect``, final);
  410 and every other 4xx are final, with the status and the first 200 bytes of the answer.
* Claim check: a body over ``max_bytes`` is stored in the claim-check store (as the CMQ sink does) and
  the receiver gets the pointer ``{"JobId","Tag","State","ClaimCheck":{...,"Size","Sha256"}}``; without a
  store the job fails with ``MessageTooLarge`` (final).
* Deliveries run ``concurrency`` at a time, each admitted by the receiver host's rate limiter.
* At least once: a delivery whose answer was lost is sent again; receivers de-duplicate on
  ``X-Cijobs-Delivery``.

All HTTP goes through :func:`_post` (one request, no redirects, timeouts clamped to the deadline, the
answer read up to a cap), so it can move onto a shared call path in one place.
"""

from __future__ import annotations

import contextvars
import http.cookiejar
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional, Union
from urllib.parse import urlsplit

import requests

from .. import __version__, failures, log
from ..deadline import Deadline
from ..http import NoAnswer, exchange, new_session
from ..models import Job, WriteResult
from ..ratelimit import FixedLimiter, RateLimiter, retry_after_seconds
from ..store import ObjectStore
from ..targets import WebhookTarget
from ..webhook_signature import sign
from .base import canonical_json, claim_check, job_fields, not_confirmed, refuse, serialize

EVENT = "job.finished"
USER_AGENT = f"cijobs/{__version__}"
RETRYABLE_STATUS = frozenset({408, 425, 429})  # and every 5xx
MAX_ANSWER_BYTES = 1024 * 1024  # a longer answer is refused (MalformedResponse, retried): receivers answer short
ANSWER_EXCERPT_BYTES = 200  # how much of a refusal's body goes into the outcome's message
BASE_DELAY_S = 0.1
MAX_DELAY_S = 2.0
@dataclass(frozen=True)
class Answer:
    """What one POST got: an HTTP ``status`` (None when no answer arrived, ``error`` then names why)."""

    status: Optional[int]
    retry_after: Optional[str] = None
    head: bytes = b""
    error: Optional[str] = None
    network: bool = False  # a network failure (retryable), as opposed to a request that cannot be sent


def new_webhook_session(pool_size: int = 8) -> requests.Session:
    """A keep-alive session for receivers on the same stock stack as every other request (the deadline
    watchdog, the size caps, TLS verified, no proxy/netrc, no retries of its own), and no cookies kept: a
    receiver's ``Set-Cookie`` must not follow the session anywhere."""
    session = new_session(pool_size)
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


def _post(session: requests.Session, url: str, body: bytes, headers: Mapping[str, str], deadline: Deadline,
          connect_timeout_s: float, read_timeout_s: float) -> Answer:
    """One POST through :func:`cijobs.http.exchange`: no redirect followed, done by the deadline whatever the
    receiver does (slow head, dribbled answer), at most ``MAX_ANSWER_BYTES`` read.

    Never raises for a request failure; failures get the one vocabulary (``Timeout``, ``ConnectionError``,
    ``CertificateVerifyFailed``, ...), and no exception text (which would quote the URL) is kept.
    """
    parts = urlsplit(url)
    host_port = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    try:
        prepared = session.prepare_request(requests.Request("POST", url, data=body, headers=dict(headers)))
        reply = exchange(session, prepared, host_port=host_port, deadline=deadline,
                         connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s,
                         max_body_bytes=MAX_ANSWER_BYTES)
    except NoAnswer as exc:
        code, failure_class = failures.classify_no_answer(exc.kind)
        return Answer(None, error=code, network=failure_class != failures.FINAL)
    except requests.RequestException as exc:  # the request could not even be prepared
        return Answer(None, error=type(exc).__name__, network=False)
    return Answer(reply.status, reply.headers.get("Retry-After"), reply.body)


def _excerpt(head: bytes) -> str:
    text = head[:ANSWER_EXCERPT_BYTES].decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() else " " for c in text).strip()


class WebhookSink:
    """POSTs each finished job to one receiver; one :class:`WriteResult` per job, in order."""

    def __init__(
        self,
        session: requests.Session,
        target: WebhookTarget,
        secrets: Sequence[str],
        claim_store: Optional[ObjectStore] = None,
        max_bytes: int = 256 * 1024,
        concurrency: int = 8,
        limiter: Optional[RateLimiter] = None,
        clock: Callable[[], float] = time.time,
        *,
        max_attempts: int = 4,
        connect_timeout_s: float = 3.05,
        read_timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Optional[random.Random] = None,
    ) -> None:
        if not secrets:
            raise ValueError("a webhook sink needs at least one secret")
        self.session = session
        self.target = target
        self.secrets = tuple(secrets)
        self.claim_store = claim_store
        self.max_bytes = max_bytes
        self.concurrency = max(1, concurrency)
        self.limiter: RateLimiter = limiter if limiter is not None else FixedLimiter()
        self.clock = clock
        self.max_attempts = max(1, max_attempts)
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = read_timeout_s
        self.sleep = sleep
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self.name = target.url  # never the query string
        self._log = log.get_logger("cijobs.sinks")

    def write(self, jobs: Sequence[Job], deadline: Optional[Deadline] = None) -> list[WriteResult]:
        deadline = deadline or Deadline.never()
        results: list[Optional[WriteResult]] = [None] * len(jobs)
        work: list[tuple[int, str, str, bytes]] = []
        for i, job in enumerate(jobs):
            refused = refuse(job)
            if refused is not None:
                results[i] = refused
                continue
            job_id, state, _tag = job_fields(job)
            assert state is not None
            try:
                body = self._body(job, job_id, state, deadline)
            except Exception as exc:  # the claim-check store raised unexpectedly: this job only
                self._log.error("webhook_body_raised", sink=self.name, job_id=job_id, error_type=type(exc).__name__)
                body = not_confirmed(job_id, state, self.name, exc)
            if isinstance(body, WriteResult):
                results[i] = body
            else:
                work.append((i, job_id, state, body))
        if len(work) == 1 or self.concurrency == 1:
            for i, job_id, state, body in work:
                results[i] = self._deliver_one(job_id, state, body, deadline)
        elif work:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(work)),
                                    thread_name_prefix="cijobs-webhook") as pool:
                # each task runs in a copy of the caller's context: its log lines keep the invocation's fields
                futures = [(i, pool.submit(contextvars.copy_context().run, self._deliver_one, job_id, state, body,
                                           deadline))
                           for i, job_id, state, body in work]
                for i, fut in futures:
                    results[i] = fut.result()
        out = [r for r in results if r is not None]
        assert len(out) == len(jobs)
        return out

    # -- body --------------------------------------------------------------------------------------
    def _body(self, job: Job, job_id: str, state: str, deadline: Deadline) -> Union[bytes, WriteResult]:
        body = serialize(job, job_id, state)
        if isinstance(body, WriteResult):  # not serializable: this job fails alone
            self._log.warning("webhook_body_refused", sink=self.name, job_id=job_id,
                              error=body.error.message if body.error else None)
            return body
        if len(body) <= self.max_bytes:
            return body
        if self.claim_store is None:
            return WriteResult.failed(
                job_id, state, "MessageTooLarge",
                f"webhook body is {len(body)} bytes > WEBHOOK_MAX_BYTES={self.max_bytes} and CLAIM_CHECK_STORE "
                "is not set", retryable=False)
        pointer_doc = claim_check(self.claim_store, job, job_id, state, body, deadline, self._log)
        return pointer_doc if isinstance(pointer_doc, WriteResult) else canonical_json(pointer_doc)

    # -- delivery ----------------------------------------------------------------------------------
    def headers(self, delivery_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Cijobs-Event": EVENT,
            "X-Cijobs-Delivery": delivery_id,
            "X-Cijobs-Timestamp": str(timestamp),
            "X-Cijobs-Signature": sign(self.secrets, timestamp, body),
        }

    def _backoff(self, attempt: int) -> float:
        with self._rng_lock:
            return self._rng.uniform(0.0, min(MAX_DELAY_S, BASE_DELAY_S * (2 ** (attempt - 1))))

    def _deliver_one(self, job_id: str, state: str, body: bytes, deadline: Deadline) -> WriteResult:
        try:
            return self._deliver(job_id, state, body, deadline)
        except Exception as exc:  # one delivery's surprise is that job's result, never the batch's
            self._log.error("webhook_delivery_raised", sink=self.name, job_id=job_id, error_type=type(exc).__name__)
            return not_confirmed(job_id, state, self.name, exc)

    def _deliver(self, job_id: str, state: str, body: bytes, deadline: Deadline) -> WriteResult:
        delivery_id = f"{job_id}.{state}"
        attempt = 0
        while True:
            attempt += 1
            if deadline.expired() or not self.limiter.acquire(deadline.remaining()):
                return WriteResult.failed(job_id, state, "DeadlineExceeded", "no time left to deliver the webhook",
                                          retryable=True)
            timestamp = int(self.clock())
            answer = _post(self.session, self.target.full_url, body, self.headers(delivery_id, timestamp, body),
                           deadline, self.connect_timeout_s, self.read_timeout_s)
            result, retry_after = self._outcome(job_id, state, answer)
            if result.ok:
                self._log.debug("webhook_delivered", sink=self.name, job_id=job_id, status=answer.status,
                                attempt=attempt)
                return result
            delay = max(self._backoff(attempt), retry_after or 0.0)
            will_retry = result.retryable and attempt < self.max_attempts and deadline.remaining() > delay
            self._log.warning("webhook_delivery_failed", sink=self.name, job_id=job_id, status=answer.status,
                              code=result.error.code if result.error else None, attempt=attempt,
                              retryable=result.retryable, will_retry=will_retry)
            if not will_retry:
                return result
            self.sleep(delay)

    def _outcome(self, job_id: str, state: str, answer: Answer) -> tuple[WriteResult, Optional[float]]:
        """The result of one attempt and the answer's Retry-After seconds; feeds the rate limiter."""
        status = answer.status
        if status is None:
            return WriteResult.failed(job_id, state, answer.error or "RequestFailed",
                                      "the webhook receiver did not answer" if answer.network
                                      else "the webhook request could not be sent", retryable=answer.network), None
        retry_after = retry_after_seconds(answer.retry_after)
        if status == 429 or (status == 503 and retry_after is not None):
            self.limiter.on_throttle(retry_after)
        else:
            self.limiter.on_success()
        if 200 <= status < 300:
            return WriteResult.written(job_id, state), None
        if 300 <= status < 400:
            return WriteResult.failed(job_id, state, "Redirect",
                                      f"the webhook receiver answered {status} (redirects are not followed)",
                                      retryable=False, http_status=status), None
        excerpt = _excerpt(answer.head)
        message = f"the webhook receiver answered {status}" + (f": {excerpt}" if excerpt else "")
        if status in RETRYABLE_STATUS or 500 <= status < 600:
            return WriteResult.failed(job_id, state, "ReceiverUnavailable", message, retryable=True,
                                      http_status=status), retry_after
        return WriteResult.failed(job_id, state, "ReceiverRejected" if 400 <= status < 500 else "UnexpectedStatus",
                                  message, retryable=False, http_status=status), None
