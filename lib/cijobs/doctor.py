"""``cijobs doctor``: check a configuration end to end with the credentials at hand; no printing here.

:func:`run_checks` returns one :class:`Check` per line the command prints, in this order:

1. ``credentials``: whose credentials are used (the SecretId masked to its first and last 4 characters)
   and whether they are temporary (a session token is set). A ✓ of any later check proves the
   permissions of *these* credentials, not of another role's.
2. ``settings``: the environment parses (every later check needs it).
3. ``ci query``: one well-formed job ID that cannot exist is queried; CI must name it in
   ``NonExistJobIds`` (the host answers and accepts the signature).
4. ``ci list``: one ``GET /jobs?tag=Transcode&size=1`` (the listing permission).
5. ``sink <url>`` per ``RESULT_SINK`` target: COS and file stores get a PUT, HEAD and DELETE of a probe
   object under ``<prefix>/_doctor/``; a CMQ queue/topic and a webhook get one probe message only with
   ``send_probe`` (it reaches the user's consumers), else the check is skipped.
6. ``pending store``: the registry is listed, and a probe object under ``<prefix>/_doctor/`` is created
   and deleted.

:func:`check_all` is the orchestration over injected collaborators (tests give fakes);
:func:`run_checks` wires them from an environment, as the function does. :func:`handle_event` answers a
direct invoke of ``{"Doctor": true}`` (``"SendProbe": true`` sends the CMQ/webhook probes), so the
execution role itself can be checked from the console's test button.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

from .credentials import Credentials, CredentialsError
from .credentials import from_env as credentials_from_env
from .deadline import Deadline
from .errors import SettingsError
from .models import Job, QueryResult, ServiceError
from .settings import Settings
from .store import CosLocation, FileLocation, ObjectStore, StoreError, StoreUrl
from .targets import CmqTarget, SinkTarget, WebhookTarget

# A well-formed job ID (a lowercase letter and 16-64 lowercase letters/digits) that no CI job can carry:
# CI's IDs are 'j' and 32 hexadecimal digits, and this one has letters past 'f'.
PROBE_JOB_ID = "jcijobsdoctorprobe000000000000000"
PROBE_DIR = "_doctor"
PROBE_TAG = "Transcode"
DEFAULT_TIMEOUT_S = 20.0

_ROLE_FIX = ("grant the policy of docs/permissions/execution-role.json to these credentials (on SCF: to the "
             "function's execution role)")


@dataclass(frozen=True)
class Check:
    """One line of the report: ``fix`` says what to do when ``ok`` is False; ``skipped`` checks pass."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    skipped: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Name": self.name, "Ok": self.ok, "Detail": self.detail}
        if self.fix:
            out["Fix"] = self.fix
        if self.skipped:
            out["Skipped"] = True
        return out


def report(checks: Sequence[Check]) -> dict[str, Any]:
    """The machine-readable report: ``{"Ok": all passed, "Checks": [...]}``."""
    return {"Ok": all(c.ok for c in checks), "Checks": [c.as_dict() for c in checks]}


def mask_secret_id(secret_id: str) -> str:
    """The first 4 and last 4 characters (``AKID…wxyz``); an ID of 8 characters or fewer is hidden whole."""
    if len(secret_id) <= 8:
        return "*" * len(secret_id)
    return f"{secret_id[:4]}…{secret_id[-4:]}"


# -- collaborators ------------------------------------------------------------------------------------


class Querier(Protocol):
    def query(self, job_ids: Sequence[str], deadline: Optional[Deadline] = None) -> QueryResult: ...


class Lister(Protocol):
    def list_page(self, query: Any, deadline: Optional[Deadline] = None) -> Any: ...


class Writer(Protocol):
    def write(self, jobs: Sequence[Job], deadline: Optional[Deadline] = None) -> list[Any]: ...


class Registry(Protocol):
    store: ObjectStore

    def list_ids(self, limit: Optional[int] = None, deadline: Optional[Deadline] = None) -> list[str]: ...


@dataclass
class Collaborators:
    """Factories, each called once by its check (so that a client that cannot be built fails that check
    only): the CI query client and lister, a store per store URL, a sink per CMQ/webhook target, the
    pending registry."""

    querier: Callable[[], Querier]
    lister: Callable[[], Lister]
    store: Callable[[StoreUrl], ObjectStore]
    sink: Callable[[SinkTarget], Writer]
    pending: Callable[[], Registry]


# -- the checks ---------------------------------------------------------------------------------------


def credentials_check(creds: Optional[Credentials], error: Optional[str] = None) -> Check:
    if creds is None:
        return Check("credentials", False, error or "no credentials",
                     "export TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY (and TENCENTCLOUD_SESSIONTOKEN for "
                     "temporary credentials); on SCF bind an execution role to the function")
    kind = "temporary (session token set)" if creds.token else "permanent (no session token)"
    return Check("credentials", True, f"using SecretId {mask_secret_id(creds.secret_id)}, {kind}; the checks "
                                      "below prove the permissions of these credentials only")


