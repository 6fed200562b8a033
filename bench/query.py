"""Benchmark: querying N job IDs through JobClient vs the official COS SDK, against the emulator.

Not a test. Starts ``python -m cijobs emulator --latency-ms L --auto-jobs`` in
its own process (every well-formed ID exists), then times, in the same run:

* ours: ``JobClient.query(ids)`` (10 IDs a request, CI_CONCURRENCY in parallel, pooled keep-alive on the stock
  stack: requests' HTTPAdapter and urllib3, see ``cijobs.http``), in a
  process set up as the SCF handler sets up its own (``cijobs.gc_tuning.tune_gc()``), against job XML
  sent compact as CI sends it; also printed: the same with the responses indented as the docs print
  them (``/_emu/ci/config {"pretty_xml": true}``, ~1.6x the bytes), with the interpreter's default GC
  thresholds, and with the normalizer skipped (transport only);
* the network floor: ceil(N/10) / concurrency x latency;
* the official SDK (cos-python-sdk-v5) ``CosS3Client.ci_get_media_jobs`` called once per ID, as a
  typical user loop would;
* the same SDK method with 10 comma-joined IDs per call, sequentially.

The SDK is pointed at the emulator with its own options: ``IP``/``Port``/``Scheme=http`` make it
connect to 127.0.0.1, and ``Endpoint="ci.<region>.myqcloud.com"`` makes the Host header it sends
and signs (``CosConfig.get_host``, used whenever ``IP`` is set) the canonical
``<bucket>.ci.<region>.myqcloud.com``. No wrapping of its session is needed.

Usage: python bench/query.py [--n 1000] [--latency-ms 20] [--concurrency 16] [--sdk-per-id-n N]
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Any

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))

import emulator_process  # noqa: E402 - bench/emulator_process.py, next to this script
from cijobs import log  # noqa: E402
from cijobs.ci_client import JobClient  # noqa: E402
from cijobs.credentials import Credentials  # noqa: E402
from cijobs.gc_tuning import tune_gc  # noqa: E402
from cijobs.settings import Settings  # noqa: E402
from emulator_process import free_port  # noqa: E402

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"
SECRET_ID = "AKIDbenchQUERY"
SECRET_KEY = "bench-secret-key"


def start_emulator(port: int, latency_ms: float) -> subprocess.Popen[bytes]:
    return emulator_process.start_emulator(port, SECRET_ID, SECRET_KEY, "--latency-ms", str(latency_ms), "--auto-jobs")


def job_ids(n: int) -> list[str]:
    return [f"j{i:032x}" for i in range(1, n + 1)]


def skip_normalize(body: bytes) -> dict[str, Any]:
    """Transport-only variant: IDs taken from the body without normalizing it (to split the cost)."""
    ids = re.findall(rb"<JobId>([0-9a-z]+)</JobId>", body)
    return {"JobsDetail": [{"JobId": i.decode()} for i in ids], "NonExistJobIds": []}


def our_client(url: str, concurrency: int, normalize: Any = None) -> JobClient:
    settings = Settings(ci_bucket=BUCKET, ci_region=REGION, ci_endpoint=url, ci_concurrency=concurrency)
    creds = Credentials(SECRET_ID, SECRET_KEY)
    return JobClient(settings, credentials=lambda: creds, normalize=normalize)


def set_pretty_xml(url: str, on: bool) -> None:
    requests.post(f"{url}/_emu/ci/config", json={"pretty_xml": on}, timeout=5).raise_for_status()


def response_bytes(url: str, ids: list[str], concurrency: int) -> int:
    """Total bytes of the query's response bodies (one untimed query)."""
    sizes: list[int] = []

    def measure(body: bytes) -> dict[str, Any]:
        sizes.append(len(body))
        return skip_normalize(body)

    our_client(url, concurrency, measure).query(ids)
    return sum(sizes)


def run_ours(url: str, ids: list[str], concurrency: int, repeats: int, warmup: int,
             normalize: Any = None) -> tuple[list[float], list[float]]:
    """``warmup`` untimed queries first (a warm SCF container: connections open, caches filled), then
    ``repeats`` timed ones; returns their wall and CPU times."""
    client = our_client(url, concurrency, normalize)
    for _ in range(warmup):
        client.query(ids)
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = client.query(ids)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if result.failed or len(result.jobs) != len(ids):
            raise SystemExit(f"ours: {len(result.jobs)} found, {len(result.failed)} failed")
        del result  # one invocation's result is gone before the next one runs
    return times, cpu


def sdk_client(port: int) -> Any:
    from qcloud_cos import CosConfig, CosS3Client

    conf = CosConfig(Region=REGION, SecretId=SECRET_ID, SecretKey=SECRET_KEY, Scheme="http",
                     Endpoint=f"ci.{REGION}.myqcloud.com", IP="127.0.0.1", Port=port)
    return CosS3Client(conf)


