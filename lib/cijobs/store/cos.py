"""The ``cos://`` object store: objects under a bucket prefix, through the signed :class:`~cijobs.cos.CosClient`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Optional

from ..cos import CosClient, CosError, meta_from_headers
from ..deadline import Deadline
from .base import Listed, StoredObject, StoreError
from .keys import join_key
from .urls import CosLocation


def _store_error(exc: CosError) -> StoreError:
    return StoreError(exc.code, exc.message, exc.retryable, exc.status, exc.request_id)


class CosObjectStore:
    """Objects under ``cos://bucket.region/prefix``."""

    def __init__(self, client: CosClient, location: CosLocation) -> None:
        self._client = client
        self._loc = location
        self.prefix = location.prefix
        self.description = f"cos://{location.bucket}.{location.region}/{location.prefix}".rstrip("/")

    def key(self, *parts: str) -> str:
        return join_key(self.prefix, *parts)

    def create(self, key: str, body: bytes, content_type: str, meta: Mapping[str, str],
               deadline: Optional[Deadline] = None) -> bool:
        try:
            self._client.put_object(self._loc.bucket, self._loc.region, key, body, content_type, meta,
                                    forbid_overwrite=True, deadline=deadline)
        except CosError as exc:
            if exc.status == 409 and exc.code == "FileAlreadyExists":
                return False
            raise _store_error(exc) from None
        return True

    def put(self, key: str, body: bytes, content_type: str, meta: Mapping[str, str],
            deadline: Optional[Deadline] = None) -> None:
        try:
            self._client.put_object(self._loc.bucket, self._loc.region, key, body, content_type, meta,
                                    deadline=deadline)
        except CosError as exc:
            raise _store_error(exc) from None

    def get(self, key: str, deadline: Optional[Deadline] = None) -> Optional[StoredObject]:
        try:
            obj = self._client.get_object(self._loc.bucket, self._loc.region, key, deadline)
        except CosError as exc:
            if exc.status == 404:
                return None
            raise _store_error(exc) from None
        return StoredObject(key, obj.body, obj.metadata)

    def head(self, key: str, deadline: Optional[Deadline] = None) -> Optional[StoredObject]:
        try:
            headers = self._client.head_object(self._loc.bucket, self._loc.region, key, deadline)
        except CosError as exc:
            if exc.status == 404:
                return None
            raise _store_error(exc) from None
        return StoredObject(key, None, meta_from_headers(headers))

    def delete(self, key: str, deadline: Optional[Deadline] = None) -> None:
        try:
            self._client.delete_object(self._loc.bucket, self._loc.region, key, deadline)
        except CosError as exc:
            raise _store_error(exc) from None

    def list(self, prefix: str, deadline: Optional[Deadline] = None) -> list[Listed]:
        try:
            objs = self._client.iter_objects(self._loc.bucket, self._loc.region, prefix, deadline)
        except CosError as exc:
            raise _store_error(exc) from None
        return [Listed(o.key, o.size, o.last_modified) for o in objs]

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000,
                  deadline: Optional[Deadline] = None) -> tuple[Sequence[Listed], bool]:
        """Pages of GET Bucket from ``start_after`` until ``limit`` keys, the end, or the deadline."""
        out: list[Listed] = []
        marker: Optional[str] = start_after or None
        while len(out) < limit:
            if deadline is not None and deadline.expired():
                return out, True
            try:
                page = self._client.list_objects(self._loc.bucket, self._loc.region, prefix, marker,
                                                 max_keys=min(1000, limit - len(out)), deadline=deadline)
            except CosError as exc:
                if out and exc.retryable:  # keep what was listed; the rest comes next time
                    return out, True
                raise _store_error(exc) from None
            out.extend(Listed(o.key, o.size, o.last_modified) for o in page.objects)
            if not page.is_truncated or not page.next_marker or page.next_marker == marker:
                return out, False
            marker = page.next_marker
        return out, True

    def pointer(self, key: str) -> dict[str, str]:
        return {"Bucket": self._loc.bucket, "Region": self._loc.region, "Key": key}
