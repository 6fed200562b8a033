"""Benchmark: discovery (``cijobs.discovery.sweep``) over a catalog of CI jobs, against the emulator.

Not a test. Starts ``python -m cijobs_tools emulator --latency-ms L`` in its own process and loads a
catalog (``POST /_emu/ci/catalog``): N jobs over 3 Tags created within one hour after ``since``, a share
of them still running (each turns terminal after 2 queries by ID), 30 jobs of one Tag sharing one
creation second across a page boundary (positions 985-1014 of that Tag, i.e. across the 10th/11th page),
and 50 jobs created before ``since`` (never to be handed over).

A *tick* here is what the timer tick will do once discovery is wired in: the sweep (list, write
terminal jobs, park the others in a ``PendingStore``), then the ordinary registry work (query the
pending IDs with ``JobClient``, write the finished ones, drop them from the registry). Sinks, registry
and cursors live in one in-memory create-if-absent store (``tests/fakes/discovery.py``, MemoryStore); a
result is stored with create-if-absent under its JobId, so a second write of a job is counted
(``handed twice``) but cannot make a second result.

Scenarios, each on a fresh catalog and store, ticks until nothing is pending and the sweep is idle:

* ``clean``: one tick at a time;
* ``cut``: the first tick dies in the middle of its 3rd page (the write raises after half the jobs, as a
  crashed process would), the second tick's deadline leaves room for only a few pages, then ordinary ticks;
* ``concurrent``: every round starts two ticks together (two threads, one barrier).

For each: lost (expected jobs without a result), duplicated (jobs written with two different states, i.e.
two different results), wrong final state, created before ``since`` but written, handed twice (the same
write repeated, which create-if-absent results make harmless), ticks; for ``clean`` also the sweep's jobs/s
against the list floor (list pages x latency: the pages are sequential) and CI requests per job (list
pages, and the whole run with ID queries).

Usage: python bench/discover.py [--n 5000] [--running 0.2] [--latency-ms 20] [--bounds exclusive|inclusive]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import emulator_process  # noqa: E402 - bench/emulator_process.py, next to this script
from cijobs import log  # noqa: E402
from cijobs.ci_client import JobClient  # noqa: E402
from cijobs.ci_list import JobLister  # noqa: E402
from cijobs.credentials import Credentials  # noqa: E402
from cijobs.deadline import Deadline  # noqa: E402
from cijobs.discovery import SOURCE, SweepReport, sweep  # noqa: E402
from cijobs.discovery_cursor import CursorStore  # noqa: E402
from cijobs.pending import PendingStore  # noqa: E402
from cijobs.settings import Settings  # noqa: E402
from emulator_process import free_port  # noqa: E402
from fakes.discovery import MemoryStore  # noqa: E402

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"
SECRET_ID = "AKIDbenchDISCOVER"
SECRET_KEY = "bench-secret-key"
TAGS = ("Transcode", "Snapshot", "SuperResolution")
TERMINAL = frozenset({"Success", "Failed", "Cancel"})


class Crash(Exception):
    """Stands for the process dying in the middle of a page."""


def catalog(n: int, running: float, since: int, seed: int = 7) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The jobs to load and, for every job that must end up written, its final state."""
    rng = random.Random(seed)
    jobs: list[dict[str, Any]] = []
    for i in range(n):
        state = "Running" if rng.random() < running else rng.choice(["Success", "Success", "Failed", "Cancel"])
        jobs.append({"job_id": f"j{i:032x}", "tag": TAGS[i % 3], "created": since + rng.randrange(0, 3600),
                     "state": state, "final_state": rng.choice(["Success", "Failed"]), "finish_after": 2})
    first = sorted((j for j in jobs if j["tag"] == TAGS[0]), key=lambda j: (j["created"], j["job_id"]))
    shared = first[985]["created"]
    for j in first[985:1015]:  # 30 jobs in one second across the 10th/11th page boundary
        j["created"] = shared
    expected = {j["job_id"]: (j["state"] if j["state"] in TERMINAL else j["final_state"]) for j in jobs}
    for i in range(50):
        jobs.append({"job_id": f"b{i:032x}", "tag": TAGS[i % 3], "created": since - 1 - i, "state": "Success"})
    return jobs, expected


