"""Soak: thousands of pending jobs through timer ticks against a faulty emulator; nothing lost or duplicated.

    python bench/soak.py                 # every phase: cos, cmq, slow-stores, rate-capped
    python bench/soak.py --jobs 500 --cmq-jobs 200 --unknown 50
    python bench/soak.py --phase slow-stores            # one phase alone (repeat --phase for several)

Phases:

* ``cos`` (10,000 jobs + 300 unknown IDs) and ``cmq`` (2,000 jobs): the fault mix below, SCF limit 60 s.
* ``slow-stores`` (``--slow-jobs``, default 100 + 6 unknown, at most ``--slow-ticks`` 20 ticks): every COS
  request (results and the pending registry) answered ``--slow-cos-ms`` (2,000 ms) late, SCF limit 10 s:
  every invocation must return before its time limit (``max overrun`` = the longest invocation minus the
  limit, measured around the call: must be <= 0).
* ``rate-capped`` (``--capped-jobs``, default 500 + 15 unknown): the emulator caps CI at ``--ci-max-rps``
  (default 5) and COS at ``--cos-max-rps`` (default 50) requests a second per account, answering the excess
  with 503 SlowDown or 429 RequestLimitExceeded, SCF limit 10 s.

* The emulator runs in its own process (``python -m cijobs emulator``), driven through ``/_emu``:
  20 ms latency, 20 % 5xx (COS: half of them ``SlowDown``), 2 % connection resets, 1 % truncated
  bodies, on the CI side AND the COS side (results and the pending registry) AND the CMQ side.
* The function runs in a child process that does nothing else (``main_handler`` with a fake SCF context,
  ``time_limit_in_ms`` 60,000), so its ``ru_maxrss`` is the function's peak RSS.
* Jobs are registered with ``POST /jobs/track`` (100 IDs an event, the default MAX_IDS_PER_REQUEST; IDs the
  registry could not take are sent again, like a client seeing 207), each finishes after a random number of
  queries (1-5) in a random terminal state; a few hundred IDs are unknown to CI. Then registry-only timer
  ticks run until everything is accounted for (at most ``--max-ticks``).
* Checks at the end (through ``/_emu``): every job has exactly one result object with its final state (one
  stored body; ``duplicated`` counts objects stored with two different bodies), every unknown ID was reported
  ``nonexistent``, the registry is empty, no ID unaccounted for. CMQ phase: distinct (JobId, State) messages
  == jobs finished (at least once: duplicates are allowed and counted).

Each phase prints one line ``soak: phase <name>: jobs=... lost=... duplicated=... max_overrun_s=...``.
The last line is ``soak: jobs=... ticks=... requests=... retries=... lost=... duplicated=... peak_rss_mb=...
wall_s=...``; the exit status is 1 when anything was lost or duplicated.
``retries`` counts the requests the emulator answered with an injected fault (each one was retried by the
client, or its IDs by a later tick).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "lib")
BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
SECRET_ID, SECRET_KEY = "AKIDsoaktest", "soak-secret-key-value"
API_TOKEN = "soak-api-token-01234"
TERMINAL = ("Success", "Failed", "Cancel")
FAULTS = {"latency_ms": 20, "fail_rate": 0.2, "reset_rate": 0.02, "truncate_rate": 0.01}
COS_FAULTS = {"fail_rate": 0.1, "slowdown_rate": 0.1}  # COS: 20 % = 10 % 5xx + 10 % SlowDown
TRACK_BATCH = 100
SLOW_COS_MS = 2000
SHORT_LIMIT_MS = 10_000
PHASES = ("cos", "cmq", "slow-stores", "rate-capped")

Invoke = Callable[[dict[str, Any]], tuple[Any, Optional[str]]]  # event -> (result or summary, error type)


def job_ids(n: int, prefix: str) -> list[str]:
    """Well-formed job IDs: ``prefix`` (one letter + digits) padded to 33 characters."""
    return [f"{prefix}{i:0{32 - len(prefix) + 1}x}" for i in range(n)]


def function_env(url: str, result_sink: str) -> dict[str, str]:
    return {
        "CI_BUCKET": BUCKET, "CI_REGION": REGION, "CI_ENDPOINT": url, "COS_ENDPOINT": url, "CMQ_ENDPOINT": url,
        "RESULT_SINK": result_sink, "PENDING_STORE": f"cos://{BUCKET}.{REGION}/state",
        "TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
        "API_TOKEN": API_TOKEN, "LOG_LEVEL": "warning", "HTTP_READ_TIMEOUT_S": "5",
    }


def track_event(ids: list[str]) -> dict[str, Any]:
    return {"httpMethod": "POST", "path": "/jobs/track", "headers": {"authorization": f"Bearer {API_TOKEN}",
            "content-type": "application/json"}, "queryStringParameters": {}, "isBase64Encoded": False,
            "body": json.dumps({"JobIds": ids})}


TIMER_EVENT = {"Type": "Timer", "TriggerName": "poll-pending", "Time": "2026-01-01T00:00:00Z", "Message": "soak"}


# -- the emulator, through its control API ------------------------------------------------------------

class Control:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def get(self, path: str, **params: str) -> Any:
        r = self.http.get(f"{self.url}/_emu/{path}", params=params, timeout=60)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        r = self.http.post(f"{self.url}/_emu/{path}", json=dict(body), timeout=60)
        r.raise_for_status()
        return r.json()

    def body(self, key: str) -> bytes:
        r = self.http.get(f"{self.url}/_emu/cos/object", params={"bucket": BUCKET, "key": key}, timeout=60)
        r.raise_for_status()
        return r.content

    def set_faults(self) -> None:
        self.post("faults", FAULTS)
        self.post("faults/cos", COS_FAULTS)

    def clear_faults(self) -> None:
        self.post("faults", {k: 0 for k in FAULTS})
        self.post("faults/cos", {k: 0 for k in COS_FAULTS})

    def stats(self) -> tuple[int, int]:
        s = self.get("stats")
        requests_ = sum(v for k, v in s.items() if k.endswith(".requests") and isinstance(v, int))
        return requests_, sum(s.get("faults.injected", {}).values())


# -- one phase ------------------------------------------------------------------------------------------

@dataclass
class Report:
    jobs: int = 0
    ticks: int = 0
    raised: int = 0
    track_invocations: int = 0
    track_resent: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    rewritten: int = 0  # objects PUT more than once with the same body (harmless)
    unaccounted: list[str] = field(default_factory=list)
    tick_s: list[float] = field(default_factory=list)
    messages: int = 0
    distinct_messages: int = 0
    finished: int = 0
    invoke_s: list[float] = field(default_factory=list)  # every invocation's duration (track and timer)

    def max_overrun_s(self, limit_s: float) -> float:
        """The longest invocation minus the time limit (<= 0: every one returned in time)."""
        return max(self.invoke_s, default=0.0) - limit_s


def timed(invoke: Invoke, report: Report) -> Invoke:
    """``invoke``, recording each call's duration (around the call: a little more than the function's own)."""
    def run(event: dict[str, Any]) -> tuple[Any, Optional[str]]:
        started = time.monotonic()
        try:
            return invoke(event)
        finally:
            report.invoke_s.append(time.monotonic() - started)
    return run


def register(invoke: Invoke, ids: list[str], report: Report, max_rounds: int = 20) -> None:
    """POST /jobs/track in batches; IDs reported failed (registry unavailable) are sent again."""
    todo = list(ids)
    for _ in range(max_rounds):
        again: list[str] = []
        for start in range(0, len(todo), TRACK_BATCH):
            batch = todo[start:start + TRACK_BATCH]
            resp, err = invoke(track_event(batch))
            report.track_invocations += 1
            if err is not None or not isinstance(resp, dict):
                again.extend(batch)
                continue
            body = json.loads(resp["body"])
            done = {o["JobId"] for o in body.get("Outcomes", []) if o.get("Outcome") == "pending"}
            again.extend(i for i in batch if i not in done)
        report.track_resent += len(again)
        if not again:
            return
        todo = again
    raise RuntimeError(f"{len(todo)} IDs could not be registered after {max_rounds} rounds")


def run_phase(control: Control, invoke: Invoke, n_jobs: int, n_unknown: int, max_ticks: int, seed: int,
              sink: str, log: Callable[[str], None] = print, max_finish: int = 5,
              faults: Optional[Callable[[Control], None]] = None,
              clear: Optional[Callable[[Control], None]] = None, faults_after_register: bool = False) -> Report:
    """Register, tick until done, check. ``sink`` is ``cos`` or ``cmq``; a job finishes after
    1..``max_finish`` queries. ``faults``/``clear`` replace the soak's fault mix (``Control.set_faults``);
    ``faults_after_register`` turns them on only once every ID is registered."""
    rng = random.Random(seed)
    report = Report(jobs=n_jobs + n_unknown)
    invoke = timed(invoke, report)
    known = job_ids(n_jobs, "j" if sink == "cos" else "k")
    unknown = job_ids(n_unknown, "n")
    final = {j: rng.choice(TERMINAL) for j in known}
    tags = {j: rng.choice(("Transcode", "Snapshot", "Animation", "Concat")) for j in known}
    for start in range(0, n_jobs, 1000):
        control.post("ci/jobs", {"jobs": [
            {"job_id": j, "tag": tags[j], "state": rng.choice(("Submitted", "Running")),
             "finish_after": rng.randint(1, max_finish), "final_state": final[j]} for j in known[start:start + 1000]]})
    def apply() -> None:
        if faults is not None:
            faults(control)
        else:
            control.set_faults()

    if not faults_after_register:
        apply()
    everything = known + unknown
    rng.shuffle(everything)
    t0 = time.monotonic()
    register(invoke, everything, report)
    if faults_after_register:
        apply()
    log(f"soak: registered {len(everything)} IDs in {time.monotonic() - t0:.1f} s "
        f"({report.track_invocations} track invocations, {report.track_resent} IDs sent again)")

    outcome: dict[str, str] = {}
    for tick in range(1, max_ticks + 1):
        started = time.monotonic()
        summary, err = invoke(dict(TIMER_EVENT))
        report.tick_s.append(time.monotonic() - started)
        report.ticks = tick
        if err is not None:
            report.raised += 1  # SCF would retry the event; the next tick is that retry
        for o in (summary or {}).get("Outcomes", []):
            if o["Outcome"] in ("written", "nonexistent", "invalid") or (
                    o["Outcome"] == "failed" and not o.get("Retryable")):
                outcome.setdefault(o["JobId"], o["Outcome"] if o["Outcome"] != "written" else
                                   f"written:{o.get('State')}")
        left = len(control.get("cos/objects", bucket=BUCKET, prefix="state/.pending/")["objects"])
        counts = (summary or {}).get("Counts", {})
        log(f"soak: tick {tick}: {report.tick_s[-1]:.1f} s, {counts}{' (raised ' + err + ')' if err else ''}, "
            f"{left} still registered")
        if left == 0 and len(outcome) >= len(everything):
            break

    if clear is not None:
        clear(control)
    else:
        control.clear_faults()
    check(control, report, known, unknown, final, tags, outcome, sink)
    return report


def check(control: Control, report: Report, known: list[str], unknown: list[str], final: dict[str, str],
          tags: dict[str, str], outcome: dict[str, str], sink: str) -> None:
    for j in unknown:
        if outcome.get(j) != "nonexistent":
            report.unaccounted.append(j)
    for j in known:
        if not str(outcome.get(j, "")).startswith("written:"):
            report.unaccounted.append(j)
    left = [o["key"] for o in control.get("cos/objects", bucket=BUCKET, prefix="state/.pending/")["objects"]]
    report.unaccounted.extend(k.rsplit("/", 1)[1][:-5] for k in left)
    report.finished = len(known)
    if sink == "cmq":
        msgs = control.get("cmq/messages", name="results")["messages"]
        seen = set()
        for m in msgs:
            doc = json.loads(m["body"])
            seen.add((doc.get("JobId"), doc.get("State")))
        expected = {(j, final[j]) for j in known}
        report.messages, report.distinct_messages = len(msgs), len(seen & expected)
        report.lost = sorted(j for j, s in expected - seen)
        report.duplicated = sorted(f"{j}:{s}" for j, s in seen - expected)  # a message with a wrong state
        return
    objects = {o["key"]: o for o in control.get("cos/objects", bucket=BUCKET, prefix="results/")["objects"]}
    for o in objects.values():
        if len(set(o["body_md5s"])) > 1:
            report.duplicated.append(o["key"])
        elif o["puts"] > 1:
            report.rewritten += 1
    keys = {j: f"results/{tags[j]}/{j}.json" for j in known}

    def verify(j: str) -> Optional[str]:
        if keys[j] not in objects:
            return j
        doc = json.loads(control.body(keys[j]))
        return None if doc.get("JobId") == j and doc.get("State") == final[j] else j

    with ThreadPoolExecutor(max_workers=8) as pool:
        report.lost = sorted(j for j in pool.map(verify, known) if j is not None)
    stray = set(objects) - set(keys.values())
    report.duplicated.extend(sorted(stray))  # an object nobody should have written


# -- the function's own process ------------------------------------------------------------------------

def _worker(conn: Any, env: dict[str, str], log_path: str, time_limit_ms: int = 60000) -> None:
    """Child process: runs only main_handler; stdout (the function's log) goes to ``log_path``."""
    import resource

    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.environ.update(env)
    sys.path.insert(0, os.path.join(ROOT, "handler"))
    sys.path.insert(0, LIB)
    import index  # type: ignore[import-not-found]

    context = {"memory_limit_in_mb": 128, "time_limit_in_ms": time_limit_ms, "function_name": "cijobs",
               "namespace": "default", "function_version": "$LATEST"}
    n = 0
    while True:
        event = conn.recv()
        if event is None:
            conn.send(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            return
        n += 1
        try:
            conn.send((index.main_handler(event, {**context, "request_id": f"soak-{n}"}), None))
        except Exception as exc:
            conn.send((getattr(exc, "summary", None), type(exc).__name__))


class Function:
    """The handler in a spawned child process (so its peak RSS is the function's alone)."""

    def __init__(self, env: dict[str, str], log_path: str, time_limit_ms: int = 60000) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, env, log_path, time_limit_ms), daemon=True)
        self.proc.start()

    def __call__(self, event: dict[str, Any]) -> tuple[Any, Optional[str]]:
        self.conn.send(event)
        result: tuple[Any, Optional[str]] = self.conn.recv()
        return result

    def close(self) -> int:
        """Stop the child; returns its peak RSS in KiB."""
        self.conn.send(None)
        rss: int = self.conn.recv()
        self.proc.join(10)
        return rss


