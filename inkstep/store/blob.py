"""Blob stores for checkpoints and archived segments: a local folder or any S3 endpoint."""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    EndpointConnectionError,
    NoCredentialsError,
)

from inkstep.settings import Settings
from inkstep.store.errors import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

# Keys are slash-separated relative names; these make a key that could escape the folder.
_BAD_PARTS = frozenset({"", ".", ".."})


class BlobStore(Protocol):
    """A flat key -> bytes store; keys are `/`-separated relative names."""

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key`, replacing any previous value atomically."""
        ...

    def get(self, key: str) -> bytes | None:
        """The bytes under `key`, or None when there is none."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Every key starting with `prefix`, sorted."""
        ...

    def delete(self, key: str) -> None:
        """Remove `key`; removing a missing key is not an error."""
        ...


def _check_key(key: str) -> str:
    parts = key.split("/")
    if key.startswith("/") or any(p in _BAD_PARTS for p in parts):
        raise StoreError(f"invalid blob key {key!r}: expected a relative name like 'a/b.bin'")
    return key


def _raise_unless_missing(exc: OSError) -> None:
    # os.walk hides errors by default; an unreadable folder must not look like "no blobs".
    if not isinstance(exc, FileNotFoundError):
        raise exc


class FileBlobStore:
    """A `BlobStore` in a local folder; each key is a file, written via temp file + rename."""

    def __init__(self, root: Path) -> None:
        self.root = root
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create blob folder {root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*_check_key(key).split("/"))

    def put(self, key: str, data: bytes) -> None:
        """Write `data` so a reader sees either the old or the new file, never a partial one."""
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    # A checkpoint must survive a machine crash once put() returned.
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StoreUnavailable(f"cannot write blob {key!r} under {self.root}: {exc}") from exc

    def get(self, key: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read blob {key!r} under {self.root}: {exc}") from exc

    def list(self, prefix: str) -> list[str]:
        """Every stored key starting with `prefix` (temp files excluded), sorted."""
        # Walk only the folder the prefix pins down, not the whole store.
        folder = prefix.rpartition("/")[0]
        start = self.root.joinpath(*folder.split("/")) if folder else self.root
        keys: list[str] = []
        try:
            for dirpath, _dirnames, filenames in os.walk(start, onerror=_raise_unless_missing):
                rel = Path(dirpath).relative_to(self.root)
                for name in filenames:
                    if name.startswith(".tmp-"):
                        continue
                    key = PurePosixPath(*rel.parts, name).as_posix()
                    if key.startswith(prefix):
                        keys.append(key)
        except OSError as exc:
            raise StoreUnavailable(f"cannot list blobs under {self.root}: {exc}") from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Remove the file; a missing one is fine."""
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot delete blob {key!r} under {self.root}: {exc}") from exc


_UNREACHABLE = (EndpointConnectionError, ConnectionError)


def _wrap_s3(exc: Exception, what: str) -> StoreError:
    """Our own exception for a botocore failure: unreachable/throttled -> StoreUnavailable."""
    if isinstance(exc, _UNREACHABLE):
        return StoreUnavailable(f"S3 unreachable while trying to {what}: {exc}")
    if isinstance(exc, NoCredentialsError):
        # Retrying cannot help: this is configuration, not an outage.
        return StoreError(f"no AWS credentials to {what}: set AWS_ACCESS_KEY_ID etc. ({exc})")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 or code in {"SlowDown", "Throttling", "RequestTimeout"}:
            return StoreUnavailable(f"S3 failed to {what} ({code}, HTTP {status}): {exc}")
        return StoreError(f"S3 refused to {what} ({code}, HTTP {status}): {exc}")
    return StoreUnavailable(f"S3 failed to {what}: {exc}")


class S3BlobStore:
    """A `BlobStore` in an S3 bucket under a key prefix, on AWS or any S3-compatible endpoint."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        create_bucket: bool = False,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        # Bounded retries and timeouts so an outage surfaces as StoreUnavailable in seconds.
        config = Config(
            region_name=region,
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        self._client: S3Client = boto3.client("s3", endpoint_url=endpoint_url, config=config)
        self._region = region
        if create_bucket:
            self.ensure_bucket()

    def __repr__(self) -> str:
        return f"S3BlobStore(s3://{self.bucket}/{self.prefix}, endpoint={self.endpoint_url!r})"

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists already (ours or created concurrently)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status != 404:
                raise _wrap_s3(exc, f"check bucket {self.bucket!r}") from exc
        except BotoCoreError as exc:
            raise _wrap_s3(exc, f"check bucket {self.bucket!r}") from exc
        try:
            if self._region == "us-east-1":
                # us-east-1 rejects an explicit LocationConstraint.
                self._client.create_bucket(Bucket=self.bucket)
            else:
                self._client.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={"LocationConstraint": self._region},  # type: ignore[typeddict-item]
                )
            logger.info("created S3 bucket %s", self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise _wrap_s3(exc, f"create bucket {self.bucket!r}") from exc
        except BotoCoreError as exc:
            raise _wrap_s3(exc, f"create bucket {self.bucket!r}") from exc

    def _key(self, key: str) -> str:
        return self.prefix + _check_key(key)

    def put(self, key: str, data: bytes) -> None:
        """Upload `data`; S3 PUTs are atomic per object."""
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (BotoCoreError, ClientError) as exc:
            raise _wrap_s3(exc, f"put {key!r}") from exc

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            return response["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise _wrap_s3(exc, f"get {key!r}") from exc
        except BotoCoreError as exc:
            raise _wrap_s3(exc, f"get {key!r}") from exc

    def list(self, prefix: str) -> list[str]:
        """Every key starting with `prefix` (relative to the store's prefix), sorted."""
        keys: list[str] = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                keys.extend(obj["Key"][len(self.prefix) :] for obj in page.get("Contents", []))
        except (BotoCoreError, ClientError) as exc:
            raise _wrap_s3(exc, f"list {prefix!r}") from exc
        return sorted(keys)

    def delete(self, key: str) -> None:
        """Delete the object; S3 treats a missing key as success."""
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise _wrap_s3(exc, f"delete {key!r}") from exc


def open_blob_store(
    url: str,
    *,
    s3_endpoint_url: str | None = None,
    s3_region: str = "us-east-1",
    create_bucket: bool = False,
) -> BlobStore:
    """The blob store a URL names: `file:///abs/path` or `s3://bucket/prefix`.

    Stores are cached per argument set: callers may open one per request, and a boto3 client
    costs tens of milliseconds to build (it is thread-safe, so sharing it is fine).
    """
    return _open_blob_store(url, s3_endpoint_url, s3_region, create_bucket)


@functools.lru_cache(maxsize=64)
def _open_blob_store(
    url: str, s3_endpoint_url: str | None, s3_region: str, create_bucket: bool
) -> BlobStore:
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StoreError(f"file blob URL must be file:///absolute/path, got {url!r}")
        path = Path(unquote(parts.path))
        if not path.is_absolute():
            raise StoreError(f"file blob URL must name an absolute path, got {url!r}")
        return FileBlobStore(path)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StoreError(f"S3 blob URL must be s3://bucket/prefix, got {url!r}")
        return S3BlobStore(
            parts.netloc,
            unquote(parts.path),
            endpoint_url=s3_endpoint_url,
            region=s3_region,
            create_bucket=create_bucket,
        )
    raise StoreError(
        f"unsupported blob store URL {url!r}: expected file:///path or s3://bucket/prefix"
    )


def blob_store_for(settings: Settings) -> BlobStore:
    """The deployment's blob store (a folder in the data dir unless configured)."""
    return open_blob_store(
        settings.resolved_blob_url(),
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_region=settings.s3_region,
        create_bucket=True,
    )
