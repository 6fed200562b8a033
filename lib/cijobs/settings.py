"""Every setting cijobs reads, read once from the environment and validated.

The table ``SETTINGS`` is the single list of setting names: the settings
object, the README's settings table and the template check are built from it.
Credentials (``TENCENTCLOUD_*``) are not here: they rotate and are read per
invocation by :mod:`cijobs.credentials`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .endpoints import parse_endpoint
from .errors import SettingsError
from .store.urls import BUCKET_RE, REGION_RE, StoreUrl, parse_store_url
from .targets import SinkTarget, parse_sink_targets, refuse_pending_folder

__all__ = ["BUCKET_RE", "REGION_RE", "SETTINGS", "Setting", "Settings", "SettingsError"]


def _str(name: str, raw: str) -> str:
    return raw


def _bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name} must be true or false")


def _int_range(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingsError(f"{name} must be an integer between {lo} and {hi}") from None
        if not lo <= value <= hi:
            raise SettingsError(f"{name} must be between {lo} and {hi}")
        return value

    return parse


def _float_range(lo: float, hi: float) -> Callable[[str, str], float]:
    def parse(name: str, raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise SettingsError(f"{name} must be a number between {lo} and {hi}") from None
        if not lo <= value <= hi:
            raise SettingsError(f"{name} must be between {lo} and {hi}")
        return value

    return parse


def _bucket(name: str, raw: str) -> str:
    if not BUCKET_RE.match(raw):
        raise SettingsError(f"{name} must look like <BucketName>-<APPID> (e.g. examplebucket-1250000000)")
    return raw


def _region(name: str, raw: str) -> str:
    if not REGION_RE.match(raw):
        raise SettingsError(f"{name} must be a region such as ap-guangzhou")
    return raw


def _secret(min_chars: int) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        if len(raw) < min_chars:
            raise SettingsError(f"{name} must be at least {min_chars} characters long")
        return raw

    return parse


def _tags(name: str, raw: str) -> tuple[str, ...]:
    from .discovery import parse_tags  # only when discovery is configured (it reads the normalizer's table)

    try:
        return tuple(parse_tags(raw))
    except ValueError:
        raise SettingsError(f"{name} must be a comma list of job Tags (letters, digits, _ and -) or 'all'") from None


def _queue_ids(name: str, raw: str) -> tuple[str, ...]:
    ids = tuple(dict.fromkeys(q.strip() for q in raw.split(",") if q.strip()))
    if not all(len(q) <= 64 and all(c.isalnum() or c in "_.-" for c in q) for q in ids):
        raise SettingsError(f"{name} must be a comma list of CI queue IDs (letters, digits, '_', '.', '-')")
    return ids


def _since(name: str, raw: str) -> str:
    from .discovery import resolve_since

    try:
        resolve_since(raw, 0.0)
    except ValueError:
        raise SettingsError(f"{name} must be an ISO 8601 time with an offset, e.g. 2026-12-04T20:00:00+0800") \
            from None
    return raw.strip()


def _endpoint(name: str, raw: str) -> str:
    return parse_endpoint(raw, name)


def _store(name: str, raw: str) -> StoreUrl:
    url = parse_store_url(raw, name)
    if name != "PENDING_STORE":
        refuse_pending_folder(url, name)
    return url


def _sinks(name: str, raw: str) -> tuple[SinkTarget, ...]:
    return parse_sink_targets(raw, name)


def _webhook_secrets(name: str, raw: str) -> tuple[str, ...]:
    """One secret, or two separated by ',' during a rotation; each at least 32 characters (never quoted)."""
    from .webhook_signature import MAX_SECRETS, MIN_SECRET_CHARS

    secrets = tuple(s.strip() for s in raw.split(","))
    if not 1 <= len(secrets) <= MAX_SECRETS or not all(secrets):
        raise SettingsError(f"{name} holds one secret, or two separated by ',' during a rotation")
    for i, secret in enumerate(secrets, 1):
        if len(secret) < MIN_SECRET_CHARS:
            raise SettingsError(f"{name}: secret {i} is {len(secret)} characters; each must be at least "
                                f"{MIN_SECRET_CHARS}")
    if len(set(secrets)) != len(secrets):
        raise SettingsError(f"{name} names the same secret twice")
    return secrets


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}")
        return value

    return parse


def _log_level(name: str, raw: str) -> str:
    return _choice("debug", "info", "warning", "error")(name, raw)


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, field, parser, default and meaning."""

    env: str
    field: str
    parse: Callable[[str, str], Any]
    default: Any
    doc: str
    secret: bool = False


