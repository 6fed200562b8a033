"""Benchmark: discovery through the real timer tick (``build_app`` with ``DISCOVER_*``), against the emulator.

Not a test. Starts ``python -m cijobs_tools emulator --latency-ms L`` in its own process and loads a
catalog (``POST /_emu/ci/catalog``): N jobs over 3 Tags created within one hour after ``since``, a share
of them still running (each turns terminal after 2 queries by ID), 30 jobs of one Tag sharing one
creation second across a page boundary (positions 985-1014 of that Tag, i.e. across the 10th/11th page),
and 50 jobs created before ``since`` (never to be handed over).

A *tick* is the function's own: ``cijobs.app.build_app`` with ``DISCOVER_TAGS`` (the 3 tags),
``DISCOVER_SINCE`` (``since``), ``DISCOVER_SETTLE_S=10``, ``DISCOVER_MAX_PAGES`` (``--max-pages``), a file
result sink and a file pending registry (both create-if-absent), called with a timer event and a context
whose ``time_limit_in_ms`` is the tick's budget: the sweep (list, write finished jobs, park the others),
then the registry work (query the parked IDs, write the finished ones). One app per "container"; an app is
built once and reused by its ticks, as a warm container is.

Scenarios, each on a fresh catalog and fresh stores, ticks until nothing is pending and the sweep is idle:

* ``clean``: one container, one tick at a time;
* ``cut``: the first tick dies in the middle of its 3rd page (the sink's write raises after half the jobs,
  as a crashed process would), the next container's first tick has a deadline that ends mid-sweep
  (``--cut-limit-ms``), then ordinary ticks;
* ``concurrent``: two containers; every round starts a tick in each together (two threads, one barrier).

For each: lost (expected jobs without a result object), duplicated (a job written with two different states,
or two result objects), wrong final state, created before ``since`` but written, handed twice (a job in
"written" outcomes of two ticks: the second write finds the object there, create-if-absent), ticks, sweeps
stopped by the deadline; for ``clean`` also the first tick's sweep rate (jobs/s) against the list floor
(list pages x latency: a stream's pages are sequential) and CI requests per job (list pages, and the whole
run with ID queries).

Usage: python bench/discover.py [--n 5000] [--running 0.2] [--latency-ms 20] [--bounds exclusive|inclusive]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any, Optional

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))

import emulator_process  # noqa: E402 - bench/emulator_process.py, next to this script
from cijobs import log  # noqa: E402
from cijobs.app import App, build_app  # noqa: E402
from cijobs.ci_list import format_list_time  # noqa: E402
from emulator_process import free_port  # noqa: E402

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"
SECRET_ID = "AKIDbenchDISCOVER"
SECRET_KEY = "bench-secret-key"
TAGS = ("Transcode", "Snapshot", "SuperResolution")
TERMINAL = frozenset({"Success", "Failed", "Cancel"})


class Crash(BaseException):
    """Stands for the process dying in the middle of a page (a BaseException: nothing in the tick catches it)."""


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


class World:
    """The stores (a temporary directory: results and registry) and the containers (apps) of one scenario."""

    def __init__(self, url: str, since: int, max_pages: int, store: str = "file") -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="bench-discover-")
        self.url, self.store = url, store
        base = f"file://{self.dir.name}" if store == "file" else f"cos://{BUCKET}.{REGION}"
        self.env = {
            "CI_ENDPOINT": url, "COS_ENDPOINT": url, "CI_BUCKET": BUCKET, "CI_REGION": REGION,
            "TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY, "LOG_LEVEL": "error",
            "RESULT_SINK": f"{base}/results", "PENDING_STORE": f"{base}/pending",
            "DISCOVER_TAGS": ",".join(TAGS), "DISCOVER_SINCE": format_list_time(since), "DISCOVER_SETTLE_S": "10",
            "DISCOVER_MAX_PAGES": str(max_pages),
        }
        self.written: Counter[str] = Counter()  # JobId -> ticks whose outcomes say "written"
        self.already = 0  # "written" outcomes whose object was already there (create-if-absent)
        self.states: dict[str, set[str]] = {}
        self.sweeps: list[dict[str, Any]] = []
        self.sweep_s: list[float] = []
        self._lock = threading.Lock()
        self._n = 0

    def container(self, crash_page: Optional[int] = None) -> App:
        """A cold start: ``build_app`` from the environment. ``crash_page``: the sink's write of that page
        (1-based, counting this container's writes) stores half of the jobs and raises :class:`Crash`."""
        app = build_app(self.env, log_stream=sys.stderr)
        sink, sweep = app.pipeline.sink, app.pipeline.sweep
        assert sweep is not None
        if crash_page is not None:
            calls = [0]
            write = sink.write

            def crashing_write(jobs: Any, deadline: Any = None) -> Any:
                calls[0] += 1
                if calls[0] == crash_page:
                    write(list(jobs)[: len(jobs) // 2], deadline)
                    raise Crash
                return write(jobs, deadline)

            sink.write = crashing_write  # type: ignore[method-assign]

        def timed_sweep(run: Any) -> None:
            t0 = time.perf_counter()
            try:
                sweep(run)
            finally:
                with self._lock:
                    self.sweep_s.append(time.perf_counter() - t0)

        app.pipeline.sweep = timed_sweep
        return app

    def tick(self, app: App, limit_ms: int = 60_000) -> Optional[dict[str, Any]]:
        with self._lock:
            self._n += 1
            n = self._n
        event = {"Type": "Timer", "TriggerName": "bench", "Time": "2026-12-04T00:05:00Z"}
        context = {"time_limit_in_ms": limit_ms, "request_id": f"bench-{n}", "function_name": "cijobs"}
        try:
            response: dict[str, Any] = app(event, context)
        except Crash:
            return None
        with self._lock:
            for o in response.get("Outcomes", []):
                if o["Outcome"] == "written":
                    self.written[o["JobId"]] += 1
                    self.already += bool(o.get("Already"))
                    self.states.setdefault(o["JobId"], set()).add(o.get("State", "?"))
            if response.get("Discovery") is not None:
                self.sweeps.append(response["Discovery"])
        return response

    def results(self) -> dict[str, list[str]]:
        """JobId -> the states of its result objects in the sink."""
        out: dict[str, list[str]] = {}
        if self.store == "cos":
            r = requests.get(f"{self.url}/_emu/cos/objects", params={"bucket": BUCKET, "prefix": "results/"},
                             timeout=60)
            r.raise_for_status()
            for obj in r.json()["objects"]:
                if "/_index/" in obj["key"]:
                    continue
                h = {k.lower(): v for k, v in obj["headers"].items()}
                out.setdefault(h["x-cos-meta-jobid"], []).append(h["x-cos-meta-state"])
            return out
        root = os.path.join(self.dir.name, "results")
        for dirpath, _, files in os.walk(root):
            if "_index" in dirpath:
                continue
            for f in files:
                if f.endswith(".json"):
                    with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                        doc = json.load(fh)
                    out.setdefault(doc["JobId"], []).append(doc["State"])
        return out

    def pending(self) -> list[str]:
        if self.store == "cos":
            r = requests.get(f"{self.url}/_emu/cos/objects", params={"bucket": BUCKET, "prefix": "pending/"},
                             timeout=60)
            r.raise_for_status()
            return [o["key"] for o in r.json()["objects"] if o["key"].rsplit("/", 1)[-1].startswith("j")]
        root = os.path.join(self.dir.name, "pending")
        return [f for _, _, files in os.walk(root) for f in files if f.startswith("j")]


def idle(response: Optional[dict[str, Any]]) -> bool:
    if response is None:
        return False
    d = response.get("Discovery") or {}
    return (d.get("discovered") == 0 and d.get("stopped") is None and not d.get("failures")
            and not any(o["Outcome"] == "pending" for o in response.get("Outcomes", [])))


def control(url: str, path: str, body: dict[str, Any]) -> Any:
    r = requests.post(f"{url}/_emu/{path}", data=json.dumps(body), timeout=30)
    r.raise_for_status()
    return r.json()


def ci_stats(url: str) -> dict[str, Any]:
    return dict(requests.get(f"{url}/_emu/stats", timeout=5).json())


def scenario(name: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    since = int(time.time()) - 3600 - 60
    jobs, expected = catalog(args.n, args.running, since)
    control(url, "reset", {})
    control(url, "ci/config", {"list_bounds": args.bounds})
    control(url, "ci/catalog", {"jobs": jobs})
    world = World(url, since, args.max_pages, args.store)
    before = ci_stats(url)
    t0 = time.perf_counter()
    ticks = 0
    first: Optional[dict[str, Any]] = None
    if name == "cut":
        world.tick(world.container(crash_page=3))  # dies in its 3rd page
        app = world.container()
        world.tick(app, limit_ms=args.cut_limit_ms)  # the deadline ends the sweep mid-way
        ticks = 2
        apps = [app]
    else:
        apps = [world.container()] * (2 if name == "concurrent" else 1)
        if name == "concurrent":
            apps = [world.container(), world.container()]
    for _ in range(40):
        ticks += 1
        if name == "concurrent":
            barrier = threading.Barrier(2)
            out: list[Optional[dict[str, Any]]] = [None, None]

            def run(i: int, barrier: threading.Barrier = barrier, out: list[Optional[dict[str, Any]]] = out
                    ) -> None:
                barrier.wait()
                out[i] = world.tick(apps[i])

            threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if all(idle(r) for r in out):
                break
        else:
            response = world.tick(apps[0])
            first = first or response
            if idle(response):
                break
    wall = time.perf_counter() - t0
    after = ci_stats(url)
    stored = world.results()
    pages = sum(int(d.get("pages") or 0) for d in world.sweeps)
    first_sweep = (first or {}).get("Discovery") or {}
    row = {
        "scenario": name, "ticks": ticks, "expected": len(expected),
        "lost": len(set(expected) - set(stored)),
        "duplicated": sum(1 for j, st in stored.items() if len(st) > 1)
        + sum(1 for st in world.states.values() if len(st) > 1),
        "wrong_state": sum(1 for j, st in stored.items() if j in expected and st != [expected[j]]),
        "before_since_written": sum(1 for j in stored if j.startswith("b")),
        "handed_twice": sum(1 for n in world.written.values() if n > 1),
        "already": world.already,
        "deadline_stops": sum(1 for d in world.sweeps if d.get("stopped") == "deadline"),
        "still_pending": len(world.pending()),
        "discovered": sum(int(d.get("discovered") or 0) for d in world.sweeps), "pages": pages,
        "wall_s": round(wall, 3),
        "ci_requests": int(after.get("ci.requests", 0)) - int(before.get("ci.requests", 0)),
        "first_discovered": int(first_sweep.get("discovered") or 0), "first_pages": int(first_sweep.get("pages") or 0),
        "first_sweep_s": world.sweep_s[0] if world.sweep_s else 0.0,
        "first_stopped": first_sweep.get("stopped"),
    }
    world.dir.cleanup()
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--running", type=float, default=0.2)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--bounds", choices=("exclusive", "inclusive"), default="exclusive")
    p.add_argument("--max-pages", type=int, default=100, help="DISCOVER_MAX_PAGES")
    p.add_argument("--cut-limit-ms", type=int, default=2400,
                   help="the cut scenario's second tick: time_limit_in_ms (the deadline is that minus "
                        "min(DEADLINE_MARGIN_S, half of it), and the sweep keeps >= 1 s for its last page)")
    p.add_argument("--store", choices=("file", "cos"), default="file",
                   help="results and registry: file:// in a temporary directory, or cos:// on the emulator")
    p.add_argument("--scenarios", default="clean,cut,concurrent")
    args = p.parse_args()
    log.configure("error", stream=sys.stderr)
    port = free_port()
    proc = emulator_process.start_emulator(port, SECRET_ID, SECRET_KEY, "--latency-ms", str(args.latency_ms))
    url = f"http://127.0.0.1:{port}"
    load0 = os.getloadavg()
    try:
        rows = [scenario(name, url, args) for name in args.scenarios.split(",")]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    load1 = os.getloadavg()
    print(f"discovery (real timer tick, build_app): {args.n} jobs over {len(TAGS)} tags, {args.running:.0%} running, "
          f"latency {args.latency_ms:g} ms, {args.bounds} bounds, DISCOVER_MAX_PAGES {args.max_pages}, "
          f"{args.store} sink and registry")
    for r in rows:
        print(f"  {r['scenario']:<10} ticks {r['ticks']:>2}  lost {r['lost']}  duplicated {r['duplicated']}  "
              f"wrong state {r['wrong_state']}  before since {r['before_since_written']}  "
              f"handed twice {r['handed_twice']} (already there {r['already']})  deadline stops {r['deadline_stops']}  "
              f"still pending {r['still_pending']}  pages {r['pages']}  CI requests {r['ci_requests']}  "
              f"wall {r['wall_s']:.2f} s")
    clean = next((r for r in rows if r["scenario"] == "clean"), None)
    if clean is not None and clean["first_sweep_s"] > 0 and clean["first_pages"]:
        floor = clean["first_pages"] * args.latency_ms / 1000
        jobs = clean["first_discovered"]
        print(f"  clean, first tick's sweep: {jobs} jobs in {clean['first_pages']} pages, "
              f"{clean['first_sweep_s']:.2f} s = {jobs / clean['first_sweep_s']:.0f} jobs/s"
              f"{' (stopped: ' + str(clean['first_stopped']) + ')' if clean['first_stopped'] else ''}; "
              f"list floor {clean['first_pages']} pages x {args.latency_ms:g} ms = {floor:.2f} s "
              f"({jobs / floor:.0f} jobs/s) -> {floor / clean['first_sweep_s']:.0%} of the floor rate; "
              f"list requests/job {clean['pages'] / max(1, clean['discovered']):.4f}; all CI requests/job "
              f"{clean['ci_requests'] / clean['expected']:.3f}")
    print(f"  load average {load0[0]:.2f} before, {load1[0]:.2f} after; {os.cpu_count()} CPUs")
    bad = [r for r in rows if r["lost"] or r["duplicated"] or r["wrong_state"] or r["before_since_written"]
           or r["still_pending"]]
    if bad:
        raise SystemExit(f"FAILED: {bad}")


if __name__ == "__main__":
    main()
