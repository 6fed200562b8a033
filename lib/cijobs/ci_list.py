"""CI job listing: one page of ``GET /jobs?tag=...`` (CI doc 460/84766), signed over its query string.

:class:`ListQuery` holds the filters; :meth:`JobLister.list_page` sends one request
(retried like a query: same :class:`~cijobs.http.RetryPolicy`, same deadline rules,
never following redirects, only to the configured bucket's CI host, see
:func:`cijobs.ci_client.ci_target`) and returns a :class:`ListPage`: the normalized
``JobsDetail`` list and the ``NextToken`` (``None`` on the last page). A failure raises
:class:`cijobs.ci_client.CIError` (``job_ids`` empty); ``code`` is CI's error code.

Times are whole seconds formatted ``%Y-%m-%dT%H:%M:%S%z`` in China Standard Time
(``2026-12-04T20:00:00+0800``, as CI prints job times). Every query value is
percent-encoded with only ``-_.~`` left as is, so the ``+`` of the offset goes out
as ``%2B`` (a raw ``+`` would be read as a space), and every parameter sent is in
the signature's ``q-url-param-list``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import quote

import requests

from . import failures, log
from .ci_client import SERVICE, TOKEN_HEADER, CIError, Normalizer, ci_target
from .credentials import Credentials
from .deadline import Deadline
from .http import Reply, RetryPolicy, new_session
from .service_call import Refused, call
from .settings import Settings
from .signing import CosSigner

if TYPE_CHECKING:
    from .ratelimit import Limiters

LIST_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%z"
CST = timezone(timedelta(hours=8))
MAX_PAGE_SIZE = 100
LIST_STATES = ("All", "Submitted", "Running", "Success", "Failed", "Pause", "Cancel")


def format_list_time(unix_s: int, tz: timezone = CST) -> str:
    """``2026-12-04T20:00:00+0800`` for a unix second (in ``tz``, China Standard Time by default)."""
    return datetime.fromtimestamp(int(unix_s), tz).strftime(LIST_TIME_FORMAT)


def parse_job_time(value: object) -> Optional[int]:
    """Unix seconds of a CI job time (``2022-06-27T15:23:12+0800``; also ``+08:00``/``Z``); None if unusable."""
    if not isinstance(value, str) or not value or value == "-":
        return None
    try:
        parsed = datetime.strptime(value, LIST_TIME_FORMAT)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp())


def encode_query(params: dict[str, str]) -> str:
    """``k=v&...`` with keys and values percent-encoded (only ``-_.~`` unreserved), in the given order."""
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in params.items())


@dataclass(frozen=True)
class ListQuery:
    """One listing request. ``start``/``end`` are unix seconds (the creation window; CI does not
    document whether its bounds are inclusive); ``states`` empty means all states."""

    tag: str
    states: Sequence[str] = ()
    start: Optional[int] = None
    end: Optional[int] = None
    queue_id: Optional[str] = None
    size: int = MAX_PAGE_SIZE
    order: str = "Asc"
    next_token: Optional[str] = None

    def __post_init__(self) -> None:
        if not self.tag:
            raise ValueError("tag is required")
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise ValueError(f"size must be within 1..{MAX_PAGE_SIZE}, got {self.size}")
        if self.order not in ("Asc", "Desc"):
            raise ValueError(f"order must be Asc or Desc, got {self.order!r}")
        bad = [s for s in self.states if s not in LIST_STATES]
        if bad:
            raise ValueError(f"unknown state(s) {', '.join(map(repr, bad))} (expected {', '.join(LIST_STATES)})")

    def params(self) -> dict[str, str]:
        """The query parameters, decoded (encode with :func:`encode_query`)."""
        out = {"tag": self.tag}
        if self.queue_id:
            out["queueId"] = self.queue_id
        if self.states:
            out["states"] = ",".join(self.states)
        if self.start is not None:
            out["startCreationTime"] = format_list_time(self.start)
        if self.end is not None:
            out["endCreationTime"] = format_list_time(self.end)
        out["orderByTime"] = self.order
        out["size"] = str(self.size)
        if self.next_token:
            out["nextToken"] = self.next_token
        return out


@dataclass
class ListPage:
    jobs: list[dict[str, Any]]
    next_token: Optional[str]
    request_id: Optional[str] = None
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class JobLister:
    """Lists CI jobs of one bucket through the one service-call path (retry policy, failure classes,
    deadline, rate limiter). Thread-safe; share the query client's session to share its pool."""

    def __init__(
        self,
        settings: Settings,
        credentials: Callable[[], Credentials],
        session: Optional[requests.Session] = None,
        normalize: Optional[Normalizer] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: Optional[Any] = None,
        limiters: Optional[Limiters] = None,
        redactor: Optional[log.Redactor] = None,
    ) -> None:
        self._settings = settings
        self._redactor = redactor
        self._target = ci_target(settings)
        self._credentials = credentials
        self._session = session if session is not None else new_session(2)
        self._normalize = normalize
        self._sleep = sleep
        self._clock = clock
        policy_kwargs: dict[str, Any] = {"max_attempts": settings.max_attempts}
        if rng is not None:
            policy_kwargs["rng"] = rng
        self._policy = RetryPolicy(**policy_kwargs)
        self._limiter = limiters.get("ci") if limiters is not None else None

    def list_page(self, query: ListQuery, deadline: Optional[Deadline] = None) -> ListPage:
        """One page; raises :class:`CIError` (after retries) when CI does not answer with a list."""
        deadline = deadline or Deadline.never()
        creds = self._credentials()
        if self._redactor is not None:
            self._redactor.add(creds.secrets())
        signer = CosSigner(creds, TOKEN_HEADER, clock=self._clock)
        url = f"{self._target.base_url}/jobs?{encode_query(query.params())}"
        headers = {"Host": self._target.host_header} if self._target.host_header else {}
        base = self._session.prepare_request(requests.Request("GET", url, headers=headers))
        attempts = [0]

        def prepare(attempt: int) -> requests.PreparedRequest:
            attempts[0] = attempt
            prepared = base.copy()
            prepared.url = url  # the query string exactly as encoded (``+`` as %2B) and signed
            prepared.prepare_auth(signer)
            return prepared

        def accept(reply: Reply) -> ListPage:
            request_id = reply.headers.get("x-ci-request-id") or reply.headers.get("x-cos-request-id")
            try:
                doc = self._normalizer()(reply.body)
            except (ValueError, SyntaxError) as exc:
                raise Refused(failures.MALFORMED_RESPONSE, f"unexpected response body: {type(exc).__name__}",
                              request_id, failures.TRANSIENT) from None
            jobs = [j for j in doc.get("JobsDetail") or [] if isinstance(j, dict)]
            token = doc.get("NextToken")
            return ListPage(jobs, token if isinstance(token, str) and token else None, request_id, attempts[0])

        return call(
            self._session, prepare, accept, service=SERVICE, host_port=self._target.host_port,
            deadline=deadline, connect_timeout_s=self._settings.connect_timeout_s,
            read_timeout_s=self._settings.read_timeout_s, policy=self._policy,
            make_error=CIError.from_failure, sleep=self._sleep, limiter=self._limiter,
            log_fields={"tag": query.tag, "queue_id": query.queue_id, "continued": bool(query.next_token)},
        )

    def _normalizer(self) -> Normalizer:
        if self._normalize is None:
            from .normalize import normalize_document

            self._normalize = normalize_document
        return self._normalize


def queue_required(err: CIError) -> bool:
    """Whether CI refused a listing because ``queueId`` is missing (then set ``DISCOVER_QUEUE_IDS``)."""
    return err.status == 400 and "queueid" in err.message.lower().replace(" ", "")
