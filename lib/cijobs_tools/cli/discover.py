"""``cijobs discover``: list CI jobs by Tag and creation time, or show the discovery cursors. Writes nothing.

    cijobs discover --tag Transcode [--tag Snapshot] --since 2026-12-04T20:00:00+0800 [--until ISO]
                    [--states Success,Failed] [--queue QUEUE_ID ...] [--output json|jsonl]
    cijobs discover --status [--store cos://BUCKET-APPID.REGION/PREFIX | file://DIR]

Listing: every job of each tag (and queue) created from ``--since`` through ``--until`` (default: now),
ascending, 100 a page, following ``NextToken``. CI does not document whether its creation-time bounds
are inclusive, so the request asks one second wider on each side and the result is cut to the range.
``--output json`` (default) prints ``{"JobsDetail": [...], "Failed": [...]}``; ``jsonl`` prints one job per
line (failures on stderr). ``--tag all`` lists every real job Tag the normalizer knows.

``--status`` prints the cursor in force for every tag/queue of the pending registry's store
(``PENDING_STORE``, or ``--store``) as JSON.

Exit status: 0 every listing succeeded, 1 some failed (see "Failed"), 2 bad usage, settings or credentials.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Mapping
from typing import Any, Optional

from . import EXIT_FAILED, EXIT_OK, fail

_FLAG_ENV = (("bucket", "CI_BUCKET"), ("region", "CI_REGION"), ("endpoint", "CI_ENDPOINT"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tag", action="append", default=[], metavar="TAG",
                        help="job Tag to list (repeatable or comma-separated; 'all' = every known Tag)")
    parser.add_argument("--since", metavar="ISO", help="earliest creation time, e.g. 2026-12-04T20:00:00+0800")
    parser.add_argument("--until", metavar="ISO", help="latest creation time (default: now)")
    parser.add_argument("--states", metavar="S,...", default="",
                        help="only these states: Submitted, Running, Success, Failed, Pause, Cancel (default: all)")
    parser.add_argument("--queue", action="append", default=[], metavar="QUEUE_ID",
                        help="list each tag per queue (repeatable or comma-separated)")
    parser.add_argument("--output", choices=("json", "jsonl"), default="json", help="json (default) or jsonl")
    parser.add_argument("--status", action="store_true", help="print each discovery cursor instead of listing")
    parser.add_argument("--store", metavar="URL", help="pending registry store for --status (default: $PENDING_STORE)")
    parser.add_argument("--bucket", help="CI bucket BucketName-APPID (default: $CI_BUCKET)")
    parser.add_argument("--region", help="CI region, e.g. ap-guangzhou (default: $CI_REGION)")
    parser.add_argument("--endpoint", help="CI endpoint URL override, e.g. the emulator (default: $CI_ENDPOINT)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="overall time limit")


def parse_time(value: str) -> int:
    """Unix seconds from ``2026-12-04T20:00:00+0800`` / ``+08:00`` / ``Z``; an offset is required."""
    from cijobs.ci_list import parse_job_time

    t = parse_job_time(value.strip())
    if t is None:
        raise ValueError(f"{value!r} is not a time with a UTC offset, e.g. 2026-12-04T20:00:00+0800")
    return t


def _split(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        out += [x.strip() for x in v.split(",") if x.strip() and x.strip() not in out]
    return out


def run(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> int:
    from cijobs import log
    from cijobs.credentials import CredentialsError, from_env
    from cijobs.settings import Settings, SettingsError
    from cijobs.store import CosLocation

    env = dict(os.environ if environ is None else environ)
    for flag, name in _FLAG_ENV:
        value = getattr(args, flag)
        if value is not None:
            env[name] = value
    if args.store:
        env["PENDING_STORE"] = args.store
    if args.timeout is not None and not args.timeout > 0:
        return fail("--timeout must be a positive number of seconds")
    try:
        settings = Settings.from_env(env)
        creds = from_env(env) if not args.status or isinstance(settings.pending_store, CosLocation) else None
    except (SettingsError, CredentialsError) as exc:
        return fail(str(exc))
    redactor = log.Redactor(settings.secrets())
    if creds is not None:
        redactor.replace(creds.secrets())
    log.configure(settings.log_level, stream=sys.stderr, redactor=redactor)
    if args.status:
        return _status(settings, creds)
    return _list(args, settings, creds)


def _status(settings: Any, creds: Any) -> int:
    from cijobs.cos import CosClient
    from cijobs.discovery_cursor import CursorError, CursorStore, describe
    from cijobs.store import open_store

    try:
        store = open_store(settings.pending_store, lambda: CosClient(settings, lambda: creds))
        cursors = CursorStore(store).status()
    except ValueError as exc:
        return fail(str(exc))
    except CursorError as exc:
        return fail(f"cannot read the cursors: {exc}", EXIT_FAILED)
    print(json.dumps(describe(cursors), ensure_ascii=False, indent=2, sort_keys=True))
    return EXIT_OK


def _list(args: argparse.Namespace, settings: Any, creds: Any) -> int:
    from cijobs.ci_client import CIError, JobClient
    from cijobs.ci_list import LIST_STATES, JobLister, ListQuery, parse_job_time, queue_required
    from cijobs.deadline import Deadline
    from cijobs.discovery import QUEUE_HINT, parse_tags
    from cijobs.settings import SettingsError

    try:
        tags = parse_tags(",".join(args.tag))
    except ValueError as exc:
        return fail(str(exc))
    if not tags:
        return fail("give at least one --tag (or --status)")
    if not args.since:
        return fail("--since is required, e.g. --since 2026-12-04T20:00:00+0800")
    try:
        since = parse_time(args.since)
        until = parse_time(args.until) if args.until else int(time.time())
    except ValueError as exc:
        return fail(str(exc))
    if until < since:
        return fail("--until is before --since")
    states = _split([args.states])
    bad = [s for s in states if s not in LIST_STATES]
    if bad:
        return fail(f"unknown state(s) {', '.join(bad)} (expected {', '.join(LIST_STATES[1:])})")
    queues: list[Optional[str]] = list(_split(args.queue)) or [None]
    try:
        lister = JobLister(JobClient(settings, credentials=lambda: creds))
    except SettingsError as exc:
        return fail(str(exc))
    deadline = Deadline(args.timeout)
    jobs: list[dict[str, Any]] = []
    seen: set[str] = set()
    failed: list[dict[str, Any]] = []
    for tag in tags:
        for queue in queues:
            token: Optional[str] = None
            while True:
                query = ListQuery(tag, states=tuple(s for s in states if s != "All"), start=since - 1,
                                  end=until + 1, queue_id=queue, next_token=token)
                try:
                    page = lister.list_page(query, deadline)
                except CIError as exc:
                    entry = {"Tag": tag, "QueueId": queue, "Code": exc.code, "Message": exc.message,
                             "Status": exc.status, "RequestId": exc.request_id}
                    if queue_required(exc):
                        entry["Hint"] = QUEUE_HINT
                    failed.append(entry)
                    break
                for job in page.jobs:
                    t = parse_job_time(job.get("CreationTime"))
                    job_id = job.get("JobId")
                    if t is not None and not since <= t <= until:
                        continue
                    if isinstance(job_id, str) and job_id in seen:
                        continue
                    if isinstance(job_id, str):
                        seen.add(job_id)
                    jobs.append(job)
                    if args.output == "jsonl":
                        print(json.dumps(job, ensure_ascii=False, sort_keys=True), flush=False)
                token = page.next_token
                if token is None:
                    break
    if args.output == "json":
        print(json.dumps({"JobsDetail": jobs, "Failed": failed}, ensure_ascii=False, indent=2, sort_keys=True))
    else:
        for entry in failed:
            print(f"cijobs: listing {entry['Tag']} failed: {entry['Code']}: {entry['Message']}"
                  + (f" ({entry['Hint']})" if "Hint" in entry else ""), file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK

