"""Outbound HTTP plumbing shared by the CI client, COS and CMQ: pooled
sessions, timeouts, a deadline, and the retry/backoff policy.

Signed requests never follow redirects: a redirect would carry the
Authorization and security-token headers to another host.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, TypeVar

import requests
from requests.adapters import HTTPAdapter

from .models import ServiceError

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


class Deadline:
    """A point in monotonic time after which no new work starts."""

    def __init__(self, seconds: Optional[float], clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = None if seconds is None else clock() + max(0.0, seconds)

    @classmethod
    def never(cls) -> Deadline:
        return cls(None)

    def remaining(self) -> float:
        """Seconds left (``inf`` when there is no deadline)."""
        return float("inf") if self._end is None else max(0.0, self._end - self._clock())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def clamp(self, timeout: float) -> float:
        """A timeout that does not run past the deadline (at least 1 ms)."""
        return max(0.001, min(timeout, self.remaining()))


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


def new_session(pool_size: int = 16) -> requests.Session:
    """A keep-alive session with a connection pool sized for ``pool_size`` parallel requests.

    urllib3's own retries are off: retries are ours (policy + deadline). Every signed request passes
    ``allow_redirects=False``, so a 3xx comes back as a response (never followed) and each client turns
    it into a final error.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.trust_env = False  # no proxy or netrc from the environment for signed calls
    return session


def timeouts(connect_s: float, read_s: float, deadline: Deadline) -> tuple[float, float]:
    """(connect, read) timeouts clamped to the deadline."""
    return deadline.clamp(connect_s), deadline.clamp(read_s)
