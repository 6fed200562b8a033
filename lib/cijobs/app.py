"""One invocation: detect the event, dispatch it, summarise, log.

``build_app(env)`` wires the collaborators once per container (settings,
pooled session, CI client, sink, pending registry); credentials are read per
invocation through a callable. Only ``handler/index.py`` and the CLI import
this module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any, Callable, Optional, TextIO

from . import doctor, log
from .credentials import Credentials, CredentialsError
from .credentials import from_env as credentials_from_env
from .deadline import Deadline
from .events import AsyncEvent, EventError, HttpEvent, Limits, RecordResult, UnknownEventError, detect
from .http import new_session
from .pipeline import Outcomes, Pipeline, configuration_hint
from .ratelimit import Limiters, limiters_for
from .routes import Router, error
from .settings import Settings, SettingsError

DEFAULT_TIME_LIMIT_MS = 3000  # SCF's default function timeout
MAX_LOGGED_IDS = 50  # job IDs named in one log line (summary, failures)
class InvocationFailedError(RuntimeError):
    """Raised after an async (or direct) invocation finished everything it could, when some jobs failed
    with a retryable error and could not be parked in the pending registry: SCF's retry and DLQ take over."""

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary


class App:
    """Handles invocations; one per container."""

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        env: Mapping[str, str],
        monotonic: Callable[[], float] = time.monotonic,
        redactor: Optional[log.Redactor] = None,
        on_drift: Optional[Callable[[str, str, Any], None]] = None,
        limiters: Optional[Limiters] = None,
    ) -> None:
        self.settings = settings
        self.redactor = redactor if redactor is not None else log.Redactor(settings.secrets())
        self.pipeline = pipeline
        self.router = Router(settings, pipeline)
        self.env = env
        self.monotonic = monotonic
        self.limits = Limits(settings.max_body_bytes, settings.max_ids_per_request, settings.max_ids_per_event,
                             on_drift=on_drift)
        self.limiters = limiters
        self._rates_before: Optional[dict[str, dict[str, Optional[float]]]] = None
        self.log = log.get_logger("cijobs.app")

    # -- one invocation --------------------------------------------------------------------------

    def __call__(self, event: Any, context: Any) -> Any:
        started = self.monotonic()
        ctx: Mapping[str, Any] = context if isinstance(context, Mapping) else {}
        log.bind_invocation(request_id=ctx.get("request_id"), function_name=ctx.get("function_name"))
        self._register_secrets()
        self._rates_before = self.limiters.snapshot() if self.limiters is not None else None
        if doctor.is_doctor_event(event):  # {"Doctor": true}: the checks, with the execution role's credentials
            return doctor.handle_event(event, self.env, self.deadline(ctx))
        try:
            ev = detect(event)
        except UnknownEventError as exc:
            self.log.error("unknown_event", error=str(exc), event_type=type(event).__name__)
            self._summary_line("unknown", Outcomes(), started, error=str(exc))
            raise
        except EventError as exc:  # a known shape with a malformed field
            self.log.error("bad_event", error=str(exc), field=exc.field)
            if isinstance(event, Mapping) and "httpMethod" in event:  # a caller is waiting: answer 400
                self._summary_line("http", Outcomes(), started, status_code=400, error=str(exc))
                return error(400, "BadRequest", str(exc)).to_event_response()
            self._summary_line("unknown", Outcomes(), started, error=str(exc))
            raise
        log.bind(trigger=ev.kind)
        deadline = self.deadline(ctx)
        if isinstance(ev, HttpEvent):  # a caller is waiting for an answer: the routes
            return self._http(ev, deadline, started)
        return self._async(ev, deadline, started)

    def deadline(self, ctx: Mapping[str, Any]) -> Deadline:
        """Context ``time_limit_in_ms`` minus DEADLINE_MARGIN_S (the margin is capped at half the limit)."""
        raw = ctx.get("time_limit_in_ms")
        limit_s = (raw if isinstance(raw, (int, float)) and raw > 0 else DEFAULT_TIME_LIMIT_MS) / 1000.0
        margin = min(self.settings.deadline_margin_s, limit_s / 2)
        return Deadline(limit_s - margin, clock=self.monotonic)

    def _register_secrets(self) -> None:
        """This invocation's credentials replace the previous invocation's in the log redactor."""
        try:
            self.redactor.replace(credentials_from_env(self.env).secrets())
        except CredentialsError:
            self.redactor.replace(())

    # -- HTTP ------------------------------------------------------------------------------------

    def _http(self, ev: HttpEvent, deadline: Deadline, started: float) -> dict[str, Any]:
        log.bind(http_method=ev.method, path=ev.path[:200])
        try:
            response = self.router.handle(ev, deadline)
        except Exception as exc:  # a bug or an unexpected collaborator failure: answer, don't crash
            self.log.error("http_internal_error", error_type=type(exc).__name__, error=str(exc), exc_info=True)
            response = error(500, "InternalError", "internal error; see the function log for the request id")
        self._summary_line(ev.kind, response.outcomes or Outcomes(), started, status_code=response.status)
        return response.to_event_response()

    # -- async and direct --------------------------------------------------------------------------

    def _async(self, ev: AsyncEvent, deadline: Deadline, started: float) -> dict[str, Any]:
        try:
            work = ev.work(self.limits)
        except EventError as exc:  # the event as a whole is unusable (a direct invoke's JobIds)
            self.log.error("bad_event", error=str(exc), field=exc.field)
            self._summary_line(ev.kind, Outcomes(), started, error=str(exc))
            raise
        for message_error in work.errors:
            self.log.error(f"{ev.kind}_message_rejected", error=message_error)
        records = list(work.records)
        for r in records:
            if r.request is None:
                self.log.error("record_skipped", index=r.index, ref=r.ref, error=r.error)
        if work.tick:
            outcomes = self.pipeline.tick(deadline, list(work.ids), source=ev.kind)
        else:
            outcomes = self.pipeline.process(list(work.ids), ev.kind, deadline, jobs=list(work.jobs),
                                             trust_jobs=self.settings.trust_callback_body)
        errors = list(work.errors)
        summary = self._summary(ev.kind, outcomes, records)
        if errors:  # a bad timer Message: reported, but a retry of the same Message cannot help
            summary["MessageErrors"] = errors
        self._summary_line(ev.kind, outcomes, started, records=records, error="; ".join(errors) or None)
        config = outcomes.config_errors()
        if ev.raises_when_unparked and config and not outcomes.retry_needed():
            # nothing is lost (the jobs are parked), but SCF must count an error: alarms, dead-letter queue
            message = (f"configuration errors ({', '.join(f'{c} x{n}' for c, n in config.items())}): "
                       f"{configuration_hint(config)}")
            raise InvocationFailedError(message, summary)
        if ev.raises_when_unparked and outcomes.retry_needed():
            failed = [o.job_id for o in outcomes.of("failed") if o.retryable]
            named = ", ".join(failed[:20]) + (f" and {len(failed) - 20} more" if len(failed) > 20 else "")
            message = (f"{len(failed)} job(s) failed with a retryable error and could not be parked in the "
                       f"pending registry{' (' + named + ')' if failed else ''}"
                       f"{'; ' + '; '.join(outcomes.errors) if outcomes.errors else ''}; "
                       "raising so that SCF retries the event")
            self.log.error("invocation_failed", error=message, job_ids=failed[:MAX_LOGGED_IDS])
            raise InvocationFailedError(message, summary)
        if outcomes.retry_needed():  # CKafka: never raise (it would block the partition), but say it loudly
            failed = [o.job_id for o in outcomes.of("failed") if o.retryable]
            self.log.error("jobs_not_parked", count=len(failed), job_ids=failed[:MAX_LOGGED_IDS],
                           errors=outcomes.errors or None,
                           error="retryable failures could not be parked in the pending registry; "
                                 "these jobs are not retried by anything")
        return summary

    def _summary(self, trigger: str, outcomes: Outcomes, records: list[RecordResult]) -> dict[str, Any]:
        out: dict[str, Any] = {"Trigger": trigger, **outcomes.as_dict()}
        if records:
            out["Records"] = [r.as_dict() for r in records]
        config = outcomes.config_errors()
        if config:
            out["ConfigErrors"] = config
            out["Hint"] = configuration_hint(config)
        if outcomes.registry:
            out["Registry"] = outcomes.registry
        if outcomes.discovery is not None:
            out["Discovery"] = outcomes.discovery
        return out

    def _summary_line(self, trigger: str, outcomes: Outcomes, started: float, *, status_code: Optional[int] = None,
                      records: Optional[list[RecordResult]] = None, error: Optional[str] = None) -> None:
        fields: dict[str, Any] = {"trigger": trigger, **outcomes.counts()}
        fields["duration_ms"] = int((self.monotonic() - started) * 1000)
        if status_code is not None:
            fields["status_code"] = status_code
        if records:
            fields["records"] = len(records)
            fields["records_skipped"] = sum(1 for r in records if r.request is None)
        if error is not None:
            fields["error"] = error
        if outcomes.errors:
            fields["errors"] = outcomes.errors
        failed = [o.job_id for o in outcomes.of("failed")]
        if failed:
            fields["failed_ids"] = failed[:MAX_LOGGED_IDS]
        fields.update(outcomes.registry)  # pending_total/pending_oldest_s, or pending_listed/pending_truncated
        if outcomes.discovery is not None:
            fields["discovered"] = outcomes.discovery.get("discovered", 0)
            if outcomes.discovery.get("failures"):
                fields["discovery_failures"] = outcomes.discovery["failures"]
            if outcomes.discovery.get("hint"):
                fields["discovery_hint"] = outcomes.discovery["hint"]
        if self.limiters is not None:
            rates = self.limiters.snapshot(self._rates_before)
            fields["throttled"] = sum(int(v.get("throttled") or 0) for v in rates.values())
            fields["rates"] = {k: v.get("rate") for k, v in rates.items()}
        config = outcomes.config_errors()
        if config:  # a broken deployment is loud: error level, with what to check
            fields["config_errors"] = config
            fields["hint"] = configuration_hint(config)
            self.log.error("invocation_summary", **fields)
            return
        self.log.info("invocation_summary", **fields)


