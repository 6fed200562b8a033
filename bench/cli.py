"""Benchmark: ``cijobs query`` of N job IDs as a fresh process, against the emulator in its own process.

Not a test. Starts ``cijobs emulator --auto-jobs --latency-ms L`` (every well-formed ID exists, each
response delayed L ms), then times, best of R fresh processes each:

* ``cijobs --version`` (interpreter start + the CLI's imports: the fixed cost of any command);
* ``cijobs query <N IDs>`` with stdout to a file and the default settings (10 IDs a request,
  CI_CONCURRENCY in parallel, warnings-only logs), after one untimed query (the emulator creates its
  --auto-jobs jobs on first sight, which is its cost, not the command's).

Prints both, their difference (what querying costs on top of starting the command), the network floor
ceil(N/10) / concurrency x latency, and the budget: difference <= 4 x the floor (0.5 s for 1,000 IDs at
20 ms with the default 16 in parallel). Each query's output is checked (N jobs found, nothing on
stderr).

Usage: python bench/cli.py [--n 1000] [--latency-ms 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from subprocess import run

from emulator_process import ROOT, free_port, start_emulator

SECRET_ID, SECRET_KEY = "AKIDbenchcli", "bench-cli-secret-key"
BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"


def cijobs_command() -> list[str]:
    """The installed ``cijobs`` script next to this interpreter, else ``python -m cijobs_tools``."""
    script = os.path.join(os.path.dirname(sys.executable), "cijobs")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "cijobs_tools"]


def timed(argv: list[str], env: dict[str, str], stdout_path: str) -> tuple[float, str]:
    with open(stdout_path, "wb") as out:
        t0 = time.perf_counter()
        proc = run(argv, stdout=out, stderr=-1, env=env, check=False)  # -1 = subprocess.PIPE
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} ... exited {proc.returncode}: {proc.stderr.decode()[:500]}")
    return wall, proc.stderr.decode()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    from cijobs.settings import Settings

    concurrency = Settings().ci_concurrency
    requests = math.ceil(args.n / 10)
    floor = requests / concurrency * args.latency_ms / 1000  # the floor: 100 / 16 x 20 ms = 0.125 s
    budget = 4 * floor

    port = free_port()
    emu = start_emulator(port, SECRET_ID, SECRET_KEY, "--auto-jobs", "--latency-ms", str(args.latency_ms))
    # PYTHONDONTWRITEBYTECODE off: an installed command runs from cached bytecode, not recompiled each time
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CI_", "TENCENTCLOUD_", "LOG_LEVEL", "PYTHONDONTWRITEBYTECODE"))}
    env |= {"CI_ENDPOINT": f"http://127.0.0.1:{port}", "CI_BUCKET": BUCKET, "CI_REGION": REGION,
            "TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
            "PYTHONPATH": os.path.join(ROOT, "lib")}
    ids = [f"j{n:032x}" for n in range(args.n)]
    cmd = cijobs_command()
    try:
        with tempfile.TemporaryDirectory(prefix="cijobs-bench-cli-") as tmp:
            out_path = os.path.join(tmp, "out.json")
            timed([*cmd, "query", ",".join(ids)], env, out_path)  # warm-up: the emulator creates its auto jobs
            version = [timed([*cmd, "--version"], env, out_path)[0] for _ in range(args.runs)]
            query = []
            for _ in range(args.runs):
                wall, err = timed([*cmd, "query", ",".join(ids)], env, out_path)
                with open(out_path, encoding="utf-8") as fh:
                    doc = json.load(fh)
                if len(doc["JobsDetail"]) != args.n or doc["Failed"] or err:
                    raise SystemExit(f"unexpected answer: {len(doc['JobsDetail'])} jobs, "
                                     f"{len(doc['Failed'])} failed, stderr {err[:300]!r}")
                query.append(wall)
    finally:
        emu.terminate()
        emu.wait(10)

    delta = min(query) - min(version)
    print(f"cli: {' '.join(cmd[-2:]) if len(cmd) > 1 else os.path.basename(cmd[0])}, N={args.n}, "
          f"latency {args.latency_ms:g} ms, concurrency {concurrency}, best of {args.runs} fresh processes")
    print(f"cli: cijobs --version           wall best {min(version):.3f} s  (runs: "
          + ", ".join(f"{v:.3f}" for v in version) + ")")
    print(f"cli: cijobs query {args.n} IDs > file wall best {min(query):.3f} s  (runs: "
          + ", ".join(f"{v:.3f}" for v in query) + ")")
    print(f"cli: query - version = {delta:.3f} s; network floor {floor:.3f} s ({requests} requests / "
          f"{concurrency} in parallel x {args.latency_ms:g} ms); budget 4 x floor = {budget:.3f} s: "
          + ("OK" if delta <= budget else "OVER"))
    return 0 if delta <= budget else 1


if __name__ == "__main__":
    raise SystemExit(main())
