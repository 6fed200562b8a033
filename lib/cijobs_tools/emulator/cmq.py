"""The TDMQ CMQ HTTP data-flow side: ``/v2/index.php`` ``SendMessage``/``BatchSendMessage``/
``PublishMessage``/``BatchPublishMessage`` with the v2 signature (:mod:`cijobs.cmq_signing`).

Errors are HTTP 200 with ``{"code": <non-zero>, "message": ...}`` as the real API
answers; ``code`` 4000 = bad parameter (the message carries the module code, e.g.
``(10370)``), 4100 = authentication failed, 4440 = queue/topic does not exist
(with ``auto_create=False``), 6000 = internal error (fault injection). Received
messages are kept in ``messages``.
"""

from __future__ import annotations

import hmac
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import parse_qsl

from cijobs import cmq_signing

from .auth import KeyRing
from .wire import JSON, Request, RequestIds, Response

ACTIONS = {
    "SendMessage": ("queue", False),
    "BatchSendMessage": ("queue", True),
    "PublishMessage": ("topic", False),
    "BatchPublishMessage": ("topic", True),
}
MAX_BATCH = 16
MAX_BATCH_BYTES = 64 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024
MAX_TAGS = 5
MAX_ROUTING_KEY = 64
_INDEXED = re.compile(r"^(msgBody|msgTag)\.(\d+)$")


@dataclass
class CmqMessage:
    kind: str  # "queue" | "topic"
    name: str  # queueName / topicName
    body: str
    tags: list[str] = field(default_factory=list)
    routing_key: Optional[str] = None
    msg_id: str = ""
    action: str = ""
    delay_seconds: int = 0

    @property
    def queue(self) -> Optional[str]:
        return self.name if self.kind == "queue" else None

    @property
    def topic(self) -> Optional[str]:
        return self.name if self.kind == "topic" else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "name": self.name, "body": self.body, "tags": list(self.tags),
            "routing_key": self.routing_key, "msg_id": self.msg_id, "action": self.action,
        }


