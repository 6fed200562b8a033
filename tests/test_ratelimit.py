"""The adaptive rate limiter on a fake clock: pacing, cut on throttle, cubic growth, hard cap, Retry-After,
FIFO admission, thread safety; the fixed mode; the per-service registry; a three-client fairness simulation."""

from __future__ import annotations

import heapq
import math
import threading
import time
from typing import Callable, Optional

import pytest

from cijobs import ratelimit
from cijobs.ratelimit import AdaptiveRateLimiter, FixedLimiter, Limiters, is_throttle, retry_after_seconds


class FakeClock:
    """Monotonic time that only moves when something sleeps (or the test advances it)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        assert s > 0
        self.sleeps.append(s)
        self.now += s

    def advance(self, s: float) -> None:
        self.now += s


def limiter(clock: FakeClock, start: float = 100.0, **kw: object) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(start, clock=clock, sleep=clock.sleep, **kw)  # type: ignore[arg-type]


def test_start_rate_is_what_the_concurrency_allows() -> None:
    clock = FakeClock()
    # without a start rate or a cap: no pacing until the first throttle; then from the concurrency's pace
    free, t0 = AdaptiveRateLimiter(clock=clock, sleep=clock.sleep), clock()
    assert free.rate == math.inf and all(free.acquire(0.0) for _ in range(1000)) and clock() == t0
    unmeasured = AdaptiveRateLimiter(concurrency=4, expected_rtt_s=0.1, clock=clock)
    unmeasured.on_throttle()
    assert unmeasured.rate == pytest.approx(0.7 * 40)
    assert AdaptiveRateLimiter(50.0, clock=clock).rate == 50.0
    assert AdaptiveRateLimiter(concurrency=16, max_rps=100, clock=clock).rate == 100.0


def test_admissions_are_paced_one_slot_apart() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=10.0)
    t0 = clock.now
    for _ in range(5):
        assert lim.acquire()
    assert clock.sleeps == pytest.approx([0.1] * 4)
    assert clock.now - t0 == pytest.approx(0.4)
    assert lim.admitted == 5


def test_idle_time_earns_no_burst_credit() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=10.0)
    assert lim.acquire()
    clock.advance(60)
    assert lim.acquire()  # due at once
    assert lim.acquire()  # ... but the next one is paced again
    assert clock.sleeps == pytest.approx([0.1])


def test_throttle_cuts_the_rate_by_beta_once_per_interval() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=100.0)
    lim.on_throttle()
    assert lim.rate == pytest.approx(70.0)
    # answers to requests already in flight: no further cut within the interval
    for _ in range(10):
        clock.advance(0.01)
        lim.on_throttle()
    assert lim.rate == pytest.approx(70.0)
    assert lim.throttled == 11
    clock.advance(ratelimit.CUT_INTERVAL_S)
    lim.on_throttle()
    assert lim.rate == pytest.approx(49.0)


def test_a_throttle_for_a_request_booked_before_the_last_cut_cuts_nothing() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=100.0)
    asked = clock.now
    lim.on_throttle(sent_at=asked)
    assert lim.rate == pytest.approx(70.0)
    # well past the interval, but the answer is for a request that asked before the cut: already accounted for
    clock.advance(10 * ratelimit.CUT_INTERVAL_S)
    lim.on_throttle(sent_at=asked)
    assert lim.rate == pytest.approx(70.0)
    assert lim.throttled == 2
    # a request that asked after the cut and was still throttled: the new rate is too high, cut again at once
    lim.on_throttle(sent_at=clock.now)
    assert lim.rate == pytest.approx(49.0)


def test_a_threads_last_acquire_says_which_request_a_throttle_answers() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=100.0)
    assert lim.acquire()  # this thread's request asked at t0
    clock.advance(0.001)
    lim.on_throttle()
    assert lim.rate == pytest.approx(70.0)
    other: list[float] = []

    def booked_before_the_cut_answered_after() -> None:
        # another thread's request: its answer comes within the interval but after it asked again
        assert lim.acquire()
        lim.on_throttle()
        other.append(lim.rate)

    clock.advance(0.001)  # asked after the cut: a throttle for it is news, within the interval or not
    t = threading.Thread(target=booked_before_the_cut_answered_after)
    t.start()
    t.join()
    assert other == [pytest.approx(49.0)]
    # this thread's last request asked before that cut: its throttle cuts nothing
    lim.on_throttle()
    assert lim.rate == pytest.approx(49.0)


def test_a_reserved_slot_booked_before_the_cut_is_not_news_even_when_sent_after_it() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=100.0)
    lim.on_throttle(sent_at=clock.now - 1)  # pacing at 70/s from here
    clock.advance(1.0)
    for _ in range(5):  # five requests ask at once: slots 1/70 s apart, the last one ~57 ms from now
        assert lim.reserve() is not None
    asked = clock.now
    lim.on_throttle(sent_at=clock.now)  # another answer for a request asked now: cut to 49/s
    assert lim.rate == pytest.approx(49.0)
    clock.advance(0.06)  # the fifth slot is sent now, after the cut, and throttled: it asked before the cut
    lim.on_throttle(sent_at=asked - 1e-9)
    assert lim.rate == pytest.approx(49.0)


def test_cut_starts_from_the_measured_rate_when_we_sent_slower() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=800.0)  # the nominal rate, but the callers only send ~100/s
    for _ in range(100):
        assert lim.acquire()
        clock.advance(0.01)
    measured = lim.measured_rate
    assert measured is not None
    assert measured == pytest.approx(100, rel=0.05)
    lim.on_throttle()
    assert lim.rate == pytest.approx(0.7 * measured)


def test_success_grows_back_along_the_cubic_curve() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=100.0)
    lim.on_throttle()
    k = (100 * 0.3 / ratelimit.C) ** (1 / 3)
    rates = []
    for _ in range(int(k * 2 / 0.5)):
        clock.advance(0.5)
        lim.on_success()
        rates.append(lim.rate)
    assert rates == sorted(rates)  # never shrinks while answers succeed
    at_k = rates[int(k / 0.5) - 1]
    assert 95 < at_k <= 100  # back near the rate of the last throttle after K seconds
    # concave before K: the first half of the way back is faster than the second
    assert rates[1] - 70 > at_k - rates[int(k / 0.5) // 2]
    assert rates[-1] > 100  # then probes above it


def test_growth_is_bounded_by_twice_the_measured_rate() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=100.0)
    for _ in range(40):  # 10/s for 4 s
        assert lim.acquire()
        clock.advance(0.1)
    lim.on_throttle()  # cut from the measured 10/s
    assert lim.rate == pytest.approx(7.0, rel=0.05)
    clock.advance(120)  # the cubic curve is far above by now...
    lim.on_success()
    measured = lim.measured_rate
    assert measured is not None
    assert lim.rate == pytest.approx(2 * measured)  # ... but a client that sends 10/s does not claim 1000/s


def test_hard_cap_is_never_exceeded() -> None:
    clock = FakeClock()
    lim = AdaptiveRateLimiter(concurrency=16, max_rps=50, clock=clock, sleep=clock.sleep)
    assert lim.rate == 50
    lim.on_throttle()
    assert lim.rate == pytest.approx(35)
    seen = []
    for _ in range(200):
        assert lim.acquire()
        lim.on_success()
        seen.append(lim.rate)
    assert max(seen) == 50
    assert clock.now > 0  # (time passed through the paced sleeps)


def test_rate_never_drops_below_the_floor() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=1.0)
    for _ in range(20):
        lim.on_throttle()
        clock.advance(1)
    assert lim.rate == ratelimit.MIN_RATE


def test_retry_after_pauses_admission() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=100.0)
    assert lim.acquire()
    lim.on_throttle(1.0)
    t0 = clock.now
    assert lim.acquire()  # the pause, then one slot at the cut rate after the last admission
    assert clock.now - t0 == pytest.approx(1.0 + 1 / 70)
    assert lim.acquire()  # and so on
    assert clock.now - t0 == pytest.approx(1.0 + 2 / 70)


def wait_while_another_thread_is_throttled(clock: FakeClock, lim: AdaptiveRateLimiter,
                                           throttle: Callable[[], None]) -> float:
    """Seconds one ``acquire`` waits when ``throttle()`` (another thread's answer) arrives during its first
    sleep; the limiter was at 10/s with its last slot just taken."""
    slept: list[float] = []

    def sleep(s: float) -> None:
        if not slept:
            throttle()
        slept.append(s)
        clock.advance(s)

    lim._sleep = sleep
    t0 = clock.now
    assert lim.acquire()
    return clock.now - t0


def test_retry_after_reported_while_waiting_moves_the_waiter() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=10.0)
    assert lim.acquire()
    waited = wait_while_another_thread_is_throttled(clock, lim, lambda: lim.on_throttle(2.0))
    # our slot (0.1 s away at 10/s) moved past the 2 s pause, at the cut rate's spacing (7/s)
    assert waited == pytest.approx(2.0 + 1 / 7)


def test_a_cut_respaces_callers_already_waiting() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=10.0)
    assert lim.acquire()
    waited = wait_while_another_thread_is_throttled(clock, lim, lambda: lim.on_throttle(sent_at=clock.now))
    # our slot was 0.1 s away at 10/s; the cut to 7/s applies to it at once
    assert waited == pytest.approx(1 / 7)


def test_growth_brings_a_waiting_slot_no_later_and_keeps_fifo() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=10.0)
    lim.on_throttle(sent_at=clock.now - 1)  # 7/s, growth from here
    waits = [lim.reserve() for _ in range(3)]
    assert waits == pytest.approx([0.0, 1 / 7, 2 / 7])
    clock.advance(3.0)  # the cubic curve is past its peak: the next success grows the rate
    lim.on_success()
    grown = lim.rate
    assert grown > 7.0
    # idle meanwhile: the next caller is due at once, and the one after it at the grown spacing
    assert lim.reserve() == 0.0
    assert lim.reserve() == pytest.approx(1 / grown)


def test_retry_after_header_values() -> None:
    assert retry_after_seconds("1") == 1.0
    assert retry_after_seconds(" 2.5 ") == 2.5
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("") is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("nan") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10.0)
    assert retry_after_seconds("1e400") is None


def test_is_throttle() -> None:
    assert is_throttle(429)
    assert is_throttle(503, "SlowDown")
    assert is_throttle(429, "RequestLimitExceeded")
    assert is_throttle(400, "RequestLimitExceeded")
    assert not is_throttle(503, "ServiceUnavailable")
    assert not is_throttle(500)


def test_acquire_gives_up_at_once_when_the_wait_would_pass_the_deadline() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=1.0)
    assert lim.acquire()
    assert not lim.acquire(0.5)  # next slot is 1 s away
    assert clock.sleeps == []  # no waiting for nothing
    assert lim.acquire(1.0)  # the slot was not taken by the failed attempt
    assert clock.sleeps == pytest.approx([1.0])


def test_acquire_gives_up_when_a_retry_after_pushes_it_past_the_deadline() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=10.0)
    assert lim.acquire()
    lim._sleep = lambda s: (lim.on_throttle(5.0), clock.advance(s))  # type: ignore[assignment]
    assert not lim.acquire(1.0)


def test_reserve_books_slots_without_sleeping() -> None:
    clock = FakeClock()
    lim = limiter(clock, start=4.0)
    waits = [lim.reserve() for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.25, 0.5, 0.75])
    assert lim.reserve(0.5) is None
    assert clock.sleeps == []


def test_admission_is_fifo_across_threads() -> None:
    lim = AdaptiveRateLimiter(20.0)  # real clock, 50 ms apart
    booked = threading.Event()
    admitted: list[int] = []
    lock = threading.Lock()

    def sleep(s: float) -> None:
        booked.set()
        time.sleep(s)

    lim._sleep = sleep
    assert lim.acquire()  # the schedule is busy: every thread below has to wait its turn

    def worker(i: int) -> None:
        assert lim.acquire()
        with lock:
            admitted.append(i)

    threads = []
    for i in range(6):
        booked.clear()
        t = threading.Thread(target=worker, args=(i,))
        t.start()
        assert booked.wait(5)  # thread i has its slot before thread i+1 asks
        threads.append(t)
    for t in threads:
        t.join(10)
    assert admitted == list(range(6))


def test_thread_safety_under_concurrent_feedback() -> None:
    # every 17th answer a throttle: each cuts (its request was sent after the last cut); the floor keeps it fast
    lim = AdaptiveRateLimiter(4000.0, max_rps=4000.0, min_rate=1000.0)
    n_threads, per_thread = 8, 60
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(per_thread):
                assert lim.acquire(5.0)
                if (i + j) % 17 == 0:
                    lim.on_throttle(None)
                else:
                    lim.on_success()
        except BaseException as e:
            errors.append(e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert lim.admitted == n_threads * per_thread
    assert lim.throttled == sum(1 for i in range(n_threads) for j in range(per_thread) if (i + j) % 17 == 0)
    assert 1000.0 <= lim.rate <= 4000.0
    assert time.monotonic() - t0 < 5


def test_fixed_mode_admits_at_once_and_counts_throttles() -> None:
    lim = FixedLimiter()
    assert all(lim.acquire(0.0) for _ in range(100))
    lim.on_success()
    lim.on_throttle(1.0)
    lim.on_throttle(None)
    assert lim.throttled == 2
    assert lim.rate == math.inf


def test_limiters_registry_one_per_service_and_snapshot() -> None:
    clock = FakeClock()
    reg = Limiters(start_rps={"ci": 100.0}, max_rps={"cos": 30.0}, clock=clock, sleep=clock.sleep)
    ci = reg.get("ci")
    assert reg.get("ci") is ci
    assert isinstance(ci, AdaptiveRateLimiter)
    assert ci.rate == 100.0
    assert reg.get("cos").rate == 30.0
    assert reg.get("hooks.example.com").rate == math.inf  # any key: no pacing until its first throttle
    start = reg.snapshot()
    ci.on_throttle(None)
    ci.on_throttle(None)
    reg.get("cmq").on_throttle(None)
    snap = reg.snapshot()
    assert snap["ci"] == {"rate": 70.0, "throttled": 2}
    assert snap["cos"] == {"rate": 30.0, "throttled": 0}
    assert snap["cmq"]["throttled"] == 1
    ci.on_throttle(None)
    assert reg.snapshot(since=snap)["ci"]["throttled"] == 1
    assert reg.snapshot(since=start)["ci"]["throttled"] == 3


def test_limiters_fixed_mode_and_bad_mode() -> None:
    reg = Limiters("fixed")
    assert isinstance(reg.get("ci"), FixedLimiter)
    reg.get("ci").on_throttle(None)
    assert reg.snapshot() == {"ci": {"rate": None, "throttled": 1}}
    with pytest.raises(ValueError):
        Limiters("turbo")
    with pytest.raises(ValueError):
        AdaptiveRateLimiter(max_rps=0)


# -- simulation: three clients, one shared server cap -------------------------------------------------

class SimServer:
    """A token bucket (cap + 200 ms burst) shared by every client, checked when a request arrives."""

    def __init__(self, clock: FakeClock, cap: float) -> None:
        self.clock, self.cap = clock, cap
        self.burst = cap * 0.2
        self.tokens = self.burst
        self.last = clock.now

    def admit(self) -> bool:
        now = self.clock.now
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.cap)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def simulate(cap: float, starts: list[float], until: float, workers: int = 16, rtt: float = 0.02,
             retry_after: Optional[float] = None) -> tuple[list[AdaptiveRateLimiter], list[list[tuple[float, bool]]]]:
    """Event-driven: each client has ``workers`` threads sending back to back through its own limiter."""
    clock = FakeClock(0.0)
    server = SimServer(clock, cap)
    # paced from the concurrency's pace at start, so the simulation measures convergence after the cuts
    limiters = [AdaptiveRateLimiter(workers / rtt, clock=clock, sleep=clock.sleep) for _ in starts]
    log: list[list[tuple[float, bool]]] = [[] for _ in starts]
    events: list[tuple[float, int, int, str, bool, float]] = []
    seq = 0

    def push(t: float, client: int, kind: str, ok: bool = True, asked: float = 0.0) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, client, kind, ok, asked))

    for c, t0 in enumerate(starts):
        for _ in range(workers):
            push(t0, c, "ask")
    while events:
        t, _, c, kind, ok, asked = heapq.heappop(events)
        if t > until:
            break
        clock.now = t
        lim = limiters[c]
        if kind == "ask":
            wait = lim.reserve()
            assert wait is not None
            push(t + wait, c, "send", asked=t)
        elif kind == "send":
            ok = server.admit()
            log[c].append((t, ok))
            push(t + rtt, c, "answer", ok, asked)
        else:
            if ok:
                lim.on_success()
            else:
                # the server sends Retry-After on every other throttle answer (like the emulator's half)
                lim.on_throttle(retry_after if (len(log[c]) % 2) else None, sent_at=asked)
            push(t, c, "ask")
    return limiters, log


def judge(log: list[list[tuple[float, bool]]], lo: float, hi: float) -> tuple[list[float], list[float]]:
    """(sent/s, accepted/s) per client between ``lo`` and ``hi``."""
    sent = [sum(1 for t, _ in entries if lo <= t < hi) / (hi - lo) for entries in log]
    good = [sum(1 for t, ok in entries if lo <= t < hi and ok) / (hi - lo) for entries in log]
    return sent, good


def test_three_clients_converge_to_fair_shares_under_a_shared_cap() -> None:
    cap = 300.0
    # the first client has the account alone for 10 s, then two more instances start
    _, log = simulate(cap, starts=[0.0, 10.0, 12.0], until=90.0)
    sent, good = judge(log, 60.0, 90.0)  # the last 30 s
    assert sum(good) <= cap * 1.01  # (the server's bucket guarantees it)
    assert sum(good) >= 0.85 * cap  # the account's cap is used
    assert sum(sent) - sum(good) <= 0.05 * sum(sent)  # few throttle answers once converged
    for g in good:
        assert abs(g - cap / 3) <= 0.25 * cap / 3, good
    first, _ = judge(log, 5.0, 10.0)
    assert first[0] >= 0.85 * cap  # alone, the first one had it all


def test_three_clients_share_fairly_when_the_server_also_sends_retry_after() -> None:
    cap = 300.0
    _, log = simulate(cap, starts=[0.0, 10.0, 12.0], until=90.0, retry_after=1.0)
    sent, good = judge(log, 60.0, 90.0)
    # every pause a Retry-After asks for costs that client its share for a second: less of the cap is used
    assert 0.7 * cap <= sum(good) <= cap * 1.01
    assert sum(sent) - sum(good) <= 0.05 * sum(sent)
    for g in good:
        assert abs(g - sum(good) / 3) <= 0.25 * sum(good) / 3, good

