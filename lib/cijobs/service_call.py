"""The one call path of CI, COS and CMQ (data-flow): send a signed request under the retry policy, the pace
(rate limiter) and the deadline, classify what came back, and retry or raise.

``call()`` takes a ``prepare(attempt)`` callable (each attempt is built and signed anew: signatures carry a
time and CMQ's a nonce) and an ``accept(reply)`` callable that turns a 2xx :class:`~cijobs.http.Reply` into
the caller's value or raises :class:`Refused` (a 2xx that is a failure: a malformed body, a CMQ ``code``).
Every other answer is turned into (status, code, message, request id) here, with one error-body parser, and
classified by the service's table (:mod:`cijobs.failures`). Failures raise ``make_error(failure)``, the
client's :class:`~cijobs.models.ServiceError` subclass, with ``failure_class`` set.

Retries: ``transient`` failures are retried with full-jitter backoff while attempts remain
(``HTTP_MAX_ATTEMPTS``) and the backoff fits in the time left; ``Retry-After`` (bounded by the deadline)
lengthens the wait. ``throttle`` answers report to the limiter (``on_throttle(retry_after)``) and are retried
without counting as attempts, for as long as the deadline allows (with no deadline, they count as attempts,
so nothing loops forever). ``configuration`` and ``final`` failures are raised at once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Optional, TypeVar

import requests

from . import failures
from .deadline import Deadline
from .http import DEFAULT_MAX_BODY_BYTES, NoAnswer, Reply, RetryPolicy, exchange
from .log import get_logger
from .models import ServiceError
from .ratelimit import RateLimiter, retry_after_seconds

T = TypeVar("T")
MAX_RETRY_AFTER_S = 30.0
_log = get_logger("cijobs.http")


@dataclass(frozen=True)
class Failure:
    """A classified failure: what every client's error is built from."""

    code: str
    message: str
    failure_class: str
    status: Optional[int] = None
    request_id: Optional[str] = None
    retry_after_s: Optional[float] = None

    @property
    def retryable(self) -> bool:
        return failures.is_retryable(self.failure_class)


