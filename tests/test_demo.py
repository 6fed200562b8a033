"""`make run` (cijobs_tools.demo): one screen by default, every sink shown, full JSON behind --verbose,
the temporary directory removed unless --keep. (The demo tests formerly in test_handler.py and
test_ci_client_emulator.py live here.)"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys

import pytest

from cijobs_tools import demo
from fakes import ROOT

JOBS = (*demo.SAMPLE_JOBS, demo.CALLBACK_JOB)


def run_demo(*argv: str) -> str:
    before = dict(os.environ)
    out = io.StringIO()
    assert demo.main(list(argv), out=out) == 0
    assert dict(os.environ) == before  # the demo restores the environment
    return out.getvalue()


@pytest.fixture(scope="module")
def text() -> str:
    return run_demo()


def test_fits_on_one_screen_without_json(text: str) -> None:
    lines = text.splitlines()
    assert len(lines) <= 40
    assert not any(line.lstrip().startswith(("{", "}", '"')) for line in lines)


def test_query_step_summary(text: str) -> None:
    assert (f"found {len(demo.SAMPLE_JOBS)}, non-existent 1, failed 0") in text


def test_handler_runs_every_sample_event(text: str) -> None:
    ran = [line.split()[0] for line in text.splitlines() if line.startswith("   events/")]
    assert ran == [f"events/{n}" for n in demo.EVENT_SEQUENCE]
    assert "raised" not in text and "HTTP 4" not in text and "HTTP 5" not in text
    assert "still pending: 0" in text


def test_table_shows_every_job_and_where_it_went_in_each_sink(text: str) -> None:
    lines = text.splitlines()
    for job_id, tag, _state in JOBS:
        [i] = [n for n, line in enumerate(lines) if line.split()[:1] == [job_id]]
        row, file_line, cos_line = lines[i], lines[i + 1], lines[i + 2]
        state = "Failed" if job_id == "jb976c9e0f86111ec9452c1c27f56a659" else "Success"
        assert row.split()[1:4] == [tag, state, "written,"]  # every job finished and was written
        path = file_line.split()[1]
        assert os.path.isabs(path) and path.endswith(f"/results/{tag}/{job_id}.json")
        assert cos_line.split()[:2] == ["COS", f"results/{tag}/{job_id}.json"]
        assert re.search(r"CMQ message [0-9a-f]{16}\b", cos_line)
    assert "sinks: file:///" in text and "cos://examplebucket-1250000000.ap-guangzhou/results" in text
    assert "cmq-queue://ap-guangzhou/cijobs-results" in text


def test_results_already_there_are_marked(text: str) -> None:
    direct = next(line for line in text.splitlines() if "events/direct.json" in line)
    assert "written 3 (3 already there)" in direct  # every job direct.json names was stored before
    assert "then already there" in text


def test_temporary_directory_is_removed(text: str) -> None:
    removed = next(line for line in text.splitlines() if line.startswith("removed "))
    work = removed.split()[1]
    assert "cijobs-demo-" in work and os.path.isabs(work)
    assert not os.path.exists(work)


def test_no_secrets_in_output(text: str) -> None:
    for secret in (demo.SECRET_KEY, demo.SESSION_TOKEN):
        assert secret not in text


def test_verbose_prints_the_full_json_and_keep_keeps_the_directory() -> None:
    text = run_demo("--verbose", "--keep")
    work = text.splitlines()[-1].removeprefix("kept ")
    try:
        assert os.path.isdir(os.path.join(work, "results"))
        files = [f for _d, _s, fs in os.walk(os.path.join(work, "results")) for f in fs]
        assert len(files) == len(JOBS)
    finally:
        shutil.rmtree(work)
    assert '"JobsDetail": [' in text and f'"{demo.MISSING_JOB_ID}"' in text  # the query answer
    assert '"Outcomes": [' in text  # the handler answers
    assert len(text.splitlines()) > 40


def test_make_run_as_a_process_leaves_nothing_behind() -> None:
    proc = subprocess.run([sys.executable, "-m", "cijobs_tools.demo"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.path.join(ROOT, "lib")}, check=False)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) <= 40 and proc.stderr == ""
    work = proc.stdout.splitlines()[-1].split()[1]
    assert "cijobs-demo-" in work and not os.path.exists(work)


def test_query_step_answers_the_sample_jobs_in_order(tmp_path: object) -> None:
    from cijobs.credentials import from_env
    from cijobs.settings import Settings
    from cijobs_tools.emulator import Emulator

    with Emulator(secret_id=demo.SECRET_ID, secret_key=demo.SECRET_KEY, token=demo.SESSION_TOKEN, seed=1) as emu:
        env = emu.env(demo.BUCKET, demo.REGION)
        ctx = demo.DemoContext(emu, env, Settings.from_env(env), from_env(env), io.StringIO(), work=str(tmp_path))
        assert demo.query_step(ctx) == 0
    doc = ctx.results["query"].as_dict()
    assert [j["JobId"] for j in doc["JobsDetail"]] == [j for j, _, _ in demo.SAMPLE_JOBS]
    assert [j["State"] for j in doc["JobsDetail"]] == [s for _, _, s in demo.SAMPLE_JOBS]
    assert doc["NonExistJobIds"] == [demo.MISSING_JOB_ID] and doc["Failed"] == []
    assert ctx.out.getvalue().count("\n") == 1  # one summary line without --verbose
