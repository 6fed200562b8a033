"""The atheris harness (``tests/fuzz/fuzz_normalize.py``) runs: a 10-second smoke run of the normalizer target
(5 s of the events target), seeded with the fixtures, ends without a crash (libFuzzer exits non-zero and writes
``crash-*`` on any undocumented exception)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fakes import FIXTURES, ROOT

HARNESS = os.path.join(ROOT, "tests", "fuzz", "fuzz_normalize.py")


@pytest.mark.slow
@pytest.mark.parametrize(("target", "seconds", "seeds"), [
    ("normalize", 10, [os.path.join(FIXTURES, p) for p in ("*.xml", "*.json", "handmade/*.xml")]),
    ("events", 5, [os.path.join(FIXTURES, "events", "*.json"), os.path.join(ROOT, "events", "*.json")]),
])
def test_harness_runs_without_a_crash(tmp_path: Path, target: str, seconds: int, seeds: list[str]) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for pattern in seeds:
        for path in glob.glob(pattern):
            shutil.copy(path, corpus)
    assert len(os.listdir(corpus)) >= 10
    proc = subprocess.run(
        [sys.executable, HARNESS, f"--target={target}", f"-max_total_time={seconds}", "-rss_limit_mb=512",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Done " in proc.stderr and not list(tmp_path.glob("crash-*"))
    assert "INITED cov:" in proc.stderr  # the library code was instrumented (coverage-guided, not blind)