def _error_text(exc: BaseException) -> tuple[str, str]:
    """(code, one-line text) of a service error or anything else."""
    if isinstance(exc, ServiceError):
        return exc.code, str(exc)
    return type(exc).__name__, str(exc) or type(exc).__name__


def fix_for(code: str, what: str, actions: str, endpoint: str = "CI_ENDPOINT (or CI_BUCKET/CI_REGION)") -> str:
    """What to do about an error ``code`` met while ``what`` (e.g. ``querying CI``)."""
    if code == "CredentialsError":
        return "export TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY (see the credentials line)"
    if code == "SignatureDoesNotMatch":
        return ("the secret key does not match the SecretId: check TENCENTCLOUD_SECRETKEY (and that the "
                "endpoint is the bucket's own region)")
    if code in ("InvalidAccessKeyId", "InvalidSecretId", "AuthFailure.SecretIdNotFound"):
        return "the SecretId is unknown: check TENCENTCLOUD_SECRETID (and the session token for temporary keys)"
    if code in ("InvalidSecurityToken", "ExpiredToken", "MissingSecurityHeader"):
        return "the session token is missing, wrong or expired: export a fresh TENCENTCLOUD_SESSIONTOKEN"
    if code in ("AccessDenied", "UnauthorizedOperation", "4103", "4104") or code.startswith("UnauthorizedOperation."):
        return f"these credentials may not do this: allow {actions}; {_ROLE_FIX}"
    if code == "NoSuchBucket":
        return f"the bucket does not exist in that region: check the settings used while {what}"
    if code in ("ConnectionError", "Timeout", "CertificateVerifyFailed", "DeadlineExceeded"):
        return (f"the host named above did not answer while {what}: check {endpoint}, DNS and the network "
                "(on SCF: a VPC without internet access?)")
    return f"see the error above (while {what})"


def ci_query_check(querier: Callable[[], Querier], deadline: Deadline) -> Check:
    name = "ci query"
    try:
        result = querier().query([PROBE_JOB_ID], deadline)
    except (SettingsError, ServiceError, CredentialsError) as exc:
        code, text = _error_text(exc)
        return Check(name, False, text, fix_for(code, "querying CI", "ci:DescribeMediaJob"))
    if PROBE_JOB_ID in result.nonexistent:
        return Check(name, True, "CI answered and accepted the signature (the probe ID came back in NonExistJobIds)")
    if result.failed:
        err = result.failed[0].error
        status = f" (HTTP {err.http_status})" if err.http_status else ""
        return Check(name, False, f"{err.code}: {err.message}{status}",
                     fix_for(err.code, "querying CI", "ci:DescribeMediaJob"))
    return Check(name, False, "CI answered, but not with the probe ID in NonExistJobIds",
                 "CI_ENDPOINT may point at something that is not CI: unset it or point it at the bucket's CI host")


def ci_list_check(lister: Callable[[], Lister], deadline: Deadline) -> Check:
    from .ci_client import CIError
    from .ci_list import ListQuery, queue_required

    name = "ci list"
    try:
        page = lister().list_page(ListQuery(tag=PROBE_TAG, size=1), deadline)
    except CIError as exc:
        if queue_required(exc):
            return Check(name, False, str(exc),
                         "CI wants a queue ID for listing: set DISCOVER_QUEUE_IDS to the bucket's queue ID(s)")
        return Check(name, False, str(exc), fix_for(exc.code, "listing CI jobs", "ci:DescribeMediaJobs"))
    except (SettingsError, ServiceError, CredentialsError) as exc:
        code, text = _error_text(exc)
        return Check(name, False, text, fix_for(code, "listing CI jobs", "ci:DescribeMediaJobs"))
    return Check(name, True, f"GET /jobs?tag={PROBE_TAG}&size=1 answered ({len(page.jobs)} job(s) on the page)")


def probe_key(store: ObjectStore, now: float) -> str:
    return store.key(PROBE_DIR, f"probe-{int(now)}-{uuid.uuid4().hex[:12]}.json")


def probe_body(now: float) -> bytes:
    return json.dumps({"Doctor": True, "Time": int(now), "Note": "cijobs doctor probe; safe to delete"},
                      sort_keys=True).encode("utf-8")


