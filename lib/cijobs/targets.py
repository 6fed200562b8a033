"""Where results go, as parsed once from ``RESULT_SINK``: object stores, CMQ queues/topics and webhooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from .errors import SettingsError
from .store.urls import REGION_RE, CosLocation, FileLocation, parse_store_url

PENDING_DIR = ".pending"  # the pending registry's folder: no other store may sit inside one


@dataclass(frozen=True)
class CmqTarget:
    """A parsed ``cmq-queue://<region>/<name>`` or ``cmq-topic://<region>/<name>``."""

    kind: str  # "queue" or "topic"
    region: str
    name: str

    @property
    def url(self) -> str:
        return f"cmq-{self.kind}://{self.region}/{self.name}"


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})


@dataclass(frozen=True)
class WebhookTarget:
    """A parsed ``https://host[:port]/path`` (``http://`` only for 127.0.0.1 / localhost).

    ``full_url`` is what is sent to (query string included); ``url`` is what is logged and names the
    sink: no query string, fragment or user info, which may carry secrets.
    """

    full_url: str = field(repr=False)

    @property
    def url(self) -> str:
        parts = urlsplit(self.full_url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port is not None else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    @property
    def host(self) -> str:
        """The receiver's host name (lower case), the key of its rate limiter."""
        return (urlsplit(self.full_url).hostname or "").lower()

    def secrets(self) -> list[str]:
        """The parts of the URL that may hold credentials (for the log redactor): the query string, its
        long values (short ones such as ``true`` would redact ordinary words) and the password."""
        parts = urlsplit(self.full_url)
        out = [parts.query, parts.password or ""]
        out += [v for _k, v in parse_qsl(parts.query, keep_blank_values=True) if len(v) >= 12]
        return [v for v in out if len(v) >= 8]


SinkTarget = Union[CosLocation, FileLocation, CmqTarget, WebhookTarget]
SINK_FORMS = ("file://DIR, cos://BUCKET-APPID.REGION/PREFIX, cmq-queue://REGION/NAME, cmq-topic://REGION/NAME "
              "or https://HOST[:PORT]/PATH")


def parse_webhook_target(url: str, name: str = "RESULT_SINK") -> WebhookTarget:
    """An ``https://`` receiver URL; ``http://`` only to a loopback host (tests, the emulator).

    Error messages never quote the URL (its query string may hold a token)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise SettingsError(f"{name}: a webhook URL must look like https://HOST[:PORT]/PATH") from None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host or any(c.isspace() for c in url):
        raise SettingsError(f"{name}: a webhook URL must look like https://HOST[:PORT]/PATH")
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        raise SettingsError(f"{name}: a webhook URL must use https:// (http:// only for 127.0.0.1 or localhost; "
                            f"got http://{host})")
    if parts.fragment:
        raise SettingsError(f"{name}: a webhook URL may not have a #fragment")
    if port == 0:
        raise SettingsError(f"{name}: a webhook URL's port must be 1-65535")
    return WebhookTarget(url)


def parse_cmq_target(url: str, name: str = "RESULT_SINK") -> CmqTarget:
    scheme, _, rest = url.strip().partition("://")
    if scheme not in ("cmq-queue", "cmq-topic") or "/" not in rest:
        raise SettingsError(f"{name}: expected cmq-queue://REGION/NAME or cmq-topic://REGION/NAME")
    region, _, target = rest.partition("/")
    target = target.strip("/")
    if not REGION_RE.match(region):
        raise SettingsError(f"{name}: the CMQ region must look like ap-guangzhou")
    if not target or len(target) > 64 or not all(c.isalnum() or c in "-_" for c in target) \
            or not target[0].isalpha():
        raise SettingsError(f"{name}: a queue/topic name is letters, digits, - and _ (starting with a letter, "
                            "at most 64)")
    return CmqTarget(scheme[len("cmq-"):], region, target)


def refuse_pending_folder(target: Union[CosLocation, FileLocation], name: str) -> None:
    """A store must not sit inside a pending registry's ``.pending`` folder: the registry reads every
    object there as a pending job."""
    path = target.prefix if isinstance(target, CosLocation) else target.root
    if PENDING_DIR in path.split("/"):
        raise SettingsError(f"{name}: a store may not sit inside a {PENDING_DIR!r} folder (reserved for the "
                            "pending registry)")


def parse_sink_targets(raw: str, name: str = "RESULT_SINK") -> tuple[SinkTarget, ...]:
    """Comma-separated sink URLs, each parsed; no duplicates, none inside a ``.pending`` folder."""
    if ";" in raw:
        raise SettingsError(f"{name}: separate several sinks with ',' (not ';')")
    targets: list[SinkTarget] = []
    for i, part in enumerate(raw.split(","), 1):
        url = part.strip()
        if not url:
            raise SettingsError(f"{name}: sink {i} is empty (a stray ','?)")
        target: SinkTarget
        if url.startswith(("cmq-queue://", "cmq-topic://")):
            target = parse_cmq_target(url, name)
        elif url.lower().startswith(("https://", "http://")):
            target = parse_webhook_target(url, name)
        elif url.startswith(("file://", "cos://")):
            target = parse_store_url(url, name)
            refuse_pending_folder(target, name)
        else:
            raise SettingsError(f"{name}: sink {i} must be one of {SINK_FORMS}")
        if target in targets:
            raise SettingsError(f"{name} names the same sink twice ({target.url})")
        targets.append(target)
    return tuple(targets)
