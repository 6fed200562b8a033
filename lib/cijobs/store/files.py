"""The ``file://`` object store: objects as files under a directory.

Local writes are atomic: the body goes to a temporary file in the target
directory (fsynced), then ``os.link`` (create) or ``os.replace`` (put) moves
it into place, so a reader never sees half an object.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Optional

from ..deadline import Deadline
from .base import Listed, StoredObject, StoreError
from .keys import join_key, validate_key

_TMP_SUFFIX = ".cijobs-tmp"


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

    def list_page(self, prefix: str, start_after: str = "", limit: int = 1000,
                  deadline: Optional[Deadline] = None) -> tuple[Sequence[Listed], bool]:
        after = [o for o in self.list(prefix, deadline) if o.key > start_after]
        return after[: max(0, limit)], len(after) > limit

    def pointer(self, key: str) -> dict[str, str]:
        return {"Path": self.path(key), "Key": key}


def _os_error(exc: OSError) -> StoreError:
    # A full disk or a permission problem will not fix itself within a retry.
    return StoreError("LocalWriteError", f"{type(exc).__name__}: {exc.strerror or exc}", retryable=False)
