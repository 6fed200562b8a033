"""Benchmark: writing N finished jobs through the sinks vs simple baselines, against the emulator.

Not a test. Starts ``python -m cijobs emulator --latency-ms L`` in its own process, then times,
in the same run:

* baseline: the official SDK (cos-python-sdk-v5) ``put_object`` once per job, sequentially (a
  typical user loop; same body, Content-Type and metadata; no idempotency check);
* ours, COS sink with concurrency 1 (create-if-absent PUT per job);
* ours, COS sink with CI_CONCURRENCY in parallel;
* ours, the same jobs again (every PUT answers 409, then HEAD compares: the idempotent re-run);
* CMQ queue: ours (batches of 16) vs one SendMessage per job;
* webhook: ``--webhook-n`` deliveries (default 1,000) to the emulator's receiver answering after
  ``--webhook-latency-ms`` (default 20): a sequential signed ``requests.post`` loop vs the webhook sink
  with concurrency 1 and with WEBHOOK_CONCURRENCY (default 8); the receiver verifies every signature.

Usage: python bench/sinks.py [--n 300] [--latency-ms 10] [--concurrency 16] [--webhook-n 1000]
       [--webhook-latency-ms 20] [--webhook-concurrency 8] [--only webhook]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))

import emulator_process  # noqa: E402 - bench/emulator_process.py, next to this script
from cijobs import log  # noqa: E402
from cijobs.cmq_client import DataflowCmqClient  # noqa: E402
from cijobs.cos import CosClient  # noqa: E402
from cijobs.credentials import Credentials  # noqa: E402
from cijobs.settings import Settings  # noqa: E402
from cijobs.sinks import build_sinks, canonical_json  # noqa: E402
from cijobs.sinks.base import sha256_hex  # noqa: E402
from cijobs.sinks.webhook import EVENT, USER_AGENT  # noqa: E402
from cijobs.webhook_signature import sign  # noqa: E402
from emulator_process import free_port  # noqa: E402

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"
SECRET_ID = "AKIDbenchSINKS"
SECRET_KEY = "bench-secret-key"
CREDS = Credentials(SECRET_ID, SECRET_KEY)
WEBHOOK_SECRET = "bench-webhook-secret-0123456789abcdef"


def start_emulator(port: int, latency_ms: float) -> subprocess.Popen[bytes]:
    return emulator_process.start_emulator(port, SECRET_ID, SECRET_KEY, "--latency-ms", str(latency_ms))


def jobs(n: int) -> list[dict[str, Any]]:
    return [{"JobId": f"j{i:032x}", "State": "Success", "Tag": "Transcode", "Code": "Success", "Progress": 100,
             "Operation": {"Output": {"Bucket": BUCKET, "Region": REGION, "Object": f"out/{i}.mp4"}}}
            for i in range(n)]


def timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def sink_run(url: str, prefix: str, concurrency: int, batch: list[dict[str, Any]]) -> tuple[float, int, int]:
    s = Settings(cos_endpoint=url, ci_concurrency=concurrency, result_sink=f"cos://{BUCKET}.{REGION}/{prefix}")
    sink = build_sinks(s, lambda: CREDS, cos_client=CosClient(s, lambda: CREDS))
    t, results = timed(lambda: sink.write(batch))
    return t, sum(r.ok for r in results), sum(r.already for r in results)


def sdk_run(port: int, prefix: str, batch: list[dict[str, Any]]) -> float:
    from qcloud_cos import CosConfig, CosS3Client

    conf = CosConfig(Region=REGION, SecretId=SECRET_ID, SecretKey=SECRET_KEY, Scheme="http",
                     Endpoint=f"cos.{REGION}.myqcloud.com", IP="127.0.0.1", Port=port)
    client = CosS3Client(conf)

    def loop() -> None:
        for j in batch:
            body = canonical_json(j)
            client.put_object(Bucket=BUCKET, Key=f"{prefix}/Transcode/{j['JobId']}.json", Body=body,
                              ContentType="application/json",
                              Metadata={"x-cos-meta-jobid": j["JobId"], "x-cos-meta-state": j["State"],
                                        "x-cos-meta-sha256": sha256_hex(body)})

    t, _ = timed(loop)
    return t


def cmq_run(url: str, batch: list[dict[str, Any]], one_by_one: bool) -> tuple[float, int]:
    s = Settings(cmq_endpoint=url, result_sink="cmq-queue://ap-guangzhou/bench")
    client = DataflowCmqClient(s, lambda: CREDS)
    if one_by_one:
        client.max_batch = 1  # type: ignore[misc]
    sink = build_sinks(s, lambda: CREDS, cmq_client=client)
    t, results = timed(lambda: sink.write(batch))
    return t, sum(r.ok for r in results)


def webhook_setup(url: str, name: str, latency_ms: float) -> str:
    r = requests.post(f"{url}/_emu/webhooks/{name}", json={"secrets": [WEBHOOK_SECRET], "latency_ms": latency_ms},
                      timeout=10)
    r.raise_for_status()
    return f"{url}/_emu/webhook/{name}"


def webhook_received(url: str, name: str) -> tuple[int, int]:
    r = requests.get(f"{url}/_emu/webhooks/{name}/deliveries", timeout=60)
    r.raise_for_status()
    ds = r.json()["deliveries"]
    return len(ds), sum(1 for d in ds if d["verified"] and d["status"] == 200)


def webhook_loop(hook: str, batch: list[dict[str, Any]]) -> tuple[float, int]:
    """What a user would write: one signed ``requests.post`` per job, one after the other."""
    def loop() -> int:
        ok = 0
        for j in batch:
            body = canonical_json(j)
            ts = int(time.time())
            r = requests.post(hook, data=body, timeout=10, allow_redirects=False, headers={
                "Content-Type": "application/json", "User-Agent": USER_AGENT, "X-Cijobs-Event": EVENT,
                "X-Cijobs-Delivery": f"{j['JobId']}.{j['State']}", "X-Cijobs-Timestamp": str(ts),
                "X-Cijobs-Signature": sign([WEBHOOK_SECRET], ts, body)})
            ok += 200 <= r.status_code < 300
        return ok

    return timed(loop)


def webhook_sink_run(hook: str, concurrency: int, batch: list[dict[str, Any]]) -> tuple[float, int]:
    s = Settings(result_sink=hook, webhook_secret=WEBHOOK_SECRET, webhook_concurrency=concurrency)
    sink = build_sinks(s, lambda: CREDS)
    t, results = timed(lambda: sink.write(batch))
    return t, sum(r.ok for r in results)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--latency-ms", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--webhook-n", type=int, default=1000)
    p.add_argument("--webhook-latency-ms", type=float, default=20.0)
    p.add_argument("--webhook-concurrency", type=int, default=8)
    p.add_argument("--only", choices=("all", "webhook"), default="all")
    args = p.parse_args()
    if args.only == "webhook":
        args.n = 0
    log.configure("error")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_emulator(port, args.latency_ms)
    try:
        if args.webhook_n:
            hooks = {name: webhook_setup(url, name, args.webhook_latency_ms) for name in ("loop", "one", "par")}
            wbatch = jobs(args.webhook_n)
            t_wloop, ok_wloop = webhook_loop(hooks["loop"], wbatch)
            t_wone, ok_wone = webhook_sink_run(hooks["one"], 1, wbatch)
            t_wpar, ok_wpar = webhook_sink_run(hooks["par"], args.webhook_concurrency, wbatch)
            received = {name: webhook_received(url, name) for name in hooks}
        if args.n:
            batch = jobs(args.n)
            run = uuid.uuid4().hex[:8]
            t_sdk = sdk_run(port, f"sdk-{run}", batch)
            t_seq, ok_seq, _ = sink_run(url, f"seq-{run}", 1, batch)
            t_par, ok_par, _ = sink_run(url, f"par-{run}", args.concurrency, batch)
            t_again, ok_again, already = sink_run(url, f"par-{run}", args.concurrency, batch)
            t_cmq1, ok_cmq1 = cmq_run(url, batch, one_by_one=True)
            t_cmq, ok_cmq = cmq_run(url, batch, one_by_one=False)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if args.webhook_n:
        wn = args.webhook_n
        print(f"webhook: {wn} deliveries, receiver latency {args.webhook_latency_ms:g} ms (emulator, own process); "
              "received = requests the receiver got / verified and answered 200")
        print(f"  baseline requests.post loop         {t_wloop:7.3f} s  {wn / t_wloop:8.0f} jobs/s   1.00x  "
              f"ok={ok_wloop} received={received['loop']}")
        print(f"  webhook sink, concurrency 1         {t_wone:7.3f} s  {wn / t_wone:8.0f} jobs/s  "
              f"{t_wloop / t_wone:5.2f}x  ok={ok_wone} received={received['one']}")
        print(f"  webhook sink, concurrency {args.webhook_concurrency:<3d}       {t_wpar:7.3f} s  "
              f"{wn / t_wpar:8.0f} jobs/s  {t_wloop / t_wpar:5.2f}x  ok={ok_wpar} received={received['par']}")
    if not args.n:
        return 0
    n = args.n
    print(f"write {n} finished jobs, emulator latency {args.latency_ms:g} ms/request (own process)")
    print(f"  baseline SDK put_object loop        {t_sdk:7.3f} s  {n / t_sdk:8.0f} jobs/s  1.00x")
    print(f"  COS sink, concurrency 1             {t_seq:7.3f} s  {n / t_seq:8.0f} jobs/s  "
          f"{t_sdk / t_seq:5.2f}x  ok={ok_seq}")
    print(f"  COS sink, concurrency {args.concurrency:<3d}           {t_par:7.3f} s  {n / t_par:8.0f} jobs/s  "
          f"{t_sdk / t_par:5.2f}x  ok={ok_par}")
    print(f"  COS sink, re-run (409 + HEAD)       {t_again:7.3f} s  {n / t_again:8.0f} jobs/s  "
          f"{t_sdk / t_again:5.2f}x  ok={ok_again} already={already}")
    print(f"  CMQ queue, one SendMessage per job  {t_cmq1:7.3f} s  {n / t_cmq1:8.0f} jobs/s  1.00x (CMQ baseline)"
          f"  ok={ok_cmq1}")
    print(f"  CMQ queue sink, batches of 16       {t_cmq:7.3f} s  {n / t_cmq:8.0f} jobs/s  "
          f"{t_cmq1 / t_cmq:5.2f}x  ok={ok_cmq}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