class Refused(Exception):
    """Raised by ``accept``: a 2xx answer that is a failure (``failure_class`` None = by the service table)."""

    def __init__(self, code: str, message: str, request_id: Optional[str] = None,
                 failure_class: Optional[str] = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.request_id, self.failure_class = code, message, request_id, failure_class


@dataclass(frozen=True)
class Service:
    """What the call path needs to know about a service."""

    name: str  # "ci", "cos", "cmq": the limiter key and the classification table
    request_id_headers: tuple[str, ...] = ("x-cos-request-id",)
    default_codes: Mapping[int, str] = None  # type: ignore[assignment]

    @property
    def table(self) -> tuple[failures.Rule, ...]:
        return failures.TABLES[self.name]


def error_from_answer(service: Service, reply: Reply) -> Failure:
    """A failed HTTP answer: code/message from an ``<Error>`` XML or JSON body, or headers, or the status."""
    status = reply.status
    code = message = rid = ""
    if reply.body.strip():
        code, message, rid = _parse_error_body(reply.body)
    code = code or reply.headers.get("x-cos-error-code", "") or ""
    message = message or reply.headers.get("x-cos-error-message", "") or ""
    for name in service.request_id_headers:
        rid = rid or reply.headers.get(name, "") or ""
    if status < 200:
        code, message = failures.MALFORMED_RESPONSE, f"interim HTTP {status} answer where the final one was due"
        cls = failures.TRANSIENT
    elif 300 <= status < 400:
        code = failures.REDIRECT
        message = f"refused to follow HTTP {status} redirect"
        cls = failures.FINAL
    else:
        code = code or (service.default_codes or {}).get(status, "") or f"HTTP{status}"
        message = message or reply.reason or f"HTTP {status}"
        cls = failures.classify(service.table, status, code)
    retry_after = retry_after_seconds(reply.headers.get("Retry-After"))
    return Failure(code, message[:300], cls, status, rid or None, retry_after)


def _parse_error_body(body: bytes) -> tuple[str, str, str]:
    text = body[:65536]
    if text.lstrip()[:1] in (b"{", b"["):
        import json

        try:
            doc = json.loads(text)
        except ValueError:
            return "", "", ""
        if isinstance(doc, dict):
            err = doc.get("Response", {}).get("Error") if isinstance(doc.get("Response"), dict) else None
            if isinstance(err, dict):
                return str(err.get("Code") or ""), str(err.get("Message") or ""), str(
                    doc["Response"].get("RequestId") or "")
            code = doc.get("code", doc.get("Code"))
            return (str(code) if code not in (None, "") else "", str(doc.get("message") or doc.get("Message") or ""),
                    str(doc.get("requestId") or doc.get("RequestId") or ""))
        return "", "", ""
    try:
        from defusedxml import ElementTree as DET

        root = DET.fromstring(text)
    except Exception:
        return "", "", ""
    if root.tag != "Error":
        return "", "", ""

    def child(tag: str) -> str:
        el = root.find(tag)
        return (el.text or "").strip() if el is not None else ""

    return child("Code"), child("Message"), child("RequestId")


def call(
    session: requests.Session,
    prepare: Callable[[int], requests.PreparedRequest],
    accept: Callable[[Reply], T],
    *,
    service: Service,
    host_port: str,
    deadline: Deadline,
    connect_timeout_s: float,
    read_timeout_s: float,
    policy: RetryPolicy,
    make_error: Callable[[Failure], ServiceError],
    sleep: Callable[[float], None] = time.sleep,
    limiter: Optional[RateLimiter] = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_fields: Optional[Mapping[str, Any]] = None,
) -> T:
    """Send until an answer is accepted or a failure is final for now (see the module docstring)."""
    attempt = 0  # counted attempts (transient failures)
    sent = 0
    last: Optional[Failure] = None  # reported when the deadline ends the retries: it says more
    while True:
        if deadline.expired():
            raise make_error(last or Failure(failures.DEADLINE_EXCEEDED,
                                             f"{host_port}: no time left to send the request", failures.TRANSIENT))
        if limiter is not None and not limiter.acquire(deadline.remaining()):
            raise make_error(last or Failure(failures.DEADLINE_EXCEEDED,
                                             f"{host_port}: the pace would pass the deadline; not sent",
                                             failures.TRANSIENT))
        sent += 1
        failure = _logged(service, sent, log_fields, partial(
            _exchange_once, session, prepare, accept, sent, service, host_port, deadline, connect_timeout_s,
            read_timeout_s, limiter, max_body_bytes))
        if isinstance(failure, _Accepted):
            return failure.value  # type: ignore[no-any-return]
        last = failure
        if failure.failure_class == failures.THROTTLE and deadline.remaining() != float("inf"):
            if failure.retry_after_s is None:
                wait = policy.delay(sent)
            elif limiter is not None and limiter.honours_retry_after:
                wait = 0.0  # the limiter pauses admission for it (once per cut, for every request)
            else:
                wait = min(failure.retry_after_s, MAX_RETRY_AFTER_S)
            if wait >= deadline.remaining():
                raise make_error(failure)
            _log.debug("http.retry", service=service.name, code=failure.code, status=failure.status,
                       failure_class=failure.failure_class, delay_s=round(wait, 3), **dict(log_fields or {}))
            if wait > 0:
                sleep(wait)
            continue
        if failure.failure_class not in (failures.TRANSIENT, failures.THROTTLE):
            raise make_error(failure)
        attempt += 1
        delay = policy.delay(attempt)
        if failure.retry_after_s is not None:
            delay = max(delay, min(failure.retry_after_s, MAX_RETRY_AFTER_S))
        if not policy.should_retry(attempt, deadline, delay):
            raise make_error(failure)
        _log.debug("http.retry", service=service.name, code=failure.code, status=failure.status,
                   failure_class=failure.failure_class, attempt=attempt, delay_s=round(delay, 3),
                   **dict(log_fields or {}))
        sleep(delay)


@dataclass(frozen=True)
class _Accepted:
    value: Any


def _logged(service: Service, sent: int, log_fields: Optional[Mapping[str, Any]], attempt: Callable[[], Any]) -> Any:
    """Run one attempt and log it (debug): status, error code, duration."""
    started = time.monotonic()
    result: Any = None
    try:
        result = attempt()
        return result
    finally:
        error = result.code if isinstance(result, Failure) else None
        status = result.status if isinstance(result, Failure) else (200 if result is not None else None)
        _log.debug("http.request", service=service.name, status=status, sent=sent, error=error,
                   duration_ms=round((time.monotonic() - started) * 1000, 1), **dict(log_fields or {}))


def _exchange_once(
    session: requests.Session,
    prepare: Callable[[int], requests.PreparedRequest],
    accept: Callable[[Reply], Any],
    sent: int,
    service: Service,
    host_port: str,
    deadline: Deadline,
    connect_timeout_s: float,
    read_timeout_s: float,
    limiter: Optional[RateLimiter],
    max_body_bytes: int,
) -> Any:
    try:
        prepared = prepare(sent)
    except (ValueError, UnicodeError) as exc:  # a URL or header the request cannot carry: never sendable
        return Failure(failures.INVALID_REQUEST, f"{host_port}: request refused before sending "
                       f"({type(exc).__name__})", failures.FINAL)
    try:
        reply = exchange(session, prepared, host_port=host_port, deadline=deadline,
                         connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s,
                         max_body_bytes=max_body_bytes)
    except NoAnswer as exc:
        code, cls = failures.classify_no_answer(exc.kind)
        return Failure(code, exc.detail, cls)
    status = reply.status
    if 200 <= status < 300:
        try:
            value = accept(reply)
        except Refused as exc:
            rid = exc.request_id or _request_id(service, reply)
            cls = exc.failure_class or failures.classify(service.table, status, exc.code)
            failure = Failure(exc.code, exc.message, cls, status, rid)
        else:
            if limiter is not None:
                limiter.on_success()
            return _Accepted(value)
    else:
        failure = error_from_answer(service, reply)
    if limiter is not None:
        if failure.failure_class == failures.THROTTLE:
            limiter.on_throttle(failure.retry_after_s if limiter.honours_retry_after else None)
        else:
            limiter.on_success()
    return failure


def _request_id(service: Service, reply: Reply) -> Optional[str]:
    for name in service.request_id_headers:
        value = reply.headers.get(name)
        if value:
            return str(value)
    return None
