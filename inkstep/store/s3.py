"""The S3 blob store (boto3): any S3-compatible endpoint, e.g. AWS, MinIO, R2."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    EndpointConnectionError,
    NoCredentialsError,
)

from inkstep.store.blob import _check_key
from inkstep.store.errors import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)


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
