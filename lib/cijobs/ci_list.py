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

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import quote

from . import failures
from .ci_client import CIError, JobClient
from .deadline import Deadline
from .http import Reply
from .service_call import Refused

if TYPE_CHECKING:
    pass

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
    """Lists CI jobs of one bucket with the query client's signed GET (one call path: retry policy, failure
    classes, deadline, rate limiter, session). Thread-safe."""

    def __init__(self, client: JobClient) -> None:
        self._client = client

    def list_page(self, query: ListQuery, deadline: Optional[Deadline] = None) -> ListPage:
        """One page; raises :class:`CIError` (after retries) when CI does not answer with a list."""

        def accept(reply: Reply, attempt: int) -> ListPage:
            request_id = reply.headers.get("x-ci-request-id") or reply.headers.get("x-cos-request-id")
            try:
                doc = self._client.document(reply)
            except (ValueError, SyntaxError) as exc:
                raise Refused(failures.MALFORMED_RESPONSE, f"unexpected response body: {type(exc).__name__}",
                              request_id, failures.TRANSIENT) from None
            jobs = [j for j in doc.get("JobsDetail") or [] if isinstance(j, dict)]
            token = doc.get("NextToken")
            return ListPage(jobs, token if isinstance(token, str) and token else None, request_id, attempt)

        page: ListPage = self._client.signed_get(
            f"/jobs?{encode_query(query.params())}", accept, deadline or Deadline.never(),
            signer=self._client.signer(), make_error=CIError.from_failure,
            log_fields={"tag": query.tag, "queue_id": query.queue_id, "continued": bool(query.next_token)})
        return page


def queue_required(err: CIError) -> bool:
    """Whether CI refused a listing because ``queueId`` is missing (then set ``DISCOVER_QUEUE_IDS``)."""
    return err.status == 400 and "queueid" in err.message.lower().replace(" ", "")
