"""Schema-drift reporting: the normalizer calls an injected callback, it never logs.

``normalize_document(..., on_drift=callback)`` calls ``callback(path, problem, sample)``
for every value that does not fit the table (``path`` is the full dotted path,
``problem`` a short text such as ``"not a valid int"``, ``sample`` the offending value,
strings cut to 80 characters). Without a callback nothing is reported. The
normalizer does not deduplicate: ``DriftReporter`` does, once per (path, problem)
for as long as the instance lives, so an application keeps one instance and
forwards to its logger.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

DriftCallback = Callable[[str, str, Any], None]

SAMPLE_CHARS = 80


def ignore_drift(path: str, problem: str, sample: Any) -> None:
    """The default callback: report nothing."""


def report(on_drift: DriftCallback, path: str, problem: str, value: Any = None) -> None:
    on_drift(path, problem, value[:SAMPLE_CHARS] if isinstance(value, str) else value)


class DriftReporter:
    """A drift callback that forwards each (path, problem) to ``sink`` once.

    Thread-safe; ``seen`` holds what was forwarded, ``reset()`` forgets it."""

    def __init__(self, sink: DriftCallback) -> None:
        self._sink = sink
        self._lock = threading.Lock()
        self.seen: set[tuple[str, str]] = set()

    def __call__(self, path: str, problem: str, sample: Any) -> None:
        key = (path, problem)
        with self._lock:
            if key in self.seen:
                return
            self.seen.add(key)
        self._sink(path, problem, sample)

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()


def resolve(on_drift: Optional[DriftCallback]) -> DriftCallback:
    return ignore_drift if on_drift is None else on_drift
