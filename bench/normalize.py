"""Normalizer throughput vs ``xmltodict.parse`` on the same bytes, same run.

Documents: the seed success response (made well-formed: its stray ``</Message>``
replaced by ``<Message/>``, exactly what ``repair=("stray-close-tag",)`` does) and
a 10-job query response built from it (10 ``JobsDetail`` with distinct JobIds).
Ours = ``normalize_document``: bounded expat parse (C tree builder for bodies that
cannot declare entities, defusedxml otherwise; size, element and depth limits checked
while parsing) + table-driven typing/arrays; baseline = ``xmltodict.parse`` (plain
parse: no typing, no array rules, not hardened). Figures are the best of ``--rounds`` rounds of ``--seconds`` each.

    .venv/bin/python bench/normalize.py [--seconds 1.0] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))

import xmltodict  # noqa: E402

from cijobs.normalize import normalize_document  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def seed_document() -> bytes:
    with open(os.path.join(FIXTURES, "seed-success.xml"), "rb") as fh:
        raw = fh.read()
    fixed = raw.replace(b"        </Message>\n", b"        <Message/>\n", 1)
    assert fixed != raw
    return fixed


def ten_job_document(seed: bytes) -> bytes:
    start = seed.index(b"<JobsDetail>")
    end = seed.index(b"</JobsDetail>") + len(b"</JobsDetail>")
    job = seed[start:end]
    old_id = b"j9c0a4726f6ac11ec96aaa9b64ab18d00"
    jobs = [job.replace(old_id, old_id[:-2] + b"%02d" % i) for i in range(10)]
    return b"<Response>\n    " + b"\n    ".join(jobs) + b"\n</Response>\n"


def _one_round(fn: Callable[[], Any], seconds: float) -> float:
    n, started = 0, time.perf_counter()
    while True:
        for _ in range(10):
            fn()
        n += 10
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return n / elapsed


def rates(fns: list[Callable[[], Any]], seconds: float, rounds: int) -> list[float]:
    """Best-of-rounds calls per second for each function; rounds are interleaved
    (A, B, A, B, ...) so that load changes on the machine hit both alike."""
    best = [0.0] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = max(best[i], _one_round(fn, seconds))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    seed = seed_document()
    ten = ten_job_document(seed)
    assert len(normalize_document(ten)["JobsDetail"]) == 10
    print(f"python {platform.python_version()} on {platform.machine()}; best of {args.rounds} x {args.seconds}s")
    print(f"{'document':<22}{'bytes':>7}  {'impl':<22}{'docs/s':>10}{'MB/s':>8}  ratio")
    for label, body in (("seed success (1 job)", seed), ("10-job response", ten)):
        ours, base = rates(
            [lambda b=body: normalize_document(b), lambda b=body: xmltodict.parse(b)], args.seconds, args.rounds
        )
        for impl, r in (("cijobs normalize", ours), ("xmltodict.parse", base)):
            mbs = r * len(body) / 1e6
            ratio = f"{ours / base:.2f}x" if impl.startswith("cijobs") else "1.00x"
            print(f"{label:<22}{len(body):>7}  {impl:<22}{r:>10.0f}{mbs:>8.2f}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
