"""Soak: thousands of pending jobs through timer ticks against a faulty emulator; nothing lost or duplicated.

    python bench/soak.py                 # 10,000 jobs + 300 unknown IDs, then a 2,000-job CMQ phase
    python bench/soak.py --jobs 500 --cmq-jobs 200 --unknown 50

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
              sink: str, log: Callable[[str], None] = print, max_finish: int = 5) -> Report:
    """Register, tick until done, check. ``sink`` is ``cos`` or ``cmq``; a job finishes after
    1..``max_finish`` queries."""
    rng = random.Random(seed)
    report = Report(jobs=n_jobs + n_unknown)
    known = job_ids(n_jobs, "j" if sink == "cos" else "k")
    unknown = job_ids(n_unknown, "n")
    final = {j: rng.choice(TERMINAL) for j in known}
    tags = {j: rng.choice(("Transcode", "Snapshot", "Animation", "Concat")) for j in known}
    for start in range(0, n_jobs, 1000):
        control.post("ci/jobs", {"jobs": [
            {"job_id": j, "tag": tags[j], "state": rng.choice(("Submitted", "Running")),
             "finish_after": rng.randint(1, max_finish), "final_state": final[j]} for j in known[start:start + 1000]]})
    control.set_faults()
    everything = known + unknown
    rng.shuffle(everything)
    t0 = time.monotonic()
    register(invoke, everything, report)
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

def _worker(conn: Any, env: dict[str, str], log_path: str) -> None:
    """Child process: runs only main_handler; stdout (the function's log) goes to ``log_path``."""
    import resource

    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.environ.update(env)
    sys.path.insert(0, os.path.join(ROOT, "handler"))
    sys.path.insert(0, LIB)
    import index  # type: ignore[import-not-found]

    context = {"memory_limit_in_mb": 128, "time_limit_in_ms": 60000, "function_name": "cijobs",
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

    def __init__(self, env: dict[str, str], log_path: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, env, log_path), daemon=True)
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


def start_emulator(seed: int) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": LIB + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cijobs_tools", "emulator", "--port", "0", "--seed", str(seed),
         "--secret-id", SECRET_ID, "--secret-key", SECRET_KEY],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"emulator did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--jobs", type=int, default=10_000, help="jobs in the COS phase (default 10000)")
    p.add_argument("--unknown", type=int, default=300, help="IDs unknown to CI (default 300)")
    p.add_argument("--cmq-jobs", type=int, default=2_000, help="jobs in the CMQ phase (0 = skip; default 2000)")
    p.add_argument("--max-ticks", type=int, default=25)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)

    wall0 = time.monotonic()
    emu, url = start_emulator(args.seed)
    control = Control(url)
    tmp = tempfile.mkdtemp(prefix="cijobs-soak-")
    rss_kib = 0
    try:
        print(f"soak: emulator pid {emu.pid} at {url}; faults {FAULTS} (COS {COS_FAULTS}); function log in {tmp}")
        fn = Function(function_env(url, f"cos://{BUCKET}.{REGION}/results"), os.path.join(tmp, "cos.log"))
        try:
            cos = run_phase(control, fn, args.jobs, args.unknown, args.max_ticks, args.seed, "cos")
        finally:
            rss_kib = max(rss_kib, fn.close())
        requests_, faulted = control.stats()
        print(f"soak: cos phase: {cos.jobs} IDs, {cos.ticks} ticks ({cos.raised} raised), max tick "
              f"{max(cos.tick_s):.1f} s, lost {len(cos.lost)}, duplicated {len(cos.duplicated)}, "
              f"rewritten with the same body {cos.rewritten}, unaccounted {len(cos.unaccounted)}")
        lost, dup, ticks, jobs = len(cos.lost) + len(cos.unaccounted), len(cos.duplicated), cos.ticks, cos.jobs
        max_tick = max(cos.tick_s)
        if args.cmq_jobs:
            control.post("reset", {})
            fn = Function(function_env(url, "cmq-queue://ap-guangzhou/results"), os.path.join(tmp, "cmq.log"))
            try:
                cmq = run_phase(control, fn, args.cmq_jobs, 0, args.max_ticks, args.seed + 1, "cmq")
            finally:
                rss_kib = max(rss_kib, fn.close())
            r2, f2 = control.stats()
            requests_, faulted = requests_ + r2, faulted + f2
            print(f"soak: cmq phase: {cmq.finished} jobs finished, {cmq.messages} messages, "
                  f"{cmq.distinct_messages} distinct (JobId, State) of the finished jobs, "
                  f"{cmq.messages - cmq.distinct_messages} duplicates (at least once), lost {len(cmq.lost)}, "
                  f"unaccounted {len(cmq.unaccounted)}, {cmq.ticks} ticks, max tick {max(cmq.tick_s):.1f} s")
            lost += len(cmq.lost) + len(cmq.unaccounted)
            dup += len(cmq.duplicated)
            ticks += cmq.ticks
            jobs += cmq.jobs
            max_tick = max(max_tick, *cmq.tick_s)
        print(f"soak: max tick {max_tick:.1f} s (budget 60 s); peak RSS of the function process "
              f"{rss_kib / 1024:.0f} MB (target < 128 MB); cpus {os.cpu_count()}")
    finally:
        emu.terminate()
        emu.wait(10)
    wall = time.monotonic() - wall0
    print(f"soak: jobs={jobs} ticks={ticks} requests={requests_} retries={faulted} lost={lost} duplicated={dup} "
          f"peak_rss_mb={rss_kib / 1024:.0f} wall_s={wall:.0f}")
    return 0 if lost == 0 and dup == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
