"""A tiny object-store interface with two backends: COS (via :class:`cijobs.cos.CosClient`) and local files.

The result sinks, the claim-check store and the pending registry are written
once against this interface, so ``file://`` and ``cos://`` behave the same:

* ``create`` stores an object only if the key is absent (COS
  ``x-cos-forbid-overwrite: true`` / a hard link on disk) and says which
  happened; ``put`` overwrites; ``get``/``head`` return ``None`` when absent;
  ``delete`` of an absent key is fine; ``list`` returns every key under a prefix.
* Every failure is a :class:`StoreError` with ``code`` and ``retryable``.

Local writes are atomic: the body goes to a temporary file in the target
directory (fsynced), then ``os.link`` (create) or ``os.replace`` (put) moves
it into place, so a reader never sees half an object.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

from ..cos import CosClient, CosError, CosLocation, InvalidKeyError, join_key, parse_cos_url, validate_key
from ..http import Deadline
from ..models import ServiceError

_TMP_SUFFIX = ".cijobs-tmp"


class StoreError(ServiceError):
    """A store operation failed (``status`` is the HTTP status for COS, None for local files)."""

    def __init__(
        self, code: str, message: str, retryable: bool, status: Optional[int] = None,
        request_id: Optional[str] = None,
    ) -> None:
        super().__init__(code, message, retryable=retryable, status=status, request_id=request_id)

    @classmethod
    def from_cos(cls, exc: CosError) -> StoreError:
        return cls(exc.code, exc.message, exc.retryable, exc.status, exc.request_id)


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

    def pointer(self, key: str) -> dict[str, str]: ...


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
            raise StoreError.from_cos(exc) from None
        return True

    def put(self, key: str, body: bytes, content_type: str, meta: Mapping[str, str],
            deadline: Optional[Deadline] = None) -> None:
        try:
            self._client.put_object(self._loc.bucket, self._loc.region, key, body, content_type, meta,
                                    deadline=deadline)
        except CosError as exc:
            raise StoreError.from_cos(exc) from None

    def get(self, key: str, deadline: Optional[Deadline] = None) -> Optional[StoredObject]:
        try:
            obj = self._client.get_object(self._loc.bucket, self._loc.region, key, deadline)
        except CosError as exc:
            if exc.status == 404:
                return None
            raise StoreError.from_cos(exc) from None
        return StoredObject(key, obj.body, obj.metadata)

    def head(self, key: str, deadline: Optional[Deadline] = None) -> Optional[StoredObject]:
        from ..cos import meta_from_headers

        try:
            headers = self._client.head_object(self._loc.bucket, self._loc.region, key, deadline)
        except CosError as exc:
            if exc.status == 404:
                return None
            raise StoreError.from_cos(exc) from None
        return StoredObject(key, None, meta_from_headers(headers))

    def delete(self, key: str, deadline: Optional[Deadline] = None) -> None:
        try:
            self._client.delete_object(self._loc.bucket, self._loc.region, key, deadline)
        except CosError as exc:
            raise StoreError.from_cos(exc) from None

    def list(self, prefix: str, deadline: Optional[Deadline] = None) -> list[Listed]:
        try:
            objs = self._client.iter_objects(self._loc.bucket, self._loc.region, prefix, deadline)
        except CosError as exc:
            raise StoreError.from_cos(exc) from None
        return [Listed(o.key, o.size, o.last_modified) for o in objs]

    def pointer(self, key: str) -> dict[str, str]:
        return {"Bucket": self._loc.bucket, "Region": self._loc.region, "Key": key}


class FileObjectStore:
    """Objects as files under a directory; the key's ``/`` are directories."""

    def __init__(self, root: str, prefix: str = "") -> None:
        if not root:
            raise ValueError("file:// store needs a directory, e.g. file:///tmp/cijobs/results")
        self.root = os.path.abspath(root)
        self.prefix = prefix.strip("/")
        self.description = f"file://{self.root}"

    def key(self, *parts: str) -> str:
        return join_key(self.prefix, *parts)

    def path(self, key: str) -> str:
        validate_key(key)
        return os.path.join(self.root, *key.split("/"))

    def _tmp(self, path: str, body: bytes) -> str:
        directory = os.path.dirname(path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=_TMP_SUFFIX, dir=directory)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    def create(self, key: str, body: bytes, content_type: str, meta: Mapping[str, str],
               deadline: Optional[Deadline] = None) -> bool:
        path = self.path(key)
        try:
            tmp = self._tmp(path, body)
            try:
                os.link(tmp, path)  # atomic "create if absent"
            except FileExistsError:
                return False
            except OSError:
                # file systems without hard links: best effort (documented race)
                if os.path.exists(path):
                    return False
                os.replace(tmp, path)
                return True
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        except OSError as exc:
            raise _os_error(exc) from None
        return True

    def put(self, key: str, body: bytes, content_type: str, meta: Mapping[str, str],
            deadline: Optional[Deadline] = None) -> None:
        path = self.path(key)
        try:
            os.replace(self._tmp(path, body), path)
        except OSError as exc:
            raise _os_error(exc) from None

    def get(self, key: str, deadline: Optional[Deadline] = None) -> Optional[StoredObject]:
        path = self.path(key)
        try:
            with open(path, "rb") as fh:
                return StoredObject(key, fh.read(), {})
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error(exc) from None

    head = get  # files are small and carry no separate metadata

    def delete(self, key: str, deadline: Optional[Deadline] = None) -> None:
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _os_error(exc) from None

    def list(self, prefix: str, deadline: Optional[Deadline] = None) -> list[Listed]:
        """Every file whose key starts with ``prefix`` (temporary files skipped), sorted by key."""
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        top = os.path.join(self.root, *base.split("/")) if base else self.root
        out: list[Listed] = []
        for dirpath, _dirs, files in os.walk(top):
            for name in files:
                if name.endswith(_TMP_SUFFIX):
                    continue
                full = os.path.join(dirpath, name)
                key = os.path.relpath(full, self.root).replace(os.sep, "/")
                if key.startswith(prefix):
                    try:
                        size = os.path.getsize(full)
                    except OSError:
                        continue  # removed while listing
                    out.append(Listed(key, size))
        return sorted(out, key=lambda o: o.key)

    def pointer(self, key: str) -> dict[str, str]:
        return {"Path": self.path(key), "Key": key}


def _os_error(exc: OSError) -> StoreError:
    # A full disk or a permission problem will not fix itself within a retry.
    return StoreError("LocalWriteError", f"{type(exc).__name__}: {exc.strerror or exc}", retryable=False)


def store_from_url(url: str, name: str, cos_client_factory: Optional[Callable[[], CosClient]] = None) -> ObjectStore:
    """``file://DIR`` or ``cos://bucket.region/prefix`` → a store; ``name`` is the setting, for errors.

    ``cos_client_factory`` is a zero-argument callable returning the shared :class:`CosClient`
    (only called for ``cos://``).
    """
    url = url.strip()
    if url.startswith("file://"):
        return FileObjectStore(url[len("file://"):])
    if url.startswith("cos://"):
        try:
            loc = parse_cos_url(url, name)
        except InvalidKeyError as exc:
            raise ValueError(f"{name}: {exc}") from None
        if cos_client_factory is None:
            raise ValueError(f"{name}: a COS client is needed for {url!r}")
        return CosObjectStore(cos_client_factory(), loc)
    raise ValueError(f"{name} must be file://DIR or cos://BUCKET-APPID.REGION/PREFIX, got {url!r}")