DEFAULT_RESULT_SINK = "file:///tmp/cijobs/results"
DEFAULT_PENDING_STORE = "file:///tmp/cijobs/pending"

SETTINGS: tuple[Setting, ...] = (
    Setting("CI_BUCKET", "ci_bucket", _bucket, None, "CI bucket, BucketName-APPID (the jobs' bucket)."),
    Setting("CI_REGION", "ci_region", _region, None, "CI region, e.g. ap-guangzhou."),
    Setting("CI_ENDPOINT", "ci_endpoint", _endpoint, None,
            "Override of the CI endpoint URL (private endpoints, local emulator). Never taken from an event."),
    Setting("CI_CONCURRENCY", "ci_concurrency", _int_range(1, 64), 16, "Parallel CI requests (10 IDs each)."),
    Setting("HTTP_CONNECT_TIMEOUT_S", "http_connect_timeout_s", _float_range(0.1, 60), None,
            "Connect timeout per CI, COS and CMQ request, seconds (default 3.05)."),
    Setting("HTTP_READ_TIMEOUT_S", "http_read_timeout_s", _float_range(0.1, 300), None,
            "Read timeout per socket read of a CI, COS and CMQ request, seconds (default 10); every request also "
            "ends by the invocation deadline."),
    Setting("HTTP_MAX_ATTEMPTS", "http_max_attempts", _int_range(1, 10), None,
            "Attempts per CI, COS and CMQ request after a transient failure (default 4; 1 = no retry); retries "
            "back off exponentially with full jitter. Throttling answers are retried within the deadline."),
    Setting("CI_CONNECT_TIMEOUT_S", "ci_connect_timeout_s", _float_range(0.1, 60), None,
            "Old name of HTTP_CONNECT_TIMEOUT_S (still accepted; a warning is logged; HTTP_CONNECT_TIMEOUT_S wins)."),
    Setting("CI_READ_TIMEOUT_S", "ci_read_timeout_s", _float_range(0.1, 300), None,
            "Old name of HTTP_READ_TIMEOUT_S (still accepted; a warning is logged; HTTP_READ_TIMEOUT_S wins)."),
    Setting("CI_MAX_ATTEMPTS", "ci_max_attempts", _int_range(1, 10), None,
            "Old name of HTTP_MAX_ATTEMPTS (still accepted; a warning is logged; HTTP_MAX_ATTEMPTS wins)."),
    Setting("RESULT_SINK", "result_sink", _sinks, DEFAULT_RESULT_SINK,
            "Where results go: file://DIR, cos://BUCKET-APPID.REGION/PREFIX, cmq-queue://REGION/NAME, "
            "cmq-topic://REGION/NAME, https://HOST[:PORT]/PATH (webhook); several separated by commas."),
    Setting("RESULT_KEY_TEMPLATE", "result_key_template", _str, "{prefix}/{Tag}/{JobId}.json",
            "Object key layout for COS/file results ({prefix}, {Tag}, {JobId}, {State})."),
    Setting("RESULT_INDEX", "result_index", _choice("none", "daily"), "none",
            "daily: also write a small index object per COS/file result under {prefix}/_index/<date>/ "
            "(date of the job's EndTime), so one listing finds a day's results."),
    Setting("PENDING_STORE", "pending_store", _store, DEFAULT_PENDING_STORE,
            "Pending-jobs registry: file://DIR or cos://BUCKET-APPID.REGION/PREFIX."),
    Setting("PENDING_MAX_AGE_S", "pending_max_age_s", _int_range(60, 30 * 86400), 86400,
            "A job CI still reports unfinished this long after it was first registered is reported as "
            "PendingExpired and removed (a job CI never answered for stays until it does)."),
    Setting("PENDING_LIST_MAX", "pending_list_max", _int_range(100, 1_000_000), 50_000,
            "Most registry entries one timer tick lists; the next tick continues where it stopped, so every "
            "entry is reached within ceil(entries / PENDING_LIST_MAX) ticks."),
    Setting("COS_ENDPOINT", "cos_endpoint", _endpoint, None,
            "Override of the COS endpoint URL (private endpoint, local emulator)."),
    Setting("CMQ_ENDPOINT", "cmq_endpoint", _endpoint, None,
            "TDMQ CMQ HTTP data-flow endpoint (copy it from the console); required for CMQ_MODE=dataflow."),
    Setting("CMQ_MODE", "cmq_mode", _choice("dataflow", "api"), "dataflow",
            "dataflow: TDMQ CMQ HTTP data-flow API (production); api: Cloud API 3.0 SendCmqMsg (test-rate-limited)."),
    Setting("CMQ_SECRET_ID", "cmq_secret_id", _str, None, "Optional fixed SecretId for the CMQ data-flow API."),
    Setting("CMQ_SECRET_KEY", "cmq_secret_key", _secret(8), None, "Optional fixed SecretKey for the CMQ data-flow API.",
            secret=True),
    Setting("CLAIM_CHECK_BYTES", "claim_check_bytes", _int_range(1024, 1024 * 1024), 65536,
            "Messages larger than this go to CLAIM_CHECK_STORE and the message carries a pointer."),
    Setting("CLAIM_CHECK_STORE", "claim_check_store", _store, None,
            "cos://BUCKET-APPID.REGION/PREFIX for oversized queue messages (claim check)."),
    Setting("WEBHOOK_SECRET", "webhook_secret", _webhook_secrets, None,
            "HMAC-SHA256 key(s) signing webhook deliveries (X-Cijobs-Signature): one secret of at least 32 "
            "characters, or two separated by ',' during a rotation (one v1= value each). Required for a webhook "
            "sink.", secret=True),
    Setting("WEBHOOK_CONCURRENCY", "webhook_concurrency", _int_range(1, 64), 8, "Parallel webhook deliveries."),
    Setting("WEBHOOK_MAX_BYTES", "webhook_max_bytes", _int_range(1024, 6 * 1024 * 1024), 256 * 1024,
            "A webhook body larger than this goes to CLAIM_CHECK_STORE and the receiver gets the pointer "
            "document (without a store the job fails with MessageTooLarge)."),
    Setting("WEBHOOK_MAX_RPS", "webhook_max_rps", _float_range(0.1, 100000), None,
            "Optional hard cap on webhook deliveries per second per receiver host (deliveries are paced "
            "adaptively below it)."),
    Setting("API_TOKEN", "api_token", _secret(16), None,
            "Shared token for the HTTP routes (Authorization: Bearer, or ?token= for CI callbacks); "
            "at least 16 characters.", secret=True),
    Setting("ALLOW_UNAUTHENTICATED", "allow_unauthenticated", _bool, False,
            "true opens the HTTP routes without API_TOKEN (not for production)."),
    Setting("TRUST_CALLBACK_BODY", "trust_callback_body", _bool, False,
            "true writes a CI callback's own body instead of re-querying the job (saves a request)."),
    Setting("MAX_BODY_BYTES", "max_body_bytes", _int_range(1024, 6 * 1024 * 1024), 1024 * 1024,
            "Largest HTTP/queue body accepted."),
    Setting("MAX_IDS_PER_REQUEST", "max_ids_per_request", _int_range(1, 10000), 100,
            "Most job IDs accepted in one HTTP request, message or queue record."),
    Setting("MAX_IDS_PER_EVENT", "max_ids_per_event", _int_range(1, 1_000_000), 10000,
            "Most job IDs taken from one queue event (all its records); records past it are skipped whole, "
            "reported and logged at error with their topic/partition/offset or message ID, for replay."),
    Setting("DISCOVER_TAGS", "discover_tags", _tags, (),
            "Job Tags the timer sweeps with CI's list API to export jobs nobody named (e.g. Transcode,Snapshot; "
            "all = every job Tag the normalizer knows; unset = discovery off)."),
    Setting("DISCOVER_QUEUE_IDS", "discover_queue_ids", _queue_ids, (),
            "Optional comma list of CI queue IDs: each Tag is swept per queue (needed where CI requires queueId)."),
    Setting("DISCOVER_SINCE", "discover_since", _since, None,
            "Where the very first sweep of a Tag starts (ISO 8601 with offset); default: that sweep's time minus "
            "DISCOVER_LOOKBACK_S. Later sweeps continue from the stored cursor."),
    Setting("DISCOVER_LOOKBACK_S", "discover_lookback_s", _int_range(0, 30 * 86400), 3600,
            "How far back the very first sweep looks when DISCOVER_SINCE is unset."),
    Setting("DISCOVER_SETTLE_S", "discover_settle_s", _int_range(0, 3600), 10,
            "Only jobs created at least this long ago are listed (a listing may lag a job's creation)."),
    Setting("DISCOVER_MAX_PAGES", "discover_max_pages", _int_range(1, 1000), 50,
            "Most list pages (100 jobs each) one tick reads over all Tags; the next tick continues."),
    Setting("RATE_MODE", "rate_mode", _choice("adaptive", "fixed"), "adaptive",
            "adaptive: pace CI, COS and CMQ requests per service, cut on a throttling answer and grow back while "
            "answers succeed; fixed: no pacing (fixed concurrency; throttling answers are only retried)."),
    Setting("CI_MAX_RPS", "ci_max_rps", _float_range(0.1, 100000), None,
            "Optional hard cap on CI requests per second per instance (unset: the pace is discovered)."),
    Setting("COS_MAX_RPS", "cos_max_rps", _float_range(0.1, 100000), None,
            "Optional hard cap on COS requests per second per instance (unset: the pace is discovered)."),
    Setting("CMQ_MAX_RPS", "cmq_max_rps", _float_range(0.1, 100000), None,
            "Optional hard cap on CMQ requests per second per instance (unset: the pace is discovered)."),
    Setting("DEADLINE_MARGIN_S", "deadline_margin_s", _float_range(0, 60), 3.0,
            "Stop starting new work when less than this is left of the SCF time limit."),
    Setting("LOG_LEVEL", "log_level", _log_level, "info", "debug, info, warning or error."),
)


