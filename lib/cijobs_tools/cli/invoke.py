"""``cijobs invoke EVENT.json``: run ``main_handler`` locally with a fake SCF context.

Prints the handler's return value as JSON (exit 0). For an HTTP event (API
gateway, function URL) the answer's ``body`` is printed decoded: the JSON
document when it is JSON, else the text (base64 bodies are decoded first); a
5xx status exits 1. When the handler raises, prints the error as one JSON
object (type, message, no traceback) and exits 1. ``--output jsonl`` prints the
whole return value on one line. Logs go to stderr so that stdout holds only the
response, at warning level unless ``-v``/``-q`` or ``LOG_LEVEL`` say otherwise.

``cijobs invoke --dead-letter MESSAGE.json`` replays an event SCF put in the
dead-letter queue: the message body is JSON with ``RequestId``,
``ErrorCode``, ``ErrorMessage`` and ``Body``, the original invocation, whose
``ClientContext`` is the original event as a JSON string
(https://www.tencentcloud.com/document/product/583/39704). The file may hold
that body, or a TDMQ CMQ ReceiveMessage answer (``msgBody``) or
BatchReceiveMessage answer with one message (``msgInfoList``).
``--print-event`` prints the extracted event instead of running it (to
replay it on the deployed function with the SCF Invoke API).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import importlib.util
import json
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any, Callable

from . import EXIT_FAILED, EXIT_OK, fail
from .output import add_output_argument, emit, log_level

Handler = Callable[[Any, Any], Any]


class DeadLetterError(ValueError):
    """The file is not a dead-letter message that holds an event; the message says what it holds."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("event", metavar="EVENT.json", nargs="?",
                        help="SCF event file (see events/ for samples); - for stdin")
    parser.add_argument("--dead-letter", metavar="MESSAGE.json", default=None,
                        help="replay the original event of an SCF dead-letter message (body, or a CMQ "
                             "ReceiveMessage/BatchReceiveMessage answer); - for stdin")
    parser.add_argument("--print-event", action="store_true",
                        help="with --dead-letter: print the extracted event and do not run it")
    parser.add_argument("--time-limit-ms", type=int, default=30000, help="the context's time_limit_in_ms")
    parser.add_argument("--request-id", default=None, help="the context's request_id (default: a new UUID)")
    parser.add_argument("--function-name", default="cijobs", help="the context's function_name")
    add_output_argument(parser, "json: indented on a terminal, compact otherwise (default); "
                                "jsonl: the whole return value on one line")


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


def _json_text(value: Any, what: str) -> Any:
    if isinstance(value, (dict, list)):
        return value
    if not isinstance(value, str):
        raise DeadLetterError(f"{what} is neither JSON text nor a JSON object")
    try:
        return json.loads(value)
    except ValueError:
        raise DeadLetterError(f"{what} is not JSON") from None


def dead_letter_body(doc: Any) -> dict[str, Any]:
    """The SCF dead-letter body (``RequestId``, ``ErrorCode``, ``ErrorMessage``, ``Body``) inside ``doc``."""
    if isinstance(doc, dict) and "msgInfoList" in doc:  # BatchReceiveMessage answer
        infos = doc.get("msgInfoList")
        if not isinstance(infos, list) or len(infos) != 1:
            count = len(infos) if isinstance(infos, list) else 0
            raise DeadLetterError(f"the BatchReceiveMessage answer holds {count} messages: "
                                  "save and replay one message at a time")
        doc = infos[0]
    if isinstance(doc, dict) and "msgBody" in doc:  # ReceiveMessage answer, or one msgInfoList item
        doc = _json_text(doc["msgBody"], "msgBody")
    if not isinstance(doc, dict) or "Body" not in doc:
        raise DeadLetterError("not an SCF dead-letter message: expected a JSON object with RequestId, ErrorCode, "
                              "ErrorMessage and Body (or a CMQ answer whose msgBody holds one)")
    return doc


