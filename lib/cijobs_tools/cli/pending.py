"""``cijobs pending``: the pending registry (``PENDING_STORE``) seen and handled by an operator.

* ``list [--json] [--older-than SECONDS] [--limit N]``: job ID, first seen, source, age and whether CI
  ever answered for it, oldest first. At most ``--limit`` entries are listed (in key order; a note on
  stderr says when more remain). ``--json`` prints a JSON array of
  ``{"JobId", "FirstSeen" (ISO 8601, UTC), "Source", "AgeS", "Answered"}``.
* ``show ID``: one entry (exit 1 when the ID is not in the registry).
* ``retry [ID...]``: runs the function's pipeline now (wired as ``build_app`` wires it, from the same
  settings): with IDs, those jobs are queried and written or kept (source ``operator``); without, one
  timer tick over the registry. Prints the outcomes as JSON; exit 1 when a job failed.
* ``drop ID... --yes``: forgets jobs that will never finish (e.g. cancelled in CI); refuses without
  ``--yes``.

Settings come from the environment; ``--pending-store URL`` overrides ``PENDING_STORE``. Credentials are
needed only for a ``cos://`` registry and for ``retry``. Exit status: 0 done, 1 something failed or was
not found, 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

from . import EXIT_FAILED, EXIT_OK, EXIT_USAGE, fail
from .output import add_verbosity_arguments, configure_logging, emit

if TYPE_CHECKING:
    from cijobs.models import PendingEntry
    from cijobs.pending import PendingStore

DEFAULT_LIMIT = 1000
DEFAULT_TIMEOUT_S = 60.0


def _common(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    """``--pending-store``/``--timeout`` before or after the action (after it: no defaults, which would
    reset the values given before it); ``-v``/``-q`` after it too."""
    parser.add_argument("--pending-store", metavar="URL", default=argparse.SUPPRESS if suppress else None,
                        help="the registry (default: $PENDING_STORE)")
    parser.add_argument("--timeout", type=float, default=argparse.SUPPRESS if suppress else DEFAULT_TIMEOUT_S,
                        metavar="SECONDS",
                        help=f"time limit (default {DEFAULT_TIMEOUT_S:g}); retry stops starting work past it")
    if suppress:
        add_verbosity_arguments(parser, suppress=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _common(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    p = sub.add_parser("list", help="the pending jobs, oldest first", description="the pending jobs, oldest first")
    p.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    p.add_argument("--older-than", type=float, default=None, metavar="SECONDS",
                   help="only jobs first seen at least this long ago")
    p.add_argument("--limit", type=int, default=DEFAULT_LIMIT, metavar="N",
                   help=f"list at most N registry entries (default {DEFAULT_LIMIT})")
    p = sub.add_parser("show", help="one pending job", description="one pending job")
    p.add_argument("id", metavar="ID")
    p.add_argument("--json", action="store_true", help="JSON instead of text")
    p = sub.add_parser("retry", help="query these jobs now (without IDs: one timer tick over the registry)",
                       description="run the function's pipeline now for these IDs, or one tick without IDs")
    p.add_argument("ids", nargs="*", metavar="ID")
    p = sub.add_parser("drop", help="forget jobs that will never finish (needs --yes)",
                       description="forget jobs that will never finish, e.g. cancelled in CI")
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--yes", action="store_true", help="really drop them")
    for action in sub.choices.values():
        _common(action, suppress=True)


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry_doc(entry: PendingEntry, now: float) -> dict[str, Any]:
    return {"JobId": entry.job_id, "FirstSeen": iso(entry.first_seen), "Source": entry.source,
            "AgeS": max(0, int(now - entry.first_seen)), "Answered": entry.answered}


def _answered_text(value: Optional[bool]) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


def format_age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def table(docs: Sequence[dict[str, Any]]) -> str:
    rows = [("JOB ID", "FIRST SEEN", "SOURCE", "AGE", "ANSWERED")]
    rows += [(d["JobId"], d["FirstSeen"], d["Source"] or "-", format_age(d["AgeS"]), _answered_text(d["Answered"]))
             for d in docs]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n" for r in rows)


def with_sources(registry: PendingStore, entries: list[PendingEntry], deadline: Any) -> list[PendingEntry]:
    """The entries with their ``Source`` (a listing carries none): each entry is read, in parallel."""
    from cijobs.models import PendingEntry
    from cijobs.pending import decode_entry
    from cijobs.store import StoreError

    def one(entry: PendingEntry) -> PendingEntry:
        try:
            obj = registry.store.get(registry.key(entry.job_id), deadline)
        except (StoreError, ValueError):
            return entry
        decoded = decode_entry(entry.job_id, obj.body) if obj is not None and obj.body is not None else None
        if decoded is None:
            return entry
        return PendingEntry(entry.job_id, entry.first_seen, decoded.source, entry.answered)

    if len(entries) <= 1:
        return [one(e) for e in entries]
    with ThreadPoolExecutor(max_workers=min(8, len(entries))) as pool:
        return list(pool.map(one, entries))


def run(args: argparse.Namespace, environ: Optional[Mapping[str, str]] = None) -> int:
    from cijobs import log
    from cijobs.credentials import Credentials, CredentialsError
    from cijobs.credentials import from_env as credentials_from_env
    from cijobs.deadline import Deadline
    from cijobs.settings import Settings, SettingsError

    from .query import name_flags

    env = dict(os.environ if environ is None else environ)
    given: dict[str, str] = {}
    if args.pending_store is not None:
        env["PENDING_STORE"] = args.pending_store
        given["PENDING_STORE"] = "--pending-store"
    if not args.timeout > 0:
        return fail("--timeout must be a positive number of seconds")
    if getattr(args, "verbose", 0) or getattr(args, "quiet", False):
        env.pop("LOG_LEVEL", None)
    try:
        settings = Settings.from_env(env)
    except SettingsError as exc:
        return fail(name_flags(str(exc), given))
    redactor = log.Redactor(settings.secrets())
    try:
        redactor.replace(credentials_from_env(env).secrets())
    except CredentialsError:
        pass
    configure_logging(args, env, redactor)
    deadline = Deadline(args.timeout)
    if args.action == "retry":
        return retry(args, env, settings, deadline)
    if args.action == "drop" and not args.yes:
        return fail(f"drop forgets {len(args.ids)} job(s) for good: add --yes to do it", EXIT_USAGE)

    from cijobs.pending import PendingError, build_pending_store

    def credentials() -> Credentials:
        return credentials_from_env(env)

    registry = build_pending_store(settings, credentials)
    try:
        if args.action == "list":
            return list_entries(args, registry, deadline)
        if args.action == "show":
            return show(args, registry, deadline)
        return drop(args, registry, deadline)
    except PendingError as exc:
        return fail(f"{settings.pending_store.url}: {exc}", EXIT_FAILED)
    except CredentialsError as exc:
        return fail(str(exc))


def list_entries(args: argparse.Namespace, registry: PendingStore, deadline: Any) -> int:
    if args.limit < 1:
        return fail("--limit must be at least 1")
    if args.older_than is not None and args.older_than < 0:
        return fail("--older-than must be zero or more seconds")
    listing = registry.listing(args.limit, deadline, resume=False)
    now = time.time()
    entries = [e for e in listing.entries
               if args.older_than is None or now - e.first_seen >= args.older_than]
    docs = [entry_doc(e, now) for e in with_sources(registry, entries, deadline)]
    if not listing.complete:
        print(f"cijobs: more entries than --limit {args.limit}: these are the first in key order", file=sys.stderr)
    if args.json:
        emit(docs)
    elif docs:
        sys.stdout.write(table(docs))
    else:
        print("no pending jobs" + (" that old" if args.older_than is not None and listing.entries else ""))
    return EXIT_OK


def show(args: argparse.Namespace, registry: PendingStore, deadline: Any) -> int:
    try:
        entry = registry.get(args.id, deadline)
    except ValueError as exc:
        return fail(str(exc))
    if entry is None:
        return fail(f"{args.id} is not in the pending registry", EXIT_FAILED)
    doc = entry_doc(entry, time.time())
    if args.json:
        emit(doc)
    else:
        for label, key in (("job ID", "JobId"), ("first seen", "FirstSeen"), ("source", "Source"), ("age", "AgeS"),
                           ("answered", "Answered")):
            value = doc[key]
            text = format_age(value) if key == "AgeS" else _answered_text(value) if key == "Answered" else value
            print(f"{label + ':':12} {text or '-'}")
    return EXIT_OK


def drop(args: argparse.Namespace, registry: PendingStore, deadline: Any) -> int:
    ids = list(dict.fromkeys(args.ids))
    try:
        for job_id in ids:
            registry.key(job_id)
    except ValueError as exc:
        return fail(f"{exc}; nothing was dropped")
    present = {job_id for job_id in ids if registry.get(job_id, deadline) is not None}
    failures = {f.job_id: f for f in registry.remove([i for i in ids if i in present], deadline)}
    for job_id in ids:
        if job_id in failures:
            err = failures[job_id].error
            print(f"{job_id}: not dropped ({err.code}: {err.message})" if err else f"{job_id}: not dropped")
        elif job_id in present:
            print(f"{job_id}: dropped")
        else:
            print(f"{job_id}: was not pending")
    return EXIT_FAILED if failures or len(present) < len(ids) else EXIT_OK


def retry(args: argparse.Namespace, env: Mapping[str, str], settings: Any, deadline: Any) -> int:
    from cijobs.app import build_app
    from cijobs.job_ids import validate_job_id
    from cijobs.settings import SettingsError

    bad = [i for i in args.ids if not validate_job_id(i)]
    if bad:
        return fail(f"invalid job ID(s): {', '.join(repr(b[:80]) for b in bad[:5])}; nothing was sent")
    level = env.get("LOG_LEVEL")
    try:
        app = build_app(env, log_stream=sys.stderr, settings=settings)
    except SettingsError as exc:
        return fail(str(exc))
    configure_logging(args, {"LOG_LEVEL": level} if level else {}, app.redactor)  # build_app set its own level
    if not args.ids:
        outcomes = app.pipeline.tick(deadline, source="operator")
        emit(outcomes.as_dict())
        return EXIT_FAILED if outcomes.of("failed") or outcomes.errors else EXIT_OK
    outcomes = app.pipeline.process(list(dict.fromkeys(args.ids)), "operator", deadline)
    # process() leaves registry entries to the next tick (it removes only what it listed itself): an
    # operator retrying an ID expects a written job to leave the registry now
    written = [o.job_id for o in outcomes.of("written")]
    not_removed = [f.job_id for f in app.pipeline.pending.remove(written, deadline)] if written else []
    doc = outcomes.as_dict()
    if not_removed:
        doc["NotRemoved"] = not_removed
    emit(doc)
    return EXIT_FAILED if outcomes.of("failed") or outcomes.errors or not_removed else EXIT_OK
