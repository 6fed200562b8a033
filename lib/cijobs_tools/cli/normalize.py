"""`cijobs normalize [FILE|-]`: print the normalized JSON of a CI XML/JSON body.

When the document does not parse and one of the named repairs (``--repair``) would make it parse, the
error says so (``try --repair stray-close-tag``); a repair is never applied unless asked for.
"""

from __future__ import annotations

import argparse
from typing import Any, Optional

from . import EXIT_OK, fail, read_input
from .output import add_output_argument, configure_logging, emit


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="-", help="XML or JSON body (query response or callback); - = stdin")
    parser.add_argument(
        "--repair",
        action="append",
        default=[],
        metavar="NAME",
        help="opt-in repair of a known doc-sample typo (stray-close-tag, unclosed-leaf-tag); repeatable",
    )
    add_output_argument(parser, "json: indented on a terminal, compact otherwise (default); "
                                "jsonl: the document on one line")


def suggest_repairs(body: bytes, given: tuple[str, ...]) -> Optional[tuple[str, ...]]:
    """The repairs (beyond ``given``) that make ``body`` parse: one alone if one suffices, else all of
    them together; None when none helps."""
    from cijobs.normalize import REPAIRS, NormalizeError, normalize_document

    untried = [r for r in REPAIRS if r not in given]
    candidates: list[tuple[str, ...]] = [(r,) for r in untried]
    if len(untried) > 1:
        candidates.append(tuple(untried))
    for extra in candidates:
        try:
            normalize_document(body, repair=given + extra)
        except NormalizeError:
            continue
        return extra
    return None


def run(args: argparse.Namespace) -> int:
    from cijobs.log import schema_drift_reporter
    from cijobs.normalize import REPAIRS, MalformedDocumentError, NormalizeError, normalize_document

    # stdout carries the JSON document; log lines (schema drift) go to stderr
    configure_logging(args)

    unknown = [r for r in args.repair if r not in REPAIRS]
    if unknown:
        return fail(f"unknown repair {unknown[0]!r} (known: {', '.join(REPAIRS)})")
    try:
        body = read_input(args.file)
    except OSError as exc:
        return fail(f"cannot read {args.file}: {exc.strerror or exc}")
    given = tuple(args.repair)
    try:
        doc: Any = normalize_document(body, repair=given, on_drift=schema_drift_reporter())
    except NormalizeError as exc:
        message = f"{type(exc).__name__}: {_one_line(str(exc))}"
        # the repairs fix malformed XML only (not limits, forbidden constructs, error documents)
        hint = suggest_repairs(body, given) if isinstance(exc, MalformedDocumentError) else None
        if hint:
            message += "; try " + " ".join(f"--repair {name}" for name in hint)
        return fail(message)
    emit(doc, args.output)
    return EXIT_OK


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