def store_probe(store: ObjectStore, deadline: Deadline, now: float, *, create: bool = False) -> str:
    """PUT (or create-if-absent), HEAD, DELETE of a probe object under ``_doctor/``; returns the key.
    Raises :class:`StoreError` naming the step that failed."""
    key = probe_key(store, now)
    step = "create" if create else "PUT"
    try:
        if create:
            store.create(key, probe_body(now), "application/json", {}, deadline)
        else:
            store.put(key, probe_body(now), "application/json", {}, deadline)
        step = "HEAD"
        if store.head(key, deadline) is None:
            raise StoreError("ProbeMissing", f"{key}: the probe object just written is not there", False)
        step = "DELETE"
        store.delete(key, deadline)
    except StoreError as exc:
        raise StoreError(exc.code, f"{step} {key}: {exc.message}", exc.retryable, exc.status,
                         exc.request_id) from None
    return key


def _store_fix(url: StoreUrl, code: str, setting: str) -> str:
    if isinstance(url, FileLocation):
        return f"{setting}: make {url.root} writable by this user (or point {setting} elsewhere)"
    return fix_for(code, f"writing to {url.url}",
                   f"cos:PutObject, cos:HeadObject, cos:GetObject and cos:DeleteObject on {url.prefix or ''}"
                   f"/{PROBE_DIR}/* of {url.bucket}", "COS_ENDPOINT (or the bucket's region)")


def sink_check(target: SinkTarget, collab: Collaborators, deadline: Deadline, now: float,
               send_probe: bool) -> Check:
    name = f"sink {target.url}"
    if isinstance(target, (CosLocation, FileLocation)):
        try:
            key = store_probe(collab.store(target), deadline, now)
        except (StoreError, SettingsError, CredentialsError, OSError) as exc:
            code, text = _error_text(exc)
            return Check(name, False, text, _store_fix(target, code, "RESULT_SINK"))
        return Check(name, True, f"PUT, HEAD and DELETE of {key} succeeded")
    kind = "CMQ" if isinstance(target, CmqTarget) else "webhook"
    if not send_probe:
        return Check(name, True, f"not checked: a {kind} probe reaches your consumers; run with --send-probe "
                                 "to send one", skipped=True)
    job: Job = {"JobId": PROBE_JOB_ID, "State": "Success", "Tag": "Doctor", "Doctor": True,
                "Message": "cijobs doctor probe; ignore"}
    try:
        results = collab.sink(target).write([job], deadline)
    except (SettingsError, ServiceError, CredentialsError) as exc:
        code, text = _error_text(exc)
        return Check(name, False, text, _sink_fix(target, code))
    bad = [r for r in results if not r.ok]
    if bad and bad[0].error is not None:
        err = bad[0].error
        return Check(name, False, f"{err.code}: {err.message}", _sink_fix(target, err.code))
    if bad:
        return Check(name, False, "the probe was not delivered", _sink_fix(target, ""))
    what = "message sent" if isinstance(target, CmqTarget) else "delivery accepted"
    return Check(name, True, f"probe {what} (JobId {PROBE_JOB_ID}, Tag Doctor: your consumers may ignore it)")


def _sink_fix(target: SinkTarget, code: str) -> str:
    if isinstance(target, WebhookTarget):
        if code.startswith("HTTP4") or code in ("Unauthorized", "Forbidden"):
            return "the receiver refused the delivery: check that it verifies with the same WEBHOOK_SECRET"
        return fix_for(code, f"delivering to {target.url}", "nothing in CAM (a webhook needs no permission)",
                       "the webhook URL in RESULT_SINK")
    assert isinstance(target, CmqTarget)
    action = "tdmq:SendMessage (CMQ_MODE=api: tdmq:SendCmqMsg)" if target.kind == "queue" else \
        "tdmq:PublishMessage (CMQ_MODE=api: tdmq:PublishCmqMsg)"
    if code in ("4101", "4102"):
        return "CMQ refused the key or signature: check the credentials (or CMQ_SECRET_ID/CMQ_SECRET_KEY)"
    return fix_for(code, f"sending to {target.url}", f"{action} on the {target.kind} {target.name}",
                   "CMQ_ENDPOINT")


def pending_check(settings: Settings, collab: Collaborators, deadline: Deadline, now: float) -> Check:
    from .pending import PendingError

    name = "pending store"
    url = settings.pending_store
    try:
        registry = collab.pending()
        ids = registry.list_ids(limit=1, deadline=deadline)
    except PendingError as exc:
        return Check(name, False, f"list {url.url}: {exc}", _pending_fix(url, exc.code, "cos:GetBucket"))
    except (StoreError, SettingsError, CredentialsError, OSError) as exc:
        code, text = _error_text(exc)
        return Check(name, False, text, _pending_fix(url, code, "cos:GetBucket"))
    try:
        key = store_probe(registry.store, deadline, now, create=True)
    except (StoreError, CredentialsError, OSError) as exc:
        code, text = _error_text(exc)
        return Check(name, False, text, _pending_fix(url, code, "cos:PutObject, cos:HeadObject, cos:DeleteObject"))
    listed = "not empty" if ids else "empty"
    return Check(name, True, f"{url.url}: listed ({listed}); create, HEAD and DELETE of {key} succeeded")


