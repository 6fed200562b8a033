"""The invocation deadline: a point in monotonic time after which no new work starts.

Every store, sink and service call takes one, so an invocation ends inside its SCF time limit.
"""

from __future__ import annotations

import time
from typing import Callable, Optional


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

    def extended(self, seconds: float) -> Deadline:
        """The same deadline ``seconds`` later (never: stays never)."""
        later = Deadline(None, clock=self._clock)
        later._end = None if self._end is None else self._end + max(0.0, seconds)
        return later

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def clamp(self, timeout: float) -> float:
        """A timeout that does not run past the deadline (at least 1 ms)."""
        return max(0.001, min(timeout, self.remaining()))
