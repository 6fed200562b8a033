"""``cijobs query ID[,ID...] [ID ...]``: query CI jobs and print the normalized JSON.

``--output json`` (default) prints one JSON document on stdout::

    {"JobsDetail": [...], "NonExistJobIds": [...], "Failed": [...]}

(``QueryResult.as_dict()``, plus ``"Invalid": [...]`` with ``--skip-invalid``), indented on a terminal and
compact otherwise. ``--output jsonl`` prints one line per distinct ID, in input order: the normalized job
when found, ``{"JobId": ..., "NonExist": true}``, the ``Failed`` entry, or ``{"JobId": ..., "Invalid": true}``.

Exit status: 0 every ID was answered (found or non-existent), 1 some IDs failed (see "Failed") or, with
``--skip-invalid``, were invalid; 2 bad usage or input (an invalid job ID without ``--skip-invalid``,
missing credentials, bad settings) -- checked before anything is sent. Logs go to stderr (warnings and
errors by default, see ``-v``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, Optional

from . import EXIT_FAILED, EXIT_OK, fail
from .output import JSONL, add_output_argument, configure_logging, emit, emit_lines, flag_level

# flag (argparse dest) -> the environment variable it stands for
_FLAG_ENV = (("bucket", "CI_BUCKET"), ("region", "CI_REGION"), ("endpoint", "CI_ENDPOINT"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="+", metavar="ID[,ID...]",
                        help="job IDs, comma- or space-separated; '-' reads more IDs from stdin")
    parser.add_argument("--bucket", help="CI bucket BucketName-APPID (default: $CI_BUCKET)")
    parser.add_argument("--region", help="CI region, e.g. ap-guangzhou (default: $CI_REGION)")
    parser.add_argument("--endpoint", help="CI endpoint URL override, e.g. the emulator (default: $CI_ENDPOINT)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="overall time limit; IDs not answered by then are reported as failed")
    parser.add_argument("--skip-invalid", action="store_true",
                        help="query the valid IDs and list the others under \"Invalid\" (exit 1) instead of "
                             "refusing the whole command (exit 2)")
    add_output_argument(parser, "json: one document, indented on a terminal, compact otherwise (default); "
                                "jsonl: one line per distinct ID in input order")


def collect_ids(args: list[str], stdin_text: Optional[str] = None) -> list[str]:
    """Split every argument on commas/whitespace ('-' = the text read from stdin), de-duplicated in order."""
    from cijobs.job_ids import dedupe, split_ids

    out: list[str] = []
    for arg in args:
        out.extend(split_ids(stdin_text or "") if arg == "-" else split_ids(arg))
    return dedupe(out)


def describe_invalid(ids: list[str]) -> str:
    """``'x', 'y' and 3 more``; an ID that is valid once lowercased names that form."""
    from cijobs.job_ids import validate_job_id

    def one(job_id: str) -> str:
        lower = job_id.lower()
        hint = f" (did you mean {lower!r}? job IDs are lowercase)" if validate_job_id(lower) else ""
        return repr(job_id[:80]) + hint

    shown = ", ".join(one(i) for i in ids[:5])
    return shown + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


def name_flags(message: str, given: Mapping[str, str]) -> str:
    """``message`` with each variable whose value came from a flag replaced by that flag."""
    for var, flag in given.items():
        message = re.sub(rf"\b{re.escape(var)}\b", flag, message)
    return message


def jsonl_lines(ids: list[str], result: Any) -> Iterator[dict[str, Any]]:
    """One document per ID of ``ids`` (distinct, input order) from a ``QueryResult``."""
    jobs = {job.get("JobId"): job for job in result.jobs}
    failed = {f.job_id: f.as_dict() for f in result.failed}
    missing, invalid = set(result.nonexistent), set(result.invalid)
    for job_id in ids:
        if job_id in jobs:
            yield jobs[job_id]
        elif job_id in failed:
            yield failed[job_id]
        elif job_id in invalid:
            yield {"JobId": job_id, "Invalid": True}
        elif job_id in missing:
            yield {"JobId": job_id, "NonExist": True}
        else:  # pragma: no cover - QueryResult puts every ID in one list
            yield {"JobId": job_id, "Error": {"Code": "NoAnswer", "Message": "no answer for this ID"}}


def run(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> int:
    from cijobs import log
    from cijobs.credentials import CredentialsError, from_env
    from cijobs.deadline import Deadline
    from cijobs.job_ids import validate_job_id
    from cijobs.models import QueryResult
    from cijobs.settings import Settings, SettingsError

    env = dict(os.environ if environ is None else environ)
    ids = collect_ids(args.ids, sys.stdin.read() if "-" in args.ids else None)
    if not ids:
        return fail("no job IDs given")
    invalid = [i for i in ids if not validate_job_id(i)]
    if invalid and not args.skip_invalid:
        return fail(f"invalid job ID(s): {describe_invalid(invalid)} (expected a lowercase letter and 16-64 "
                    "lowercase letters/digits); nothing was sent (--skip-invalid queries the others)")
    if args.timeout is not None and not args.timeout > 0:
        return fail("--timeout must be a positive number of seconds")
    given: dict[str, str] = {}
    for dest, name in _FLAG_ENV:
        value = getattr(args, dest)
        if value is not None:
            env[name] = value
            given[name] = "--" + dest
    if flag_level(args) is not None:
        env.pop("LOG_LEVEL", None)  # the flag decides; a bad LOG_LEVEL must not stop the command
    try:
        settings = Settings.from_env(env)
        settings.require_ci_target()
        creds = from_env(env)
    except (SettingsError, CredentialsError) as exc:
        return fail(name_flags(str(exc), given))
    redactor = log.Redactor(settings.secrets())
    redactor.replace(creds.secrets())
    configure_logging(args, env, redactor)

    from cijobs.ci_client import JobClient

    try:
        from cijobs.ratelimit import limiters_for

        client = JobClient(settings, credentials=lambda: creds, redactor=redactor,
                           on_drift=log.schema_drift_reporter(), limiters=limiters_for(settings))
    except SettingsError as exc:
        return fail(name_flags(str(exc), given))
    bad = set(invalid)
    valid = [i for i in ids if i not in bad]
    started = time.monotonic()
    result = client.query(valid, Deadline(args.timeout)) if valid else QueryResult()
    if invalid:
        result.invalid = list(invalid)
    # one summary at info (each request is a debug line)
    log.get_logger("cijobs.cli").info(
        "query_summary", ids=len(ids), found=len(result.jobs), nonexistent=len(result.nonexistent),
        failed=len(result.failed), invalid=len(result.invalid), duration_ms=int((time.monotonic() - started) * 1000))
    if args.output == JSONL:
        emit_lines(jsonl_lines(ids, result))
    else:
        emit(result.as_dict(), args.output)
    return EXIT_FAILED if result.failed or result.invalid else EXIT_OK
