"""``cijobs.discovery.sweep`` with fakes (lister, sinks, create-if-absent store) and against the emulator."""

from __future__ import annotations

import threading
from typing import Any, Optional

import pytest

from cijobs.ci_client import CIError, JobClient
from cijobs.ci_list import JobLister, ListPage, ListQuery, format_list_time
from cijobs.credentials import Credentials
from cijobs.deadline import Deadline
from cijobs.discovery import QUEUE_HINT, SOURCE, SweepReport, resolve_since, sweep
from cijobs.discovery_cursor import CURSOR_DIR, CursorStore, Position, Resume
from cijobs.settings import Settings
from cijobs_tools.emulator import Emulator
from fakes import job_id as jid
from fakes.discovery import MemoryStore, Recorder

T0 = 1_796_000_000
NOW = T0 + 3600


class FakeLister:
    """Keyset listing over a catalog of job dicts, ascending, with exclusive or inclusive bounds."""

    def __init__(self, jobs: list[dict[str, Any]], inclusive: bool = False) -> None:
        self.jobs = jobs
        self.inclusive = inclusive
        self.queries: list[ListQuery] = []
        self.fail: dict[str, CIError] = {}

    def __call__(self, q: ListQuery, deadline: Deadline) -> ListPage:
        self.queries.append(q)
        if q.tag in self.fail:
            raise self.fail[q.tag]
        if q.next_token is not None and not q.next_token.startswith("k:"):
            raise CIError(400, "InvalidArgument", "nextToken is invalid")
        after = None
        if q.next_token:
            sec, job_id = q.next_token[2:].split("/")
            after = (int(sec), job_id)
        lo, hi = q.start, q.end
        assert lo is not None and hi is not None
        rows = sorted(((j["_sec"], j["JobId"]), j) for j in self.jobs
                      if j["Tag"] == q.tag and (q.queue_id is None or j["QueueId"] == q.queue_id)
                      and (lo <= j["_sec"] <= hi if self.inclusive else lo < j["_sec"] < hi))
        rows = [r for r in rows if after is None or r[0] > after]
        page = rows[:q.size]
        token = f"k:{page[-1][0][0]}/{page[-1][0][1]}" if len(rows) > q.size else None
        return ListPage([{k: v for k, v in j.items() if k != "_sec"} for _, j in page], token)


def job(n: int, sec: int, state: str = "Success", tag: str = "Transcode", queue: str = "pq1") -> dict[str, Any]:
    return {"JobId": jid(n), "Tag": tag, "State": state, "QueueId": queue, "_sec": sec,
            "CreationTime": format_list_time(sec)}


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def run(lister: Any, rec: Recorder, mem: MemoryStore, tags: tuple[str, ...] = ("Transcode",),
        queues: tuple[str, ...] = (), deadline: Optional[Deadline] = None, now: float = NOW,
        **kwargs: Any) -> SweepReport:
    args: dict[str, Any] = {"max_pages": 50, "settle_s": 10, "since": T0}
    args.update(kwargs)
    return sweep(list(tags), list(queues), CursorStore(mem), lister, rec.write, rec.park,
                 deadline=deadline or Deadline.never(), now=lambda: now, **args)


def test_terminal_jobs_are_written_and_unfinished_ones_parked() -> None:
    jobs = [job(1, T0 + 1), job(2, T0 + 2, "Running"), job(3, T0 + 3, "Failed"), job(4, T0 + 4, "Submitted"),
            job(5, T0 + 5, "Cancel"), job(6, T0 + 6, "Pause"), job(7, T0 - 5), job(8, NOW - 5)]
    lister, rec, mem = FakeLister(jobs), Recorder(), MemoryStore("pfx")
    report = run(lister, rec, mem)
    assert sorted(rec.written) == [(jid(1), "Success"), (jid(3), "Failed"), (jid(5), "Cancel")]
    assert sorted(rec.parked) == [jid(2), jid(4), jid(6)]  # job 7 is before since, job 8 not settled
    assert (report.discovered, report.written, report.parked, report.pages) == (6, 3, 3, 1)
    assert report.failures == [] and report.stopped is None
    d = report.as_dict()
    assert d["discovered"] == 6 and d["streams"][0]["Complete"] and "hint" not in d
    assert lister.queries[0].start == T0 - 1 and lister.queries[0].end == NOW - 10
    assert lister.queries[0].order == "Asc" and lister.queries[0].size == 100
    assert any(k.startswith(f"pfx/{CURSOR_DIR}/Transcode/") for k in mem.objects)
    cursor = CursorStore(mem).load("Transcode")
    assert cursor is not None and cursor.position == Position(NOW - 10) and cursor.resume is None
    # nothing new: the next sweep hands nothing over
    again = run(lister, rec, mem, now=NOW + 1)
    assert again.discovered == 0 and len(rec.written) == 3 and len(rec.parked) == 3
    # the unsettled job shows up once it is old enough
    later = run(lister, rec, mem, now=NOW + 30)
    assert later.written == 1 and rec.written[-1] == (jid(8), "Success")
    assert SOURCE == "discovery"


