"""`cijobs normalize [FILE|-]`: print the normalized JSON of a CI XML/JSON body."""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import EXIT_OK, fail


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", default="-", help="XML or JSON body (query response or callback); - = stdin")
    parser.add_argument(
        "--repair",
        action="append",
        default=[],
        metavar="NAME",
        help="opt-in repair of a known doc-sample typo (stray-close-tag, unclosed-leaf-tag); repeatable",
    )


def run(args: argparse.Namespace) -> int:
    from cijobs.log import configure
    from cijobs.normalize import REPAIRS, NormalizeError, normalize_document

    # stdout carries the JSON document; log lines (schema drift) go to stderr
    configure(os.environ.get("LOG_LEVEL", "info").lower(), stream=sys.stderr)

    unknown = [r for r in args.repair if r not in REPAIRS]
    if unknown:
        return fail(f"unknown repair {unknown[0]!r} (known: {', '.join(REPAIRS)})")
    try:
        if args.file == "-":
            body = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as fh:
                body = fh.read()
    except OSError as exc:
        return fail(f"cannot read {args.file}: {exc.strerror or exc}")
    try:
        doc = normalize_document(body, repair=tuple(args.repair))
    except NormalizeError as exc:
        return fail(f"{type(exc).__name__}: {_one_line(str(exc))}")
    sys.stdout.write(json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n")
    return EXIT_OK


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
