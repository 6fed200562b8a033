"""Where terminal jobs go: ``file://``, ``cos://``, ``cmq-queue://``, ``cmq-topic://``, ``https://`` webhooks
(several at once).

``build_sinks(settings, credentials)`` turns the parsed ``RESULT_SINK`` targets
into one :class:`Sink`. With several URLs the result is a
:class:`MultiSink`: a job is written only when every sink wrote it; a retry
re-writes it everywhere (idempotent on COS/files: ``already=True``; at least
once on CMQ).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import requests

from ..cmq_client import ApiCmqClient, CmqClient, DataflowCmqClient
from ..cos import CosClient, CredentialsSource
from ..deadline import Deadline
from ..log import get_logger
from ..models import Job, WriteResult
from ..ratelimit import Limiters
from ..settings import Settings
from ..store import FileLocation, InvalidKeyError, ObjectStore, StoreError, open_store
from ..targets import CmqTarget, WebhookTarget
from .base import KeyLayout, Sink, SinkConfigError, canonical_json, combine, job_fields, not_confirmed, refuse
from .cmq import CmqSink
from .objects import ObjectSink
from .webhook import WebhookSink, new_webhook_session

SAMPLE_JOB_ID = "jexample00000000000000"

__all__ = [
    "CmqSink",
    "KeyLayout",
    "MultiSink",
    "ObjectSink",
    "Sink",
    "SinkConfigError",
    "StoreError",
    "WebhookSink",
    "WriteResult",
    "build_sinks",
    "canonical_json",
    "refuse",
]


class MultiSink:
    """Writes every job to every sink; one combined :class:`WriteResult` per job.

    A sink that raises (or answers with the wrong number of results) fails only its own part: each job
    gets ``WriteNotConfirmed`` (retryable) from that sink, and the other sinks still run."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        if not sinks:
            raise SinkConfigError("RESULT_SINK names no sink")
        self.sinks = list(sinks)
        self.name = ",".join(s.name for s in self.sinks)
        self._log = get_logger("cijobs.sinks")

    def _write_to(self, sink: Sink, jobs: Sequence[Job], deadline: Optional[Deadline]) -> list[WriteResult]:
        try:
            results = list(sink.write(jobs, deadline))
            if len(results) != len(jobs):
                raise RuntimeError(f"{len(results)} results for {len(jobs)} jobs")
            return results
        except Exception as exc:
            self._log.error("sink_raised", sink=sink.name, jobs=len(jobs), error_type=type(exc).__name__)
            out = []
            for job in jobs:
                job_id, state, _tag = job_fields(job)
                out.append(not_confirmed(job_id, state, sink.name, exc))
            return out

    def write(self, jobs: Sequence[Job], deadline: Optional[Deadline] = None) -> list[WriteResult]:
        per_sink = [(s.name, self._write_to(s, jobs, deadline)) for s in self.sinks]
        out = []
        for i, job in enumerate(jobs):
            job_id, state, _tag = job_fields(job)
            out.append(combine(job_id, state, [(name, results[i]) for name, results in per_sink]))
        return out


def build_sinks(
    settings: Settings,
    credentials: CredentialsSource,
    session: Optional[requests.Session] = None,
    cos_client: Optional[CosClient] = None,
    cmq_client: Optional[CmqClient] = None,
    limiters: Optional[Limiters] = None,
) -> Sink:
    """The sink(s) named by ``RESULT_SINK``; clients are built only when needed and not given.

    Raises :class:`SinkConfigError` (naming the setting) for anything unusable, at build time.
    """
    shared: dict[str, object] = {}

    def cos() -> CosClient:
        if cos_client is not None:
            return cos_client
        if "cos" not in shared:
            shared["cos"] = CosClient(settings, credentials, session=session, limiters=limiters)
        client = shared["cos"]
        assert isinstance(client, CosClient)
        return client

    def cmq() -> CmqClient:
        if cmq_client is not None:
            return cmq_client
        if "cmq" not in shared:
            if settings.cmq_mode == "api":
                shared["cmq"] = ApiCmqClient(settings, credentials)
            else:
                shared["cmq"] = DataflowCmqClient(settings, credentials, session=session, limiters=limiters)
        return shared["cmq"]  # type: ignore[return-value]

    def webhook(target: WebhookTarget) -> WebhookSink:
        if not settings.webhook_secret:
            raise SinkConfigError(f"RESULT_SINK names a webhook ({target.url}): WEBHOOK_SECRET must be set "
                                  "(one secret of at least 32 characters, or two separated by ',')")
        if "webhook" not in shared:  # receivers get their own session (no cookies) and per-host limiters
            shared["webhook"] = new_webhook_session(settings.webhook_concurrency)
            shared["webhook_limiters"] = limiters if limiters is not None else Limiters(
                settings.rate_mode, max_rps=settings.webhook_max_rps, concurrency=settings.webhook_concurrency)
        web_session, web_limiters = shared["webhook"], shared["webhook_limiters"]
        assert isinstance(web_session, requests.Session) and isinstance(web_limiters, Limiters)
        return WebhookSink(web_session, target, settings.webhook_secret, claim_store, settings.webhook_max_bytes,
                           settings.webhook_concurrency, web_limiters.get(f"webhook:{target.host}"),
                           max_attempts=settings.max_attempts, connect_timeout_s=settings.connect_timeout_s,
                           read_timeout_s=settings.read_timeout_s)

    layout = KeyLayout(settings.result_key_template)
    claim_store: Optional[ObjectStore] = None
    if settings.claim_check_store is not None:
        claim_store = open_store(settings.claim_check_store, cos)
    sinks: list[Sink] = []
    for target in settings.result_sink:
        if isinstance(target, CmqTarget):
            sinks.append(CmqSink(cmq(), target, claim_store, settings.claim_check_bytes))
            continue
        if isinstance(target, WebhookTarget):
            sinks.append(webhook(target))
            continue
        store = open_store(target, cos)
        try:  # a prefix such as ".pending" passes URL parsing but gives keys no write would accept
            layout.render(store.prefix, SAMPLE_JOB_ID, "Success", "Transcode")
        except InvalidKeyError as exc:
            raise SinkConfigError(f"RESULT_SINK {target.url}: its prefix gives unusable result keys ({exc})") from None
        concurrency = 1 if isinstance(target, FileLocation) else settings.ci_concurrency
        sinks.append(ObjectSink(store, layout, concurrency, index=settings.result_index == "daily"))
    if not sinks:
        raise SinkConfigError("RESULT_SINK names no sink")
    return sinks[0] if len(sinks) == 1 else MultiSink(sinks)
