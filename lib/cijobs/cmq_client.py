"""Sending messages to TDMQ CMQ queues and topics.

Two clients with one method, ``send(target, bodies, tags, deadline) -> list[msgId]``:

* :class:`DataflowCmqClient` (``CMQ_MODE=dataflow``, the production path): the
  HTTP data-flow API ``POST <CMQ_ENDPOINT>/v2/index.php`` with
  ``SendMessage``/``BatchSendMessage`` (queues) or
  ``PublishMessage``/``BatchPublishMessage`` (topics), signed by
  :mod:`cijobs.cmq_signing`. HTTP 200 with ``code != 0`` is an error.
  Retryable: network errors/timeouts, HTTP 5xx/429, ``code >= 6000`` (server
  side). Not retryable: ``code`` 4000–5999 (parameters, auth, missing
  queue/topic, message too large) and other HTTP statuses.
* :class:`ApiCmqClient` (``CMQ_MODE=api``): Cloud API 3.0 ``SendCmqMsg`` /
  ``PublishCmqMsg`` through ``tencentcloud-sdk-python-tdmq`` (imported only
  here, only when used); one message per call (``max_batch == 1``).
  Retryable: ``InternalError*``, ``RequestLimitExceeded``, ``LimitExceeded``,
  ``FailedOperation.CmqBackendError`` and network errors.

A failed batch fails as a whole. Retries may deliver a message twice:
delivery is at least once and consumers deduplicate on ``JobId`` + ``State``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional, Protocol
from urllib.parse import urlsplit

import requests

from . import cmq_signing
from .credentials import Credentials
from .deadline import Deadline
from .http import RetryPolicy, is_retryable_status, new_session, request_failure, timeouts
from .log import get_logger
from .models import ServiceError
from .settings import Settings, SettingsError
from .targets import CmqTarget

MAX_BATCH = 16
MAX_BATCH_BYTES = 64 * 1024
MAX_TAGS = 5
MAX_TAG_CHARS = 16
CredentialsSource = Callable[[], Credentials]


class CmqConfigError(SettingsError):
    """A CMQ setting is missing or malformed; the message names it."""


class CmqError(ServiceError):
    """A send/publish failed; ``code`` is the CMQ code (as text) or a Cloud API error code."""

    def __init__(self, code: str, message: str, retryable: bool, status: Optional[int] = None,
                 request_id: Optional[str] = None) -> None:
        super().__init__(code, message, retryable=retryable, status=status, request_id=request_id)


class CmqClient(Protocol):
    max_batch: int

    def send(self, target: CmqTarget, bodies: Sequence[str], tags: Sequence[str] = (),
             deadline: Optional[Deadline] = None) -> list[str]: ...


def dataflow_retryable(code: int) -> bool:
    """CMQ data-flow ``code``: 4xxx/5xxx are the caller's problem, 6xxx the server's (retry)."""
    return code >= 6000


def build_params(target: CmqTarget, bodies: Sequence[str], tags: Sequence[str]) -> dict[str, str]:
    """Action-specific parameters (without the common/signature ones)."""
    if not bodies:
        raise ValueError("nothing to send")
    batch = len(bodies) > 1
    if target.kind == "queue":
        params = {"Action": "BatchSendMessage" if batch else "SendMessage", "queueName": target.name}
    elif target.kind == "topic":
        params = {"Action": "BatchPublishMessage" if batch else "PublishMessage", "topicName": target.name}
        for i, tag in enumerate(tags):
            params[f"msgTag.{i}"] = tag
    else:
        raise ValueError(f"unknown CMQ target kind {target.kind!r}")
    if batch:
        for i, body in enumerate(bodies):
            params[f"msgBody.{i}"] = body
    else:
        params["msgBody"] = bodies[0]
    return params


def cmq_credentials(settings: Settings, credentials: CredentialsSource) -> Credentials:
    """CMQ_SECRET_ID/CMQ_SECRET_KEY when both are set (a dedicated CMQ key), else the function's role."""
    if settings.cmq_secret_id and settings.cmq_secret_key:
        return Credentials(settings.cmq_secret_id, settings.cmq_secret_key, None)
    return credentials()