DEFAULT_CONNECT_TIMEOUT_S = 3.05
DEFAULT_READ_TIMEOUT_S = 10.0
DEFAULT_MAX_ATTEMPTS = 4
# (setting, its old name still accepted)
HTTP_ALIASES = (("HTTP_CONNECT_TIMEOUT_S", "CI_CONNECT_TIMEOUT_S"), ("HTTP_READ_TIMEOUT_S", "CI_READ_TIMEOUT_S"),
                ("HTTP_MAX_ATTEMPTS", "CI_MAX_ATTEMPTS"))
_FIELD = {s.env: s.field for s in SETTINGS}


def _first(*values: Any) -> Any:
    return next(v for v in values if v is not None)


@dataclass(frozen=True)
class Settings:
    """Validated configuration; build it with :meth:`from_env`. Secrets stay out of repr."""

    ci_bucket: Optional[str] = None
    ci_region: Optional[str] = None
    ci_endpoint: Optional[str] = None
    ci_concurrency: int = 16
    http_connect_timeout_s: Optional[float] = None
    http_read_timeout_s: Optional[float] = None
    http_max_attempts: Optional[int] = None
    ci_connect_timeout_s: Optional[float] = None  # aliases (old names) of the three above
    ci_read_timeout_s: Optional[float] = None
    ci_max_attempts: Optional[int] = None
    result_sink: tuple[SinkTarget, ...] = field(default_factory=lambda: parse_sink_targets(DEFAULT_RESULT_SINK))
    result_key_template: str = "{prefix}/{Tag}/{JobId}.json"
    result_index: str = "none"
    pending_store: StoreUrl = field(default_factory=lambda: parse_store_url(DEFAULT_PENDING_STORE, "PENDING_STORE"))
    pending_max_age_s: int = 86400
    pending_list_max: int = 50_000
    cos_endpoint: Optional[str] = None
    cmq_endpoint: Optional[str] = None
    cmq_mode: str = "dataflow"
    cmq_secret_id: Optional[str] = None
    cmq_secret_key: Optional[str] = field(default=None, repr=False)
    claim_check_bytes: int = 65536
    claim_check_store: Optional[StoreUrl] = None
    webhook_secret: Optional[tuple[str, ...]] = field(default=None, repr=False)
    webhook_concurrency: int = 8
    webhook_max_bytes: int = 256 * 1024
    webhook_max_rps: Optional[float] = None
    api_token: Optional[str] = field(default=None, repr=False)
    allow_unauthenticated: bool = False
    trust_callback_body: bool = False
    max_body_bytes: int = 1024 * 1024
    max_ids_per_request: int = 100
    max_ids_per_event: int = 10000
    discover_tags: tuple[str, ...] = ()
    discover_queue_ids: tuple[str, ...] = ()
    discover_since: Optional[str] = None
    discover_lookback_s: int = 3600
    discover_settle_s: int = 10
    discover_max_pages: int = 50
    rate_mode: str = "adaptive"
    ci_max_rps: Optional[float] = None
    cos_max_rps: Optional[float] = None
    cmq_max_rps: Optional[float] = None
    deadline_margin_s: float = 3.0
    log_level: str = "info"

    def __post_init__(self) -> None:
        # Values given as text (tests, CLI flags) go through the same parsers as the environment's.
        for s in SETTINGS:
            value = getattr(self, s.field)
            if s.parse is not _str and isinstance(value, str):
                object.__setattr__(self, s.field, s.parse(s.env, value))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Read and validate every setting; an empty variable counts as unset."""
        values: dict[str, Any] = {}
        for s in SETTINGS:
            raw = env.get(s.env)
            if raw is None or raw.strip() == "":
                continue
            values[s.field] = s.parse(s.env, raw.strip())
        return cls(**values)

    def secrets(self) -> tuple[str, ...]:
        """The values no log line may carry (for the log redactor): the secret settings, and the parts of a
        webhook URL that may hold credentials."""
        out: list[str] = []
        for s in SETTINGS:
            value = getattr(self, s.field)
            if s.secret and isinstance(value, str) and value:
                out.append(value)
            elif s.secret and isinstance(value, tuple):
                out.extend(v for v in value if isinstance(v, str) and v)
        for target in self.result_sink:
            out.extend(getattr(target, "secrets", lambda: ())())
        return tuple(out)

    # -- the HTTP_* settings, with their CI_* aliases (HTTP_* wins when both are set) ----------------------
    @property
    def connect_timeout_s(self) -> float:
        return float(_first(self.http_connect_timeout_s, self.ci_connect_timeout_s, DEFAULT_CONNECT_TIMEOUT_S))

    @property
    def read_timeout_s(self) -> float:
        return float(_first(self.http_read_timeout_s, self.ci_read_timeout_s, DEFAULT_READ_TIMEOUT_S))

    @property
    def max_attempts(self) -> int:
        return int(_first(self.http_max_attempts, self.ci_max_attempts, DEFAULT_MAX_ATTEMPTS))

    def alias_warnings(self) -> list[str]:
        """One line per old ``CI_*`` name in use (logged once at cold start); never a value."""
        out = []
        for new, old in HTTP_ALIASES:
            if getattr(self, _FIELD[old]) is None:
                continue
            if getattr(self, _FIELD[new]) is not None:
                out.append(f"{old} and {new} are both set: {new} wins ({old} is the old name; remove it)")
            else:
                out.append(f"{old} is the old name of {new} (it applies to CI, COS and CMQ); rename it")
        return out

    def require_ci_target(self) -> None:
        """Raise unless CI_BUCKET and CI_REGION (or CI_ENDPOINT with a bucket) are set."""
        missing = [n for n, v in (("CI_BUCKET", self.ci_bucket), ("CI_REGION", self.ci_region)) if not v]
        if missing:
            raise SettingsError(f"{' and '.join(missing)} must be set (BucketName-APPID and region of the CI bucket)")


def _check_table() -> None:
    names = {f.name for f in dataclasses.fields(Settings)}
    table = {s.field for s in SETTINGS}
    if names != table:  # pragma: no cover - import-time consistency check
        raise RuntimeError(f"Settings fields and SETTINGS table differ: {sorted(names ^ table)}")


_check_table()
