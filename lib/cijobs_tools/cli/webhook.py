"""`cijobs webhook verify --secret S --timestamp T --signature HEADER < body`: check a delivery's signature.

Exit 0 when some ``v1`` value of the header is the HMAC-SHA256 of ``"<T>." + body`` under one of the
secrets and ``T`` is within ``--tolerance`` seconds of now; 1 when not (the reason on stderr); 2 on
usage errors. ``--secret`` may be repeated (rotation); without it, ``WEBHOOK_SECRET`` is read (one
secret, or two separated by ','), so the secret need not appear in the process list.
"""

from __future__ import annotations

import argparse
import os
import time

from . import EXIT_FAILED, EXIT_OK, fail, read_input


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="webhook_verb", metavar="SUBVERB")
    sub.required = True
    p = sub.add_parser("verify", help="verify a delivery's X-Cijobs-Signature (body on stdin)",
                       description=__doc__)
    p.add_argument("--secret", action="append", default=[], metavar="S",
                   help="a webhook secret (repeatable; default: $WEBHOOK_SECRET, comma-separated)")
    p.add_argument("--timestamp", required=True, metavar="T", help="the X-Cijobs-Timestamp header")
    p.add_argument("--signature", required=True, metavar="HEADER", help="the X-Cijobs-Signature header")
    p.add_argument("--tolerance", type=float, default=300.0, metavar="SECONDS",
                   help="largest accepted distance between the timestamp and now (default 300)")
    p.add_argument("file", nargs="?", default="-", help="the request body, byte for byte; - = stdin (default)")


def run(args: argparse.Namespace) -> int:
    from cijobs.webhook_signature import fresh, parse_timestamp, signature_values, verify

    secrets = [s for s in args.secret if s]
    if not secrets:
        secrets = [s.strip() for s in os.environ.get("WEBHOOK_SECRET", "").split(",") if s.strip()]
    if not secrets:
        return fail("give --secret (or set WEBHOOK_SECRET)")
    if args.tolerance < 0:
        return fail("--tolerance must be >= 0")
    try:
        body = read_input(args.file)
    except OSError as exc:
        return fail(f"cannot read {args.file}: {exc.strerror or exc}")
    now = time.time()
    try:
        ts = parse_timestamp(args.timestamp)
        signature_values(args.signature)
    except ValueError as exc:
        return fail(f"invalid: {exc}", EXIT_FAILED)
    if not fresh(ts, now, args.tolerance):
        return fail(f"invalid: the timestamp is {abs(now - ts):.0f} s from now (tolerance {args.tolerance:g} s)",
                    EXIT_FAILED)
    if not verify(secrets, args.timestamp, args.signature, body, now, args.tolerance):
        return fail("invalid: no v1 signature matches the secret(s) for this body and timestamp", EXIT_FAILED)
    print("valid")
    return EXIT_OK
