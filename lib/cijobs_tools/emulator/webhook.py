"""Webhook receivers: ``POST /_emu/webhook/<name>`` checks the cijobs signature, answers as told, records.

A receiver is created on first use. Configure it (Python: :meth:`WebhookReceivers.configure`; control
API: ``POST /_emu/webhooks/<name>``) with the secrets to verify against, a script of statuses to answer
(then ``status`` for the rest), a ``Location`` for redirects, a ``Retry-After`` and a latency. A
delivery whose signature or timestamp does not verify (when secrets are set) is answered 401. Every
delivery is recorded (headers, body, answer, whether it verified); ``GET /_emu/webhooks/<name>/deliveries``
lists them. Not subject to fault injection.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from cijobs.webhook_signature import DEFAULT_TOLERANCE_S, verify

from .wire import JSON, Request, Response

RECEIVER_PREFIX = "/_emu/webhook/"


@dataclass
class Delivery:
    name: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    status: int
    verified: Optional[bool]  # None when the receiver has no secrets
    received_at: float

    def header(self, name: str) -> Optional[str]:
        return self.headers.get(name.lower())

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "headers": self.headers, "body": self.body.decode("utf-8", errors="replace"),
                "status": self.status, "verified": self.verified, "received_at": self.received_at}


@dataclass
class ReceiverConfig:
    secrets: tuple[str, ...] = ()
    statuses: deque[int] = field(default_factory=deque)  # answered first, one per delivery
    status: int = 200  # answered once the script is used up
    location: Optional[str] = None
    retry_after: Optional[str] = None
    latency_s: float = 0.0
    tolerance_s: float = DEFAULT_TOLERANCE_S
    answer: bytes = b""

    def as_dict(self) -> dict[str, Any]:  # never the secrets themselves
        return {"secrets": len(self.secrets), "statuses": list(self.statuses), "status": self.status,
                "location": self.location, "retry_after": self.retry_after, "latency_ms": self.latency_s * 1000,
                "tolerance_s": self.tolerance_s, "answer": self.answer.decode("utf-8", errors="replace")}


class WebhookReceivers:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._configs: dict[str, ReceiverConfig] = {}
        self._deliveries: list[Delivery] = []

    def configure(self, name: str, *, secrets: Optional[list[str]] = None, statuses: Optional[list[int]] = None,
                  status: Optional[int] = None, location: Optional[str] = None, retry_after: Optional[str] = None,
                  latency_ms: Optional[float] = None, tolerance_s: Optional[float] = None,
                  answer: Optional[str] = None) -> ReceiverConfig:
        """Change the named receiver's behaviour (arguments left None keep their value)."""
        for s in [*(statuses or []), *([status] if status is not None else [])]:
            if isinstance(s, bool) or not isinstance(s, int) or not 100 <= s <= 599:
                raise ValueError(f"a status must be an integer within 100..599, got {s!r}")
        with self._lock:
            cfg = self._configs.setdefault(name, ReceiverConfig())
            if secrets is not None:
                if not all(isinstance(s, str) and s for s in secrets):
                    raise ValueError("secrets must be non-empty strings")
                cfg.secrets = tuple(secrets)
            if statuses is not None:
                cfg.statuses = deque(statuses)
            if status is not None:
                cfg.status = status
            if location is not None:
                cfg.location = location or None
            if retry_after is not None:
                cfg.retry_after = retry_after or None
            if latency_ms is not None:
                cfg.latency_s = max(0.0, float(latency_ms)) / 1000.0
            if tolerance_s is not None:
                cfg.tolerance_s = float(tolerance_s)
            if answer is not None:
                cfg.answer = answer.encode("utf-8")
            return cfg

    def config(self, name: str) -> ReceiverConfig:
        with self._lock:
            return self._configs.setdefault(name, ReceiverConfig())

    def deliveries(self, name: Optional[str] = None) -> list[Delivery]:
        with self._lock:
            return [d for d in self._deliveries if name is None or d.name == name]

    def clear(self) -> None:
        with self._lock:
            self._configs.clear()
            self._deliveries.clear()

    def handle(self, req: Request) -> Response:
        name = req.path[len(RECEIVER_PREFIX):].strip("/")
        started = time.monotonic()
        if req.method != "POST" or not name:
            return Response(405, b"POST /_emu/webhook/<name>", {}, "text/plain", server="cijobs-emulator")
        with self._lock:
            cfg = self._configs.setdefault(name, ReceiverConfig())
            verified: Optional[bool] = None
            headers: dict[str, str] = {}
            if cfg.secrets:
                verified = verify(cfg.secrets, req.header("x-cijobs-timestamp") or "",
                                  req.header("x-cijobs-signature") or "", req.body, self.clock(), cfg.tolerance_s)
            if verified is False:
                status, answer = 401, b"signature does not verify"
            else:
                status = cfg.statuses.popleft() if cfg.statuses else cfg.status
                if cfg.location and 300 <= status < 400:
                    headers["Location"] = cfg.location
                if cfg.retry_after and status >= 400:
                    headers["Retry-After"] = cfg.retry_after
                answer = cfg.answer
            self._deliveries.append(Delivery(name, dict(req.headers), req.body, status, verified, self.clock()))
            latency = cfg.latency_s
        left = started + latency - time.monotonic()
        if left > 0:
            time.sleep(left)
        return Response(status, answer, headers, JSON if answer.startswith(b"{") else "text/plain",
                        server="cijobs-emulator")
