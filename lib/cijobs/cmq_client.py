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
  here, only when used); one message per call (``max_batch == 1``). This mode
  stays on the SDK's own HTTP session (its own timeouts and transport); only
  its retries are ours.
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
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol
from urllib.parse import urlsplit

import requests

from . import cmq_signing, failures
from .credentials import Credentials, CredentialsError
from .deadline import Deadline
from .endpoints import Target
from .http import DEFAULT_MAX_BODY_BYTES, Reply, RetryPolicy, new_session
from .log import get_logger
from .models import ServiceError
from .service_call import Failure, Refused, Service, call
from .settings import Settings, SettingsError
from .targets import CmqTarget

if TYPE_CHECKING:
    from .ratelimit import Limiters

MAX_BATCH = 16
MAX_BATCH_BYTES = 64 * 1024
MAX_TAGS = 5
MAX_TAG_CHARS = 16
CredentialsSource = Callable[[], Credentials]
SERVICE = Service("cmq", request_id_headers=())


class CmqConfigError(SettingsError):
    """A CMQ setting is missing or malformed; the message names it."""


class CmqError(ServiceError):
    """A send/publish failed; ``code`` is the CMQ code (as text) or a Cloud API error code."""

    def __init__(self, code: str, message: str, retryable: bool, status: Optional[int] = None,
                 request_id: Optional[str] = None, failure_class: Optional[str] = None) -> None:
        if failure_class is not None:
            retryable = failures.is_retryable(failure_class)
        super().__init__(code, message, retryable=retryable, status=status, request_id=request_id)
        self.failure_class = failure_class or (failures.TRANSIENT if retryable else failures.FINAL)


class CmqClient(Protocol):
    max_batch: int

    def send(self, target: CmqTarget, bodies: Sequence[str], tags: Sequence[str] = (),
             deadline: Optional[Deadline] = None) -> list[str]: ...


def dataflow_retryable(code: int) -> bool:
    """CMQ data-flow ``code``: a later attempt may help (server side, or authentication to fix)."""
    return failures.is_retryable(failures.classify(failures.CMQ, 200, str(code)))


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
        limiters: Optional[Limiters] = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if not settings.cmq_endpoint:
            raise CmqConfigError(
                "CMQ_ENDPOINT must be set for CMQ_MODE=dataflow (copy the HTTP access address of the TDMQ CMQ "
                "cluster from the console, e.g. http://gz.mqadapter.cmq.tencentyun.com)"
            )
        if "{bucket}" in settings.cmq_endpoint:
            raise CmqConfigError("CMQ_ENDPOINT may use the {region} placeholder only")
        if bool(settings.cmq_secret_id) != bool(settings.cmq_secret_key):
            raise CmqConfigError("CMQ_SECRET_ID and CMQ_SECRET_KEY must be set together")
        self._settings = settings
        self._credentials = credentials
        self._session = session or new_session(settings.ci_concurrency)
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._policy = RetryPolicy(max_attempts=settings.max_attempts, rng=self._rng)
        self._limiter = limiters.get("cmq") if limiters is not None else None
        self._max_body_bytes = max_body_bytes
        self._log = get_logger("cijobs.cmq")

    def target(self, region: str) -> Target:
        """The data-flow endpoint (:mod:`cijobs.endpoints`; ``{region}`` formatted with the queue's region)."""
        return Target((self._settings.cmq_endpoint or "").replace("{region}", region), None)

    def send(self, target: CmqTarget, bodies: Sequence[str], tags: Sequence[str] = (),
             deadline: Optional[Deadline] = None) -> list[str]:
        deadline = deadline or Deadline.never()
        action_params = build_params(target, bodies, tags)
        action = action_params["Action"]
        endpoint = self.target(target.region)
        url = endpoint.base_url + cmq_signing.PATH
        host = cmq_signing.host_of(endpoint.base_url)
        count = len(bodies)

        def prepare(_attempt: int) -> requests.PreparedRequest:
            try:
                creds = cmq_credentials(self._settings, self._credentials)
            except CredentialsError as exc:
                raise _NoCredentials(str(exc)) from None
            params: dict[str, str] = dict(action_params)
            params.update(cmq_signing.common_params(
                action, creds.secret_id, self._clock(), self._rng.randint(1, 2**31 - 1), token=creds.token))
            signed = cmq_signing.sign_params(params, creds.secret_key, host)
            return self._session.prepare_request(requests.Request("POST", url, data=signed))

        def accept(reply: Reply) -> list[str]:
            return _accept(reply, count)

        def make_error(f: Failure) -> CmqError:
            return CmqError(f.code, f"{action}: {f.message}", f.retryable, f.status, f.request_id, f.failure_class)

        try:
            return call(self._session, prepare, accept, service=SERVICE, host_port=endpoint.host_port,
                        deadline=deadline, connect_timeout_s=self._settings.connect_timeout_s,
                        read_timeout_s=self._settings.read_timeout_s, policy=self._policy, make_error=make_error,
                        sleep=self._sleep, limiter=self._limiter, max_body_bytes=self._max_body_bytes,
                        log_fields={"action": action})
        except _NoCredentials as exc:
            raise CmqError("InvalidCredentials", f"{action}: {exc}", True,
                           failure_class=failures.CONFIGURATION) from None


class _NoCredentials(Exception):
    pass


def _accept(reply: Reply, count: int) -> list[str]:
    """A data-flow answer: the message IDs, or :class:`Refused` (a ``code`` other than 0, or a malformed body)."""
    try:
        doc = json.loads(reply.body)
    except ValueError:
        raise Refused(failures.MALFORMED_RESPONSE, "response is not JSON") from None
    if not isinstance(doc, dict):
        raise Refused(failures.MALFORMED_RESPONSE, "response is not a JSON object")
    request_id = str(doc.get("requestId") or "") or None
    code = doc.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        raise Refused(failures.MALFORMED_RESPONSE, "response has no integer code", request_id)
    if code != 0:
        raise Refused(str(code), _short(str(doc.get("message") or "error")), request_id)
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
        self._policy = RetryPolicy(max_attempts=settings.max_attempts, rng=rng or random.Random())
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
        timeout = int(max(1, self._settings.read_timeout_s))
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
