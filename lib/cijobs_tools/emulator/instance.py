"""``Emulator``: wires the stores, the fault config and the HTTP server together and routes by Host / path."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional

from .auth import KeyRing
from .ci import CIStore, JobRecord
from .cmq import CmqStore, json_response
from .control import Control
from .cos import CosStore
from .faults import Faults
from .server import EmulatorHTTPServer, Handler
from .throttle import THROTTLE_ANSWERS, Buckets, account_of
from .webhook import RECEIVER_PREFIX, WebhookReceivers
from .wire import Request, RequestIds, Response, error_response

DEFAULT_SECRET_ID = "AKIDcijobsEMULATOR"
DEFAULT_SECRET_KEY = "emulator-secret-key"
CMQ_PATH = "/v2/index.php"
CONTROL_PREFIX = "/_emu/"
HOST_RE = re.compile(
    r"^(?P<bucket>[a-z0-9][a-z0-9-]*)\.(?P<svc>ci|cos)\.(?P<region>[a-z0-9-]+)\.(?:myqcloud\.com|tencentcos\.cn)$"
)


class Emulator:
    """Loopback CI + COS + TDMQ CMQ server. Use as a context manager or ``start()``/``stop()``."""

    def __init__(
        self,
        secret_id: str = DEFAULT_SECRET_ID,
        secret_key: str = DEFAULT_SECRET_KEY,
        token: Optional[str] = None,
        latency_ms: float = 0.0,
        fail_rate: float = 0.0,
        seed: Optional[int] = None,
        auto_jobs: bool = False,
        pretty_xml: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
        cmq_max_message_bytes: int = 64 * 1024,
        max_rps: Optional[float] = None,
        cos_max_rps: Optional[float] = None,
        throttle_clock: Callable[[], float] = time.monotonic,
        throttle_retry_after: bool = True,
        **faults: float,
    ) -> None:
        self.keys = KeyRing()
        self.keys.add(secret_id, secret_key, token)
        self.secret_id = secret_id
        self.ids = RequestIds(seed or 0)
        self.faults = Faults(seed, latency_ms=latency_ms, fail_rate=fail_rate, **faults)
        self.clock = clock
        self.ci = CIStore(self.keys, self.ids, clock, auto_jobs=auto_jobs, seed=seed, pretty_xml=pretty_xml)
        self.cos = CosStore(self.keys, self.ids, clock)
        self.cmq = CmqStore(self.keys, self.ids, clock, max_message_bytes=cmq_max_message_bytes)
        self.webhooks = WebhookReceivers(clock)
        self.control = Control(self)
        # per-account request caps: CI side (--max-rps) and COS side (--cos-max-rps); None = no cap
        self.limits = {"ci": Buckets(max_rps, throttle_clock), "cos": Buckets(cos_max_rps, throttle_clock)}
        # False: no throttle answer carries Retry-After (default: half of them say Retry-After: 1)
        self.throttle_retry_after = throttle_retry_after
        self.stats: dict[str, int] = {}
        self._stats_lock = threading.Lock()
        self._host = host
        self._port = port
        self._server: Optional[EmulatorHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Emulator:
        if self._server is not None:
            return self
        self._server = EmulatorHTTPServer((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="cijobs-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator is not running")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    def env(self, bucket: str = "examplebucket-1250000000", region: str = "ap-guangzhou") -> dict[str, str]:
        """Environment variables that point cijobs at this emulator."""
        key = self.keys.get(self.secret_id)
        env = {
            "CI_ENDPOINT": self.url, "COS_ENDPOINT": self.url, "CMQ_ENDPOINT": self.url,
            "TENCENTCLOUD_SECRETID": self.secret_id, "TENCENTCLOUD_SECRETKEY": key.secret_key if key else "",
            "CI_BUCKET": bucket, "CI_REGION": region,
        }
        if key and key.token:
            env["TENCENTCLOUD_SESSIONTOKEN"] = key.token
        return env

    def webhook_url(self, name: str) -> str:
        """The URL of the named webhook receiver (``RESULT_SINK`` for a webhook sink)."""
        return f"{self.url}{RECEIVER_PREFIX}{name}"

    def add_key(self, secret_id: str, secret_key: str, token: Optional[str] = None) -> None:
        """Accept another key pair (e.g. separate CMQ credentials)."""
        self.keys.add(secret_id, secret_key, token)

    def load_catalog(self, jobs: Iterable[Mapping[str, Any]]) -> list[JobRecord]:
        """Load CI jobs with their tag, creation time, state and queue (see :meth:`CIStore.load_catalog`)."""
        return self.ci.load_catalog(jobs)

    def reset(self) -> None:
        """Forget jobs, objects, messages, request logs, stats and faults."""
        self.ci.clear()
        self.cos.clear()
        self.cmq.clear()
        self.webhooks.clear()
        self.faults.reset()
        for buckets in self.limits.values():
            buckets.clear()
        with self._stats_lock:
            self.stats.clear()

    # -- routing (server.Router) -------------------------------------------------------------------
    def route(self, req: Request) -> tuple[str, Handler]:
        if req.path == CMQ_PATH:
            return "cmq", self.cmq.handle
        if req.path.startswith(RECEIVER_PREFIX):
            return "webhook", self.webhooks.handle
        if req.path.startswith(CONTROL_PREFIX):
            return "control", self.control.handle
        m = HOST_RE.match(req.host)
        if m is None:
            return "invalid", self._invalid_host
        bucket, region = m.group("bucket"), m.group("region")
        if m.group("svc") == "ci":
            return "ci", lambda r: self.ci.handle(r, bucket, region)
        return "cos", lambda r: self.cos.handle(r, bucket, region)

    def _invalid_host(self, req: Request) -> Response:
        return error_response(
            "ci", 400, "InvalidHost",
            f"Host {req.host!r} is neither <bucket>.ci.<region>.myqcloud.com nor <bucket>.cos.<region>.myqcloud.com",
            self.ids,
        )

    def fault_response(self, side: str, kind: str, req: Request) -> Response:
        if kind in ("truncate", "garbage", "wrong_content_type"):
            # a mutating request whose response will be mangled: it is not processed
            if side == "cmq":
                return json_response({"code": 0, "message": "", "requestId": self.ids.next(), "msgId": "x" * 16})
            return Response(200, b"<Response>" + b"<JobsDetail/>" * 8 + b"</Response>", {}, "application/xml")
        if side == "cmq":
            return json_response({"code": 6000, "message": "(emulated) server internal error",
                                  "requestId": self.ids.next()})
        if kind == "slowdown":
            return error_response(side, 503, "SlowDown", "Please reduce your request rate.", self.ids)
        if self.faults.choice([True, False]):
            return error_response(side, 500, "InternalError", "We encountered an internal error. Please try again.",
                                  self.ids)
        return error_response(side, 503, "ServiceUnavailable", "Service is unavailable. Please try again.", self.ids)

    def throttle(self, side: str, req: Request) -> Optional[Response]:
        """The answer to a request over its account's cap on this side, or None (it may pass)."""
        buckets = self.limits.get(side)
        if buckets is None or buckets.take(account_of(req)):
            return None
        answers = [a for a in THROTTLE_ANSWERS if self.throttle_retry_after or not a[3]]
        status, code, message, retry_after = self.faults.choice(answers)
        resp = error_response(side, status, code, message, self.ids, head_only=req.method == "HEAD")
        if retry_after:
            resp.headers["Retry-After"] = "1"
        with self._stats_lock:
            self.stats[f"{side}.throttled"] = self.stats.get(f"{side}.throttled", 0) + 1
        return resp

    def count(self, side: str, status: int) -> None:
        with self._stats_lock:
            for key in (f"{side}.requests", f"{side}.status.{status}"):
                self.stats[key] = self.stats.get(key, 0) + 1

    def snapshot_stats(self) -> dict[str, Any]:
        with self._stats_lock:
            out: dict[str, Any] = dict(self.stats)
        out["faults.injected"] = dict(self.faults.injected)
        out["limits"] = {side: b.max_rps for side, b in self.limits.items()}
        out["ci.jobs"] = len(self.ci.jobs)
        out["cos.objects"] = len(self.cos.objects)
        out["cmq.messages"] = len(self.cmq.messages)
        return out