def test_a_failed_write_leaves_the_cursor_and_the_page_is_listed_again() -> None:
    jobs = [job(n, T0 + n) for n in range(1, 8)]
    lister, rec, mem = FakeLister(jobs), Recorder(), MemoryStore()
    rec.fail_ids = {jid(5)}
    report = run(lister, rec, mem, page_size=3)
    assert report.failures[0]["Code"] == "HandOverFailed" and report.failures[0]["Tag"] == "Transcode"
    cursor = CursorStore(mem).load("Transcode")
    assert cursor is not None and cursor.position == Position(T0 + 3, frozenset({jid(3)}))
    rec.fail_ids = set()
    report = run(lister, rec, mem, page_size=3)
    assert report.failures == []
    assert {j for j, _ in rec.written} == {jid(n) for n in range(1, 8)}
    assert sorted(j for j, _ in rec.written if [w for w, _ in rec.written].count(j) > 1) == [jid(4), jid(4),
                                                                                             jid(6), jid(6)]


def test_a_failing_tag_does_not_stop_the_others_and_queue_required_is_explained() -> None:
    jobs = [job(1, T0 + 1), job(2, T0 + 2, tag="Snapshot")]
    lister, rec, mem = FakeLister(jobs), Recorder(), MemoryStore()
    lister.fail["Transcode"] = CIError(400, "InvalidArgument", "queueId is required", "rid-1")
    report = run(lister, rec, mem, tags=("Transcode", "Snapshot"))
    assert rec.written == [(jid(2), "Success")]
    [failure] = report.failures
    assert failure["Tag"] == "Transcode" and failure["QueueRequired"] and failure["Step"] == "list"
    assert failure["RequestId"] == "rid-1" and not failure["Retryable"]
    assert report.queue_required and report.as_dict()["hint"] == QUEUE_HINT
    lister.fail["Transcode"] = CIError(503, "ServiceUnavailable", "busy", retryable=True)
    report = run(lister, rec, mem, tags=("Transcode", "Snapshot"))
    assert report.failures[0]["Code"] == "ServiceUnavailable" and not report.queue_required


def test_each_tag_is_swept_per_queue_with_its_own_cursor() -> None:
    jobs = [job(1, T0 + 1, queue="pq1"), job(2, T0 + 1, queue="pq2"), job(3, T0 + 1, queue="pq3")]
    lister, rec, mem = FakeLister(jobs), Recorder(), MemoryStore()
    report = run(lister, rec, mem, queues=("pq1", "pq2"))
    assert sorted(j for j, _ in rec.written) == [jid(1), jid(2)]
    assert [(q.queue_id) for q in lister.queries] == ["pq1", "pq2"]
    assert {(c.tag, c.queue_id) for c in CursorStore(mem).status()} == {("Transcode", "pq1"), ("Transcode", "pq2")}
    assert [s.queue_id for s in report.streams] == ["pq1", "pq2"]


def test_max_pages_is_shared_in_turns_and_the_rest_waits_for_the_next_tick() -> None:
    jobs = [job(n, T0 + n) for n in range(6)] + [job(100 + n, T0 + n, tag="Snapshot") for n in range(6)]
    lister, rec, mem = FakeLister(jobs), Recorder(), MemoryStore()
    report = run(lister, rec, mem, tags=("Transcode", "Snapshot"), page_size=2, max_pages=3)
    assert report.stopped == "max_pages" and report.pages == 3
    assert [q.tag for q in lister.queries] == ["Transcode", "Snapshot", "Transcode"]
    for _ in range(3):
        run(lister, rec, mem, tags=("Transcode", "Snapshot"), page_size=2, max_pages=3)
    assert sorted(j for j, _ in rec.written) == sorted(j["JobId"] for j in jobs)
    assert len(rec.written) == len(jobs)  # the unfinished listing resumes: nothing listed twice


def test_the_deadline_stops_new_pages_and_the_next_tick_continues() -> None:
    jobs = [job(n, T0 + n) for n in range(10)]
    clock = Clock()
    lister, rec, mem = FakeLister(jobs), Recorder(), MemoryStore()

    def slow_write(js: list[dict[str, Any]], deadline: Deadline) -> list[str]:
        clock.t += 2.0
        return list(rec.write(js, deadline))

    report = sweep(["Transcode"], [], CursorStore(mem), lister, slow_write, rec.park, deadline=Deadline(5, clock),
                   since=T0, page_size=2, settle_s=10, reserve_s=1.0, now=lambda: NOW)
    assert report.stopped == "deadline" and report.pages == 2 and len(rec.written) == 4
    cursor = CursorStore(mem).load("Transcode")
    assert cursor is not None and cursor.resume is not None
    report = run(lister, rec, mem, page_size=2)
    assert sorted(j for j, _ in rec.written) == [jid(n) for n in range(10)] and len(rec.written) == 10


