"""Object stores shared by the result sinks, the claim-check store and the pending registry.

* :mod:`.base`: the :class:`ObjectStore` protocol, :class:`StoredObject`, :class:`Listed`, :class:`StoreError`;
* :mod:`.keys`: the object-key model (:func:`validate_key`, :func:`join_key`);
* :mod:`.urls`: store URLs as parsed from the settings (:class:`CosLocation`, :class:`FileLocation`);
* :mod:`.files` and :mod:`.cos`: the two backends; :func:`open_store` picks one for a parsed URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .base import Listed, ObjectStore, StoredObject, StoreError
from .files import FileObjectStore
from .keys import MAX_KEY_BYTES, InvalidKeyError, join_key, validate_key
from .urls import BUCKET_RE, REGION_RE, CosLocation, FileLocation, StoreUrl, parse_cos_url, parse_store_url

if TYPE_CHECKING:
    from ..cos import CosClient

__all__ = [
    "BUCKET_RE", "MAX_KEY_BYTES", "REGION_RE", "CosLocation", "FileLocation", "FileObjectStore", "InvalidKeyError",
    "Listed", "ObjectStore", "StoreError", "StoreUrl", "StoredObject", "join_key", "open_store", "parse_cos_url",
    "parse_store_url", "validate_key",
]


def open_store(url: StoreUrl, cos_client: Callable[[], CosClient]) -> ObjectStore:
    """The store for a parsed URL; ``cos_client`` returns the shared COS client (called only for ``cos://``)."""
    if isinstance(url, FileLocation):
        return FileObjectStore(url.root)
    from .cos import CosObjectStore  # cijobs.cos imports this package's key model: import the backend late

    return CosObjectStore(cos_client(), url)
