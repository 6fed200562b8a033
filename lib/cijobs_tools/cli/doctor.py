"""``cijobs doctor``: check the settings, credentials, CI, every result sink and the pending store.

One line per check, ``✓`` or ``✗`` (``-`` for a check that was skipped), each ✗ followed by what to fix;
the first line names the credentials in use (SecretId masked, temporary or not). ``--json`` (or
``--output json``) prints ``{"Ok": ..., "Checks": [{"Name", "Ok", "Detail", "Fix", "Skipped"}]}`` instead.
Settings come from the environment, as for every verb; ``--bucket``/``--region``/``--endpoint``,
``--result-sink`` and ``--pending-store`` override it. CMQ and webhook sinks are probed only with
``--send-probe`` (the probe reaches your consumers). Exit status: 0 every check passed, 1 some failed.
The checks themselves are :mod:`cijobs.doctor` (the function runs them on a direct invoke of
``{"Doctor": true}``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Optional, TextIO

from . import EXIT_FAILED, EXIT_OK, fail
from .output import configure_logging, emit, flag_level

if TYPE_CHECKING:
    from cijobs.doctor import Check

TEXT, JSON = "text", "json"
# flag (argparse dest) -> the environment variable it stands for
FLAG_ENV = (("bucket", "CI_BUCKET"), ("region", "CI_REGION"), ("endpoint", "CI_ENDPOINT"),
            ("result_sink", "RESULT_SINK"), ("pending_store", "PENDING_STORE"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bucket", help="CI bucket BucketName-APPID (default: $CI_BUCKET)")
    parser.add_argument("--region", help="CI region, e.g. ap-guangzhou (default: $CI_REGION)")
    parser.add_argument("--endpoint", help="CI endpoint URL override, e.g. the emulator (default: $CI_ENDPOINT)")
    parser.add_argument("--result-sink", metavar="URL[,URL...]", help="result sink(s) to check "
                                                                       "(default: $RESULT_SINK)")
    parser.add_argument("--pending-store", metavar="URL", help="pending registry to check (default: $PENDING_STORE)")
    parser.add_argument("--send-probe", action="store_true",
                        help="also send one probe message to each CMQ queue/topic and webhook sink (your "
                             "consumers receive it: JobId jcijobsdoctorprobe..., Tag Doctor)")
    parser.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                        help="time limit for all checks (default 20)")
    parser.add_argument("--output", "-o", choices=(TEXT, JSON), default=TEXT,
                        help="text: one line per check (default); json: one document for machines")
    parser.add_argument("--json", dest="output", action="store_const", const=JSON, help="same as --output json")


def render(checks: Sequence[Check], stream: TextIO) -> None:
    """One line per check, the fix indented under each failed one."""
    for check in checks:
        mark = "-" if check.skipped else ("✓" if check.ok else "✗")
        stream.write(f"{mark} {check.name}: {check.detail}\n")
        if not check.ok and check.fix:
            stream.write(f"    fix: {check.fix}\n")
    failed = [c.name for c in checks if not c.ok]
    stream.write(f"{len(failed)} check(s) failed: {', '.join(failed)}\n" if failed else "all checks passed\n")


def flag_env(args: argparse.Namespace, env: dict[str, str], pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Put the flags given into ``env``; returns ``{VARIABLE: --flag}`` for the error messages."""
    given: dict[str, str] = {}
    for dest, name in pairs:
        value = getattr(args, dest, None)
        if value is not None:
            env[name] = value
            given[name] = "--" + dest.replace("_", "-")
    if flag_level(args) is not None:
        env.pop("LOG_LEVEL", None)  # the flag decides; a bad LOG_LEVEL is reported by the settings check
    return given


def run(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> int:
    from cijobs import log
    from cijobs.credentials import CredentialsError
    from cijobs.credentials import from_env as credentials_from_env
    from cijobs.deadline import Deadline
    from cijobs.doctor import Check, report, run_checks

    from .query import name_flags

    if not args.timeout > 0:
        return fail("--timeout must be a positive number of seconds")
    env = dict(os.environ if environ is None else environ)
    given = flag_env(args, env, FLAG_ENV)
    redactor = log.Redactor(())
    try:
        redactor.replace(credentials_from_env(env).secrets())
    except CredentialsError:
        pass
    configure_logging(args, env, redactor)
    checks = run_checks(env, Deadline(args.timeout), send_probe=args.send_probe)
    checks = [Check(c.name, c.ok, name_flags(c.detail, given), name_flags(c.fix, given), c.skipped)
              for c in checks]
    if args.output == JSON:
        emit(report(checks))
    else:
        render(checks, sys.stdout)
    return EXIT_OK if all(c.ok for c in checks) else EXIT_FAILED
