"""The shared retry loop (``RetryPolicy.run``) of CI, COS and both CMQ clients, and the invocation ``Deadline``."""

from __future__ import annotations

import pytest

from cijobs.deadline import Deadline
from cijobs.http import RetryPolicy
from cijobs.models import ServiceError


class FixedRng:
    def uniform(self, a: float, b: float) -> float:
        return b


def test_retry_policy_run_retries_only_retryable_errors_within_attempts_and_deadline():
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=1.0, rng=FixedRng())  # type: ignore[arg-type]
    slept: list[float] = []
    retried: list[tuple[int, str, float]] = []

    def flaky(n: int) -> str:
        if n < 3:
            raise ServiceError("InternalError", "try again", retryable=True)
        return f"ok after {n}"

    assert policy.run(flaky, Deadline.never(), slept.append, lambda n, e, d: retried.append((n, e.code, d))) \
        == "ok after 3"
    assert slept == [0.1, 0.2] and retried == [(1, "InternalError", 0.1), (2, "InternalError", 0.2)]

    calls: list[int] = []

    def always(code: str, retryable: bool):
        def attempt(n: int) -> str:
            calls.append(n)
            raise ServiceError(code, "no", retryable=retryable)
        return attempt

    with pytest.raises(ServiceError, match="AccessDenied"):
        policy.run(always("AccessDenied", False), Deadline.never(), slept.append)
    assert calls == [1]
    calls.clear()
    with pytest.raises(ServiceError, match="SlowDown"):  # max attempts
        policy.run(always("SlowDown", True), Deadline.never(), lambda _s: None)
    assert calls == [1, 2, 3]
    calls.clear()
    with pytest.raises(ServiceError):  # the 0.1 s backoff does not fit in 0.05 s
        policy.run(always("SlowDown", True), Deadline(0.05, clock=lambda: 0.0), lambda _s: None)
    assert calls == [1]

    now = [0.0]
    calls.clear()
    with pytest.raises(ServiceError, match="SlowDown"):  # the deadline passed while sleeping: no new attempt
        policy.run(always("SlowDown", True), Deadline(0.15, clock=lambda: now[0]),
                   lambda s: now.__setitem__(0, now[0] + 1.0))
    assert calls == [1]


def test_deadline_never_has_infinite_time_and_never_expires():
    d = Deadline.never()
    assert d.remaining() == float("inf") and not d.expired()
    assert d.extended(5.0).remaining() == float("inf")
    assert d.clamp(7.5) == 7.5


def test_deadline_counts_down_on_its_clock_and_a_negative_budget_is_zero():
    now = [100.0]
    d = Deadline(2.0, clock=lambda: now[0])
    assert d.remaining() == 2.0 and not d.expired()
    now[0] = 103.0
    assert d.remaining() == 0.0 and d.expired()
    assert Deadline(-1.0, clock=lambda: 0.0).expired()


def test_deadline_extended_is_a_new_later_deadline_on_the_same_clock():
    now = [0.0]
    d = Deadline(1.0, clock=lambda: now[0])
    later = d.extended(2.0)
    assert later is not d and later.remaining() == 3.0 and d.remaining() == 1.0
    assert d.extended(-5.0).remaining() == 1.0  # never earlier
    now[0] = 2.0
    assert d.expired() and later.remaining() == 1.0


def test_deadline_clamp_bounds_a_timeout_by_the_time_left_but_not_below_one_millisecond():
    now = [0.0]
    d = Deadline(2.0, clock=lambda: now[0])
    assert d.clamp(5.0) == 2.0 and d.clamp(0.5) == 0.5
    now[0] = 10.0
    assert d.clamp(5.0) == 0.001
