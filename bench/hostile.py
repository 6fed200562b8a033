"""Hostile and bad input against the normalizer and main_handler; prints one table row per input.

    python bench/hostile.py

Each input runs with ``tracemalloc`` on and a wall clock; HTTP/event inputs run through ``main_handler``
against an in-process emulator, and the table says how many requests reached the emulator's CI side
(every CI request path is also checked to hold only validated job IDs). ``tests/test_hostile_inputs.py``
runs the same cases and asserts the expected result, time and memory bounds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from typing import Any, Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lib"))

BUCKET, REGION = "examplebucket-1250000000", "ap-guangzhou"
SECRET_ID, SECRET_KEY = "AKIDhostiletest", "hostile-secret-key-value"
API_TOKEN = "hostile-api-token-01"
JOB = "j" + "7" * 32
ENV_PREFIXES = ("CI_", "COS_", "CMQ_", "RESULT_", "PENDING_", "API_TOKEN", "TENCENTCLOUD_", "TRUST_", "ALLOW_",
                "MAX_", "DEADLINE_", "CLAIM_", "LOG_LEVEL")

# -- XML --------------------------------------------------------------------------------------------------

BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE Response [<!ENTITY a "lol">'
                  + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode()
                             for i in range(9))
                  + b"]><Response><JobsDetail><JobId>&j;</JobId></JobsDetail></Response>")
QUADRATIC = (b'<?xml version="1.0"?><!DOCTYPE Response [<!ENTITY a "' + b"x" * 50_000 + b'">]><Response>'
             b"<JobsDetail><Message>" + b"&a;" * 50_000 + b"</Message></JobsDetail></Response>")
XXE_FILE = (b'<?xml version="1.0"?><!DOCTYPE Response [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<Response><JobsDetail><Message>&x;</Message></JobsDetail></Response>")
XXE_NET = (b'<?xml version="1.0"?><!DOCTYPE Response [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>'
           b"<Response><JobsDetail><Message>&x;</Message></JobsDetail></Response>")
DTD_FETCH = b'<?xml version="1.0"?><!DOCTYPE Response SYSTEM "http://127.0.0.1:9/evil.dtd"><Response/>'
DEEP = b"<Response>" + b"<a>" * 50_000 + b"</a>" * 50_000 + b"</Response>"
HUGE_TEXT = b"<Response><JobsDetail><Message>" + b"x" * 7_000_000 + b"</Message></JobsDetail></Response>"
BAD_UTF8 = (b'<?xml version="1.0" encoding="UTF-8"?>'
            b"<Response><JobsDetail><JobId>j\xff\xfe</JobId></JobsDetail></Response>")
MANY_JOBS = (b"<Response>" + b"<JobsDetail><JobId>j00000000000000000000000000000001</JobId><State>Success</State>"
             b"</JobsDetail>" * 100_000 + b"</Response>")

XML_CASES: list[tuple[str, bytes]] = [
    ("billion laughs", BILLION_LAUGHS), ("quadratic blowup", QUADRATIC), ("external entity (file)", XXE_FILE),
    ("external entity (network)", XXE_NET), ("DTD retrieval", DTD_FETCH), ("50,000 nested elements", DEEP),
    ("7 MB text node", HUGE_TEXT), ("invalid UTF-8", BAD_UTF8), ("100,000 JobsDetail elements", MANY_JOBS),
]


@dataclass
class Row:
    case: str
    result: str
    ms: float
    peak_mb: float
    ci_requests: int = 0


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        yield box
    finally:
        box["ms"] = (time.perf_counter() - t0) * 1000
        box["peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()


def run_xml(name: str, payload: bytes) -> Row:
    from cijobs.normalize import NormalizeError, normalize_document

    result = ""
    with measured() as m:
        try:
            doc = normalize_document(payload)
            result = f"ok: {len(doc.get('JobsDetail', []))} jobs"
        except NormalizeError as exc:
            result = f"{type(exc).__name__}"
    return Row(name, result, m["ms"], m["peak_mb"])


# -- events and HTTP ----------------------------------------------------------------------------------------

def http(method: str, path: str, body: Any = None, token: Optional[str] = API_TOKEN, raw: Optional[str] = None,
         b64: bool = False, headers: Optional[dict[str, str]] = None) -> dict[str, Any]:
    h = {"content-type": "application/json", **(headers or {})}
    if token is not None:
        h["authorization"] = f"Bearer {token}"
    text = raw if raw is not None else (None if body is None else json.dumps(body))
    return {"httpMethod": method, "path": path, "headers": h, "queryStringParameters": {}, "isBase64Encoded": b64,
            "body": text}


MANY_IDS = [f"j{i:032x}" for i in range(10_000)]
BATCH = [f"k{i:032x}" for i in range(10)]  # finished jobs; the emulator gives BATCH[4] an 8 MiB Message
BIG_MESSAGE = 8 * 1024 * 1024
EVENT_CASES: list[tuple[str, Callable[[], Any]]] = [
    ("track: body not JSON", lambda: http("POST", "/jobs/track", raw="{JobIds: nope")),
    ("track: body a JSON list", lambda: http("POST", "/jobs/track", [JOB])),
    ("track: JobIds a number", lambda: http("POST", "/jobs/track", {"JobIds": 5})),
    ("track: JobIds missing", lambda: http("POST", "/jobs/track", {"Ids": [JOB]})),
    ("track: invalid base64", lambda: http("POST", "/jobs/track", raw="%%%not base64%%%", b64=True)),
    ("track: 2 MB body", lambda: http("POST", "/jobs/track", raw=json.dumps({"JobIds": [JOB], "x": "y" * 2_000_000}))),
    ("track: 10,000 IDs", lambda: http("POST", "/jobs/track", {"JobIds": MANY_IDS})),
    ("GET 10,000 IDs", lambda: http("GET", "/jobs/" + ",".join(MANY_IDS))),
    ("GET id with ../", lambda: http("GET", f"/jobs/../{JOB}")),
    ("GET id with %2F", lambda: http("GET", f"/jobs/{JOB}%2F..%2F..")),
    ("GET ids with ,,", lambda: http("GET", f"/jobs/{JOB},,{JOB}")),
    ("GET id with a space", lambda: http("GET", f"/jobs/{JOB} x")),
    ("GET unicode id", lambda: http("GET", "/jobs/j" + "é" * 20)),
    ("GET id with CR/LF", lambda: http("GET", f"/jobs/{JOB}\r\nX-Evil: 1")),
    ("track: id with CR/LF", lambda: http("POST", "/jobs/track", {"JobIds": [JOB + "\r\nHost: evil"]})),
    ("token with CR/LF", lambda: http("GET", f"/jobs/{JOB}", token=API_TOKEN + "\r\nX-Evil: 1")),
    ("no token", lambda: http("GET", f"/jobs/{JOB}", token=None)),
    ("wrong token", lambda: http("GET", f"/jobs/{JOB}", token="guess")),
    ("bucket/region/endpoint in body", lambda: http("POST", "/jobs/track", {
        "JobIds": [JOB], "Bucket": "evil-1250000000", "Region": "ap-evil", "Endpoint": "http://127.0.0.1:9"})),
    ("direct: JobIds a dict", lambda: {"JobIds": {"a": 1}}),
    ("direct: 10,000 IDs", lambda: {"JobIds": MANY_IDS}),
    ("direct: bucket in event", lambda: {"JobIds": [JOB], "Bucket": "evil-1250000000", "Region": "ap-evil"}),
    ("direct: 10 IDs, one 8 MiB job", lambda: {"JobIds": BATCH}),
    ("timer: Message with ../", lambda: {"Type": "Timer", "Message": f"../{JOB},{JOB}/.."}),
    ("COS event (not ours)", lambda: {"Records": [{"cos": {"cosBucket": {"name": "evil"}}}]}),
    ("event a list", lambda: [1, 2, 3]),
    ("CMQ record garbage", lambda: {"Records": [{"CMQ": {"msgBody": "\x00\xff<Response>&x;"}}]}),
]


def summarize(result: Any) -> str:
    if isinstance(result, dict) and "statusCode" in result:
        body = json.loads(result["body"])
        err = body.get("Error", {}) if isinstance(body, dict) else {}
        return f"{result['statusCode']} {err.get('Code', '')}".strip()
    if isinstance(result, dict) and "Counts" in result:
        counts = {k: v for k, v in result["Counts"].items() if v and k != "queried"}
        return ("summary " + ", ".join(f"{k}={v}" for k, v in counts.items())).strip()
    return repr(result)[:60]


def load_handler() -> Any:
    spec = importlib.util.spec_from_file_location("scf_index_hostile", os.path.join(ROOT, "handler", "index.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def handler_env(url: str) -> dict[str, str]:
    return {"CI_BUCKET": BUCKET, "CI_REGION": REGION, "CI_ENDPOINT": url, "COS_ENDPOINT": url,
            "RESULT_SINK": f"cos://{BUCKET}.{REGION}/results", "PENDING_STORE": f"cos://{BUCKET}.{REGION}/state",
            "TENCENTCLOUD_SECRETID": SECRET_ID, "TENCENTCLOUD_SECRETKEY": SECRET_KEY, "API_TOKEN": API_TOKEN,
            "LOG_LEVEL": "warning"}


def run_event(handler: Any, emu: Any, name: str, make: Callable[[], Any]) -> Row:
    event = make()
    before = len(emu.ci.requests)
    with measured() as m, redirect_stdout(open(os.devnull, "w")):
        try:
            result = summarize(handler.main_handler(event, {"time_limit_in_ms": 20000, "request_id": "hostile"}))
        except Exception as exc:  # an async event raising is a result too
            result = f"raises {type(exc).__name__}"
    return Row(name, result, m["ms"], m["peak_mb"], len(emu.ci.requests) - before)


def ci_paths_are_clean(emu: Any) -> bool:
    from cijobs.job_ids import validate_job_id

    return all(r.path == "/jobs/" + ",".join(r.ids) and r.ids and all(validate_job_id(i) for i in r.ids)
               for r in emu.ci.requests)


def run_all() -> tuple[list[Row], bool]:
    from cijobs_tools.emulator import Emulator

    rows = [run_xml(name, payload) for name, payload in XML_CASES]
    saved = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    with Emulator(secret_id=SECRET_ID, secret_key=SECRET_KEY, seed=2) as emu:
        for k in saved:
            del os.environ[k]
        os.environ.update(handler_env(emu.url))
        try:
            emu.ci.add_job(JOB, state="Success")
            for job_id in BATCH:
                emu.ci.add_job(job_id, state="Success")
            emu.ci.set_state(BATCH[4], "Success", message="m" * BIG_MESSAGE)
            handler = load_handler()
            rows += [run_event(handler, emu, name, make) for name, make in EVENT_CASES]
            clean = ci_paths_are_clean(emu)
        finally:
            for k in handler_env(emu.url):
                os.environ.pop(k, None)
            os.environ.update(saved)
    return rows, clean


def main() -> int:
    rows, clean = run_all()
    print(f"{'input':<34} {'result':<44} {'ms':>8} {'peak MB':>8} {'CI reqs':>7}")
    for r in rows:
        print(f"{r.case:<34} {r.result:<44} {r.ms:>8.1f} {r.peak_mb:>8.1f} {r.ci_requests:>7}")
    print(f"hostile: {len(rows)} inputs; every CI request path held only validated job IDs: {clean}")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
