"""Benchmark: querying jobs and writing results against a per-account cap, through the real clients.

Not a test. Starts ``python -m cijobs_tools emulator --max-rps R --cos-max-rps RC --latency-ms L --auto-jobs``
in its own process, then runs each scenario in separate worker processes (this script with ``--worker``),
each one wired as ``cijobs.app.build_app`` wires a container: ``Settings.from_env`` (``RATE_MODE``,
``CI_MAX_RPS``...), one ``Limiters`` from ``limiters_for``, one pooled session, ``JobClient.query`` (CI)
or the COS result sink built by ``build_sinks`` (COS), with ``Deadline(--deadline-s)``. The emulator's
token bucket is per SecretId, so every worker shares one account cap, as SCF instances of one account do.

Scenarios (``--scenario ci``, the default, runs both CI ones for each mode, the same run):

* ``one``: one process queries ``--ids`` IDs (10 a request);
* ``three``: three processes started together (one start time, after their imports) query
  ``--ids-each`` IDs each; while all three run, each process's accepted (HTTP 200) answers per second
  are compared to a third of the cap;
* ``--scenario cos``: one process writes ``--cos-n`` results through the COS sink at ``--cos-max-rps``.

Each scenario runs with ``RATE_MODE=adaptive`` and ``RATE_MODE=fixed`` (``--modes``), the emulator reset
(jobs, stats, token buckets) before each. Printed: wall time against the ideal (requests / cap), requests
sent, throttled answers as a share of requests, IDs answered (found or non-existent) or results written,
failures, the limiter's final rate, the emulator's own counts; the load average before and after.

Usage: python bench/ratelimit.py [--scenario ci|cos] [--ids 10000] [--ids-each 3000] [--max-rps 200]
       [--cos-n 2000] [--cos-max-rps 100] [--latency-ms 20] [--modes adaptive,fixed] [--repeat N]

``--repeat N`` runs the CI scenarios N times against the same emulator and ends with, per target, the
number of runs that met it (the three-process targets depend on which process wins the first round
trips, so one run says little).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))

import emulator_process  # noqa: E402 - bench/emulator_process.py, next to this script

SID, SKEY = "AKIDbenchRATE", "bench-secret-key"
BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"


# -- worker (one SCF container's wiring, in its own process) ------------------------------------------

def worker(spec: dict[str, Any]) -> dict[str, Any]:
    from cijobs import log
    from cijobs.ci_client import JobClient
    from cijobs.cos import CosClient
    from cijobs.credentials import Credentials
    from cijobs.deadline import Deadline
    from cijobs.http import new_session
    from cijobs.ratelimit import limiters_for
    from cijobs.settings import Settings
    from cijobs.sinks import build_sinks

    url = spec["url"]
    env = {"CI_ENDPOINT": url, "COS_ENDPOINT": url, "CI_BUCKET": BUCKET, "CI_REGION": REGION,
           "RATE_MODE": spec["mode"], "LOG_LEVEL": "error",
           "RESULT_SINK": f"cos://{BUCKET}.{REGION}/{spec.get('prefix', 'results')}"}
    env.update(spec.get("env", {}))
    settings = Settings.from_env(env)
    log.configure("error", sys.stderr)
    creds = Credentials(SID, SKEY)
    limiters = limiters_for(settings)
    session = new_session(settings.ci_concurrency)
    sent: list[tuple[float, int, bool]] = []
    lock = threading.Lock()
    send = session.send

    def recording_send(request: Any, **kwargs: Any) -> Any:
        r = send(request, **kwargs)
        with lock:
            sent.append((time.time(), r.status_code, "Retry-After" in r.headers))
        return r

    session.send = recording_send  # type: ignore[method-assign]
    out: dict[str, Any] = {"pid": os.getpid()}
    if spec["kind"] == "ci":
        client = JobClient(settings, credentials=lambda: creds, session=session, limiters=limiters)
        ids = [f"j{spec['offset'] + i:032x}" for i in range(spec["n"])]
        service = "ci"
    else:
        cos = CosClient(settings, lambda: creds, session=session, limiters=limiters)
        sink = build_sinks(settings, lambda: creds, session=session, cos_client=cos, limiters=limiters)
        jobs = [{"JobId": f"j{spec['offset'] + i:032x}", "State": "Success", "Tag": "Transcode", "Code": "Success",
                 "Progress": 100} for i in range(spec["n"])]
        service = "cos"
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    t0 = time.time()
    cpu0 = time.process_time()
    if spec["kind"] == "ci":
        result = client.query(ids, Deadline(spec["deadline_s"]))
        out["answered"] = len(result.jobs) + len(result.nonexistent)
        out["failed"] = len(result.failed)
        out["failure_codes"] = sorted({f.as_dict().get("Error", {}).get("Code", "?") for f in result.failed})
    else:
        results = sink.write(jobs, Deadline(spec["deadline_s"]))
        out["answered"] = sum(1 for r in results if r.ok)
        out["failed"] = sum(1 for r in results if not r.ok)
        out["failure_codes"] = sorted({r.error.code for r in results if r.error is not None})
    t1 = time.time()
    out["cpu_s"] = time.process_time() - cpu0
    limiter = limiters.get(service)
    rate = limiter.rate
    out.update(start=t0, end=t1, requests=len(sent), throttled_answers=sum(1 for _, s, _ in sent if s in (429, 503)),
               retry_after=sum(1 for _, s, ra in sent if s in (429, 503) and ra),
               throttled_first_s=sum(1 for t, s, _ in sent if s in (429, 503) and t < t0 + 1.0),
               limiter_throttled=limiter.throttled, final_rate=rate if rate != float("inf") else None,
               accepted=[t for t, s, _ in sent if 200 <= s < 300 or s == 409])
    return out


# -- parent -------------------------------------------------------------------------------------------

def run_workers(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "lib"))
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", json.dumps(s)],
                              env=env, stdout=subprocess.PIPE) for s in specs]
    outs = []
    for p in procs:
        stdout, _ = p.communicate(timeout=300)
        if p.returncode != 0:
            raise SystemExit(f"worker exited with {p.returncode}")
        outs.append(json.loads(stdout))
    return outs


def emu_call(url: str, method: str, path: str) -> Any:
    r = requests.request(method, f"{url}/_emu/{path}", timeout=10)
    r.raise_for_status()
    return r.json()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scenario(emu_pid: int, url: str, kind: str, mode: str, counts: list[int], deadline_s: float,
             extra_env: dict[str, str], prefix: str) -> dict[str, Any]:
    emu_call(url, "POST", "reset")
    time.sleep(0.3)  # a full token bucket again
    start_at = time.time() + 2.0  # after every worker's imports
    specs = [{"url": url, "kind": kind, "mode": mode, "n": n, "offset": 1_000_000 * (k + 1), "start_at": start_at,
              "deadline_s": deadline_s, "env": extra_env, "prefix": f"{prefix}-{mode}"}
             for k, n in enumerate(counts)]
    emu_cpu0 = cpu_seconds(emu_pid)
    outs = run_workers(specs)
    emu_cpu = cpu_seconds(emu_pid) - emu_cpu0
    stats = emu_call(url, "GET", "stats")
    start = min(o["start"] for o in outs)
    together_end = min(o["end"] for o in outs)
    together = max(1e-9, together_end - max(o["start"] for o in outs))
    shares = [sum(1 for t in o["accepted"] if max(x["start"] for x in outs) <= t <= together_end) / together
              for o in outs]
    return {
        "mode": mode, "procs": len(outs), "wall_s": max(o["end"] for o in outs) - start,
        "walls": [o["end"] - o["start"] for o in outs],
        "requests": sum(o["requests"] for o in outs), "throttled": sum(o["throttled_answers"] for o in outs),
        "retry_after": sum(o["retry_after"] for o in outs),
        "throttled_first_s": sum(o["throttled_first_s"] for o in outs),
        "answered": sum(o["answered"] for o in outs), "failed": sum(o["failed"] for o in outs),
        "failure_codes": sorted({c for o in outs for c in o["failure_codes"]}),
        "final_rates": [o["final_rate"] for o in outs], "together_s": together, "rps_each": shares,
        "per_second": [[sum(1 for t in o["accepted"] if start + k <= t < start + k + 1)
                        for k in range(int(max(x["end"] for x in outs) - start) + 1)] for o in outs],
        "cpu_client": sum(o["cpu_s"] for o in outs), "cpu_emulator": emu_cpu,
        "server_requests": int(stats.get(f"{kind}.requests", 0)),
        "server_throttled": int(stats.get(f"{kind}.throttled", 0)),
    }


def fmt_rate(r: Any) -> str:
    return "-" if r is None else f"{r:.0f}"


def print_row(label: str, r: dict[str, Any], ideal: float, n_ids: int) -> None:
    share = 100.0 * r["throttled"] / max(1, r["requests"])
    print(f"  {label:<14} {r['mode']:<9} wall {r['wall_s']:6.2f} s = {r['wall_s'] / ideal:4.2f} x ideal  "
          f"requests {r['requests']:5d} (server {r['server_requests']})  throttled {r['throttled']:4d} "
          f"({share:4.1f} %, {r['throttled_first_s']} in the first second, {r['retry_after']} with Retry-After; "
          f"server {r['server_throttled']})  "
          f"answered {r['answered']}/{n_ids}  failed {r['failed']}"
          f"{' ' + ','.join(r['failure_codes']) if r['failure_codes'] else ''}  "
          f"final rps {'/'.join(fmt_rate(x) for x in r['final_rates'])}  "
          f"CPU s client {r['cpu_client']:.1f} + emulator {r['cpu_emulator']:.1f} "
          f"(= {(r['cpu_client'] + r['cpu_emulator']) / r['wall_s']:.2f} cores)", flush=True)
    if r["procs"] > 1:
        print(f"  {'':<14} {'':<9} per-process walls {' / '.join(f'{w:.2f}' for w in r['walls'])} s; "
              f"accepted/s while all {r['procs']} ran ({r['together_s']:.2f} s): "
              f"{' / '.join(f'{x:.0f}' for x in r['rps_each'])}", flush=True)
        for n, series in enumerate(r["per_second"], 1):
            print(f"  {'':<14} {'':<9} process {n} accepted per second: {' '.join(f'{x:3d}' for x in series)}",
                  flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--scenario", choices=("ci", "cos"), default="ci")
    p.add_argument("--ids", type=int, default=10_000)
    p.add_argument("--ids-each", type=int, default=3_000)
    p.add_argument("--max-rps", type=float, default=200.0)
    p.add_argument("--cos-n", type=int, default=2_000)
    p.add_argument("--cos-max-rps", type=float, default=100.0)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--deadline-s", type=float, default=120.0)
    p.add_argument("--modes", default="adaptive,fixed")
    p.add_argument("--repeat", type=int, default=1,
                   help="run the CI scenarios this many times and count, per target, the runs that met it")
    p.add_argument("--no-retry-after", action="store_true",
                   help="the emulator's throttle answers carry no Retry-After (default: half say Retry-After: 1)")
    p.add_argument("--client-cap", action="store_true",
                   help="also give the client the cap (CI_MAX_RPS / COS_MAX_RPS), as a configured deployment")
    args = p.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    modes = args.modes.split(",")
    extra: dict[str, str] = {}
    if args.client_cap:
        extra = {"CI_MAX_RPS": str(args.max_rps), "COS_MAX_RPS": str(args.cos_max_rps)}
    port = emulator_process.free_port()
    proc = emulator_process.start_emulator(
        port, SID, SKEY, "--max-rps", str(args.max_rps), "--cos-max-rps", str(args.cos_max_rps),
        "--latency-ms", str(args.latency_ms), "--auto-jobs", "--seed", "1",
        *(["--no-retry-after"] if args.no_retry_after else []))
    url = f"http://127.0.0.1:{port}"
    load0 = os.getloadavg()
    t0 = time.time()
    bad: list[str] = []
    try:
        if args.scenario == "ci":
            print(f"CI: emulator --max-rps {args.max_rps:g} --latency-ms {args.latency_ms:g}; JobClient.query, "
                  f"CI_CONCURRENCY 16, Deadline({args.deadline_s:g}){', client cap' if args.client_cap else ''}"
                  f"{', no Retry-After' if args.no_retry_after else ''}")
            ideal1 = args.ids / 10 / args.max_rps
            ideal3 = 3 * args.ids_each / 10 / args.max_rps
            tally: dict[str, int] = {}
            for rep, mode in ((rep, mode) for rep in range(args.repeat) for mode in modes):
                if args.repeat > 1:
                    print(f"  run {rep + 1} of {args.repeat}")
                r1 = scenario(proc.pid, url, "ci", mode, [args.ids], args.deadline_s, extra, "one")
                print_row(f"1 x {args.ids}", r1, ideal1, args.ids)
                r3 = scenario(proc.pid, url, "ci", mode, [args.ids_each] * 3, args.deadline_s, extra, "three")
                print_row(f"3 x {args.ids_each}", r3, ideal3, 3 * args.ids_each)
                if mode == "adaptive":
                    third = args.max_rps / 3
                    checks = {
                        "one: wall <= 1.15 x ideal": r1["wall_s"] <= 1.15 * ideal1,
                        "one: throttled <= 5 %": r1["throttled"] <= 0.05 * r1["requests"],
                        "one: every ID answered": r1["answered"] == args.ids,
                        "three: every ID answered": r3["answered"] == 3 * args.ids_each,
                        "three: last within 1.3 x ideal": r3["wall_s"] <= 1.3 * ideal3,
                        "three: throttled <= 10 %": r3["throttled"] <= 0.10 * r3["requests"],
                        "three: each within +-25 % of cap/3": all(abs(x - third) <= 0.25 * third
                                                                  for x in r3["rps_each"]),
                    }
                    for name, ok in checks.items():
                        print(f"    target {name}: {'met' if ok else 'MISSED'}")
                        tally[name] = tally.get(name, 0) + ok
                        if not ok:
                            bad.append(name)
            if args.repeat > 1 and tally:
                print(f"  targets met over {args.repeat} runs (adaptive):")
                for name, met in tally.items():
                    print(f"    {name}: {met} of {args.repeat}")
        else:
            print(f"COS sink: emulator --cos-max-rps {args.cos_max_rps:g} --latency-ms {args.latency_ms:g}; "
                  f"build_sinks (cos://), CI_CONCURRENCY 16, Deadline({args.deadline_s:g})"
                  f"{', client cap' if args.client_cap else ''}{', no Retry-After' if args.no_retry_after else ''}")
            ideal = args.cos_n / args.cos_max_rps
            for mode in modes:
                r = scenario(proc.pid, url, "cos", mode, [args.cos_n], args.deadline_s, extra, "cos")
                print_row(f"{args.cos_n} results", r, ideal, args.cos_n)
                if mode == "adaptive":
                    for name, ok in {"cos: wall <= 1.2 x ideal": r["wall_s"] <= 1.2 * ideal,
                                     "cos: none failed": r["failed"] == 0}.items():
                        print(f"    target {name}: {'met' if ok else 'MISSED'}")
                        if not ok:
                            bad.append(name)
    finally:
        proc.terminate()
        proc.wait(10)
    load1 = os.getloadavg()
    print(f"  load average {load0[0]:.2f} before, {load1[0]:.2f} after; {time.time() - t0:.0f} s in all; "
          f"{os.cpu_count()} CPUs")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