def build_app(
    env: Optional[Mapping[str, str]] = None,
    *,
    log_stream: Optional[TextIO] = None,
    settings: Optional[Settings] = None,
) -> App:
    """Wire everything from the environment, once per container. Credentials are read per call."""
    env = os.environ if env is None else env
    settings = settings or Settings.from_env(env)
    redactor = log.Redactor(settings.secrets())
    log.configure(settings.log_level, log_stream, redactor)
    drift = log.schema_drift_reporter()
    settings.require_ci_target()
    live_env = env

    def credentials() -> Credentials:
        return credentials_from_env(live_env)

    from .ci_client import JobClient
    from .cos import CosClient
    from .pending import build_pending_store
    from .sinks import build_sinks

    # One pooled session (keep-alive) for CI, COS (results, claim checks, registry) and CMQ, and one rate
    # limiter per service for the container (warm invocations keep the pace they learnt).
    session = new_session(settings.ci_concurrency)
    limiters = limiters_for(settings)
    client = JobClient(settings, credentials=credentials, session=session, redactor=redactor, on_drift=drift,
                       limiters=limiters)
    cos = CosClient(settings, credentials, session=session, limiters=limiters)
    sink = build_sinks(settings, credentials, session=session, cos_client=cos, limiters=limiters)
    pending = build_pending_store(settings, credentials, cos_client=cos)
    sweep = None
    if settings.discover_tags:
        from .ci_list import JobLister
        from .discovery import TickSweep
        from .discovery_cursor import CursorStore

        lister = JobLister(client)
        sweep = TickSweep(settings.discover_tags, settings.discover_queue_ids, CursorStore(pending.store),
                          lister.list_page, since=settings.discover_since, lookback_s=settings.discover_lookback_s,
                          settle_s=settings.discover_settle_s, max_pages=settings.discover_max_pages)
    ci_limiter = limiters.get("ci")
    pipeline = Pipeline(settings, client, sink, pending, sweep=sweep, rate=lambda: ci_limiter.rate)
    return App(settings, pipeline, env, redactor=redactor, on_drift=drift, limiters=limiters)



