"""``make run``: the main job against the built-in emulator, no cloud account needed.

Starts the emulator (CI + COS + CMQ) in-process on a free 127.0.0.1 port, adds a few sample jobs
(running and finished, several tags), queries them -- plus one ID that does not exist -- through the
real :class:`~cijobs.ci_client.JobClient` with signed requests, then runs ``main_handler`` on every
sample event in ``events/`` with three result sinks: a directory, a COS bucket and a CMQ queue (the
last two in the emulator). It ends with one table: each job's Tag, State, outcome and where its result
went (absolute path, COS key, CMQ message ID), results found already there marked as such.

    make run                       # the short story (fits on one screen)
    make run ARGS="--verbose"      # plus the full JSON of the query and of every handler answer
    make run ARGS="--keep"         # keep the temporary directory (results/, pending/) for a look

The demo is a list of steps (``STEPS``); each step gets the shared :class:`DemoContext` and returns an
exit status, so more steps can be appended without touching ``main()``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
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
COS_PREFIX = "results"
CMQ_QUEUE = "cijobs-results"

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
class JobTrail:
    """What the handler steps did to one job: its outcomes in order, and how many said "already there"."""

    outcomes: list[str] = field(default_factory=list)
    already: int = 0
    state: Optional[str] = None

    def summary(self) -> str:
        if not self.outcomes:
            return "-"
        final = "written" if "written" in self.outcomes else self.outcomes[-1]
        return final + (f", then already there {self.already}x" if self.already else "")


@dataclass
class DemoContext:
    emu: Emulator
    env: dict[str, str]
    settings: Settings
    credentials: Credentials
    out: TextIO
    work: str = ""
    verbose: bool = False
    results: dict[str, Any] = field(default_factory=dict)
    trails: dict[str, JobTrail] = field(default_factory=dict)

    def say(self, message: str) -> None:
        print(message, file=self.out)

    def dump(self, doc: Any) -> None:
        """The full JSON, only with ``--verbose``."""
        if self.verbose:
            print(json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=2), file=self.out)


Step = Callable[[DemoContext], int]


def seed_jobs(emu: Emulator) -> list[str]:
    for job_id, tag, state in SAMPLE_JOBS:
        emu.ci.add_job(job_id, tag=tag, state=state)
    return [job_id for job_id, _, _ in SAMPLE_JOBS]


def query_step(ctx: DemoContext) -> int:
    """Query the sample jobs plus one non-existent ID with the client ``cijobs query`` uses (:class:`JobClient`)."""
    from cijobs.ci_client import JobClient
    from cijobs.deadline import Deadline

    ids = [*seed_jobs(ctx.emu), MISSING_JOB_ID]
    client = JobClient(ctx.settings, credentials=lambda: ctx.credentials)
    result = client.query(ids, Deadline(30))
    ctx.results["query"] = result
    ctx.say(f"1. cijobs query {len(SAMPLE_JOBS)} sample jobs + 1 unknown ID: found {len(result.jobs)}, "
            f"non-existent {len(result.nonexistent)}, failed {len(result.failed)} "
            f"({len(ctx.emu.ci.requests)} signed GET /jobs/<ids>)")
    ctx.dump(result.as_dict())
    return 1 if result.failed else 0


# The sample events in events/, in the order the handler step runs them, and the job the callbacks name.
EVENT_SEQUENCE = (
    "function-url-track.json", "timer.json", "timer.json", "apigw-get-jobs.json", "function-url-callback.json",
    "apigw-callback-taskfinish.json", "cmq-topic.json", "ckafka.json", "direct.json",
)
CALLBACK_JOB = ("j035aca66f86211ec8a5a87e016101404", "Transcode", "Success")
DEMO_API_TOKEN = "demo-api-token-0123"  # the token the sample HTTP events carry
COUNT_NAMES = ("queried", "written", "pending", "nonexistent", "invalid", "failed")


def _events_dir() -> str:
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "events"))


def _answer_doc(response: Any) -> Any:
    """The handler's summary, or an HTTP answer's decoded body."""
    if isinstance(response, dict) and "statusCode" in response:
        from .cli.invoke import decode_http_answer

        return decode_http_answer(response).get("body")
    return response


def describe(response: Any, already: int = 0) -> str:
    """One short line: HTTP status, the non-zero counts, how many written results were already there."""
    doc = _answer_doc(response)
    head = f"HTTP {response['statusCode']}  " if isinstance(response, dict) and "statusCode" in response else ""
    if not isinstance(doc, dict):
        return head + "(no JSON body)"
    if "JobsDetail" in doc and "Counts" not in doc:
        return head + f"found {len(doc['JobsDetail'])}, non-existent {len(doc.get('NonExistJobIds', []))}"
    counts = doc.get("Counts") or {}
    parts = []
    for name in COUNT_NAMES:
        if counts.get(name):
            extra = f" ({already} already there)" if name == "written" and already else ""
            parts.append(f"{name} {counts[name]}{extra}")
    return head + (", ".join(parts) or "nothing to do")


def _stored(ctx: DemoContext) -> set[str]:
    """The job IDs whose result file exists now."""
    return {name[: -len(".json")] for _d, _s, files in os.walk(os.path.join(ctx.work, "results"))
            for name in files if name.endswith(".json")}


def _record(ctx: DemoContext, response: Any, before: set[str]) -> int:
    """Add the answer's outcomes to the jobs' trails; returns how many written results were already there
    (stored by an earlier event: the sinks kept the first copy; CMQ, at-least-once, sent another message)."""
    doc = _answer_doc(response)
    already = 0
    for outcome in (doc.get("Outcomes") or ()) if isinstance(doc, dict) else ():
        if not isinstance(outcome, dict) or not isinstance(outcome.get("JobId"), str):
            continue
        job_id = outcome["JobId"]
        trail = ctx.trails.setdefault(job_id, JobTrail())
        trail.outcomes.append(str(outcome.get("Outcome")))
        if outcome.get("Outcome") == "written" and (outcome.get("Already") or job_id in before):
            trail.already += 1
            already += 1
        trail.state = outcome.get("State") or trail.state
    return already


def handler_step(ctx: DemoContext) -> int:
    """Run main_handler (handler/index.py) on every sample event in events/ against the emulator."""
    from .cli.invoke import fake_context, load_handler

    events_dir = _events_dir()
    if not os.path.isdir(events_dir):
        ctx.say(f"2. no events/ directory at {events_dir}; skipping the handler step")
        return 0
    if not ctx.emu.ci.jobs:
        seed_jobs(ctx.emu)
    job_id, tag, state = CALLBACK_JOB
    ctx.emu.ci.add_job(job_id, tag=tag, state=state)
    env = {**ctx.env, "RESULT_SINK": ",".join(sinks(ctx)), "PENDING_STORE": f"file://{ctx.work}/pending",
           "API_TOKEN": DEMO_API_TOKEN, "LOG_LEVEL": "warning"}
    ctx.say("2. main_handler on each sample event:")
    status = 0
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the app logs to stdout on SCF; keep the demo readable
            handler = load_handler()
        for n, name in enumerate(EVENT_SEQUENCE, 1):
            note = ""
            if name == "timer.json" and EVENT_SEQUENCE[:n - 1].count("timer.json") == 1:
                for jid, _tag, st in SAMPLE_JOBS:  # the running jobs finish between the two ticks
                    if st not in ("Success", "Failed", "Cancel"):
                        ctx.emu.ci.set_state(jid, "Success")
                note = " -- after the emulator finished the running jobs"
            with open(os.path.join(events_dir, name), encoding="utf-8") as fh:
                event = json.load(fh)
            before = _stored(ctx)
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    response = handler(event, fake_context(30000, f"demo-{n:02d}"))
            except Exception as exc:
                ctx.say(f"   events/{name:31} raised {type(exc).__name__}: {exc}")
                status = 1
                continue
            if isinstance(response, dict) and response.get("statusCode", 200) >= 400:
                status = 1
            already = _record(ctx, response, before)
            ctx.say(f"   events/{name:31} {describe(response, already)}{note}")
            if ctx.verbose:
                ctx.dump(_answer_doc(response))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    left = sorted(f for _d, _s, files in os.walk(os.path.join(ctx.work, "pending")) for f in files)
    ctx.results["handler"] = {"written": where_it_went(ctx), "pending": left}
    return status


def sinks(ctx: DemoContext) -> list[str]:
    return [f"file://{ctx.work}/results", f"cos://{BUCKET}.{REGION}/{COS_PREFIX}", f"cmq-queue://{REGION}/{CMQ_QUEUE}"]


def where_it_went(ctx: DemoContext) -> dict[str, dict[str, list[str]]]:
    """JobId -> {"file": [absolute paths], "cos": [keys], "cmq": [message IDs]}, read back from the sinks."""
    found: dict[str, dict[str, list[str]]] = {}

    def add(job_id: str, kind: str, where: str) -> None:
        found.setdefault(job_id, {"file": [], "cos": [], "cmq": []})[kind].append(where)

    results = os.path.join(ctx.work, "results")
    for dirpath, dirnames, files in os.walk(results):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("_"))  # not the _index/ entries
        for name in sorted(files):
            if name.endswith(".json"):
                add(name[: -len(".json")], "file", os.path.abspath(os.path.join(dirpath, name)))
    for (bucket, key) in sorted(ctx.emu.cos.objects):
        parts = key.split("/")
        if bucket == BUCKET and parts[0] == COS_PREFIX and not parts[1].startswith("_") and key.endswith(".json"):
            add(parts[-1][: -len(".json")], "cos", key)
    for message in ctx.emu.cmq.by_name(CMQ_QUEUE):
        with contextlib.suppress(ValueError, AttributeError):
            add(json.loads(message.body)["JobId"], "cmq", message.msg_id)
    return found


def results_step(ctx: DemoContext) -> int:
    """One table: each job's Tag, State, outcome, and where the result went in each sink."""
    written = ctx.results.get("handler", {}).get("written", {})
    tags = {job_id: tag for job_id, tag, _ in (*SAMPLE_JOBS, CALLBACK_JOB)}
    ctx.say(f"3. results, read back from the sinks ({len(written)} jobs):")
    ctx.say(f"   {'JobId':33}  {'Tag':15}  {'State':7}  outcome")
    for job_id in sorted(set(written) | set(ctx.trails), key=lambda j: (tags.get(j, ""), j)):
        trail = ctx.trails.get(job_id, JobTrail())
        where = written.get(job_id, {"file": [], "cos": [], "cmq": []})
        ctx.say(f"   {job_id:33}  {tags.get(job_id, '?'):15}  {trail.state or '?':7}  {trail.summary()}")
        ctx.say(f"     file {', '.join(where['file']) or '-'}")
        cmq = (where["cmq"][0] + (f" (+{len(where['cmq']) - 1} duplicates)" if len(where["cmq"]) > 1 else "")
               if where["cmq"] else "-")
        ctx.say(f"     COS  {', '.join(where['cos']) or '-'}  CMQ message {cmq}")
    left = ctx.results.get("handler", {}).get("pending", [])
    ctx.say(f"still pending: {len(left)}")
    return 0


STEPS: list[Step] = [query_step, handler_step, results_step]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make run ARGS=...", description="Run cijobs against the local emulator.")
    parser.add_argument("--verbose", action="store_true", help="also print the full JSON of every answer")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (results/, pending/)")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None, out: TextIO = sys.stdout) -> int:
    args = parse_args([] if argv is None else argv)
    log.configure("warning", stream=sys.stderr)
    work = os.path.realpath(tempfile.mkdtemp(prefix="cijobs-demo-"))
    try:
        with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, token=SESSION_TOKEN, seed=1) as emu:
            env = emu.env(BUCKET, REGION)
            ctx = DemoContext(emu, env, Settings.from_env(env), from_env(env), out, work=work, verbose=args.verbose)
            ctx.say(f"cijobs demo against the in-process emulator (CI + COS + CMQ) at {emu.url}")
            ctx.say("result sinks: " + "\n              ".join(sinks(ctx)))
            status = 0
            for step in STEPS:
                status = max(status, step(ctx))
    finally:
        if args.keep:
            print(f"kept {work}", file=out)
        else:
            shutil.rmtree(work, ignore_errors=True)
    if not args.keep:
        print(f"removed {work} (make run ARGS=--keep keeps it; --verbose shows the full JSON)", file=out)
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
