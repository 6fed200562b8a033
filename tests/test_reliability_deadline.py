"""The invocation deadline is absolute, whatever the stores do (the reliability review's reproductions 1-3,
scaled down: latencies and limits divided by about ten so the suite stays fast; bench/soak.py runs them
full size)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from cijobs.deadline import Deadline
from cijobs.pending import PendingStore
from cijobs.store import Listed
from fakes.handler import handler_on_emulator, outcomes, pending_ids


def ckafka(ids: list[str]) -> dict[str, Any]:
    return {"Records": [{"Ckafka": {"topic": "jobs", "partition": 0, "offset": 1,
                                    "msgBody": json.dumps({"JobIds": ids})}}]}


def test_a_slow_pending_registry_cannot_stretch_a_timer_tick_past_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1. registry calls had no deadline: COS at 8 s, a 5 s timer returned after 8 s. Here: COS at 3 s, 2 s limit.
    monkeypatch.setenv("DEADLINE_MARGIN_S", "1.0")
    with handler_on_emulator(monkeypatch) as (emu, handler):
        emu.faults.update({"latency_ms": 3000}, side="cos")
        started = time.monotonic()
        summary = handler.main_handler({"Type": "Timer", "Message": ""}, {"time_limit_in_ms": 2000})
        elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"returned after {elapsed:.2f} s, past the 2 s limit"
    assert summary["Registry"]["pending_truncated"] is True  # what it could not list, the next tick lists


def test_parking_many_running_jobs_is_parallel_and_ends_inside_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # 3. parking wrote one entry at a time: 100 running jobs, COS at 100 ms, a 5 s limit -> 10.4 s.
    monkeypatch.setenv("DEADLINE_MARGIN_S", "1.0")
    ids = [f"j{i:032x}" for i in range(100)]
    with handler_on_emulator(monkeypatch) as (emu, handler):
        for job_id in ids:
            emu.ci.add_job(job_id, state="Running")
        emu.faults.update({"latency_ms": 100}, side="cos")
        started = time.monotonic()
        summary = handler.main_handler(ckafka(ids), {"time_limit_in_ms": 3000})
        elapsed = time.monotonic() - started
        parked = pending_ids(emu)
    assert elapsed < 3.0, f"returned after {elapsed:.2f} s, past the 3 s limit"
    assert set(outcomes(summary).values()) == {("pending", "NotFinished")} and parked == set(ids)


class EndlessListing:
    """A store whose listing always says "truncated" and always has more keys (the reproduction's server)."""

    description, prefix = "endless", ""

    def __init__(self) -> None:
        self.listed = 0

    def key(self, *parts: str) -> str:
        return "/".join(p for p in parts if p)

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000,
                  deadline: Any = None) -> tuple[list[Listed], bool]:
        out: list[Listed] = []
        if ".answered/" in prefix:
            return out, False
        while len(out) < limit and not (deadline is not None and deadline.expired()):
            self.listed += 1
            out.append(Listed(f"{prefix}j{self.listed:032x}.json", 10, "2026-01-01T00:00:00.000Z"))
        return out, True

    def get(self, key: str, deadline: Any = None) -> None:
        return None

    def put(self, *_a: Any, **_k: Any) -> None:
        return None


def test_a_listing_that_never_ends_is_bounded_by_the_limit_and_resumed_next_tick() -> None:
    # 2. a store answering "truncated" forever made a 3 s tick list 385,000 entries for 13.4 s
    store = EndlessListing()
    registry = PendingStore(store)  # type: ignore[arg-type]
    listing = registry.listing(limit=5000, deadline=Deadline(3))
    assert len(listing.entries) == 5000 and not listing.complete and store.listed <= 5000 + 10
