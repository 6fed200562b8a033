"""Outbound HTTP plumbing shared by the CI client, COS and CMQ: pooled
sessions, timeouts, a deadline, and the retry/backoff policy.

Signed requests never follow redirects: a redirect would carry the
Authorization and security-token headers to another host.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Optional, TypeVar

import requests
from requests.sessions import merge_setting
from requests.structures import CaseInsensitiveDict

from .deadline import Deadline
from .models import ServiceError
from .transport import CertificateVerifyError, KeepAliveAdapter

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by the deadline."""

    max_attempts: int = 4
    base_delay_s: float = 0.1
    max_delay_s: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, attempt: int) -> float:
        """Sleep before retry number ``attempt`` (1 = first retry): uniform in [0, min(cap, base*2^(n-1))]."""
        return self.rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * (2 ** (attempt - 1))))

    def should_retry(self, attempt: int, deadline: Deadline, delay: float) -> bool:
        """True when another attempt is allowed and its backoff fits in the time left."""
        return attempt < self.max_attempts and deadline.remaining() > delay

    def run(
        self,
        attempt: Callable[[int], T],
        deadline: Deadline,
        sleep: Callable[[float], None],
        on_retry: Optional[Callable[[int, ServiceError, float], None]] = None,
    ) -> T:
        """``attempt(n)`` for n = 1, 2, ... until it returns; it raises a :class:`ServiceError` to fail.

        A retryable error is retried after a full-jitter backoff while attempts remain and the backoff
        fits in the time left (``on_retry(n, error, delay)`` is called before sleeping); the deadline is
        checked again after sleeping. The last error is raised. Checking the deadline before the first
        attempt is the caller's (it knows what to report).
        """
        n = 0
        while True:
            n += 1
            try:
                return attempt(n)
            except ServiceError as exc:
                if not exc.retryable:
                    raise
                delay = self.delay(n)
                if not self.should_retry(n, deadline, delay):
                    raise
                if on_retry is not None:
                    on_retry(n, exc, delay)
                sleep(delay)
                if deadline.expired():
                    raise


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUS


RETRYABLE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


def request_failure(exc: requests.RequestException) -> tuple[str, str, bool]:
    """(code, detail, retryable) for a request that got no HTTP response.

    A refused TLS certificate is ``CertificateVerifyFailed`` (retryable: its jobs stay pending until the
    endpoint or certificate is fixed); other failures are named by their exception, retryable when they
    are network failures (``RETRYABLE_EXCEPTIONS``), not for a bad URL or the like."""
    if isinstance(exc, CertificateVerifyError):
        return "CertificateVerifyFailed", str(exc), True
    if isinstance(exc, RETRYABLE_EXCEPTIONS):
        return type(exc).__name__, "network error", True
    return type(exc).__name__, "request failed", False


def new_session(pool_size: int = 16) -> requests.Session:
    """A keep-alive session with a connection pool sized for ``pool_size`` parallel requests.

    The transport is :class:`~cijobs.transport.KeepAliveAdapter` (http.client, no retries of its own:
    retries are ours, policy + deadline). Every signed request passes ``allow_redirects=False``, so a
    3xx comes back as a response (never followed) and each client turns it into a final error.
    """
    session = requests.Session()
    adapter = KeepAliveAdapter(pool_maxsize=max(1, pool_size))
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.trust_env = False  # no proxy or netrc from the environment for signed calls
    session.headers["Accept-Encoding"] = "gzip, deflate"  # what the transport decodes
    return session


def timeouts(connect_s: float, read_s: float, deadline: Deadline) -> tuple[float, float]:
    """(connect, read) timeouts clamped to the deadline."""
    return deadline.clamp(connect_s), deadline.clamp(read_s)


# A URL that requests' preparation would return unchanged: http(s), lower-case host (optional port),
# a path of unreserved characters, "/" and "," only, no query, fragment or userinfo.
_PLAIN_URL = re.compile(r"https?://[a-z0-9.\-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9\-_~,]*)+")


def prepare_get(
    session: requests.Session, url: str, headers: Mapping[str, str], auth: Optional[requests.auth.AuthBase]
) -> requests.PreparedRequest:
    """What ``session.prepare_request(Request("GET", url, headers=headers, auth=auth))`` returns, cheaper.

    requests re-parses and re-percent-encodes every URL; for a ``/jobs/<10 ids>`` path that is about a
    fifth of a query request's client CPU. A URL that is already plain (see ``_PLAIN_URL``) comes out of
    that unchanged, so it is used as is. Anything else, or a session with cookies, default params,
    auth or hooks of its own, takes requests' full preparation.
    """
    if (session.cookies or session.params or session.auth or any(session.hooks.values())
            or not _PLAIN_URL.fullmatch(url)):
        return session.prepare_request(requests.Request("GET", url, headers=dict(headers), auth=auth))
    prepared = requests.PreparedRequest()
    prepared.prepare_method("GET")
    prepared.url = url
    prepared.prepare_headers(merge_setting(  # type: ignore[no-untyped-call]
        dict(headers), session.headers, dict_class=CaseInsensitiveDict))
    prepared.prepare_cookies(None)
    prepared.prepare_body(None, None)
    prepared.prepare_auth(auth)
    prepared.prepare_hooks({})
    return prepared
