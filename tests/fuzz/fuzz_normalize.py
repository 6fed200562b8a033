"""atheris (libFuzzer) harnesses for the parsers that take untrusted bytes.

Targets (``--target=NAME``, default ``normalize``):

* ``normalize``: ``cijobs.normalize.normalize_document(data)`` on any bytes; a ``NormalizeError`` is the
  documented refusal, anything else escaping is a crash.
* ``events``: the bytes as JSON (inputs that are not JSON are skipped), then ``cijobs.events.detect`` and the
  typed event's own parsing (job IDs, queue records, HTTP body); an ``EventError`` (``UnknownEventError``,
  ``BodyTooLargeError``) is the documented refusal.

Run for a bounded time, seeded with the fixtures (libFuzzer adds what it finds to the FIRST corpus
directory, so give it a scratch copy)::

    mkdir -p /tmp/corpus && cp tests/fixtures/*.xml tests/fixtures/*.json /tmp/corpus/
    .venv/bin/python tests/fuzz/fuzz_normalize.py -max_total_time=60 -rss_limit_mb=512 /tmp/corpus
    .venv/bin/python tests/fuzz/fuzz_normalize.py --target=events -max_total_time=60 /tmp/ev tests/fixtures/events

A crash prints the exception and writes the input to ``crash-<sha1>``; replay it with
``python tests/fuzz/fuzz_normalize.py crash-<sha1>``.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

import atheris

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "lib"))

with atheris.instrument_imports(include=["cijobs"]):
    from cijobs import log
    from cijobs.events import EventError, Limits, detect
    from cijobs.events.apigw import APIGatewayEvent
    from cijobs.events.ckafka import CKafkaEvent
    from cijobs.events.cmq import CMQTopicEvent
    from cijobs.events.direct import DirectInvokeEvent
    from cijobs.events.function_url import FunctionURLEvent
    from cijobs.events.timer import TimerEvent
    from cijobs.normalize import NormalizeError, normalize_document

LIMITS = Limits(max_body_bytes=64 * 1024, max_ids=100)


def fuzz_normalize(data: bytes) -> None:
    try:
        doc = normalize_document(data)
    except NormalizeError:
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("JobsDetail"), list):
        raise AssertionError(f"normalize_document returned {type(doc).__name__} without a JobsDetail list")
    json.dumps(doc)  # the result is always JSON-serialisable


def fuzz_events(data: bytes) -> None:
    try:
        event = json.loads(data)
    except (ValueError, RecursionError):
        return  # not an SCF event: SCF only delivers JSON
    try:
        ev = detect(event)
        if isinstance(ev, TimerEvent):
            ev.job_ids(LIMITS)
        elif isinstance(ev, (CMQTopicEvent, CKafkaEvent)):
            ev.parse_records(LIMITS)
        elif isinstance(ev, DirectInvokeEvent):
            ev.work(LIMITS)
        elif isinstance(ev, (APIGatewayEvent, FunctionURLEvent)):
            ev.body_bytes(LIMITS.max_body_bytes)
            repr(ev)
    except EventError:
        return


TARGETS: dict[str, Callable[[bytes], None]] = {"normalize": fuzz_normalize, "events": fuzz_events}


def main(argv: list[str]) -> None:
    target = "normalize"
    rest: list[Any] = []
    for arg in argv:
        if arg.startswith("--target="):
            target = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    if target not in TARGETS:
        raise SystemExit(f"unknown --target {target!r}; one of: {', '.join(TARGETS)}")
    log.configure("error", open(os.devnull, "w"))  # schema_drift warnings would flood the output
    atheris.Setup(rest, TARGETS[target])
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
