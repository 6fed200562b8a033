"""structlog configuration: JSON, one event per line, secrets redacted.

``configure()`` is called once per process (handler import, CLI start) with the
:class:`Redactor` its owner keeps (the app, a CLI verb); ``bind_invocation()``
binds the SCF request id and friends per invocation. The redactor holds the
settings' secrets (fixed for the container) and the credentials of the current
invocation, which it replaces, never accumulates: SCF role credentials rotate.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Optional, TextIO

import structlog

if TYPE_CHECKING:
    from .normalize.drift import DriftReporter

REDACTED = "[redacted]"
_SECRET_KEYS = ("secret", "token", "signature", "authorization", "password", "sign_key", "signkey")
_SAFE_KEYS = frozenset({"secret_id", "token_header"})
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

MIN_SECRET_CHARS = 8  # shorter values cannot be redacted without mangling ordinary text
_Q_SIGNATURE_RE = re.compile(r"(q-signature=)[^&\s\"']*")


class Redactor:
    """The secret values no log line may carry, as a structlog processor.

    ``fixed`` values (API token, CMQ key, webhook secrets) are set once; ``replace`` swaps the
    per-invocation values (credentials) and ``add`` extends them within the invocation (a
    query that read credentials again). A value shorter than :data:`MIN_SECRET_CHARS` is refused
    with ``ValueError``: it could not be redacted reliably, so it must not be accepted as a secret.
    """

    def __init__(self, fixed: Iterable[Optional[str]] = ()) -> None:
        self._lock = threading.Lock()
        self._fixed = self._checked(fixed)
        self._current: frozenset[str] = frozenset()
        self._all = self._fixed

    @staticmethod
    def _checked(values: Iterable[Optional[str]]) -> frozenset[str]:
        out = frozenset(v for v in values if v)
        short = [v for v in out if len(v) < MIN_SECRET_CHARS]
        if short:
            raise ValueError(f"a secret shorter than {MIN_SECRET_CHARS} characters cannot be redacted from logs")
        return out

    def replace(self, values: Iterable[Optional[str]]) -> None:
        current = self._checked(values)
        with self._lock:
            self._current = current
            self._all = self._fixed | current

    def add(self, values: Iterable[Optional[str]]) -> None:
        extra = self._checked(values)
        with self._lock:
            self._current = self._current | extra
            self._all = self._fixed | self._current

    @property
    def secrets(self) -> frozenset[str]:
        return self._all

    def __call__(self, _: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        secrets = self._all
        for k in list(event_dict):
            event_dict[k] = _redact_pair(k, event_dict[k], secrets)
        return event_dict


def _scrub(value: Any, secrets: frozenset[str]) -> Any:
    if isinstance(value, str):
        # longest first, so a secret that contains another is replaced whole
        for s in sorted(secrets, key=len, reverse=True):
            if s in value:
                value = value.replace(s, REDACTED)
        if "q-signature=" in value:
            value = _Q_SIGNATURE_RE.sub(r"\g<1>" + REDACTED, value)
        return value
    if isinstance(value, dict):
        return {k: _redact_pair(k, v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, secrets) for v in value]
    return value


def _redact_pair(key: Any, value: Any, secrets: frozenset[str]) -> Any:
    low = str(key).lower()
    if low not in _SAFE_KEYS and any(k in low for k in _SECRET_KEYS) and isinstance(value, str) and value:
        return REDACTED
    return _scrub(value, secrets)


def processors(redactor: Redactor) -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
        structlog.processors.JSONRenderer(sort_keys=False, ensure_ascii=False),
    ]


def configure(level: str = "info", stream: Optional[TextIO] = None, redactor: Optional[Redactor] = None) -> None:
    """JSON lines at ``level`` to ``stream`` (stdout when None), redacted by ``redactor`` (a new empty one
    when None: secret-looking keys and signatures are still redacted)."""
    structlog.configure(
        processors=processors(redactor if redactor is not None else Redactor()),
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        # Without an explicit stream, resolve sys.stdout at each logger creation
        # (not once here), so a replaced stdout (tests, CLI redirection) is honoured.
        logger_factory=structlog.PrintLoggerFactory(stream) if stream else structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "cijobs") -> Any:
    return structlog.get_logger(name)


def bind_invocation(**context: Any) -> None:
    """Start a fresh per-invocation context (request_id, function_name, trigger, job_ids...)."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(**{k: v for k, v in context.items() if v is not None})


def bind(**context: Any) -> None:
    structlog.contextvars.bind_contextvars(**context)


def schema_drift_reporter() -> DriftReporter:
    """A normalizer drift callback that logs ``schema_drift`` at warning, once per (path, problem)."""
    from .normalize.drift import DriftReporter  # the normalizer is imported when first needed (cold start)

    logger = get_logger("cijobs.normalize")

    def emit(path: str, problem: str, sample: Any) -> None:
        logger.warning("schema_drift", path=path, problem=problem, sample=sample)

    return DriftReporter(emit)
