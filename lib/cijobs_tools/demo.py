"""``make run``: the main job against the built-in emulator, no cloud account needed.

Starts the emulator in-process on a free 127.0.0.1 port, adds a few sample jobs
(running and finished, several tags) and queries them -- plus one ID that does
not exist -- through the real :class:`~cijobs.ci_client.JobClient` with signed
requests, then prints the normalized JSON.

The demo is a list of steps (``STEPS``); each step gets the shared
:class:`DemoContext` and returns an exit status, so more steps (e.g. running the
SCF handler on ``events/*.json``) can be appended without touching ``main()``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TextIO

from cijobs import log
from cijobs.credentials import Credentials, from_env
from cijobs.settings import Settings

from .emulator import Emulator

BUCKET = "examplebucket-1250000000"
REGION = "ap-guangzhou"
SECRET_ID = "AKIDcijobsDEMO"
SECRET_KEY = "demo-secret-key"
SESSION_TOKEN = "demo-session-token"

# (JobId, Tag, State): a few running and finished jobs of different kinds
SAMPLE_JOBS: tuple[tuple[str, str, str], ...] = (
    ("j8d121820f5e411ec926ef19d53ba9c6f", "Transcode", "Running"),
    ("j9c0a4726f6ac11ec96aaa9b64ab18d00", "Transcode", "Success"),
    ("j4e431ba0f86711ecb8546d80f2baf56f", "Snapshot", "Success"),
    ("j06668dc0f86811ecb90d0b03267ce0e5", "SuperResolution", "Submitted"),
    ("jb976c9e0f86111ec9452c1c27f56a659", "MediaInfo", "Failed"),
)
MISSING_JOB_ID = "j00000000000000000000000000000000"


@dataclass
class DemoContext:
    emu: Emulator
    env: dict[str, str]
    settings: Settings
    credentials: Credentials
    out: TextIO
    results: dict[str, Any] = field(default_factory=dict)

    def say(self, message: str) -> None:
        print(f"# {message}", file=self.out)


Step = Callable[[DemoContext], int]


def seed_jobs(emu: Emulator) -> list[str]:
    for job_id, tag, state in SAMPLE_JOBS:
        emu.ci.add_job(job_id, tag=tag, state=state)
    return [job_id for job_id, _, _ in SAMPLE_JOBS]


def query_step(ctx: DemoContext) -> int:
    """Query the sample jobs plus one non-existent ID; print the normalized JSON."""
    from cijobs.ci_client import JobClient
    from cijobs.deadline import Deadline

    ids = [*seed_jobs(ctx.emu), MISSING_JOB_ID]
    ctx.say(f"added {len(SAMPLE_JOBS)} jobs: " + ", ".join(f"{t}/{s}" for _, t, s in SAMPLE_JOBS))
    client = JobClient(ctx.settings, credentials=lambda: ctx.credentials)
    ctx.say(f"cijobs query {len(ids)} IDs -> GET {client.target.base_url}/jobs/<ids> "
            f"(Host: {client.target.signed_host}, signed, x-ci-security-token)")
    result = client.query(ids, Deadline(30))
    ctx.results["query"] = result
    print(json.dumps(result.as_dict(), sort_keys=True, ensure_ascii=False, indent=2), file=ctx.out)
    ctx.say(f"found {len(result.jobs)}, non-existent {len(result.nonexistent)}, failed {len(result.failed)}; "
            f"CI requests seen by the emulator: {len(ctx.emu.ci.requests)}")
    return 1 if result.failed else 0


# The sample events in events/, in the order the handler step runs them, and the job the callbacks name.
EVENT_SEQUENCE = (
    "function-url-track.json", "timer.json", "timer.json", "apigw-get-jobs.json", "function-url-callback.json",
    "apigw-callback-taskfinish.json", "cmq-topic.json", "ckafka.json", "direct.json",
)
CALLBACK_JOB = ("j035aca66f86211ec8a5a87e016101404", "Transcode", "Success")
DEMO_API_TOKEN = "demo-api-token-0123"  # the token the sample HTTP events carry


def _events_dir() -> str:
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "events"))


def _describe(response: Any) -> str:
    if isinstance(response, dict) and "statusCode" in response:
        body = json.loads(response["body"])
        counts = body.get("Counts")
        if counts is None and "JobsDetail" in body:
            counts = {"found": len(body["JobsDetail"]), "nonexistent": len(body.get("NonExistJobIds", [])),
                      "failed": len(body.get("Failed", []))}
        return f"HTTP {response['statusCode']} " + json.dumps(counts, separators=(",", ":"))
    counts = response.get("Counts", {}) if isinstance(response, dict) else {}
    return "summary " + json.dumps(counts, separators=(",", ":"))


def handler_step(ctx: DemoContext) -> int:
    """Run main_handler (handler/index.py) on every sample event in events/ against the emulator."""
    from .cli.invoke import fake_context, load_handler

    events_dir = _events_dir()
    if not os.path.isdir(events_dir):
        ctx.say(f"no events/ directory at {events_dir}; skipping the handler step")
        return 0
    if not ctx.emu.ci.jobs:
        seed_jobs(ctx.emu)
    job_id, tag, state = CALLBACK_JOB
    ctx.emu.ci.add_job(job_id, tag=tag, state=state)
    work = tempfile.mkdtemp(prefix="cijobs-demo-")
    env = {**ctx.env, "RESULT_SINK": f"file://{work}/results", "PENDING_STORE": f"file://{work}/pending",
           "API_TOKEN": DEMO_API_TOKEN, "LOG_LEVEL": "warning"}
    ctx.say(f"main_handler on events/*.json (RESULT_SINK=file://{work}/results, PENDING_STORE=file://{work}/pending)")
    status = 0
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the app logs to stdout on SCF; keep the demo readable
            handler = load_handler()
        for n, name in enumerate(EVENT_SEQUENCE, 1):
            if name == "timer.json" and EVENT_SEQUENCE[:n - 1].count("timer.json") == 1:
                for jid, _tag, st in SAMPLE_JOBS:  # the running jobs finish between the two ticks
                    if st not in ("Success", "Failed", "Cancel"):
                        ctx.emu.ci.set_state(jid, "Success")
                ctx.say("the emulator finishes the running jobs; next timer tick:")
            with open(os.path.join(events_dir, name), encoding="utf-8") as fh:
                event = json.load(fh)
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    response = handler(event, fake_context(30000, f"demo-{n:02d}"))
            except Exception as exc:
                ctx.say(f"  events/{name:32} raised {type(exc).__name__}: {exc}")
                status = 1
                continue
            if isinstance(response, dict) and response.get("statusCode", 200) >= 400:
                status = 1
            ctx.say(f"  events/{name:32} {_describe(response)}")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    results = sorted(os.path.relpath(os.path.join(d, f), work) for d, _, files in os.walk(os.path.join(work, "results"))
                     for f in files)
    left = sorted(f for _d, _s, files in os.walk(os.path.join(work, "pending")) for f in files)
    ctx.say(f"written ({len(results)}): " + ", ".join(results))
    ctx.say(f"still pending: {len(left)}")
    ctx.results["handler"] = {"written": results, "pending": left}
    return status


STEPS: list[Step] = [query_step, handler_step]


def main(argv: Optional[list[str]] = None, out: TextIO = sys.stdout) -> int:
    log.configure("warning", stream=sys.stderr)
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=SESSION_TOKEN, seed=1) as emu:
        env = emu.env(BUCKET, REGION)
        ctx = DemoContext(emu, env, Settings.from_env(env), from_env(env), out)
        ctx.say(f"emulator (CI + COS + CMQ) listening on {emu.url}")
        status = 0
        for step in STEPS:
            status = max(status, step(ctx))
        return status


if __name__ == "__main__":
    raise SystemExit(main())