class Results:
    """Result objects with create-if-absent semantics: one per JobId."""

    def __init__(self) -> None:
        self.stored: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        self.states: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def write(self, jobs: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            for j in jobs:
                self.attempts[j["JobId"]] = self.attempts.get(j["JobId"], 0) + 1
                self.states.setdefault(j["JobId"], set()).add(j["State"])
                self.stored.setdefault(j["JobId"], j["State"])


class World:
    def __init__(self, url: str, since: int, crash_page: Optional[int] = None) -> None:
        settings = Settings(ci_bucket=BUCKET, ci_region=REGION, ci_endpoint=url, ci_concurrency=16)
        creds = Credentials(SECRET_ID, SECRET_KEY)
        self.lister = JobLister(settings, credentials=lambda: creds)
        self.client = JobClient(settings, credentials=lambda: creds)
        self.store = MemoryStore("bench")
        self.pending = PendingStore(self.store, concurrency=16)
        self.results = Results()
        self.since = since
        self.crash_page = crash_page
        self.pages_written = 0
        self.sweep_s = 0.0
        self.reports: list[SweepReport] = []
        self._lock = threading.Lock()

    def write_terminal(self, jobs: list[dict[str, Any]], deadline: Deadline) -> list[str]:
        with self._lock:
            self.pages_written += 1
            crash = self.crash_page is not None and self.pages_written == self.crash_page
        if crash:
            self.crash_page = None
            self.results.write(jobs[: len(jobs) // 2])
            raise Crash
        self.results.write(jobs)
        return []

    def park(self, ids: list[str], states: Mapping[str, str], deadline: Deadline) -> list[str]:
        failed = self.pending.add(ids, now=time.time(), source=SOURCE, deadline=deadline)
        return [f.job_id for f in failed]

    def tick(self, deadline_s: float = 60.0, max_pages: int = 50) -> Optional[SweepReport]:
        deadline = Deadline(deadline_s)
        t0 = time.perf_counter()
        try:
            report = sweep(list(TAGS), [], CursorStore(self.store), self.lister.list_page, self.write_terminal,
                           self.park, deadline=deadline, since=self.since, max_pages=max_pages, settle_s=10,
                           reserve_s=0.05)
        except Crash:
            return None
        with self._lock:
            self.sweep_s += time.perf_counter() - t0
            self.reports.append(report)
        ids = self.pending.list_ids()
        if ids:
            result = self.client.query(ids)
            done = [j for j in result.jobs if j.get("State") in TERMINAL]
            self.results.write(done)
            self.pending.remove([j["JobId"] for j in done])
        return report

    def idle(self, report: Optional[SweepReport]) -> bool:
        return (report is not None and report.discovered == 0 and report.stopped is None
                and not report.failures and not self.pending.list_ids())


def control(url: str, path: str, body: dict[str, Any]) -> Any:
    r = requests.post(f"{url}/_emu/{path}", data=json.dumps(body), timeout=30)
    r.raise_for_status()
    return r.json()


def ci_requests(url: str) -> int:
    return int(requests.get(f"{url}/_emu/stats", timeout=5).json().get("ci.requests", 0))


def scenario(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    since = int(time.time()) - 3600 - 60
    jobs, expected = catalog(args.n, args.running, since)
    control(url, "reset", {})
    control(url, "ci/config", {"list_bounds": args.bounds})
    control(url, "ci/catalog", {"jobs": jobs})
    world = World(url, since, crash_page=3 if name == "cut" else None)
    before = ci_requests(url)
    t0 = time.perf_counter()
    ticks = 0
    if name == "cut":
        world.tick()  # dies in its 3rd page
        world.tick(deadline_s=0.25)  # the deadline allows a few pages only
        ticks = 2
    for _ in range(40):
        ticks += 1
        if name == "concurrent":
            barrier = threading.Barrier(2)
            out: list[Optional[SweepReport]] = [None, None]

            def run(i: int, barrier: threading.Barrier = barrier, out: list[Optional[SweepReport]] = out) -> None:
                barrier.wait()
                out[i] = world.tick()

            threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if all(world.idle(r) for r in out):
                break
        elif world.idle(world.tick()):
            break
    wall = time.perf_counter() - t0
    stored = world.results.stored
    pages = sum(r.pages for r in world.reports)
    discovered = sum(r.discovered for r in world.reports)
    return {
        "scenario": name, "ticks": ticks, "expected": len(expected),
        "lost": len(set(expected) - set(stored)),
        # two different results for one job (written with two states); a repeat of the same write is
        # idempotent and only counted in handed_twice
        "duplicated": sum(1 for s in world.results.states.values() if len(s) > 1),
        "wrong_state": sum(1 for j, s in stored.items() if j in expected and expected[j] != s),
        "before_since_written": sum(1 for j in stored if j.startswith("b")),
        "handed_twice": sum(1 for n in world.results.attempts.values() if n > 1),
        "deadline_stops": sum(1 for r in world.reports if r.stopped == "deadline"),
        "discovered": discovered, "pages": pages, "sweep_s": round(world.sweep_s, 3), "wall_s": round(wall, 3),
        "ci_requests": ci_requests(url) - before,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--running", type=float, default=0.2)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--bounds", choices=("exclusive", "inclusive"), default="exclusive")
    args = p.parse_args()
    log.configure("error", stream=sys.stderr)
    port = free_port()
    proc = emulator_process.start_emulator(port, SECRET_ID, SECRET_KEY, "--latency-ms", str(args.latency_ms))
    url = f"http://127.0.0.1:{port}"
    try:
        rows = [scenario(name, url, args) for name in ("clean", "cut", "concurrent")]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"discovery: {args.n} jobs over {len(TAGS)} tags, {args.running:.0%} running, "
          f"latency {args.latency_ms:g} ms, {args.bounds} bounds")
    for r in rows:
        print(f"  {r['scenario']:<10} ticks {r['ticks']:>2}  lost {r['lost']}  duplicated {r['duplicated']}  "
              f"wrong state {r['wrong_state']}  before since {r['before_since_written']}  "
              f"handed twice {r['handed_twice']}  deadline stops {r['deadline_stops']}  pages {r['pages']}  "
              f"CI requests {r['ci_requests']}")
    clean = rows[0]
    floor = clean["pages"] * args.latency_ms / 1000
    print(f"  clean sweep: {clean['discovered']} jobs in {clean['sweep_s']:.2f} s = "
          f"{clean['discovered'] / clean['sweep_s']:.0f} jobs/s; list floor {clean['pages']} pages x "
          f"{args.latency_ms:g} ms = {floor:.2f} s ({clean['discovered'] / floor:.0f} jobs/s); "
          f"list requests/job {clean['pages'] / clean['discovered']:.4f}; all CI requests/job "
          f"{clean['ci_requests'] / clean['expected']:.3f}")
    bad = [r for r in rows if r["lost"] or r["duplicated"] or r["wrong_state"] or r["before_since_written"]]
    if bad:
        raise SystemExit(f"FAILED: {bad}")


if __name__ == "__main__":
    main()