def start_emulator(seed: int) -> tuple[subprocess.Popen[bytes], str]:
    """The emulator in its own process (``bench/emulator_process.py``, next to this script); its URL."""
    import emulator_process  # this script's folder is on sys.path when it runs (the tests import only phases)

    port = emulator_process.free_port()
    proc = emulator_process.start_emulator(port, SECRET_ID, SECRET_KEY, "--seed", str(seed))
    return proc, f"http://127.0.0.1:{port}"


@dataclass
class Totals:
    jobs: int = 0
    ticks: int = 0
    lost: int = 0
    duplicated: int = 0
    rss_kib: int = 0
    max_tick_s: float = 0.0
    phases: list[str] = field(default_factory=list)

    def add(self, name: str, report: Report, limit_s: float, lost: int, duplicated: int) -> None:
        self.jobs += report.jobs
        self.ticks += report.ticks
        self.lost += lost
        self.duplicated += duplicated
        self.max_tick_s = max(self.max_tick_s, *report.tick_s)
        line = (f"soak: phase {name}: jobs={report.jobs} ticks={report.ticks} raised={report.raised} "
                f"invocations={len(report.invoke_s)} lost={lost} duplicated={duplicated} "
                f"max_invocation_s={max(report.invoke_s, default=0.0):.2f} limit_s={limit_s:.0f} "
                f"max_overrun_s={report.max_overrun_s(limit_s):.2f}")
        self.phases.append(line)
        print(line)