def _pending_fix(url: StoreUrl, code: str, actions: str) -> str:
    if isinstance(url, FileLocation):
        return f"PENDING_STORE: make {url.root} writable by this user (or point PENDING_STORE elsewhere)"
    return fix_for(code, f"using the pending store {url.url}",
                   f"{actions} on {url.prefix or ''}/* of {url.bucket} (GetBucket with the cos:prefix condition)",
                   "COS_ENDPOINT (or the bucket's region)")


def check_all(settings: Settings, creds: Optional[Credentials], collab: Collaborators, deadline: Deadline, *,
              send_probe: bool = False, credentials_error: Optional[str] = None,
              clock: Callable[[], float] = time.time) -> list[Check]:
    """Every check, in report order, over the given collaborators; never raises for a failed check."""
    now = clock()
    checks = [credentials_check(creds, credentials_error),
              Check("settings", True, _settings_summary(settings))]
    checks.append(ci_query_check(collab.querier, deadline))
    checks.append(ci_list_check(collab.lister, deadline))
    for target in settings.result_sink:
        checks.append(sink_check(target, collab, deadline, now, send_probe))
    checks.append(pending_check(settings, collab, deadline, now))
    return checks


def _settings_summary(settings: Settings) -> str:
    sinks = ", ".join(t.url for t in settings.result_sink)
    where = settings.ci_endpoint or f"{settings.ci_bucket} in {settings.ci_region}"
    return f"CI {where}; RESULT_SINK {sinks}; PENDING_STORE {settings.pending_store.url}"


# -- wiring -------------------------------------------------------------------------------------------


def collaborators(settings: Settings, credentials: Callable[[], Credentials]) -> Collaborators:
    """The real clients, as ``build_app`` wires them (one pooled session), each built on first use."""
    from .ci_client import JobClient
    from .ci_list import JobLister
    from .cos import CosClient
    from .http import new_session
    from .pending import build_pending_store
    from .sinks import build_sinks
    from .store import open_store

    session = new_session(4)
    built: dict[str, Any] = {}

    def cos() -> CosClient:
        if "cos" not in built:
            built["cos"] = CosClient(settings, credentials, session=session)
        client: CosClient = built["cos"]
        return client

    def sink(target: SinkTarget) -> Writer:
        return build_sinks(dataclasses.replace(settings, result_sink=(target,)), credentials, session=session,
                           cos_client=cos() if isinstance(target, CosLocation) else None)

    return Collaborators(
        querier=lambda: JobClient(settings, credentials=credentials, session=session),
        lister=lambda: JobLister(JobClient(settings, credentials=credentials, session=session)),
        store=lambda url: open_store(url, cos),
        sink=sink,
        pending=lambda: build_pending_store(settings, credentials, cos_client=cos()),
    )


def run_checks(env: Mapping[str, str], deadline: Optional[Deadline] = None, *, send_probe: bool = False,
               settings: Optional[Settings] = None,
               make: Callable[[Settings, Callable[[], Credentials]], Collaborators] = collaborators,
               clock: Callable[[], float] = time.time) -> list[Check]:
    """Every check with the settings and credentials of ``env`` (``settings`` overrides the parse)."""
    deadline = deadline or Deadline(DEFAULT_TIMEOUT_S)
    creds: Optional[Credentials] = None
    creds_error: Optional[str] = None
    try:
        creds = credentials_from_env(env)
    except CredentialsError as exc:
        creds_error = str(exc)
    try:
        if settings is None:
            settings = Settings.from_env(env)
        settings.require_ci_target()
    except SettingsError as exc:
        return [credentials_check(creds, creds_error),
                Check("settings", False, str(exc), "fix the variable named above (see README.md, Settings); "
                                                   "the other checks need valid settings and were not run")]

    def credentials() -> Credentials:
        if creds is None:
            raise CredentialsError(creds_error or "no credentials")
        return creds

    return check_all(settings, creds, make(settings, credentials), deadline, send_probe=send_probe,
                     credentials_error=creds_error, clock=clock)


def handle_event(event: Mapping[str, Any], env: Mapping[str, str], deadline: Deadline) -> dict[str, Any]:
    """The answer to a direct invoke of ``{"Doctor": true}`` (``"SendProbe": true`` also probes CMQ and
    webhook sinks): the :func:`report` of the checks, run with the function's own environment (its
    execution role's credentials)."""
    checks = run_checks(env, deadline, send_probe=event.get("SendProbe") is True)
    return {"Trigger": "doctor", **report(checks)}


def is_doctor_event(event: Any) -> bool:
    """``{"Doctor": true, ...}``: a direct invoke asking for the checks."""
    return isinstance(event, Mapping) and event.get("Doctor") is True
