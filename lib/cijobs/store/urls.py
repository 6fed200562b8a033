"""Store URLs, parsed once from the settings: ``file://DIR`` and ``cos://<BucketName-APPID>.<region>/<prefix>``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from ..errors import SettingsError
from .keys import InvalidKeyError, join_key, validate_key

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,48}[a-z0-9]-[0-9]{5,12}$")
REGION_RE = re.compile(r"^[a-z]{2,4}-[a-z0-9-]{2,30}$")
_COS_URL_RE = re.compile(r"^cos://(?P<bucket>[^./]+)\.(?P<region>[^/]+?)(?:/(?P<prefix>.*))?$")


@dataclass(frozen=True)
class CosLocation:
    """A parsed ``cos://<BucketName-APPID>.<region>/<prefix>`` URL."""

    bucket: str
    region: str
    prefix: str = ""

    def key(self, *parts: str) -> str:
        """``prefix/part/part`` without empty segments."""
        return join_key(self.prefix, *parts)

    @property
    def url(self) -> str:
        return f"cos://{self.bucket}.{self.region}/{self.prefix}".rstrip("/")


@dataclass(frozen=True)
class FileLocation:
    """A parsed ``file://DIR`` URL (a local directory: tests, the emulator demo, self-hosted runs)."""

    root: str

    @property
    def url(self) -> str:
        return f"file://{self.root}"


StoreUrl = Union[CosLocation, FileLocation]


def parse_cos_url(url: str, name: str = "cos URL") -> CosLocation:
    """Parse and validate ``cos://bucket-appid.region[/prefix]``; the error names the setting ``name``."""
    m = _COS_URL_RE.match(url.strip())
    if not m:
        raise SettingsError(f"{name} must look like cos://<BucketName-APPID>.<region>/<prefix>")
    bucket, region, prefix = m.group("bucket"), m.group("region"), (m.group("prefix") or "").strip("/")
    if not BUCKET_RE.match(bucket):
        raise SettingsError(f"{name}: the bucket must look like <BucketName>-<APPID> (e.g. examplebucket-1250000000)")
    if not REGION_RE.match(region):
        raise SettingsError(f"{name}: the region must look like ap-guangzhou")
    if prefix:
        try:
            validate_key(prefix + "/x")
        except InvalidKeyError as exc:
            raise SettingsError(f"{name}: unusable prefix ({exc})") from None
    return CosLocation(bucket, region, prefix)


def parse_store_url(url: str, name: str) -> StoreUrl:
    """``file://DIR`` or ``cos://BUCKET-APPID.REGION/PREFIX``; anything else is a :class:`SettingsError`."""
    url = url.strip()
    if url.startswith("file://"):
        root = url[len("file://"):]
        if not root:
            raise SettingsError(f"{name}: a file:// store needs a directory, e.g. file:///tmp/cijobs/results")
        return FileLocation(root)
    if url.startswith("cos://"):
        return parse_cos_url(url, name)
    raise SettingsError(f"{name} must be file://DIR or cos://BUCKET-APPID.REGION/PREFIX")
