"""What every verb shares about what it prints: ``--output json|jsonl`` on stdout, log level on stderr.

A verb that prints JSON calls :func:`add_output_argument` in its ``add_arguments`` and :func:`emit` (one
document) or :func:`emit_lines` (``jsonl``: one compact document per line) in its ``run``. ``json`` is
indented when stdout is a terminal and compact otherwise (no ``indent``, so the C encoder runs: about 5x
faster on a 1,000-job answer). Keys are sorted either way so that output is deterministic.

Log level (:func:`log_level`, :func:`configure_logging`): ``-q`` errors only, default warnings, ``-v`` info,
``-vv`` debug; a flag wins over ``LOG_LEVEL``, which applies when no flag is given. The ``-v``/``-q``
options themselves are added to every verb by :func:`cijobs_tools.cli.build_parser`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Optional, TextIO

JSON, JSONL = "json", "jsonl"
FORMATS = (JSON, JSONL)
DEFAULT_LEVEL = "warning"
LEVELS = ("debug", "info", "warning", "error")

if TYPE_CHECKING:
    from cijobs.log import Redactor


def add_output_argument(parser: argparse.ArgumentParser, help_text: Optional[str] = None) -> None:
    parser.add_argument(
        "--output", "-o", choices=FORMATS, default=JSON,
        help=help_text or "json: one document, indented on a terminal, compact otherwise (default); "
                          "jsonl: compact JSON, one document per line",
    )


def is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


def dumps(doc: Any, pretty: bool = False) -> str:
    """``doc`` as JSON text: indented when ``pretty``, else compact on one line (C encoder)."""
    if pretty:
        return json.dumps(doc, sort_keys=True, ensure_ascii=False, indent=2)
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def emit(doc: Any, output: str = JSON, stream: Optional[TextIO] = None) -> None:
    """Print one document: ``json`` pretty on a terminal / compact otherwise, ``jsonl`` always one line."""
    out = sys.stdout if stream is None else stream
    out.write(dumps(doc, pretty=output == JSON and is_terminal(out)) + "\n")


def emit_lines(docs: Iterable[Any], stream: Optional[TextIO] = None) -> None:
    """Print ``jsonl``: each document compact on its own line."""
    out = sys.stdout if stream is None else stream
    out.write("".join(dumps(doc) + "\n" for doc in docs))


def add_verbosity_arguments(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """``-v``/``-q`` on ``parser``; ``suppress``: no defaults (a verb's options, which argparse would
    otherwise let reset the values given before the verb, as in ``cijobs -v query ...``)."""
    counted: Any = argparse.SUPPRESS if suppress else 0
    switched: Any = argparse.SUPPRESS if suppress else False
    parser.add_argument("-v", "--verbose", action="count", default=counted,
                        help="more logs on stderr: -v info, -vv debug (default: warnings; overrides LOG_LEVEL)")
    parser.add_argument("-q", "--quiet", action="store_true", default=switched,
                        help="errors only on stderr (overrides LOG_LEVEL)")


def flag_level(args: argparse.Namespace) -> Optional[str]:
    """The level the -v/-q flags ask for, or None when none was given."""
    if getattr(args, "quiet", False):
        return "error"
    verbose = int(getattr(args, "verbose", 0) or 0)
    if verbose >= 2:
        return "debug"
    if verbose == 1:
        return "info"
    return None


def log_level(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> str:
    """The CLI's log level: a -v/-q flag, else ``LOG_LEVEL`` (when it names a level), else warnings."""
    level = flag_level(args)
    if level is not None:
        return level
    env = os.environ if environ is None else environ
    from_env = env.get("LOG_LEVEL", "").strip().lower()
    return from_env if from_env in LEVELS else DEFAULT_LEVEL


def configure_logging(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None,
                      redactor: Optional[Redactor] = None) -> str:
    """Send the runtime's structured logs to stderr at :func:`log_level`, redacted by ``redactor``;
    returns the level."""
    from cijobs import log

    level = log_level(args, environ)
    log.configure(level, stream=sys.stderr, redactor=redactor)
    return level
