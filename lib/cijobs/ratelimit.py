"""Client-side request pacing: one adaptive rate limiter per service, shared by every thread of an instance.

Cloud media APIs cap requests per account (COS: ``503 SlowDown``; Cloud API 3.0 / CI:
``429 RequestLimitExceeded``) and several SCF instances share one account. Each
instance paces its own requests; instances never talk to each other, yet they
converge to a fair share of the account's cap the way TCP flows share a
bottleneck: every client cuts its rate by the same factor when it is throttled
and grows it back along the same curve while answers succeed.

Algorithm (the idea of botocore's "adaptive" retry mode and of TCP CUBIC; the code is ours):

* **Pacing.** Admission is a schedule of slots ``1/rate`` apart. ``acquire()`` takes the
  next ticket under a lock (so callers are admitted in the order they asked: FIFO) and
  sleeps until its slot. A change of rate applies at once to every caller still waiting:
  the schedule is re-anchored at the slot due now and the waiting tickets are spaced at
  the new rate from there (with 16 threads waiting at 33/s, slots booked at the old
  spacing would otherwise keep the old rate for half a second after a cut). Idle time
  earns no credit: a burst after a pause is paced too.
* **Measured send rate.** Admissions are counted over windows of ``MEASURE_WINDOW_S``
  and smoothed (EWMA, weight ``MEASURE_SMOOTHING``). A window that follows a long idle
  gap is discarded ("unknown"), so one quiet minute does not look like a slow client.
* **Cut on a throttle answer** (multiplicative decrease). ``w = w_max = min(rate, measured)``
  (the rate we really sent at, not a nominal ceiling we never reached), then
  ``rate = BETA * w``. One cut per window of requests, as TCP cuts once per round trip:
  a throttle answer to a request sent before the last cut answers for the old rate,
  already cut, and cuts nothing. A throttle to a request sent after the cut means the new
  rate is still too high and cuts again, one round trip later: from 800/s against a
  100/s cap in ~8 round trips. The call path's thread tells the limiter which request an
  answer is for (``acquire`` remembers, per thread, when it admitted the thread's last
  request); an event loop passes ``sent_at``; without either, at most one cut per
  ``CUT_INTERVAL_S``.
* **Grow while answers succeed** (CUBIC). ``t`` seconds after the last cut the rate is
  ``w_max + C * (t - K)**3`` with ``K = cbrt((w_max - rate_after_cut) / C)``: it starts at
  the cut rate, climbs quickly, flattens near ``w_max`` (where the last throttle
  happened) and then probes above it, slowly first, faster later. ``C`` is absolute
  (requests/s per s^3), the same for every client: that is what makes the shares
  fair (a larger client has a larger ``K`` and so spends longer below its old peak).
  CUBIC's "fast convergence" (a cut below the last peak lowers ``w_max`` further) is
  left out: here a throttle answer reaches one client of several at random, and
  lowering the peak of whichever was unlucky twice made shares drift apart and a lone
  client regrow more slowly (docs/performance.md, "Rate limiting").
  Growth is further bounded by ``2 * measured`` (a client that does not use its rate
  does not inflate it) and by the hard cap ``max_rps``.
* **Retry-After.** The call path makes the throttled request itself wait its
  ``Retry-After`` (bounded by the deadline) and reports the throttle without it, so the
  cut paces the other requests. With ``pause_on_retry_after=True``, ``on_throttle(s)`` instead
  pauses every admission for ``s`` seconds (at most ``MAX_RETRY_AFTER_S``): callers already
  waiting keep their order and spacing, shifted past the pause; growth does not count the
  pause. Off by default: against a capped server that pause cost more wall time than it
  saved throttles (docs/performance.md, "Rate limiting").
* **No pacing until the first throttle** (as botocore's adaptive mode: its token bucket is
  enabled by the first throttling answer). Until then requests are admitted at once (the
  concurrency alone bounds them), unless a hard cap ``max_rps`` or an explicit ``start_rps``
  is given; the send rate is
  measured all along, so the first cut starts from the pace actually used (or from
  ``start_rps``, the pace the concurrency allows, concurrency / RTT, when nothing was
  measured yet).
* The rate never drops below ``MIN_RATE`` (so requests of an invocation never starve).

Call path (one per HTTP request, retries included)::

    limiter = limiters.get("ci")
    if not limiter.acquire(deadline.remaining()):
        raise <deadline exceeded>            # the wait alone would pass the deadline
    resp = session.send(...)
    if is_throttle(resp):                    # 429, or 503 SlowDown / RequestLimitExceeded
        limiter.on_throttle(retry_after_s(resp))
    else:
        limiter.on_success()

``RATE_MODE=fixed`` gives :class:`FixedLimiter`: the same interface, admits at once
(the concurrency alone bounds the rate, as before), only counts throttle answers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Callable, Optional, Protocol, Union

if TYPE_CHECKING:
    from .settings import Settings

BETA = 0.7  # multiplicative decrease: rate *= BETA on a throttle (CUBIC's and botocore's value)
C = 4.0  # CUBIC growth constant, requests/s per s^3 (absolute: the same curve for every client -> fairness);
# botocore uses 0.4; 4 makes a cycle ~2 s at 100/s (K = cbrt(0.3 * w_max / C)) so instances that start later
# reach their share within ~30 s (see the simulation in tests/test_ratelimit.py)
CUT_INTERVAL_S = 0.2  # at most one cut per interval, for an answer whose send time is not known
MEASURE_WINDOW_S = 0.2  # send-rate measurement window
MEASURE_SMOOTHING = 0.5  # EWMA weight of the newest window
MIN_RATE = 0.5  # requests/s floor: a throttled client still makes progress
MAX_RETRY_AFTER_S = 30.0  # a larger Retry-After is clamped (the deadline bounds the wait anyway)
DEFAULT_CONCURRENCY = 16
DEFAULT_RTT_S = 0.02  # 16 / 20 ms = 800 requests/s: what CI_CONCURRENCY allows before any throttle
MODES = ("adaptive", "fixed")

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class RateLimiter(Protocol):
    """What the HTTP call path needs; both :class:`AdaptiveRateLimiter` and :class:`FixedLimiter` provide it."""

    @property
    def rate(self) -> float: ...

    @property
    def throttled(self) -> int: ...

    def acquire(self, deadline_remaining_s: float = math.inf) -> bool: ...

    def on_success(self) -> None: ...

    def on_throttle(self, retry_after_s: Optional[float] = None, sent_at: Optional[float] = None) -> None: ...

    @property
    def honours_retry_after(self) -> bool:
        """True when ``on_throttle`` pauses admission for ``Retry-After`` (the caller then need not wait)."""
        ...


class AdaptiveRateLimiter:
    """A CUBIC-paced FIFO admission schedule (see the module docstring). Thread-safe.

    ``clock`` (monotonic seconds) and ``sleep`` are injected so tests run on a fake clock.

    ``pause_on_retry_after`` (default False): whether a throttle answer's ``Retry-After`` pauses every
    admission of the instance. Off, the throttled request waits its own ``Retry-After`` (the call path
    does that) and the cut paces the others: against a capped server, a whole-instance pause per answer
    cost more wall time than it saved throttles (docs/performance.md, "Rate limiting").
    """

    def __init__(
        self,
        start_rps: Optional[float] = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        expected_rtt_s: float = DEFAULT_RTT_S,
        max_rps: Optional[float] = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        beta: float = BETA,
        c: float = C,
        cut_interval_s: float = CUT_INTERVAL_S,
        min_rate: float = MIN_RATE,
        pause_on_retry_after: bool = False,
    ) -> None:
        self.honours_retry_after = pause_on_retry_after
        if max_rps is not None and max_rps <= 0:
            raise ValueError(f"max_rps must be > 0, got {max_rps}")
        if not 0 < beta < 1:
            raise ValueError(f"beta must be within (0, 1), got {beta}")
        # pacing from the start only when a start rate or a cap is given; otherwise from the first throttle
        self._pacing = start_rps is not None or max_rps is not None
        if start_rps is None:
            start_rps = max(1, concurrency) / max(1e-3, expected_rtt_s)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.max_rps = max_rps
        self._beta = beta
        self._c = c
        self._cut_interval = cut_interval_s
        self._min = min_rate
        self._rate = self._bounded(float(start_rps))
        now = clock()
        # schedule: callers take tickets 0, 1, 2...; ticket n is due at anchor_t + (n - anchor_n) / rate.
        # A rate change re-anchors at the ticket due now, so it applies at once to every caller still waiting
        # (their order kept); a Retry-After pause moves the anchor (every waiting slot, spacing kept).
        self._next_n = 0
        self._anchor_n = 0.0
        self._anchor_t = now
        self._pause_until = -math.inf
        # CUBIC state
        self._w_max = 0.0  # the rate at the last throttle (none yet)
        self._k = 0.0
        self._last_cut = -math.inf
        self._epoch = -math.inf  # growth time counts from here: the last cut, or the end of a pause after it
        # send-rate measurement
        self._window_start = now
        self._window_count = 0
        self._measured: Optional[float] = None
        self._throttled = 0
        self._admitted = 0
        self._sent = threading.local()  # per thread: when its last request was admitted

    # -- read-only state -------------------------------------------------------------------------
    @property
    def rate(self) -> float:
        """Current admission rate, requests/s (``inf`` while not pacing: no throttle seen and no cap)."""
        with self._lock:
            return self._rate if self._pacing else math.inf

    @property
    def measured_rate(self) -> Optional[float]:
        """Smoothed admissions/s over recent windows (``None`` until one window is complete, or after idling)."""
        with self._lock:
            return self._measured

    @property
    def throttled(self) -> int:
        """Throttle answers reported so far."""
        with self._lock:
            return self._throttled

    @property
    def admitted(self) -> int:
        with self._lock:
            return self._admitted

    # -- admission -------------------------------------------------------------------------------
    def acquire(self, deadline_remaining_s: float = math.inf) -> bool:
        """Wait for this caller's turn (FIFO) and return True; False at once if the wait would pass the deadline.

        A cut or a Retry-After reported while waiting moves the turn later; if that pushes it past the
        deadline, False is returned then (the slot is given up).
        """
        start = self._clock()
        with self._lock:
            if not self._pacing:
                self._next_n += 1
                self._admit(start)
                return True
            self._reanchor(start)  # idle time earns no credit
            n = self._next_n
            if self._due(n) - start > deadline_remaining_s:
                return False
            self._next_n += 1
        while True:
            with self._lock:
                now = self._clock()
                due = self._due(n)
                if due <= now:
                    self._admit(now)
                    return True
            if due - start > deadline_remaining_s:
                return False  # a cut or a pause moved the turn past the deadline (the slot stays unused)
            self._sleep(due - now)

    def reserve(self, deadline_remaining_s: float = math.inf) -> Optional[float]:
        """Book the next slot without sleeping: seconds to wait before sending, or None (past the deadline).

        For single-threaded simulations and event loops. The admission is counted now. Unlike
        :meth:`acquire`, a later change of rate or a Retry-After does not move a slot already booked. Report a
        throttle answer with ``on_throttle(..., sent_at=<the clock when reserve was called>)``.
        """
        now = self._clock()
        with self._lock:
            if not self._pacing:
                self._next_n += 1
                self._admit(now, thread=False)
                return 0.0
            self._reanchor(now)
            wait = max(0.0, self._due(self._next_n) - now)
            if wait > deadline_remaining_s:
                return None
            self._next_n += 1
            self._admit(now + wait, thread=False)
        return wait

    def _due(self, n: int) -> float:  # lock held
        return max(self._anchor_t + (n - self._anchor_n) / self._rate, self._pause_until)

    def _reanchor(self, now: float) -> None:  # lock held; before every change of rate
        """Anchor the schedule at the ticket due ``now`` (or at the next ticket when the schedule is idle)."""
        if self._anchor_t >= now:
            return  # anchored ahead (a pause): a new rate applies from there
        self._anchor_n = min(self._anchor_n + (now - self._anchor_t) * self._rate, float(self._next_n))
        self._anchor_t = now

    def _admit(self, now: float, thread: bool = True) -> None:  # lock held
        self._admitted += 1
        if thread:
            self._sent.t = now
        elapsed = now - self._window_start
        if elapsed >= MEASURE_WINDOW_S:
            if elapsed > 4 * MEASURE_WINDOW_S and self._window_count <= 1:
                self._measured = None  # we were idle: the window says nothing about our pace
            else:
                sample = self._window_count / elapsed
                m = self._measured
                self._measured = sample if m is None else MEASURE_SMOOTHING * sample + (1 - MEASURE_SMOOTHING) * m
            self._window_start = now
            self._window_count = 0
        self._window_count += 1

    # -- feedback --------------------------------------------------------------------------------
    def on_success(self) -> None:
        """An answer that was not a throttle: grow along the cubic curve (bounded by usage and the cap)."""
        with self._lock:
            if self._last_cut == -math.inf:
                return  # never throttled: keep the start rate (only a cap applies, set at construction)
            now = self._clock()
            t = now - self._epoch
            if t <= 0:
                return
            target = self._w_max + self._c * (t - self._k) ** 3
            if self._measured is not None:
                target = min(target, max(self._rate, 2.0 * self._measured))
            rate = max(self._rate, self._bounded(target))
            if rate != self._rate:
                self._reanchor(now)
                self._rate = rate

    def on_throttle(self, retry_after_s: Optional[float] = None, sent_at: Optional[float] = None) -> None:
        """A throttle answer: cut the rate (once per window of requests) and honour ``Retry-After`` seconds.

        ``sent_at``: the limiter-clock time the answered request's slot was fixed: when ``reserve`` booked it
        (its slot never moves); None = when this thread's last ``acquire`` admitted it (a waiting slot moves
        with the rate until then), or, for a thread that never acquired, at most one cut per
        ``cut_interval_s``.
        """
        with self._lock:
            now = self._clock()
            self._throttled += 1
            if not self._pacing:  # the first throttle: pace from now on, starting from the measured pace
                self._pacing = True
                self._anchor_t, self._anchor_n = now, float(self._next_n)
            if retry_after_s is not None and retry_after_s > 0:
                until = now + min(retry_after_s, MAX_RETRY_AFTER_S)
                if until > self._pause_until:
                    # waiting callers keep their order and spacing, moved past the pause
                    self._reanchor(now)
                    self._anchor_t += until - max(now, self._pause_until)
                    self._pause_until = until
                    # the pause is not our pace: measure again from its end (the last estimate stands)
                    self._window_start = until
                    self._window_count = 0
                    # and growth does not happen while we are told to wait
                    self._epoch = max(self._epoch, until)
            if sent_at is None:
                sent_at = getattr(self._sent, "t", None)
            if sent_at is not None:
                if sent_at <= self._last_cut:
                    return  # sent before the last cut: it answers for the old rate, already cut
            elif now - self._last_cut < self._cut_interval:
                return
            w = max(self._min, self._rate if self._measured is None else min(self._rate, self._measured))
            self._w_max = w
            self._reanchor(now)  # callers already waiting are spaced at the new rate from now
            self._rate = self._bounded(self._beta * w)
            self._k = (max(0.0, self._w_max - self._rate) / self._c) ** (1 / 3)
            self._last_cut = now
            self._epoch = max(now, self._pause_until)

    def _bounded(self, r: float) -> float:
        if self.max_rps is not None:
            r = min(r, self.max_rps)
        return max(r, self._min)


class FixedLimiter:
    """``RATE_MODE=fixed``: admits at once (the concurrency alone bounds the rate); counts throttle answers.
    It does not pace ``Retry-After``: the caller waits it out per request (``honours_retry_after`` False)."""

    honours_retry_after = False

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._throttled = 0

    @property
    def rate(self) -> float:
        return math.inf

    @property
    def throttled(self) -> int:
        with self._lock:
            return self._throttled

    def acquire(self, deadline_remaining_s: float = math.inf) -> bool:
        return True

    def on_success(self) -> None:
        pass

    def on_throttle(self, retry_after_s: Optional[float] = None, sent_at: Optional[float] = None) -> None:
        with self._lock:
            self._throttled += 1


Snapshot = dict[str, dict[str, Optional[float]]]


class Limiters:
    """One limiter per service name (``"ci"``, ``"cos"``, ``"cmq"``, or any key such as a webhook host).

    Created on first use and kept for the life of the instance (warm invocations keep the learnt rate).
    ``start_rps`` and ``max_rps`` are per service (a mapping) or one value for all.
    """

    def __init__(
        self,
        mode: str = "adaptive",
        *,
        start_rps: Union[float, Mapping[str, float], None] = None,
        max_rps: Union[float, Mapping[str, Optional[float]], None] = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        expected_rtt_s: float = DEFAULT_RTT_S,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"rate mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._start = start_rps
        self._max = max_rps
        self._concurrency = concurrency
        self._rtt = expected_rtt_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._limiters: dict[str, RateLimiter] = {}

    def get(self, service: str) -> RateLimiter:
        with self._lock:
            limiter = self._limiters.get(service)
            if limiter is None:
                limiter = self._new(service)
                self._limiters[service] = limiter
            return limiter

    def _new(self, service: str) -> RateLimiter:
        if self.mode == "fixed":
            return FixedLimiter()
        start = self._start.get(service) if isinstance(self._start, Mapping) else self._start
        cap = self._max.get(service) if isinstance(self._max, Mapping) else self._max
        return AdaptiveRateLimiter(start, concurrency=self._concurrency, expected_rtt_s=self._rtt, max_rps=cap,
                                   clock=self._clock, sleep=self._sleep)

    def snapshot(self, since: Optional[Snapshot] = None) -> Snapshot:
        """``{service: {"rate": r, "throttled": n}}``; ``rate`` is None in fixed mode (no pacing).

        With ``since`` (an earlier snapshot), ``throttled`` counts only the answers after it: take one at
        the start of an invocation and pass it at the end to get that invocation's figures.
        """
        with self._lock:
            items = sorted(self._limiters.items())
        out: Snapshot = {}
        for name, limiter in items:
            rate = limiter.rate
            n = limiter.throttled
            before = (since or {}).get(name, {}).get("throttled") or 0
            out[name] = {"rate": round(rate, 1) if math.isfinite(rate) else None, "throttled": n - int(before)}
        return out


THROTTLE_CODES = frozenset({"SlowDown", "RequestLimitExceeded", "RequestLimitExceeded.UinLimitExceeded",
                            "RequestLimitExceeded.IPLimitExceeded"})


def is_throttle(status: int, code: Optional[str] = None) -> bool:
    """A "slow down" answer (as opposed to a failure): HTTP 429, or an error code that says so (COS ``SlowDown``
    is a 503; CI / Cloud API 3.0 ``RequestLimitExceeded``)."""
    return status == 429 or (code is not None and code in THROTTLE_CODES)


def retry_after_seconds(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (``now`` = epoch seconds); None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = when - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def limiters_for(settings: Settings) -> Limiters:
    """One adaptive (or fixed) rate limiter per service, capped by the *_MAX_RPS settings."""
    caps: dict[str, Optional[float]] = {"ci": settings.ci_max_rps, "cos": settings.cos_max_rps,
                                        "cmq": settings.cmq_max_rps}
    for target in settings.result_sink:
        host = getattr(target, "host", None)
        if isinstance(host, str):
            caps[f"webhook:{host}"] = settings.webhook_max_rps
    return Limiters(settings.rate_mode, max_rps=caps, concurrency=settings.ci_concurrency)
