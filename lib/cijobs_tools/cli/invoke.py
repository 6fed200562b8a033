"""``cijobs invoke EVENT.json``: run ``main_handler`` locally with a fake SCF context.

Prints the handler's return value as JSON (exit 0). When the handler raises,
prints the error as one JSON object (type, message, no traceback) and exits 1.
Logs go to stderr so that stdout holds only the response.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import uuid
from typing import Any, Callable

from . import EXIT_FAILED, EXIT_OK, fail

Handler = Callable[[Any, Any], Any]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("event", metavar="EVENT.json", help="SCF event file (see events/ for samples); - for stdin")
    parser.add_argument("--time-limit-ms", type=int, default=30000, help="the context's time_limit_in_ms")
    parser.add_argument("--request-id", default=None, help="the context's request_id (default: a new UUID)")
    parser.add_argument("--function-name", default="cijobs", help="the context's function_name")


def fake_context(time_limit_ms: int, request_id: str, function_name: str = "cijobs") -> dict[str, Any]:
    """A context dict shaped like the one SCF passes (see tests/fixtures/events/context.json)."""
    return {
        "callbackWaitsForEmptyEventLoop": True,
        "memory_limit_in_mb": 512,
        "time_limit_in_ms": time_limit_ms,
        "request_id": request_id,
        "environment": json.dumps({"SCF_NAMESPACE": "default"}),
        "environ": "SCF_NAMESPACE=default",
        "function_version": "$LATEST",
        "function_name": function_name,
        "namespace": "default",
        "tencentcloud_region": os.environ.get("CI_REGION", "ap-guangzhou"),
        "tencentcloud_appid": "1250000000",
        "tencentcloud_uin": "100000000001",
    }


def load_handler() -> Handler:
    """``main_handler`` from ``handler/index.py`` next to the package (a checkout), else the same wiring."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [
        os.path.join(here, "..", "..", "..", "handler", "index.py"),  # checkout: lib/cijobs/cli → handler/
        os.path.join(here, "..", "..", "index.py"),  # deployed zip: index.py next to cijobs/
    ]
    for candidate in candidates:
        path = os.path.normpath(candidate)
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("cijobs_scf_handler", path)
            if spec is None or spec.loader is None:
                continue
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            handler: Handler = module.main_handler
            return handler
    from cijobs.app import build_app

    app = build_app(os.environ, log_stream=sys.stderr)
    return app


def read_event(path: str) -> Any:
    if path == "-":
        return json.load(sys.stdin)
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def run(args: argparse.Namespace) -> int:
    try:
        event = read_event(args.event)
    except OSError as exc:
        return fail(f"cannot read {args.event}: {exc.strerror}")
    except ValueError as exc:
        return fail(f"{args.event} is not valid JSON: {exc}")
    if args.time_limit_ms <= 0:
        return fail("--time-limit-ms must be positive")
    context = fake_context(args.time_limit_ms, args.request_id or str(uuid.uuid4()), args.function_name)
    try:
        # The app configures logging (to stdout, as SCF wants) on its first call: point that at
        # stderr here so that stdout carries only the response.
        with contextlib.redirect_stdout(sys.stderr):
            handler = load_handler()
            response = handler(event, context)
    except Exception as exc:
        print(json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}, ensure_ascii=False))
        return EXIT_FAILED
    print(json.dumps(response, ensure_ascii=False, indent=2))
    return EXIT_OK

