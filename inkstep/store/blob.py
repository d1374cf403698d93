"""Blob stores for checkpoints and archived segments: a local folder or any S3 endpoint."""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

from inkstep.settings import Settings
from inkstep.store.errors import StoreError, StoreUnavailable

__all__ = ["BlobStore", "FileBlobStore", "S3BlobStore", "blob_store_for", "open_blob_store"]

if TYPE_CHECKING:
    from inkstep.store.s3 import S3BlobStore

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
        from inkstep.store.s3 import S3BlobStore  # boto3 is slow to import: only when used

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


def __getattr__(name: str) -> object:
    # `from inkstep.store.blob import S3BlobStore` keeps working without importing boto3 early.
    if name == "S3BlobStore":
        from inkstep.store.s3 import S3BlobStore

        return S3BlobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
