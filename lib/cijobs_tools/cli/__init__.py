"""The ``cijobs`` command line. Each verb lives in its own module here; only the module of the verb
being run is imported, to build its arguments and to run it (so ``cijobs query`` and ``cijobs normalize``
never import the emulator, the deploy code or the SDKs)."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Optional

from .output import add_verbosity_arguments

# verb -> (module under cijobs.cli, one-line help)
VERBS = {
    "query": ("query", "query CI jobs by ID and print the normalized JSON"),
    "discover": ("discover", "list CI jobs by Tag and creation time (writes nothing), or show discovery cursors"),
    "normalize": ("normalize", "normalize a CI XML/JSON body (query response or callback) to JSON"),
    "doctor": ("doctor", "check settings, credentials, CI, the result sinks and the pending store; say what to fix"),
    "pending": ("pending", "the pending registry: list, show, retry or drop the jobs not finished yet"),
    "invoke": ("invoke", "run main_handler locally on an SCF event file"),
    "emulator": ("emulator", "run the local CI/COS/CMQ emulator on 127.0.0.1"),
    "deploy": ("deploy", "create or update the SCF function from template.yaml"),
    "webhook": ("webhook", "webhook receiver tools: verify a delivery's signature"),
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Query Tencent Cloud CI (Cloud Infinite) media jobs and run the cijobs SCF function locally.
Run `cijobs VERB --help` for the options of one verb."""

EPILOG = """\
settings:
  Settings come from environment variables, the same ones the deployed function reads
  (see README.md), e.g. CI_BUCKET (BucketName-APPID), CI_REGION, CI_ENDPOINT,
  TENCENTCLOUD_SECRETID / TENCENTCLOUD_SECRETKEY / TENCENTCLOUD_SESSIONTOKEN, LOG_LEVEL.
  A .env file is not read: export the variables. Flags (e.g. --bucket, --region,
  -v/-q) override the environment.

logs and output:
  JSON goes to stdout (indented on a terminal, compact otherwise; --output jsonl for one
  document per line), logs to stderr: warnings by default, -v info, -vv debug, -q errors.

exit status:
  0 success, 1 some work failed (e.g. a job ID could not be queried, an HTTP 5xx), 2 bad usage
  or input (nothing was sent)."""


class _VersionAction(argparse.Action):
    """``--version``: the installed distribution's version, looked up only when asked for."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("cijobs")
        except PackageNotFoundError:  # running from a source tree that was never installed
            text = "unknown (not installed)"
        sys.stdout.write(f"cijobs {text}\n")
        parser.exit()


def _chosen_verb(argv: list[str]) -> Optional[str]:
    """The verb named on the command line (the first argument that is not an option), if it is one."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in VERBS else None
    return None


def build_parser(verb: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser; only ``verb``'s arguments are added (its module is the only one imported)."""
    parser = argparse.ArgumentParser(prog="cijobs", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_VersionAction, help="print the cijobs version and exit")
    add_verbosity_arguments(parser)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for name, (module, help_text) in VERBS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_verbosity_arguments(p, suppress=True)
        if name == verb:
            importlib.import_module(f"cijobs_tools.cli.{module}").add_arguments(p)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    from cijobs.gc_tuning import tune_gc

    tune_gc()  # the command line owns its process (see cijobs.gc_tuning)
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_chosen_verb(argv))
    args = parser.parse_args(argv)
    module = importlib.import_module(f"cijobs_tools.cli.{VERBS[args.verb][0]}")
    try:
        return int(module.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


def read_input(path: str) -> bytes:
    """The bytes of ``path``, or of standard input for ``-`` (``OSError`` when it cannot be read)."""
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as fh:
        return fh.read()


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print a one-line error to stderr and return ``code``."""
    print(f"cijobs: {message}", file=sys.stderr)
    return code
