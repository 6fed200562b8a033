"""`cijobs emulator`: run the local CI + COS + TDMQ CMQ emulator on 127.0.0.1 until SIGINT/SIGTERM.

The first line printed is ``emulator: listening on http://127.0.0.1:PORT`` (flushed;
benches and tests parse it), then the credentials and the env vars to export.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any, Optional

from . import fail

FAULT_FLAGS = (
    ("--slowdown-rate", "slowdown_rate", "share of COS requests answered 503 SlowDown"),
    ("--reset-rate", "reset_rate", "share of requests whose connection is reset (no response)"),
    ("--truncate-rate", "truncate_rate", "share of responses cut short (Content-Length larger than the body)"),
    ("--garbage-rate", "garbage_rate", "share of responses replaced by random bytes / an HTML page"),
    ("--wrong-content-type-rate", "wrong_content_type_rate", "share of responses with Content-Type text/html"),
    ("--reset-after-rate", "reset_after_rate", "share of requests processed, then the connection reset"),
    ("--slow-body-ms", "slow_body_ms", "dribble each response body over this many ms"),
)


def _positive(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {raw!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {raw}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY

    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8123, help="port (0 = any free port; default 8123)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every response")
    parser.add_argument("--fail-rate", type=float, default=0.0, help="share of requests answered 5xx")
    for flag, dest, help_text in FAULT_FLAGS:
        parser.add_argument(flag, dest=dest, type=float, default=0.0, help=help_text)
    parser.add_argument("--max-rps", type=_positive, default=None,
                        help="cap CI requests per second per SecretId (token bucket, 200 ms burst); over it: "
                             "503 SlowDown or 429 RequestLimitExceeded, half with Retry-After: 1")
    parser.add_argument("--cos-max-rps", type=_positive, default=None,
                        help="the same cap on the COS side")
    parser.add_argument("--no-retry-after", action="store_true",
                        help="throttle answers (--max-rps, --cos-max-rps) never carry Retry-After")
    parser.add_argument("--auto-jobs", action="store_true",
                        help="every well-formed job ID exists as a Success job (except IDs starting with jnone)")
    parser.add_argument("--pretty-xml", action="store_true",
                        help="indent job XML as the docs print it (CI itself sends it compact)")
    parser.add_argument("--catalog", metavar="FILE", default=None,
                        help="load CI jobs from a JSON array or JSONL file of {job_id, tag, state, created, "
                             "queue_id, finish_after, final_state} (for GET /jobs?tag=... listings)")
    parser.add_argument("--list-bounds", choices=("exclusive", "inclusive"), default="exclusive",
                        help="whether GET /jobs?... creation-time bounds are exclusive (default) or inclusive")
    parser.add_argument("--seed", type=int, default=None, help="seed for faults and random job progress")
    parser.add_argument("--secret-id", default=DEFAULT_SECRET_ID, help="accepted SecretId")
    parser.add_argument("--secret-key", default=DEFAULT_SECRET_KEY, help="accepted SecretKey")
    parser.add_argument("--token", default=None, help="require this session token (temporary credentials)")
    parser.add_argument("--bucket", default="examplebucket-1250000000", help="bucket shown in the printed env")
    parser.add_argument("--region", default="ap-guangzhou", help="region shown in the printed env")


def read_catalog(path: str) -> list[dict[str, Any]]:
    """A JSON array of job objects, or one JSON object per line."""
    import json

    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    data: Any = json.loads(text) if text.lstrip().startswith("[") else [
        json.loads(line) for line in text.splitlines() if line.strip()]
    if not isinstance(data, list) or not all(isinstance(j, dict) for j in data):
        raise ValueError("expected a JSON array of objects or JSONL objects")
    return data


def run(args: argparse.Namespace) -> int:
    from ..emulator import Emulator
    from ..emulator.ci import JobStateError
    from ..emulator.faults import FaultConfigError

    catalog: list[dict[str, Any]] = []
    if args.catalog:
        try:
            catalog = read_catalog(args.catalog)
        except (OSError, ValueError) as e:
            return fail(f"--catalog {args.catalog}: {e}")
    faults = {dest: getattr(args, dest) for _, dest, _ in FAULT_FLAGS}
    try:
        emu = Emulator(
            secret_id=args.secret_id, secret_key=args.secret_key, token=args.token, latency_ms=args.latency_ms,
            fail_rate=args.fail_rate, seed=args.seed, auto_jobs=args.auto_jobs, pretty_xml=args.pretty_xml,
            host=args.host, port=args.port, max_rps=args.max_rps, cos_max_rps=args.cos_max_rps,
            throttle_retry_after=not args.no_retry_after,
            **faults,
        )
        emu.ci.list_bounds = args.list_bounds
        emu.load_catalog(catalog)
        emu.start()
    except (FaultConfigError, JobStateError) as e:
        return fail(str(e))
    except OSError as e:
        return fail(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}")
    print(f"emulator: listening on {emu.url}", flush=True)
    print(f"emulator: credentials SecretId={args.secret_id} SecretKey={args.secret_key}"
          + (" (session token required)" if args.token else ""))
    print("emulator: export these to point cijobs at it:")
    for k, v in emu.env(args.bucket, args.region).items():
        print(f"export {k}={v}")
    print("emulator: control API at " + emu.url + "/_emu/health ; Ctrl-C to stop", flush=True)

    stop = threading.Event()

    def _on_signal(signum: int, frame: Optional[FrameType]) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        emu.stop()
    print("emulator: stopped", file=sys.stderr, flush=True)
    return 0
