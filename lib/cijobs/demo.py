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

import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TextIO

from . import log
from .credentials import Credentials, from_env
from .emulator import Emulator
from .settings import Settings

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
    from .ci_client import JobClient
    from .http import Deadline

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


STEPS: list[Step] = [query_step]


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
