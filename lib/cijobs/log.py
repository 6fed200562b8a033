"""structlog configuration: JSON, one event per line, secrets redacted.

``configure()`` is called once per process (handler import, CLI start);
``bind_invocation()`` binds the SCF request id and friends per invocation;
``register_secrets()`` adds values (SecretKey, token, API token) that the
redaction processor replaces wherever they appear in an event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, Optional, TextIO

import structlog

REDACTED = "[redacted]"
_SECRET_KEYS = ("secret", "token", "signature", "authorization", "password", "sign_key", "signkey")
_SAFE_KEYS = frozenset({"secret_id", "token_header"})
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secrets(values: Iterable[Optional[str]]) -> None:
    """Remember secret values so that no log line can carry them."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= 4)


def _scrub(value: Any, secrets: frozenset[str]) -> Any:
    if isinstance(value, str):
        for s in secrets:
            if s in value:
                value = value.replace(s, REDACTED)
        if "q-signature=" in value:
            head, _, tail = value.partition("q-signature=")
            value = head + "q-signature=" + REDACTED + tail[len(tail.split("&", 1)[0]):]
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


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: drop secret-looking keys and any registered secret value."""
    with _lock:
        secrets = frozenset(_secrets)
    for k in list(event_dict):
        event_dict[k] = _redact_pair(k, event_dict[k], secrets)
    return event_dict


def processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
        structlog.processors.JSONRenderer(sort_keys=False, ensure_ascii=False),
    ]


def configure(level: str = "info", stream: Optional[TextIO] = None) -> None:
    structlog.configure(
        processors=processors(),
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
