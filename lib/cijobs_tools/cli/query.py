"""``cijobs query ID[,ID...] [ID ...]``: query CI jobs and print the normalized JSON.

Prints one JSON document on stdout::

    {"JobsDetail": [...], "NonExistJobIds": [...], "Failed": [...]}

(``QueryResult.as_dict()``; its "Invalid" list never appears here because an
invalid ID stops the command before anything is sent.)

Exit status: 0 every ID was answered (found or non-existent), 1 some IDs failed
(see "Failed"), 2 bad usage or input (an invalid job ID, missing credentials,
bad settings) — checked before anything is sent. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Optional

from . import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail

_FLAG_ENV = (("bucket", "CI_BUCKET"), ("region", "CI_REGION"), ("endpoint", "CI_ENDPOINT"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ids", nargs="+", metavar="ID[,ID...]",
                        help="job IDs, comma- or space-separated; '-' reads more IDs from stdin")
    parser.add_argument("--bucket", help="CI bucket BucketName-APPID (default: $CI_BUCKET)")
    parser.add_argument("--region", help="CI region, e.g. ap-guangzhou (default: $CI_REGION)")
    parser.add_argument("--endpoint", help="CI endpoint URL override, e.g. the emulator (default: $CI_ENDPOINT)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="overall time limit; IDs not answered by then are reported as failed")


def collect_ids(args: list[str], stdin_text: Optional[str] = None) -> list[str]:
    """Split every argument on commas/whitespace ('-' = the text read from stdin), de-duplicated in order."""
    from cijobs.job_ids import dedupe, split_ids

    out: list[str] = []
    for arg in args:
        out.extend(split_ids(stdin_text or "") if arg == "-" else split_ids(arg))
    return dedupe(out)


def run(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> int:
    from cijobs import log
    from cijobs.credentials import CredentialsError, from_env
    from cijobs.deadline import Deadline
    from cijobs.job_ids import validate_job_id
    from cijobs.settings import Settings, SettingsError

    env = dict(os.environ if environ is None else environ)
    ids = collect_ids(args.ids, sys.stdin.read() if "-" in args.ids else None)
    if not ids:
        return fail("no job IDs given")
    invalid = [i for i in ids if not validate_job_id(i)]
    if invalid:
        shown = ", ".join(repr(i[:80]) for i in invalid[:5]) + (f" and {len(invalid) - 5} more" if len(invalid) > 5
                                                                else "")
        return fail(f"invalid job ID(s): {shown} (expected a lowercase letter and 16-64 lowercase letters/digits); "
                    "nothing was sent")
    if args.timeout is not None and not args.timeout > 0:
        return fail("--timeout must be a positive number of seconds")
    for flag, name in _FLAG_ENV:
        value = getattr(args, flag)
        if value is not None:
            env[name] = value
    try:
        settings = Settings.from_env(env)
        settings.require_ci_target()
        creds = from_env(env)
    except (SettingsError, CredentialsError) as exc:
        return fail(str(exc))
    redactor = log.Redactor(settings.secrets())
    redactor.replace(creds.secrets())
    log.configure(settings.log_level, stream=sys.stderr, redactor=redactor)

    from cijobs.ci_client import JobClient

    try:
        client = JobClient(settings, credentials=lambda: creds)
    except SettingsError as exc:
        return fail(str(exc))
    result = client.query(ids, Deadline(args.timeout))
    print(json.dumps(result.as_dict(), sort_keys=True, ensure_ascii=False, indent=2))
    if result.invalid:  # pragma: no cover - rejected above
        return EXIT_USAGE
    return EXIT_FAILED if result.failed else EXIT_OK