class DataflowCmqClient:
    """TDMQ CMQ HTTP data-flow API client (thread-safe)."""

    max_batch = MAX_BATCH

    def __init__(
        self,
        settings: Settings,
        credentials: CredentialsSource,
        session: Optional[requests.Session] = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rng: Optional[random.Random] = None,
    ) -> None:
        if not settings.cmq_endpoint:
            raise CmqConfigError(
                "CMQ_ENDPOINT must be set for CMQ_MODE=dataflow (copy the HTTP access address of the TDMQ CMQ "
                "cluster from the console, e.g. http://gz.mqadapter.cmq.tencentyun.com)"
            )
        if bool(settings.cmq_secret_id) != bool(settings.cmq_secret_key):
            raise CmqConfigError("CMQ_SECRET_ID and CMQ_SECRET_KEY must be set together")
        self._settings = settings
        self._credentials = credentials
        self._session = session or new_session(settings.ci_concurrency)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._policy = RetryPolicy(max_attempts=settings.ci_max_attempts, rng=self._rng)
        self._url = settings.cmq_endpoint.rstrip("/") + cmq_signing.PATH
        self._host = cmq_signing.host_of(settings.cmq_endpoint)
        self._log = get_logger("cijobs.cmq")

    def send(self, target: CmqTarget, bodies: Sequence[str], tags: Sequence[str] = (),
             deadline: Optional[Deadline] = None) -> list[str]:
        deadline = deadline or Deadline.never()
        action_params = build_params(target, bodies, tags)
        if deadline.expired():
            raise CmqError("DeadlineExceeded", f"{action_params['Action']}: no time left", True)

        def on_retry(attempt: int, exc: ServiceError, delay: float) -> None:
            self._log.info("cmq_retry", action=action_params["Action"], target=target.url, attempt=attempt,
                           code=exc.code, delay_s=round(delay, 3))

        return self._policy.run(lambda _n: self._once(action_params, len(bodies), deadline), deadline,
                                self._sleep, on_retry)

    def _once(self, action_params: dict[str, str], count: int, deadline: Deadline) -> list[str]:
        creds = cmq_credentials(self._settings, self._credentials)
        params: dict[str, str] = dict(action_params)
        params.update(cmq_signing.common_params(
            action_params["Action"], creds.secret_id, self._clock(), self._rng.randint(1, 2**31 - 1),
            token=creds.token,
        ))
        signed = cmq_signing.sign_params(params, creds.secret_key, self._host)
        action = action_params["Action"]
        try:
            resp = self._session.post(
                self._url, data=signed, allow_redirects=False,
                timeout=timeouts(self._settings.ci_connect_timeout_s, self._settings.ci_read_timeout_s, deadline),
            )
        except requests.RequestException as exc:
            failure, detail, retryable = request_failure(exc)
            raise CmqError(failure, f"{action}: {detail}", retryable) from None
        if resp.status_code != 200:
            raise CmqError(f"HTTP{resp.status_code}", f"{action}: HTTP {resp.status_code}",
                           is_retryable_status(resp.status_code) or resp.status_code >= 500, resp.status_code)
        try:
            doc = resp.json()
        except ValueError:
            raise CmqError("MalformedResponse", f"{action}: response is not JSON", True, 200) from None
        if not isinstance(doc, dict):
            raise CmqError("MalformedResponse", f"{action}: response is not a JSON object", True, 200)
        request_id = str(doc.get("requestId") or "") or None
        code = doc.get("code")
        if not isinstance(code, int):
            raise CmqError("MalformedResponse", f"{action}: response has no integer code", True, 200, request_id)
        if code != 0:
            raise CmqError(str(code), f"{action}: {doc.get('message') or 'error'}", dataflow_retryable(code),
                           200, request_id)
        if count == 1:
            return [str(doc.get("msgId") or "")]
        items = doc.get("msgList")
        ids = [str(i.get("msgId") or "") for i in items if isinstance(i, dict)] if isinstance(items, list) else []
        return ids if len(ids) == count else ids + [""] * (count - len(ids))


