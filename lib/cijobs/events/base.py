"""What every event class shares: errors, read-only header/query maps, job-ID lists.

Nothing here knows about CI or the network; parsing only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Protocol

from ..job_ids import dedupe, split_ids
from ..models import Job

if TYPE_CHECKING:
    from ..normalize.drift import DriftCallback

# Header and query names whose values never appear in a repr.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-token"})
_SECRET_PARAMS = frozenset({"token", "api_token", "access_token"})
HIDDEN = "***"


class EventError(ValueError):
    """An event, or a body inside it, is malformed. ``field`` names what was wrong."""

    def __init__(self, message: str, field: Optional[str] = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownEventError(EventError):
    """The event matches none of the shapes cijobs accepts."""


@dataclass(frozen=True)
class Limits:
    """Size limits applied while parsing: MAX_BODY_BYTES, MAX_IDS_PER_REQUEST (one request, message or
    record) and MAX_IDS_PER_EVENT (all the records of one queue event together)."""

    max_body_bytes: int = 1024 * 1024
    max_ids: int = 100
    max_ids_per_event: int = 10000
    on_drift: Optional[DriftCallback] = field(default=None, compare=False)  # normalizer drift reports


class ReadOnlyMap(Mapping[str, str]):
    """An immutable str→str mapping; ``secret`` keys are masked in its repr."""

    _secret: frozenset[str] = frozenset()
    _fold_case = False

    def __init__(self, items: Optional[Mapping[str, Any]] = None) -> None:
        data: dict[str, str] = {}
        for k, raw in (items or {}).items():
            value = raw[0] if isinstance(raw, (list, tuple)) and raw else raw  # multi-valued: keep the first
            if value is None or isinstance(value, (list, tuple)):
                continue
            data[self._key(str(k))] = str(value)
        self._data = data

    def _key(self, key: str) -> str:
        return key.lower() if self._fold_case else key

    def __getitem__(self, key: str) -> str:
        return self._data[self._key(key)]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._key(key) in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        shown = {k: (HIDDEN if k.lower() in self._secret else v) for k, v in self._data.items()}
        return f"{type(self).__name__}({shown!r})"

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._data.items())))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReadOnlyMap):
            return self._data == other._data
        if isinstance(other, Mapping):
            return self._data == {self._key(str(k)): v for k, v in other.items()}
        return NotImplemented


class Headers(ReadOnlyMap):
    """HTTP headers: case-insensitive names (keys stored lower-case); Authorization hidden from repr."""

    _secret = _SECRET_HEADERS
    _fold_case = True


class QueryParams(ReadOnlyMap):
    """Query-string arguments; the ``token`` parameter is hidden from repr."""

    _secret = _SECRET_PARAMS


@dataclass(frozen=True)
class JobRequest:
    """"These job IDs": what a queue message turns into before the pipeline runs.

    ``jobs`` carries job bodies from a CI notification; the pipeline uses them only
    when TRUST_CALLBACK_BODY is on (otherwise the IDs are re-queried).
    """

    job_ids: tuple[str, ...]
    jobs: tuple[Job, ...] = ()


@dataclass(frozen=True)
class RecordResult:
    """What one queue record turned into: a request, or the reason it was skipped."""

    index: int
    ref: str
    request: Optional[JobRequest] = None
    error: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Index": self.index, "Ref": self.ref}
        if self.request is not None:
            out["JobIds"] = list(self.request.job_ids)
        if self.error is not None:
            out["Error"] = self.error
        return out


@dataclass(frozen=True)
class Work:
    """What a non-HTTP event asks for: job IDs to query (``jobs``: their callback bodies, used only when
    TRUST_CALLBACK_BODY is on), whether the pending registry is worked too (``tick``), the queue records
    (``records``, reported in the answer) and problems with the event's own message (``errors``)."""

    ids: tuple[str, ...] = ()
    jobs: tuple[Job, ...] = ()
    tick: bool = False
    records: tuple[RecordResult, ...] = ()
    errors: tuple[str, ...] = ()


class AsyncEvent(Protocol):
    """A timer, queue or direct-invoke event: the app asks each the same two things.

    ``work(limits)`` says what to do (it raises :class:`EventError` only when the event as a whole is
    unusable); ``raises_when_unparked`` says whether an invocation that could not park a retryable
    failure must raise, so that SCF retries the event (not CKafka: raising would block its partition).
    """

    @property
    def kind(self) -> str: ...

    @property
    def raises_when_unparked(self) -> bool: ...

    def work(self, limits: Limits) -> Work: ...


def ids_from_value(value: Any, field: str, limits: Limits) -> list[str]:
    """A ``JobIds`` value: a list of strings or one comma-separated string."""
    if isinstance(value, str):
        ids = split_ids(value)
    elif isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise EventError(f"{field} must be a list of job ID strings", field)
        ids = [v.strip() for v in value if v.strip()]
    else:
        raise EventError(f"{field} must be a list of job ID strings or a comma-separated string", field)
    ids = dedupe(ids)
    if len(ids) > limits.max_ids:
        raise EventError(f"{field}: at most {limits.max_ids} job IDs per request, got {len(ids)}", field)
    return ids


def looks_like_json_object(text: str) -> bool:
    return text.lstrip().startswith("{")


def ids_from_json_object(text: str, field: str, limits: Limits) -> list[str]:
    """``{"JobIds": [...]}`` → the IDs (EventError naming ``field`` otherwise)."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise EventError(f"{field} is not valid JSON: {exc}", field) from None
    except RecursionError:  # json's decoder recurses once per nesting level: "[[[[..." overflows it
        raise EventError(f"{field} is JSON nested too deeply", field) from None
    if not isinstance(doc, dict) or "JobIds" not in doc:
        raise EventError(f'{field} must be a JSON object with "JobIds"', f"{field}.JobIds")
    return ids_from_value(doc["JobIds"], f"{field}.JobIds", limits)


def ids_from_text(text: str, field: str, limits: Limits) -> list[str]:
    """A comma/space-separated ID list or ``{"JobIds": [...]}``."""
    if looks_like_json_object(text):
        return ids_from_json_object(text, field, limits)
    return ids_from_value(text, field, limits)


def as_str(value: Any, field: str, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise EventError(f"{field} must be a string", field)
    return value