def slow_stores(cos_ms: float) -> Callable[[Control], None]:
    def apply(control: Control) -> None:
        control.post("faults", {"latency_ms": 20})
        control.post("faults/cos", {"latency_ms": cos_ms})
    return apply


def slow_stores_clear(control: Control) -> None:
    control.post("faults", {"latency_ms": 0})
    control.post("faults/cos", {"latency_ms": 0})


def rate_cap(ci_max_rps: float, cos_max_rps: float) -> Callable[[Control], None]:
    def apply(control: Control) -> None:
        control.post("faults", {"latency_ms": 20})
        control.post("limits", {"ci_max_rps": ci_max_rps, "cos_max_rps": cos_max_rps})
    return apply


def rate_uncap(control: Control) -> None:
    control.post("faults", {"latency_ms": 0})
    control.post("limits", {"ci_max_rps": None, "cos_max_rps": None})


def run_one(name: str, args: argparse.Namespace, control: Control, url: str, tmp: str, totals: Totals) -> None:
    """One phase in a fresh function process against a reset emulator."""
    control.post("reset", {})
    cos_sink, limit_ms = f"cos://{BUCKET}.{REGION}/results", 60000
    faults: Optional[Callable[[Control], None]] = None
    clear: Optional[Callable[[Control], None]] = None
    sink, n_jobs, n_unknown, seed, max_ticks = "cos", args.jobs, args.unknown, args.seed, args.max_ticks
    if name == "cmq":
        sink, n_jobs, n_unknown, seed = "cmq", args.cmq_jobs, 0, args.seed + 1
    elif name == "slow-stores":
        limit_ms, faults, clear = SHORT_LIMIT_MS, slow_stores(args.slow_cos_ms), slow_stores_clear
        n_jobs, n_unknown, seed, max_ticks = args.slow_jobs, args.slow_jobs // 15, args.seed + 2, args.slow_ticks
    elif name == "rate-capped":
        limit_ms, faults, clear = SHORT_LIMIT_MS, rate_cap(args.ci_max_rps, args.cos_max_rps), rate_uncap
        n_jobs, n_unknown, seed = args.capped_jobs, args.capped_jobs * 3 // 100, args.seed + 3
    if n_jobs <= 0:
        return
    if name == "slow-stores":
        print(f"soak: slow-stores: COS {args.slow_cos_ms:.0f} ms late"
              f"{' after registration' if args.slow_register_fast else ''}, SCF limit {limit_ms / 1000:.0f} s")
    elif name == "rate-capped":
        print(f"soak: rate-capped: CI {args.ci_max_rps:g} rps, COS {args.cos_max_rps:g} rps per account, "
              f"SCF limit {limit_ms / 1000:.0f} s")
    env = function_env(url, "cmq-queue://ap-guangzhou/results" if sink == "cmq" else cos_sink)
    fn = Function(env, os.path.join(tmp, f"{name}.log"), limit_ms)
    try:
        report = run_phase(control, fn, n_jobs, n_unknown, max_ticks, seed, sink, faults=faults, clear=clear,
                           faults_after_register=name == "slow-stores" and args.slow_register_fast)
    finally:
        totals.rss_kib = max(totals.rss_kib, fn.close())
    if sink == "cmq":
        print(f"soak: cmq phase: {report.finished} jobs finished, {report.messages} messages, "
              f"{report.distinct_messages} distinct (JobId, State) of the finished jobs, "
              f"{report.messages - report.distinct_messages} duplicates (at least once), lost {len(report.lost)}, "
              f"unaccounted {len(report.unaccounted)}, {report.ticks} ticks, max tick {max(report.tick_s):.1f} s")
    else:
        print(f"soak: {name} phase: {report.jobs} IDs, {report.ticks} ticks ({report.raised} raised), max tick "
              f"{max(report.tick_s):.1f} s, lost {len(report.lost)}, duplicated {len(report.duplicated)}, "
              f"rewritten with the same body {report.rewritten}, unaccounted {len(report.unaccounted)}")
    # distinct IDs: an unfinished job is both missing its result and still registered
    totals.add(name, report, limit_ms / 1000, len(set(report.lost) | set(report.unaccounted)),
               len(report.duplicated))


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--phase", action="append", choices=PHASES,
                   help="run only this phase (repeatable; default: every phase)")
    p.add_argument("--jobs", type=int, default=10_000, help="jobs in the COS phase (default 10000)")
    p.add_argument("--unknown", type=int, default=300, help="IDs unknown to CI (default 300)")
    p.add_argument("--cmq-jobs", type=int, default=2_000, help="jobs in the CMQ phase (0 = skip; default 2000)")
    p.add_argument("--slow-jobs", type=int, default=100, help="jobs in the slow-stores phase (default 100)")
    p.add_argument("--slow-cos-ms", type=float, default=SLOW_COS_MS,
                   help=f"slow-stores phase: COS latency (default {SLOW_COS_MS})")
    p.add_argument("--slow-ticks", type=int, default=20, help="slow-stores phase: at most this many ticks")
    p.add_argument("--slow-register-fast", action="store_true",
                   help="slow-stores phase: register with fast stores, slow them down for the ticks only")
    p.add_argument("--capped-jobs", type=int, default=500, help="jobs in the rate-capped phase (default 500)")
    p.add_argument("--ci-max-rps", type=float, default=5.0, help="rate-capped phase: CI cap (default 5)")
    p.add_argument("--cos-max-rps", type=float, default=50.0, help="rate-capped phase: COS cap (default 50)")
    p.add_argument("--max-ticks", type=int, default=25)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    phases = [ph for ph in PHASES if ph in (args.phase or PHASES)]

    wall0 = time.monotonic()
    emu, url = start_emulator(args.seed)
    control = Control(url)
    tmp = tempfile.mkdtemp(prefix="cijobs-soak-")
    totals = Totals()
    requests_ = faulted = 0
    try:
        mix = f"; faults {FAULTS} (COS {COS_FAULTS})" if {"cos", "cmq"} & set(phases) else ""
        print(f"soak: emulator pid {emu.pid} at {url}; phases {', '.join(phases)}{mix}; function log in {tmp}")
        for name in phases:
            run_one(name, args, control, url, tmp, totals)
            r, f = control.stats()
            requests_, faulted = requests_ + r, faulted + f
        print(f"soak: max tick {totals.max_tick_s:.1f} s; peak RSS of the function process "
              f"{totals.rss_kib / 1024:.0f} MB (target < 128 MB); cpus {os.cpu_count()}")
    finally:
        emu.terminate()
        emu.wait(10)
    wall = time.monotonic() - wall0
    print(f"soak: jobs={totals.jobs} ticks={totals.ticks} requests={requests_} retries={faulted} lost={totals.lost} "
          f"duplicated={totals.duplicated} peak_rss_mb={totals.rss_kib / 1024:.0f} wall_s={wall:.0f}")
    overrun = any(float(line.rsplit("max_overrun_s=", 1)[1]) > 0 for line in totals.phases)
    return 0 if totals.lost == 0 and totals.duplicated == 0 and not overrun else 1


if __name__ == "__main__":
    sys.exit(main())