API_RETRYABLE_PREFIXES = ("InternalError", "RequestLimitExceeded", "LimitExceeded", "ClientNetworkError",
                          "ServerNetworkError", "FailedOperation.CmqBackendError")
API_ENDPOINT = "tdmq.tencentcloudapi.com"


def api_retryable(code: str) -> bool:
    return code.startswith(API_RETRYABLE_PREFIXES)


class ApiCmqClient:
    """Cloud API 3.0 ``SendCmqMsg``/``PublishCmqMsg`` (rate-limited by Tencent: for tests/low volume)."""

    max_batch = 1

    def __init__(
        self,
        settings: Settings,
        credentials: CredentialsSource,
        sleep: Callable[[float], None] = time.sleep,
        rng: Optional[random.Random] = None,
        sdk_factory: Optional[Callable[[Credentials, str], Any]] = None,
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._sleep = sleep
        self._policy = RetryPolicy(max_attempts=settings.ci_max_attempts, rng=rng or random.Random())
        self._sdk_factory = sdk_factory or self._default_sdk
        self._log = get_logger("cijobs.cmq")

    def _default_sdk(self, creds: Credentials, region: str) -> Any:
        from tencentcloud.common import credential
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.tdmq.v20200217 import tdmq_client

        endpoint, protocol = API_ENDPOINT, "https"
        if self._settings.cmq_endpoint:
            parts = urlsplit(self._settings.cmq_endpoint)
            endpoint, protocol = parts.netloc or endpoint, parts.scheme or "https"
        timeout = int(max(1, self._settings.ci_read_timeout_s))
        profile = ClientProfile(httpProfile=HttpProfile(endpoint=endpoint, protocol=protocol, reqTimeout=timeout))
        return tdmq_client.TdmqClient(credential.Credential(creds.secret_id, creds.secret_key, creds.token),
                                      region, profile)

    def send(self, target: CmqTarget, bodies: Sequence[str], tags: Sequence[str] = (),
             deadline: Optional[Deadline] = None) -> list[str]:
        if len(bodies) != 1:
            raise ValueError("ApiCmqClient sends one message per call (max_batch == 1)")
        deadline = deadline or Deadline.never()
        if deadline.expired():
            raise CmqError("DeadlineExceeded", "no time left", True)

        def on_retry(attempt: int, exc: ServiceError, delay: float) -> None:
            self._log.info("cmq_retry", target=target.url, attempt=attempt, code=exc.code, delay_s=round(delay, 3))

        return [self._policy.run(lambda _n: self._once(target, bodies[0], tags), deadline, self._sleep, on_retry)]

    def _once(self, target: CmqTarget, body: str, tags: Sequence[str]) -> str:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
        from tencentcloud.tdmq.v20200217 import models

        try:
            client = self._sdk_factory(cmq_credentials(self._settings, self._credentials), target.region)
            if target.kind == "queue":
                req: Any = models.SendCmqMsgRequest()
                req.QueueName, req.MsgContent, req.DelaySeconds = target.name, body, 0
                resp = client.SendCmqMsg(req)
            else:
                req = models.PublishCmqMsgRequest()
                req.TopicName, req.MsgContent = target.name, body
                if tags:
                    req.MsgTag = list(tags)
                resp = client.PublishCmqMsg(req)
        except TencentCloudSDKException as exc:
            code = str(exc.code or "SdkError")
            # never echo the SDK's message blindly: it may quote request parameters
            raise CmqError(code, _short(str(exc.message or "")), api_retryable(code),
                           request_id=exc.requestId) from None
        if getattr(resp, "Result", True) is False:
            raise CmqError("FailedOperation", "Result=false", True, request_id=getattr(resp, "RequestId", None))
        return str(getattr(resp, "MsgId", "") or "")


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def encode_message(doc: Any) -> str:
    """Canonical JSON text (the same document always gives the same message body)."""
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
