"""Benchmark (skeleton): querying jobs against a per-account cap, adaptive pacing vs today's fixed concurrency.

Not a test. Starts ``python -m cijobs_tools emulator --max-rps R --latency-ms L --auto-jobs`` in its own
process (a fresh one per mode), then sends ``--requests`` signed ``GET /jobs/<10 ids>`` from ``--threads``
threads with a plain ``requests`` loop wrapped in :mod:`cijobs.ratelimit` directly (not yet through
``JobClient``: the lead wires the limiter into the HTTP call path, then this bench should call
``JobClient.query`` instead):

* ``adaptive``: ``AdaptiveRateLimiter`` (start = threads / RTT); a throttle answer is retried after the
  limiter admits it again, bounded only by the deadline (``--deadline-s``);
* ``fixed``: admits at once; a throttle answer is an ordinary retryable error: ``RetryPolicy()``
  (4 attempts, full-jitter backoff), as today; requests still throttled after 4 attempts are lost.

Printed per mode: wall time against the ideal ``requests / R`` seconds, throttled answers as a share
of all answers, requests lost, the limiter's final rate, and the emulator's own count of throttled answers.

Usage: python bench/ratelimit.py [--requests 1000] [--max-rps 200] [--latency-ms 20] [--threads 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))

import emulator_process  # noqa: E402 - bench/emulator_process.py, next to this script
from cijobs import signing  # noqa: E402
from cijobs.credentials import Credentials  # noqa: E402
from cijobs.http import RetryPolicy  # noqa: E402
from cijobs.ratelimit import AdaptiveRateLimiter, FixedLimiter, RateLimiter, is_throttle, retry_after_seconds  # noqa: E402

SID, SKEY = "AKIDbenchRATE", "bench-secret-key"
HOST = "examplebucket-1250000000.ci.ap-guangzhou.myqcloud.com"


@dataclass
class Result:
    mode: str
    wall_s: float
    answers: int
    throttled: int
    lost: int
    final_rate: Optional[float]
    server_throttled: int


def error_code(r: requests.Response) -> Optional[str]:
    if r.status_code < 400 or b"<Code>" not in r.content:
        return None
    return r.content.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode("utf-8", "replace")


def run_mode(mode: str, args: argparse.Namespace) -> Result:
    port = emulator_process.free_port()
    proc = emulator_process.start_emulator(
        port, SID, SKEY, "--max-rps", str(args.max_rps), "--latency-ms", str(args.latency_ms), "--auto-jobs",
        "--seed", "1",
    )
    url = f"http://127.0.0.1:{port}"
    creds = Credentials(SID, SKEY)
    limiter: RateLimiter = (AdaptiveRateLimiter(concurrency=args.threads, expected_rtt_s=args.latency_ms / 1000)
                            if mode == "adaptive" else FixedLimiter())
    policy = RetryPolicy()
    paths = [
        "/jobs/" + ",".join(f"j{i * 10 + k:032x}" for k in range(10)) for i in range(args.requests)
    ]
    lock = threading.Lock()
    counts = {"answers": 0, "throttled": 0, "lost": 0}
    next_index = iter(range(len(paths)))
    deadline = time.monotonic() + args.deadline_s

    def one(session: requests.Session, path: str) -> None:
        attempt = 0
        while True:
            attempt += 1
            left = deadline - time.monotonic()
            if left <= 0 or not limiter.acquire(left):
                with lock:
                    counts["lost"] += 1
                return
            r = session.get(url + path, headers={"Host": HOST},
                            auth=signing.CosSigner(creds, "x-ci-security-token"), timeout=10)
            throttle = is_throttle(r.status_code, error_code(r))
            with lock:
                counts["answers"] += 1
                counts["throttled"] += throttle
            if not throttle:
                limiter.on_success()
                if r.status_code != 200:
                    raise SystemExit(f"unexpected answer {r.status_code}: {r.text[:200]}")
                return
            limiter.on_throttle(retry_after_seconds(r.headers.get("Retry-After")))
            if mode == "fixed":  # today: an ordinary retryable error, 4 attempts with backoff
                delay = policy.delay(attempt)
                if attempt >= policy.max_attempts or time.monotonic() + delay >= deadline:
                    with lock:
                        counts["lost"] += 1
                    return
                time.sleep(delay)

    def worker() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                one(session, paths[i])

    try:
        t0 = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        stats = requests.get(f"{url}/_emu/stats", timeout=5).json()
    finally:
        proc.terminate()
        proc.wait(10)
    rate = limiter.rate
    return Result(mode, wall, counts["answers"], counts["throttled"], counts["lost"],
                  rate if rate != float("inf") else None, int(stats.get("ci.throttled", 0)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--max-rps", type=float, default=200.0)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--deadline-s", type=float, default=15.0, help="per mode: no request starts after it")
    p.add_argument("--modes", default="adaptive,fixed")
    args = p.parse_args()
    ideal = args.requests / args.max_rps
    print(f"{args.requests} requests of 10 IDs, {args.threads} threads, emulator --max-rps {args.max_rps:g} "
          f"--latency-ms {args.latency_ms:g}; ideal {ideal:.2f} s")
    print(f"{'mode':<9} {'wall s':>7} {'x ideal':>8} {'answers':>8} {'throttled':>10} {'lost':>5} "
          f"{'final rps':>10} {'server thr':>10}")
    for mode in args.modes.split(","):
        r = run_mode(mode, args)
        share = 100.0 * r.throttled / max(1, r.answers)
        rate = f"{r.final_rate:.0f}" if r.final_rate is not None else "-"
        print(f"{r.mode:<9} {r.wall_s:7.2f} {r.wall_s / ideal:8.2f} {r.answers:8d} {r.throttled:5d} "
              f"({share:3.0f}%) {r.lost:5d} {rate:>10} {r.server_throttled:10d}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
