"""Where terminal jobs go: ``file://``, ``cos://``, ``cmq-queue://``, ``cmq-topic://`` (several at once).

``build_sinks(settings, credentials)`` reads ``RESULT_SINK`` (comma-separated
URLs) and returns one :class:`Sink`. With several URLs the result is a
:class:`MultiSink`: a job is written only when every sink wrote it; a retry
re-writes it everywhere (idempotent on COS/files: ``already=True``; at least
once on CMQ).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import requests

from ..cmq_client import ApiCmqClient, CmqClient, CmqConfigError, DataflowCmqClient, parse_target
from ..cos import CosClient, CredentialsSource, InvalidKeyError
from ..http import Deadline
from ..models import Job
from ..settings import Settings
from .base import (
    PENDING_DIR,
    KeyLayout,
    Sink,
    SinkConfigError,
    WriteResult,
    canonical_json,
    combine,
    job_fields,
    refuse,
)
from .cmq import CmqSink
from .objects import ObjectSink
from .store import FileObjectStore, ObjectStore, StoreError, store_from_url

SAMPLE_JOB_ID = "jexample00000000000000"

__all__ = [
    "CmqSink",
    "KeyLayout",
    "MultiSink",
    "ObjectSink",
    "Sink",
    "SinkConfigError",
    "StoreError",
    "WriteResult",
    "build_sinks",
    "canonical_json",
    "refuse",
]


class MultiSink:
    """Writes every job to every sink; one combined :class:`WriteResult` per job."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        if not sinks:
            raise SinkConfigError("RESULT_SINK names no sink")
        self.sinks = list(sinks)
        self.name = ",".join(s.name for s in self.sinks)

    def write(self, jobs: Sequence[Job], deadline: Optional[Deadline] = None) -> list[WriteResult]:
        per_sink = [(s.name, s.write(jobs, deadline)) for s in self.sinks]
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
) -> Sink:
    """The sink(s) named by ``RESULT_SINK``; clients are built only when needed and not given.

    Raises :class:`SinkConfigError` (naming the setting) for anything unusable, at build time.
    """
    shared: dict[str, object] = {}

    def cos() -> CosClient:
        if cos_client is not None:
            return cos_client
        if "cos" not in shared:
            shared["cos"] = CosClient(settings, credentials, session=session)
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
                shared["cmq"] = DataflowCmqClient(settings, credentials, session=session)
        return shared["cmq"]  # type: ignore[return-value]

    try:
        layout = KeyLayout(settings.result_key_template)
        claim_store: Optional[ObjectStore] = None
        if settings.claim_check_store:
            _refuse_pending_folder(settings.claim_check_store, "CLAIM_CHECK_STORE")
            claim_store = store_from_url(settings.claim_check_store, "CLAIM_CHECK_STORE", cos)
        sinks: list[Sink] = []
        for raw in settings.result_sink.split(","):
            url = raw.strip()
            if not url:
                continue
            if url.startswith(("file://", "cos://")):
                _refuse_pending_folder(url, "RESULT_SINK")
                store = store_from_url(url, "RESULT_SINK", cos)
                try:  # a prefix such as ".pending" passes URL parsing but gives keys no write would accept
                    layout.render(store.prefix, SAMPLE_JOB_ID, "Success", "Transcode")
                except InvalidKeyError as exc:
                    raise SinkConfigError(f"RESULT_SINK {url!r}: its prefix gives unusable result keys ({exc})") \
                        from None
                concurrency = 1 if isinstance(store, FileObjectStore) else settings.ci_concurrency
                sinks.append(ObjectSink(store, layout, concurrency, index=settings.result_index == "daily"))
            elif url.startswith(("cmq-queue://", "cmq-topic://")):
                sinks.append(CmqSink(cmq(), parse_target(url), claim_store, settings.claim_check_bytes))
            else:
                raise SinkConfigError(f"RESULT_SINK: unknown sink {url!r}")
    except CmqConfigError as exc:
        raise SinkConfigError(str(exc)) from None
    except SinkConfigError:
        raise
    except ValueError as exc:
        raise SinkConfigError(str(exc)) from None
    names = [s.name for s in sinks]
    if len(set(names)) != len(names):
        raise SinkConfigError(f"RESULT_SINK names the same sink twice: {settings.result_sink!r}")
    return sinks[0] if len(sinks) == 1 else MultiSink(sinks)


def _refuse_pending_folder(url: str, name: str) -> None:
    """A store must not sit inside a pending registry's ``.pending`` folder: the registry reads every
    object there as a pending job."""
    location = url.split("://", 1)[1]
    if PENDING_DIR in location.split("/"):
        raise SinkConfigError(f"{name} {url!r} is inside a {PENDING_DIR!r} folder, reserved for the pending registry")
