"""Fakes for the discovery tests: an in-memory object store with create-if-absent, and a recording sink."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from cijobs.deadline import Deadline
from cijobs.store import Listed, StoredObject, StoreError, join_key


class MemoryStore:
    """``ObjectStore`` in a dict: ``create`` is atomic create-if-absent (like COS x-cos-forbid-overwrite).

    ``before_create(key)`` runs before each create (to interleave concurrent writers); ``fail`` maps an
    operation name (``create``, ``get``, ``list``) to how many of the next calls raise a retryable error.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.description = "memory://"
        self.objects: dict[str, bytes] = {}
        self.creates: list[tuple[str, bool]] = []
        self.deletes: list[str] = []
        self.before_create: Optional[Callable[[str], None]] = None
        self.fail: dict[str, int] = {}
        self._lock = threading.Lock()

    def _maybe_fail(self, op: str) -> None:
        with self._lock:
            if self.fail.get(op, 0) > 0:
                self.fail[op] -= 1
                raise StoreError("InternalError", f"injected {op} failure", retryable=True, status=500)

    def key(self, *parts: str) -> str:
        return join_key(self.prefix, *parts)

    def create(self, key: str, body: bytes, content_type: str, meta: Mapping[str, str],
               deadline: Optional[Deadline] = None) -> bool:
        if self.before_create is not None:
            self.before_create(key)
        self._maybe_fail("create")
        with self._lock:
            ok = key not in self.objects
            if ok:
                self.objects[key] = body
            self.creates.append((key, ok))
            return ok

    def put(self, key: str, body: bytes, content_type: str, meta: Mapping[str, str],
            deadline: Optional[Deadline] = None) -> None:
        with self._lock:
            self.objects[key] = body

    def get(self, key: str, deadline: Optional[Deadline] = None) -> Optional[StoredObject]:
        self._maybe_fail("get")
        with self._lock:
            body = self.objects.get(key)
        return None if body is None else StoredObject(key, body)

    head = get

    def delete(self, key: str, deadline: Optional[Deadline] = None) -> None:
        with self._lock:
            self.objects.pop(key, None)
            self.deletes.append(key)

    def list(self, prefix: str, deadline: Optional[Deadline] = None) -> list[Listed]:
        self._maybe_fail("list")
        with self._lock:
            return [Listed(k, len(v)) for k, v in sorted(self.objects.items()) if k.startswith(prefix)]

    def pointer(self, key: str) -> dict[str, str]:
        return {"Key": key}


class Recorder:
    """The sweep's ``write_terminal`` and ``park``: records every hand-over; ``fail_ids`` are refused."""

    def __init__(self) -> None:
        self.written: list[tuple[str, str]] = []  # (JobId, State) per write, duplicates kept
        self.parked: list[str] = []
        self.fail_ids: set[str] = set()
        self._lock = threading.Lock()

    def write(self, jobs: list[dict[str, Any]], deadline: Deadline) -> Sequence[str]:
        failed = [j["JobId"] for j in jobs if j["JobId"] in self.fail_ids]
        with self._lock:
            self.written += [(j["JobId"], j["State"]) for j in jobs if j["JobId"] not in self.fail_ids]
        return failed

    def park(self, ids: list[str], states: Mapping[str, str], deadline: Deadline) -> Sequence[str]:
        failed = [i for i in ids if i in self.fail_ids]
        with self._lock:
            self.parked += [i for i in ids if i not in self.fail_ids]
        return failed

    def handed(self) -> set[str]:
        return {j for j, _ in self.written} | set(self.parked)
