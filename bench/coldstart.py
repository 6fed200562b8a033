"""Cold start: how long importing the SCF entry point takes in a fresh interpreter.

Each figure is the median of several fresh ``python -I`` processes; the import
is timed inside the process with ``time.perf_counter`` (so interpreter start
is excluded and shown separately). The SCF-like case imports the unpacked
package without bytecode: SCF sets PYTHONDONTWRITEBYTECODE and the zip
carries no ``__pycache__``, so each cold start compiles the sources. The baseline is importing ``qcloud_cos``,
the official COS SDK, measured in the same run on the same machine.

    .venv/bin/python bench/coldstart.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANDLER_DIR = os.path.join(ROOT, "handler")
UNPACKED = os.path.join(ROOT, "dist", "cijobs")  # written by `make package`
HEAVY = ("tencentcloud", "qcloud_cos", "xmltodict", "yaml", "cijobs_tools.deploy", "cijobs_tools.emulator")
APP_ENV = {
    "CI_BUCKET": "examplebucket-1250000000",
    "CI_REGION": "ap-guangzhou",
    "LOG_LEVEL": "warning",
}

TIMED = """
import sys, time
sys.path.insert(0, {path!r})
t0 = time.perf_counter()
{stmt}
dt = time.perf_counter() - t0
heavy = [m for m in {heavy!r} if m in sys.modules]
print(dt, ",".join(heavy))
"""


def run_once(path: str, stmt: str, env: dict[str, str], flags: tuple[str, ...] = ()) -> tuple[float, str]:
    code = TIMED.format(path=path, stmt=stmt, heavy=HEAVY)
    out = subprocess.run([sys.executable, "-I", *flags, "-c", code], capture_output=True, text=True, check=True,
                         env=env, cwd="/")
    seconds, _, heavy = out.stdout.strip().partition(" ")
    return float(seconds), heavy


def _drop_pycache(root: str) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        for d in [d for d in dirnames if d == "__pycache__"]:
            shutil.rmtree(os.path.join(dirpath, d))
            dirnames.remove(d)


def bare_start(runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(path: str, stmt: str, runs: int, env: dict[str, str], flags: tuple[str, ...] = ()) -> tuple[float, str]:
    run_once(path, stmt, env, flags)  # warm the OS file cache; not counted
    samples = [run_once(path, stmt, env, flags) for _ in range(runs)]
    return statistics.median(s for s, _ in samples), samples[-1][1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    app_env = {**env, **APP_ENV}
    build = "import index, os; from cijobs.app import build_app; build_app(os.environ)"

    # The SCF case: the zip unpacked (as in /var/user), no __pycache__, and PYTHONDONTWRITEBYTECODE
    # (-B here), so every cold start compiles the sources.
    src_only: tuple[str, ...] = ("-B",)
    cases: list[tuple[str, str, str, dict[str, str], tuple[str, ...]]] = [
        ("import index (checkout, cached bytecode)", HANDLER_DIR, "import index", env, ()),
    ]
    if os.path.isdir(UNPACKED):
        _drop_pycache(UNPACKED)
        cases.append(("import index (dist/cijobs, no bytecode = SCF)", UNPACKED, "import index", env, src_only))
        cases.append(("  + build_app (first-invocation setup, SCF)", UNPACKED, build, app_env, src_only))
    cases.append(("import index + build_app (checkout)", HANDLER_DIR, build, app_env, ()))
    baseline_name = "import qcloud_cos (official COS SDK, baseline)"
    cases.append((baseline_name, HANDLER_DIR, "import qcloud_cos", env, ()))

    print(f"cold start, median of {args.runs} fresh `python -I` processes "
          f"(Python {sys.version.split()[0]}, {sys.platform})")
    print(f"  {'bare interpreter start (python -I -c pass), wall':<50} {bare_start(args.runs) * 1000:8.1f} ms")
    results = {}
    for name, path, stmt, case_env, flags in cases:
        median, heavy = measure(path, stmt, args.runs, case_env, flags)
        results[name] = median
        note = f"   heavy modules loaded: {heavy}" if heavy and "qcloud_cos" not in stmt else ""
        print(f"  {name:<50} {median * 1000:8.1f} ms{note}")
    base = results[baseline_name]
    print("ratios against the qcloud_cos import:")
    for name, median in results.items():
        if name != baseline_name:
            print(f"  {name:<50} {median / base:8.2f}x")
    if not os.path.isdir(UNPACKED):
        print("(run `make package` to measure the package as SCF loads it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