def test_a_refused_saved_token_falls_back_to_a_fresh_window() -> None:
    jobs = [job(n, T0 + n) for n in range(1, 4)]
    lister, rec, mem = FakeLister(jobs), Recorder(), MemoryStore()
    cs = CursorStore(mem)
    first = cs.advance("Transcode", None, None, Position(T0))
    cs.advance("Transcode", None, first, Position(T0), resume=Resume(T0 - 1, T0 + 99, "expired-token"))
    report = run(lister, rec, mem)
    assert report.failures == [] and sorted(j for j, _ in rec.written) == [jid(1), jid(2), jid(3)]
    assert [q.next_token for q in lister.queries] == ["expired-token", None]


def test_since_is_where_the_first_sweep_starts_and_is_pinned() -> None:
    jobs = [job(1, T0 - 100), job(2, T0 + 100)]
    lister, rec, mem = FakeLister(jobs), Recorder(), MemoryStore()
    run(lister, rec, mem, since=T0)
    run(lister, rec, mem, since=T0 - 1000)  # a later sweep keeps the stored cursor
    assert [j for j, _ in rec.written] == [jid(2)]


def test_cursor_store_failure_is_reported_per_stream() -> None:
    lister, rec, mem = FakeLister([job(1, T0 + 1, tag="Snapshot")]), Recorder(), MemoryStore()
    mem.fail["list"] = 1
    report = run(lister, rec, mem, tags=("Transcode", "Snapshot"))
    assert report.failures[0]["Step"] == "cursor" and report.failures[0]["Tag"] == "Transcode"
    assert rec.written == [(jid(1), "Success")]
    bad = run(lister, rec, mem, tags=("no/slash",))
    assert bad.failures[0]["Code"] == "BadCursorName"


@pytest.mark.parametrize("inclusive", [False, True])
def test_two_sweeps_at_once_lose_nothing(inclusive: bool) -> None:
    jobs = [job(n, T0 + 7) for n in range(30)] + [job(100 + n, T0 + n * 3, "Running") for n in range(40)]
    lister, rec, mem = FakeLister(jobs, inclusive), Recorder(), MemoryStore()
    barrier = threading.Barrier(2)

    def tick() -> None:
        barrier.wait()
        run(lister, rec, mem, page_size=7, max_pages=3)

    for _ in range(6):
        threads = [threading.Thread(target=tick) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert rec.handed() == {j["JobId"] for j in jobs}
    final = CursorStore(mem).load("Transcode")
    assert final is not None and final.position == Position(NOW - 10)


# -- against the emulator ----------------------------------------------------------------------------


@pytest.mark.parametrize("bounds", ["exclusive", "inclusive"])
def test_sweeps_against_the_emulator(emu: Emulator, bounds: str) -> None:
    emu.ci.list_bounds = bounds
    catalog = [{"job_id": jid(n), "tag": "Transcode", "created": T0 + 60, "state": "Success"} for n in range(30)]
    catalog += [{"job_id": jid(100 + n), "tag": t, "created": T0 + n * 7, "state": s}
                for n, (t, s) in enumerate([("Transcode", "Running"), ("Snapshot", "Failed")] * 20)]
    catalog += [{"job_id": jid(999), "tag": "Transcode", "created": T0 - 1, "state": "Success"}]
    emu.load_catalog(catalog)
    lister = JobLister(JobClient(Settings.from_env(emu.env()), lambda: Credentials("AKIDtest", "test-secret-key")))
    rec, mem = Recorder(), MemoryStore()
    for _ in range(8):
        sweep(["Transcode", "Snapshot"], [], CursorStore(mem), lister.list_page, rec.write, rec.park,
              deadline=Deadline.never(), since=T0, max_pages=3, settle_s=10, page_size=8, now=lambda: NOW)
    expected = {c["job_id"] for c in catalog} - {jid(999)}
    assert rec.handed() == expected
    assert len(rec.written) + len(rec.parked) == len(expected)  # exactly once
    assert {s for j, s in rec.written if j == jid(101)} == {"Failed"}


def test_resolve_since() -> None:
    assert resolve_since(None, T0 + 0.9, 3600) == T0 - 3600
    assert resolve_since(" ", T0, 60) == T0 - 60
    assert resolve_since(format_list_time(T0), 0) == T0
    assert resolve_since("2026-11-30T00:53:20Z", 0) == T0
    with pytest.raises(ValueError):
        resolve_since("2026-11-30T08:53:20", 0)
