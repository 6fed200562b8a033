"""What every object store offers: the :class:`ObjectStore` protocol, its objects and its one error type.

The result sinks, the claim-check store and the pending registry are written
once against this protocol, so ``file://`` and ``cos://`` behave the same:

* ``create`` stores an object only if the key is absent (COS
  ``x-cos-forbid-overwrite: true`` / a hard link on disk) and says which
  happened; ``put`` overwrites; ``get``/``head`` return ``None`` when absent;
  ``delete`` of an absent key is fine; ``list`` returns the keys under a prefix.
* Every failure is a :class:`StoreError` with ``code`` and ``retryable``.
* Every call takes the invocation :class:`~cijobs.deadline.Deadline`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional, Protocol

from ..deadline import Deadline
from ..models import ServiceError


class StoreError(ServiceError):
    """A store operation failed (``status`` is the HTTP status for COS, None for local files)."""

    def __init__(
        self, code: str, message: str, retryable: bool, status: Optional[int] = None,
        request_id: Optional[str] = None,
    ) -> None:
        super().__init__(code, message, retryable=retryable, status=status, request_id=request_id)


@dataclass(frozen=True)
class StoredObject:
    """``body`` is None when only the metadata was fetched (COS HEAD)."""

    key: str
    body: Optional[bytes]
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Listed:
    key: str
    size: int
    last_modified: str = ""


class ObjectStore(Protocol):
    description: str
    prefix: str

    def key(self, *parts: str) -> str: ...

    def create(self, key: str, body: bytes, content_type: str, meta: Mapping[str, str],
               deadline: Optional[Deadline] = None) -> bool: ...

    def put(self, key: str, body: bytes, content_type: str, meta: Mapping[str, str],
            deadline: Optional[Deadline] = None) -> None: ...

    def get(self, key: str, deadline: Optional[Deadline] = None) -> Optional[StoredObject]: ...

    def head(self, key: str, deadline: Optional[Deadline] = None) -> Optional[StoredObject]: ...

    def delete(self, key: str, deadline: Optional[Deadline] = None) -> None: ...

    def list(self, prefix: str, deadline: Optional[Deadline] = None) -> list[Listed]: ...

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000,
                  deadline: Optional[Deadline] = None) -> tuple[Sequence[Listed], bool]:
        """At most ``limit`` keys under ``prefix`` after ``start_after``, in key order, and whether more
        remain (also True when the deadline stopped the listing early)."""
        ...

    def pointer(self, key: str) -> dict[str, str]: ...
