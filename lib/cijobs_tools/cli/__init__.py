"""The ``cijobs`` command line. Each verb lives in its own module here; only the module of the verb
being run is imported, to build its arguments and to run it (so ``cijobs query`` and ``cijobs normalize``
never import the emulator, the deploy code or the SDKs)."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional

# verb -> (module under cijobs.cli, one-line help)
VERBS = {
    "query": ("query", "query CI jobs by ID and print the normalized JSON"),
    "normalize": ("normalize", "normalize a CI XML/JSON body (query response or callback) to JSON"),
    "invoke": ("invoke", "run main_handler locally on an SCF event file"),
    "emulator": ("emulator", "run the local CI/COS/CMQ emulator on 127.0.0.1"),
    "deploy": ("deploy", "create or update the SCF function from template.yaml"),
    "webhook": ("webhook", "webhook receiver tools: verify a delivery's signature"),
}

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _chosen_verb(argv: list[str]) -> Optional[str]:
    """The verb named on the command line (the first argument that is not an option), if it is one."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in VERBS else None
    return None


def build_parser(verb: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser; only ``verb``'s arguments are added (its module is the only one imported)."""
    parser = argparse.ArgumentParser(prog="cijobs", description=__doc__)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for name, (module, help_text) in VERBS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
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


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print a one-line error to stderr and return ``code``."""
    print(f"cijobs: {message}", file=sys.stderr)
    return code
