"""Per-account request caps (``--max-rps`` on the CI side, ``--cos-max-rps`` on the COS side).

Each side keeps one token bucket per SecretId (the ``q-ak`` of the request's
Authorization, read without verifying it: the cap is checked on arrival, before
anything else). A bucket refills at ``R`` tokens/s and holds ``R * BURST_S`` (at
least 1). A request that finds no token is answered, after the usual latency, with
``503 SlowDown`` or ``429 RequestLimitExceeded`` (equal odds), half of them with
``Retry-After: 1`` (none with ``Emulator(throttle_retry_after=False)`` / ``--no-retry-after``), chosen by
the emulator's seeded generator like the other faults.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

from cijobs import signing

from .wire import Request

BURST_S = 0.2
THROTTLE_ANSWERS = (
    (503, "SlowDown", "Please reduce your request rate.", False),
    (503, "SlowDown", "Please reduce your request rate.", True),
    (429, "RequestLimitExceeded", "Your request rate exceeds the limit of this account.", False),
    (429, "RequestLimitExceeded", "Your request rate exceeds the limit of this account.", True),
)


def account_of(req: Request) -> str:
    """The SecretId a request claims (``""`` when unsigned or unparsable)."""
    value = req.header("authorization")
    if not value:
        return ""
    try:
        return signing.parse_authorization(value).get("q-ak", "")
    except ValueError:
        return ""


class Buckets:
    """Token buckets keyed by account; ``max_rps`` None = no cap. Thread-safe."""

    def __init__(self, max_rps: Optional[float] = None, clock: Callable[[], float] = time.monotonic) -> None:
        if max_rps is not None and max_rps <= 0:
            raise ValueError(f"max rps must be > 0, got {max_rps}")
        self.max_rps = max_rps
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}  # account -> (tokens, last refill)

    @property
    def burst(self) -> float:
        return 0.0 if self.max_rps is None else max(1.0, self.max_rps * BURST_S)

    def take(self, account: str) -> bool:
        """True if the request may pass (a token was taken); False = throttle it."""
        rate = self.max_rps
        if rate is None:
            return True
        now = self._clock()
        with self._lock:
            tokens, last = self._state.get(account, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * rate)
            ok = tokens >= 1.0
            self._state[account] = (tokens - 1.0 if ok else tokens, now)
            return ok

    def set_rate(self, max_rps: Optional[float]) -> None:
        if max_rps is not None and max_rps <= 0:
            raise ValueError(f"max rps must be > 0, got {max_rps}")
        with self._lock:
            self.max_rps = max_rps
            self._state.clear()

    def clear(self) -> None:
        with self._lock:
            self._state.clear()