class CmqError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CmqStore:
    def __init__(self, keys: KeyRing, ids: RequestIds, clock: Callable[[], float] = time.time,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, auto_create: bool = True) -> None:
        self.messages: list[CmqMessage] = []
        self.queues: set[str] = set()
        self.topics: set[str] = set()
        self.auto_create = auto_create
        self.max_message_bytes = max_message_bytes
        self.requests = 0
        self._keys = keys
        self._ids = ids
        self._clock = clock
        self._msg_ids = itertools.count(1)
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.requests = 0

    def by_name(self, name: str) -> list[CmqMessage]:
        with self._lock:
            return [m for m in self.messages if m.name == name]

    # -- HTTP ------------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        with self._lock:
            self.requests += 1
        request_id = self._ids.next()
        try:
            payload = self._handle(req)
        except CmqError as e:
            payload = {"code": e.code, "message": e.message}
        payload["requestId"] = request_id
        return json_response(payload)

    def _handle(self, req: Request) -> dict[str, Any]:
        if req.method not in ("POST", "GET"):
            raise CmqError(4000, f"(10410)unexpected http {req.method} only GET or POST is supported")
        params = dict(req.query)
        if req.method == "POST" and req.body:
            try:
                params.update(parse_qsl(req.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
            except UnicodeDecodeError:
                raise CmqError(4000, "(10000)invalid request parameters: body is not UTF-8") from None
        action = params.get("Action", "")
        if action not in ACTIONS:
            raise CmqError(4000, f"(10280)action is not existed: {action!r}")
        self._authenticate(req, params)
        kind, batch = ACTIONS[action]
        name_param = "queueName" if kind == "queue" else "topicName"
        name = params.get(name_param)
        if not name:
            raise CmqError(4000, f"(10390)lacked of required parameter {name_param}")
        known = self.queues if kind == "queue" else self.topics
        with self._lock:
            if name not in known:
                if not self.auto_create:
                    raise CmqError(4440, f"{kind} is not exist: {name}")
                known.add(name)
        bodies = _indexed(params, "msgBody") if batch else [params.get("msgBody", "")]
        if not bodies or any(b == "" for b in bodies):
            raise CmqError(4000, "(10390)lacked of required parameter msgBody")
        if batch and len(bodies) > MAX_BATCH:
            raise CmqError(4000, f"(10370)msgBody parameter batch size is out of range: {len(bodies)} > {MAX_BATCH}")
        sizes = [len(b.encode("utf-8")) for b in bodies]
        too_big = [i for i, n in enumerate(sizes) if n > self.max_message_bytes]
        if too_big:
            raise CmqError(4000, f"(10350)parameter msgBody value or length is out of range: message {too_big[0]} "
                                 f"is {sizes[too_big[0]]} bytes > {self.max_message_bytes}")
        if batch and sum(sizes) > MAX_BATCH_BYTES:
            raise CmqError(4000, f"(10350)parameter msgBody value or length is out of range: batch total "
                                 f"{sum(sizes)} bytes > {MAX_BATCH_BYTES}")
        tags: list[str] = []
        routing_key: Optional[str] = None
        if kind == "topic":
            tags = _indexed(params, "msgTag")
            if len(tags) > MAX_TAGS or any(len(t) > 16 for t in tags):
                raise CmqError(4000, "(10350)parameter msgTag value or length is out of range")
            routing_key = params.get("routingKey")
            if routing_key is not None and (len(routing_key.encode()) > MAX_ROUTING_KEY
                                            or routing_key.count(".") > 15):
                raise CmqError(4000, "(10350)parameter routingKey value or length is out of range")
        try:
            delay = int(params.get("delaySeconds") or 0)
        except ValueError:
            raise CmqError(4000, "(10360)parameter delaySeconds error type") from None
        stored = []
        with self._lock:
            for b in bodies:
                msg_id = f"{next(self._msg_ids):016x}"
                msg = CmqMessage(kind, name, b, list(tags), routing_key, msg_id, action, delay)
                self.messages.append(msg)
                stored.append(msg)
        if batch:
            return {"code": 0, "message": "", "msgList": [{"msgId": m.msg_id} for m in stored]}
        return {"code": 0, "message": "", "msgId": stored[0].msg_id}

    def _authenticate(self, req: Request, params: dict[str, str]) -> None:
        for p in ("SecretId", "Signature", "Timestamp", "Nonce"):
            if not params.get(p):
                raise CmqError(4000, f"(10390)lacked of required parameter {p}")
        key = self._keys.get(params["SecretId"])
        if key is None:
            raise CmqError(4100, "authentication failed: unknown SecretId")
        try:
            ts = int(params["Timestamp"])
            nonce = int(params["Nonce"])
        except ValueError:
            raise CmqError(4000, "(10360)parameter Timestamp/Nonce error type") from None
        if nonce <= 0:
            raise CmqError(4000, "(10350)parameter Nonce value or length is out of range")
        if abs(self._clock() - ts) > cmq_signing.MAX_SKEW_S:
            raise CmqError(4100, "authentication failed: Timestamp is too far from the server time")
        if key.token is not None:
            token = params.get("Token")
            if not token or not hmac.compare_digest(token.encode(), key.token.encode()):
                raise CmqError(4100, "authentication failed: missing or invalid Token")
        method = params.get("SignatureMethod") or "HmacSHA1"
        if method not in cmq_signing.METHODS:
            raise CmqError(4000, f"(10110)unsupported SignatureMethod {method}")
        host = req.headers.get("host", "")
        if not cmq_signing.verify(params, key.secret_key, host, req.method):
            raise CmqError(4100, "authentication failed: signature does not match")


def _indexed(params: dict[str, str], name: str) -> list[str]:
    """``name.0..n`` or ``name.1..n`` (consecutive) -> list; gaps are an error."""
    found: dict[int, str] = {}
    for k, v in params.items():
        m = _INDEXED.match(k)
        if m and m.group(1) == name:
            found[int(m.group(2))] = v
    if not found:
        return []
    idx = sorted(found)
    start = idx[0]
    if start not in (0, 1) or idx != list(range(start, start + len(idx))):
        raise CmqError(4000, f"(10380){name} parameter is not consequent")
    return [found[i] for i in idx]


def json_response(payload: dict[str, Any], status: int = 200) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return Response(status, body, {}, JSON, server="tencent-cmq")