class ConfigurationError(RuntimeError):
    """The function's settings are invalid; the message names the variable (never a secret value)."""


class MisconfiguredApp:
    """Stands in for :class:`App` when the settings cannot be built.

    Every invocation logs one structured ``configuration_error`` line. A waiting HTTP caller gets a
    503 JSON answer; any other trigger raises :class:`ConfigurationError`, so SCF keeps the event
    (async retries, then the dead-letter queue) until the configuration is fixed: nothing is lost.
    """

    def __init__(self, message: str) -> None:
        self.message = message
        self.log = log.get_logger("cijobs.app")

    def __call__(self, event: Any, context: Any) -> Any:
        ctx: Mapping[str, Any] = context if isinstance(context, Mapping) else {}
        log.bind_invocation(request_id=ctx.get("request_id"), function_name=ctx.get("function_name"))
        self.log.error("configuration_error", error=self.message)
        if isinstance(event, Mapping) and "httpMethod" in event:
            return error(503, "ConfigurationError", self.message).to_event_response()
        raise ConfigurationError(self.message)


def load_app(env: Optional[Mapping[str, str]] = None) -> Callable[[Any, Any], Any]:
    """``build_app``, or a :class:`MisconfiguredApp` when a setting is invalid (for the SCF handler)."""
    try:
        return build_app(env)
    except SettingsError as exc:  # every configuration problem; anything else is a bug and surfaces as one
        log.configure()
        return MisconfiguredApp(str(exc))