def dead_letter_event(doc: Any) -> tuple[Any, dict[str, Any]]:
    """(original event, what the message says about the failure) from a dead-letter message."""
    message = dead_letter_body(doc)
    body = _json_text(message["Body"], "Body")
    if not isinstance(body, dict):
        raise DeadLetterError("the dead-letter Body is not a JSON object")
    about = {
        "RequestId": message.get("RequestId"),
        "ErrorCode": message.get("ErrorCode"),
        "RequestSource": body.get("RequestSource"),
        "FunctionName": body.get("FunctionName"),
        "Qualifier": body.get("Qualifier"),
        "RetryNum": body.get("RetryNum"),
        "PushTime": body.get("PushTime"),
    }
    context = body.get("ClientContext")
    if context in (None, ""):
        raise DeadLetterError(
            f"the dead-letter message of request {about['RequestId']} ({about['RequestSource']}) carries no "
            "ClientContext, so the original event cannot be rebuilt; for a timer event replay "
            "events/timer.json (the next poll does the same work); job IDs still pending are retried by "
            "the poll, see docs/operations.md"
        )
    return _json_text(context, "Body.ClientContext"), about


def is_http_answer(response: Any) -> bool:
    return isinstance(response, dict) and isinstance(response.get("statusCode"), int)


def decode_http_answer(response: dict[str, Any]) -> dict[str, Any]:
    """The answer with ``body`` decoded: base64 (``isBase64Encoded``) undone, then parsed when it is JSON."""
    out = dict(response)
    body = out.get("body")
    if not isinstance(body, str):
        return out
    if out.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return out  # binary: leave it as SCF would send it
        out["isBase64Encoded"] = False
    try:
        out["body"] = json.loads(body)
    except ValueError:
        out["body"] = body
    return out


@contextlib.contextmanager
def _log_level_env(level: str) -> Iterator[None]:
    """``LOG_LEVEL=level`` while the app is built (it configures logging from the environment)."""
    saved = os.environ.get("LOG_LEVEL")
    os.environ["LOG_LEVEL"] = level
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("LOG_LEVEL", None)
        else:
            os.environ["LOG_LEVEL"] = saved


def read_event(path: str) -> Any:
    if path == "-":
        return json.load(sys.stdin)
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def run(args: argparse.Namespace) -> int:
    source = args.dead_letter if args.dead_letter is not None else args.event
    if (args.event is None) == (args.dead_letter is None):
        return fail("give either EVENT.json or --dead-letter MESSAGE.json")
    if args.print_event and args.dead_letter is None:
        return fail("--print-event goes with --dead-letter")
    try:
        event = read_event(source)
    except OSError as exc:
        return fail(f"cannot read {source}: {exc.strerror}")
    except ValueError as exc:
        return fail(f"{source} is not valid JSON: {exc}")
    if args.dead_letter is not None:
        try:
            event, about = dead_letter_event(event)
        except DeadLetterError as exc:
            return fail(f"{source}: {exc}")
        # what failed, without ErrorMessage (a traceback that may quote event data)
        print("cijobs: dead letter " + json.dumps(about, ensure_ascii=False), file=sys.stderr)
        if args.print_event:
            emit(event, args.output)
            return EXIT_OK
    if args.time_limit_ms <= 0:
        return fail("--time-limit-ms must be positive")
    context = fake_context(args.time_limit_ms, args.request_id or str(uuid.uuid4()), args.function_name)
    try:
        # The app configures logging (to stdout, as SCF wants) on its first call: point that at
        # stderr here so that stdout carries only the response.
        with contextlib.redirect_stdout(sys.stderr), _log_level_env(log_level(args)):
            handler = load_handler()
            response = handler(event, context)
    except Exception as exc:
        emit({"errorType": type(exc).__name__, "errorMessage": str(exc)}, args.output)
        return EXIT_FAILED
    if is_http_answer(response):
        emit(decode_http_answer(response), args.output)
        return EXIT_FAILED if response["statusCode"] >= 500 else EXIT_OK
    emit(response, args.output)
    return EXIT_OK