def run_sdk(client: Any, calls: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    found = 0
    for ids in calls:
        data = client.ci_get_media_jobs(Bucket=BUCKET, JobIDs=ids)
        found += len(data.get("JobsDetail") or [])
    return time.perf_counter() - t0, found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=9, help="timed runs of ours (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs of ours before the timed ones")
    parser.add_argument("--sdk-per-id-n", type=int, default=None,
                        help="IDs for the per-ID SDK loop (default: all N; fewer = extrapolated linearly)")
    args = parser.parse_args()
    log.configure("error", stream=sys.stderr)

    port = free_port()
    proc = start_emulator(port, args.latency_ms)
    try:
        url = f"http://127.0.0.1:{port}"
        ids = job_ids(args.n)
        n_requests = math.ceil(args.n / 10)
        floor_s = n_requests / args.concurrency * args.latency_ms / 1000
        waves_s = math.ceil(n_requests / args.concurrency) * args.latency_ms / 1000

        default_gc = gc.get_threshold()
        tuned_gc = tune_gc()  # what handler/index.py does at import
        ours, ours_cpu = run_ours(url, ids, args.concurrency, args.repeats, args.warmup)
        ours_s = statistics.median(ours)
        bare, bare_cpu = run_ours(url, ids, args.concurrency, args.repeats, args.warmup, normalize=skip_normalize)
        bare_s = statistics.median(bare)
        compact_bytes = response_bytes(url, ids, args.concurrency)
        set_pretty_xml(url, True)
        pretty_bytes = response_bytes(url, ids, args.concurrency)
        pretty, pretty_cpu = run_ours(url, ids, args.concurrency, args.repeats, args.warmup)
        pretty_s = statistics.median(pretty)
        set_pretty_xml(url, False)
        gc.set_threshold(*default_gc)
        plain, plain_cpu = run_ours(url, ids, args.concurrency, args.repeats, args.warmup)
        plain_s = statistics.median(plain)

        sdk = sdk_client(port)
        per_id_n = min(args.n, args.sdk_per_id_n or args.n)
        per_id_s, per_id_found = run_sdk(sdk, ids[:per_id_n])
        per_id_total_s = per_id_s * args.n / per_id_n
        ten_calls = [",".join(ids[i:i + 10]) for i in range(0, args.n, 10)]
        ten_s, ten_found = run_sdk(sdk, ten_calls)
        if per_id_found != per_id_n or ten_found != args.n:
            raise SystemExit(f"SDK found {per_id_found}/{per_id_n} per ID, {ten_found}/{args.n} ten per call")
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    print(f"query {args.n} job IDs, emulator latency {args.latency_ms:g} ms/request (own process), "
          f"concurrency {args.concurrency}, python {sys.version.split()[0]}; ours: {args.warmup} untimed warm-up "
          f"queries, then {args.repeats} timed")
    print(f"  ours  JobClient.query            {ours_s * 1000:9.1f} ms  (median of {len(ours)}: "
          f"{', '.join(f'{t * 1000:.0f}' for t in ours)} ms; client CPU {statistics.median(ours_cpu) * 1000:.0f} ms)")
    print(f"     (the handler's GC thresholds {tuned_gc}; interpreter default {default_gc}:"
          f" {plain_s * 1000:.1f} ms, median of {', '.join(f'{t * 1000:.0f}' for t in plain)} ms;"
          f" client CPU {statistics.median(plain_cpu) * 1000:.0f} ms)")
    print(f"  ours  same, XML indented         {pretty_s * 1000:9.1f} ms  (as the docs print it: "
          f"{pretty_bytes / 1e6:.1f} MB instead of {compact_bytes / 1e6:.1f} MB; median of "
          f"{', '.join(f'{t * 1000:.0f}' for t in pretty)} ms; "
          f"client CPU {statistics.median(pretty_cpu) * 1000:.0f} ms)")
    print(f"  ours  same, normalizer skipped   {bare_s * 1000:9.1f} ms  (transport only; "
          f"client CPU {statistics.median(bare_cpu) * 1000:.0f} ms)")
    print(f"  floor ceil(N/10)/conc x latency  {floor_s * 1000:9.1f} ms  "
          f"({n_requests} requests; in whole waves: {waves_s * 1000:.0f} ms)")
    extrap = "" if per_id_n == args.n else f" (measured {per_id_n} IDs: {per_id_s * 1000:.0f} ms, scaled)"
    print(f"  SDK   ci_get_media_jobs per ID   {per_id_total_s * 1000:9.1f} ms{extrap}")
    print(f"  SDK   ci_get_media_jobs 10/call  {ten_s * 1000:9.1f} ms  ({len(ten_calls)} sequential calls)")
    print("ratios")
    print(f"  ours / floor                     {ours_s / floor_s:9.2f}x  (target <= 2.5x)")
    print(f"  ours, XML indented / floor       {pretty_s / floor_s:9.2f}x")
    print(f"  ours, default GC / floor         {plain_s / floor_s:9.2f}x")
    print(f"  ours transport-only / floor      {bare_s / floor_s:9.2f}x")
    print(f"  SDK per-ID / ours                {per_id_total_s / ours_s:9.1f}x  ")
    print(f"  SDK 10-per-call / ours           {ten_s / ours_s:9.1f}x  (target >= 6x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
