"""Credentials from the SCF execution role (or a developer's environment).

SCF injects temporary role credentials as TENCENTCLOUD_SECRETID,
TENCENTCLOUD_SECRETKEY and TENCENTCLOUD_SESSIONTOKEN; they rotate, so they are
read per invocation, never cached at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

ENV_SECRET_ID = "TENCENTCLOUD_SECRETID"
ENV_SECRET_KEY = "TENCENTCLOUD_SECRETKEY"
ENV_SESSION_TOKEN = "TENCENTCLOUD_SESSIONTOKEN"


class CredentialsError(RuntimeError):
    """Credentials are missing; the message names the variables, never a value."""


@dataclass(frozen=True)
class Credentials:
    secret_id: str
    secret_key: str = field(repr=False)
    token: Optional[str] = field(default=None, repr=False)

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in a log line (for the redaction processor)."""
        return tuple(v for v in (self.secret_key, self.token) if v)


def from_env(env: Mapping[str, str]) -> Credentials:
    secret_id = (env.get(ENV_SECRET_ID) or "").strip()
    secret_key = (env.get(ENV_SECRET_KEY) or "").strip()
    token = (env.get(ENV_SESSION_TOKEN) or "").strip() or None
    missing = [n for n, v in ((ENV_SECRET_ID, secret_id), (ENV_SECRET_KEY, secret_key)) if not v]
    if missing:
        raise CredentialsError(
            f"missing credentials: set {' and '.join(missing)} (and {ENV_SESSION_TOKEN} for temporary "
            "credentials); on SCF bind an execution role to the function"
        )
    return Credentials(secret_id, secret_key, token)
