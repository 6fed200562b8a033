"""Fault configuration and per-request fault decisions, drawn from one seeded ``random.Random``.

``emu.faults`` holds the global values (``emu.faults.fail_rate = 0.2``) and one
override per side (``emu.faults.cos.slowdown_rate = 0.5``; ``None`` = use the
global value). A decision is made before a request is handled, so a request that
gets a fault that loses it (``fail``, ``slowdown``, ``reset``) changes no state.

Kinds:
* ``fail``      5xx ``InternalError`` (500) / ``ServiceUnavailable`` (503); CMQ: HTTP 200 ``code`` 6000
* ``slowdown``  503 ``SlowDown`` (COS; other sides treat it as ``fail``)
* ``reset``     the connection is closed abruptly (SO_LINGER 0 -> RST), no response
* ``truncate``  Content-Length larger than the bytes sent, then close (a truncated 200)
* ``garbage``   200 with random bytes or an HTML error page
* ``wrong_content_type``  the right body with ``Content-Type: text/html``
* ``reset_after`` the request IS processed (state changes), then the connection is reset:
  the client cannot tell whether it worked (exercises idempotent retries)
plus ``latency_ms`` (added to every response) and ``slow_body_ms`` (the body is dribbled out).

Rates are random (one seeded generator shared by every side, so which request of a side gets a fault
depends on how concurrent requests interleave). A test that must see a given fault scripts it:
``emu.faults.inject_next("cmq", "fail")`` gives the next request of that side exactly that fault.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, fields
from typing import Any, Optional

SIDES = ("ci", "cos", "cmq")
KINDS = ("fail", "slowdown", "reset", "truncate", "garbage", "wrong_content_type", "reset_after")
RATE_FIELDS = (
    "fail_rate", "slowdown_rate", "reset_rate", "truncate_rate", "garbage_rate",
    "wrong_content_type_rate", "reset_after_rate",
)
MS_FIELDS = ("latency_ms", "slow_body_ms")
ALL_FIELDS = RATE_FIELDS + MS_FIELDS


class FaultConfigError(ValueError):
    pass


def _check(name: str, value: Any) -> float:
    if name not in ALL_FIELDS:
        raise FaultConfigError(f"unknown fault setting {name!r} (known: {', '.join(ALL_FIELDS)})")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultConfigError(f"fault setting {name} must be a number, got {value!r}")
    if name in RATE_FIELDS and not 0.0 <= value <= 1.0:
        raise FaultConfigError(f"fault setting {name} must be within 0..1, got {value}")
    if name in MS_FIELDS and value < 0:
        raise FaultConfigError(f"fault setting {name} must be >= 0, got {value}")
    return float(value)


@dataclass
class SideFaults:
    """Per-side overrides; ``None`` means "use the global value"."""

    latency_ms: Optional[float] = None
    fail_rate: Optional[float] = None
    slowdown_rate: Optional[float] = None
    reset_rate: Optional[float] = None
    truncate_rate: Optional[float] = None
    garbage_rate: Optional[float] = None
    wrong_content_type_rate: Optional[float] = None
    reset_after_rate: Optional[float] = None
    slow_body_ms: Optional[float] = None

    def as_dict(self) -> dict[str, Optional[float]]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Decision:
    kind: Optional[str]  # None = serve normally
    latency_s: float = 0.0
    slow_body_s: float = 0.0


class Faults:
    """Mutable fault settings (global + per side) and the seeded decision maker."""

    def __init__(self, seed: Optional[int] = None, **values: float) -> None:
        self.latency_ms = 0.0
        self.fail_rate = 0.0
        self.slowdown_rate = 0.0
        self.reset_rate = 0.0
        self.truncate_rate = 0.0
        self.garbage_rate = 0.0
        self.wrong_content_type_rate = 0.0
        self.reset_after_rate = 0.0
        self.slow_body_ms = 0.0
        self.ci = SideFaults()
        self.cos = SideFaults()
        self.cmq = SideFaults()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected: dict[str, int] = {}
        self._scripted: dict[str, deque[str]] = {s: deque() for s in SIDES}
        self.update(values)

    def inject_next(self, side: str, *kinds: str) -> None:
        """The next ``len(kinds)`` requests of ``side`` get these faults, in order (before any random one)."""
        self.side(side)
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise FaultConfigError(f"unknown fault kind(s) {bad} (known: {', '.join(KINDS)})")
        with self._lock:
            self._scripted[side].extend(kinds)

    # -- configuration -----------------------------------------------------------------------------
    def side(self, name: str) -> SideFaults:
        if name not in SIDES:
            raise FaultConfigError(f"unknown side {name!r} (expected one of {', '.join(SIDES)})")
        side: SideFaults = getattr(self, name)
        return side

    def update(self, values: dict[str, Any], side: Optional[str] = None) -> None:
        """Set several values at once (validated first, so a bad value changes nothing)."""
        checked: dict[str, Optional[float]] = {}
        for name, value in values.items():
            checked[name] = None if (value is None and side) else _check(name, value)
        target: Any = self.side(side) if side else self
        for name, v in checked.items():
            setattr(target, name, v)

    def reset(self) -> None:
        for name in ALL_FIELDS:
            setattr(self, name, 0.0)
        for s in SIDES:
            setattr(self, s, SideFaults())
        with self._lock:
            for queue in self._scripted.values():
                queue.clear()

    def effective(self, side: str) -> dict[str, float]:
        over = self.side(side) if side in SIDES else SideFaults()
        out = {}
        for name in ALL_FIELDS:
            v = getattr(over, name)
            out[name] = float(getattr(self, name) if v is None else v)
        return out

    def latency_s(self, side: str) -> float:
        """The side's added latency in seconds (no fault draw)."""
        return self.effective(side)["latency_ms"] / 1000.0

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {name: getattr(self, name) for name in ALL_FIELDS}
        for s in SIDES:
            d[s] = self.side(s).as_dict()
        d["injected"] = dict(self.injected)
        return d

    # -- decisions ---------------------------------------------------------------------------------
    def decide(self, side: str) -> Decision:
        eff = self.effective(side)
        with self._lock:
            kind: Optional[str] = None
            scripted = self._scripted.get(side)
            if scripted:
                kind = scripted.popleft()
            # one draw per kind, in a fixed order, so a given seed gives the same sequence
            for name in ("reset_rate", "fail_rate", "slowdown_rate", "truncate_rate", "garbage_rate",
                         "wrong_content_type_rate", "reset_after_rate"):
                rate = eff[name]
                if rate > 0 and self._rng.random() < rate and kind is None:
                    kind = name[: -len("_rate")]
            if kind == "slowdown" and side != "cos":
                kind = "fail"
            if kind is not None:
                key = f"{side}.{kind}"
                self.injected[key] = self.injected.get(key, 0) + 1
        return Decision(kind, eff["latency_ms"] / 1000.0, eff["slow_body_ms"] / 1000.0)

    def choice(self, options: list[Any]) -> Any:
        with self._lock:
            return self._rng.choice(options)

    def randbytes(self, n: int) -> bytes:
        with self._lock:
            return bytes(self._rng.getrandbits(8) for _ in range(n))
