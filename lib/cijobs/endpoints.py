"""Service endpoints: the canonical host of a bucket's CI/COS service, or an operator's override.

An override (``CI_ENDPOINT``, ``COS_ENDPOINT``, ``CMQ_ENDPOINT``) is validated once, at cold start, with
one set of rules: ``http(s)://host[:port][/path]``, no userinfo, query or fragment, and no placeholder
other than ``{bucket}`` and ``{region}``. With ``{bucket}`` it is formatted and its host is signed; without
one (the local emulator, a proxy) requests connect there while ``Host`` carries the canonical name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from .errors import SettingsError

_PLACEHOLDER_RE = re.compile(r"\{[^{}]*\}")
PLACEHOLDERS = frozenset({"{bucket}", "{region}"})


def parse_endpoint(raw: str, name: str) -> str:
    """A validated endpoint override (trailing ``/`` removed); the error names the setting, not its value."""
    value = raw.strip().rstrip("/")
    unknown = sorted(set(_PLACEHOLDER_RE.findall(value)) - PLACEHOLDERS)
    if unknown:
        raise SettingsError(f"{name} may only use the placeholders {{bucket}} and {{region}}; it has {len(unknown)} "
                            "other(s)")
    sample = value.replace("{bucket}", "examplebucket-1250000000").replace("{region}", "ap-guangzhou")
    if "{" in sample or "}" in sample:
        raise SettingsError(f"{name} has a stray brace")
    try:
        parts = urlsplit(sample)
        port = parts.port
    except ValueError:
        raise SettingsError(f"{name} is not a valid URL (bad port or host)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name} must be http(s)://host[:port]")
    if parts.username is not None or parts.password is not None:
        raise SettingsError(f"{name} must not carry a user name or password")
    if parts.query or parts.fragment or "?" in sample or "#" in sample:
        raise SettingsError(f"{name} must not have a query string or fragment")
    del port
    return value


@dataclass(frozen=True)
class Target:
    """Where requests go: ``base_url`` to connect to, ``host_header`` to send and sign (None = the URL's host)."""

    base_url: str
    host_header: Optional[str]

    @property
    def signed_host(self) -> str:
        return self.host_header or (urlsplit(self.base_url).hostname or "")

    @property
    def host_port(self) -> str:
        """``host:port`` of the connection (for error messages)."""
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.hostname}:{port}"


def resolve(override: Optional[str], bucket: str, region: str, service: str) -> Target:
    """The target for ``service`` (``ci`` or ``cos``) of a bucket: canonical, or the validated override."""
    canonical = f"{bucket}.{service}.{region}.myqcloud.com"
    if not override:
        return Target(f"https://{canonical}", None)
    base = override.replace("{bucket}", bucket).replace("{region}", region)
    return Target(base, None if "{bucket}" in override else canonical)
