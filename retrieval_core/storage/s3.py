"""``S3BlobStore``: keys are objects in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW...) via boto3.

``PutObject`` publishes an object whole, so readers never see half of one, as with the local store.
``get_many`` fetches with a thread pool: 100 candidates' local features are 100 small GETs, and in flight
together they cost a few round trips instead of 100 (see bench/feature_fetch.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from retrieval_core.storage.blob_store import check_key, check_prefix

__all__ = ["S3BlobStore", "S3Config", "ensure_bucket"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3Config:
    """Where the bucket is. ``endpoint_url`` empty means AWS itself; credentials empty means boto3's own
    chain (environment, instance role). ``prefix`` puts every key of this store under ``prefix/``."""

    bucket: str
    prefix: str = ""
    endpoint_url: str = ""
    region: str = "us-east-1"
    access_key_id: str = ""
    secret_access_key: str = ""
    parallel_gets: int = 16  # concurrent GETs of get_many (and the connection pool size)
    create_bucket: bool = False  # create the bucket if missing (MinIO in compose, tests), not on AWS
    timeout_s: float = 10.0  # connect and read timeout of one request: a stuck GET must not hold a query


def ensure_bucket(client: Any, bucket: str) -> None:
    """Create ``bucket`` with the boto3 ``client`` unless it exists (MinIO in compose, tests; not on AWS).
    Every process may call it at once: a bucket another one created in between is fine."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError:
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise


def _is_missing(error: Exception) -> bool:
    response: dict[str, Any] = getattr(error, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound")


class S3BlobStore:
    """Objects ``s3://bucket/<prefix>/<key>``. The boto3 client is made on first use and is thread-safe."""

    def __init__(self, config: S3Config) -> None:
        if not config.bucket:
            raise ValueError("S3BlobStore needs a bucket name (AWS_STORAGE_BUCKET_NAME)")
        self.config = config
        self._prefix = check_prefix(config.prefix.strip("/") + "/") if config.prefix.strip("/") else ""
        self._client: Any = None
        self._client_lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._client_lock:  # one client per store, even when the first calls come from many threads
            if self._client is None:
                self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        import boto3  # imported here: local-only deployments never load botocore
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=self.config.endpoint_url or None,
            region_name=self.config.region or None,
            aws_access_key_id=self.config.access_key_id or None,
            aws_secret_access_key=self.config.secret_access_key or None,
            config=Config(
                max_pool_connections=max(10, self.config.parallel_gets),
                connect_timeout=self.config.timeout_s,
                read_timeout=self.config.timeout_s,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"},  # MinIO and other self-hosted servers
            ),
        )
        if self.config.create_bucket:
            ensure_bucket(client, self.config.bucket)
        return client

    def _object(self, key: str) -> str:
        return self._prefix + check_key(key)

    def get(self, key: str) -> bytes:
        """The object's bytes; ``KeyError`` if absent, ``OSError`` if the server fails or is unreachable."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.config.bucket, Key=self._object(key))
            data: bytes = response["Body"].read()
        except ClientError as error:
            if _is_missing(error):
                raise KeyError(key) from None
            raise OSError(f"{self.describe(key)}: {error}") from error
        except BotoCoreError as error:  # timeouts, refused connections
            raise OSError(f"{self.describe(key)}: {error}") from error
        return data

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}

        def fetch(key: str) -> bytes | None:
            try:
                return self.get(key)
            except KeyError:
                return None
            except OSError as error:  # left out like an unreadable file: the caller reports it missing
                logger.warning("could not fetch %s: %s", self.describe(key), error)
                return None

        with ThreadPoolExecutor(max_workers=min(self.config.parallel_gets, len(wanted))) as pool:
            fetched = list(pool.map(fetch, wanted))
        return {key: data for key, data in zip(wanted, fetched, strict=True) if data is not None}

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.config.bucket, Key=self._object(key), Body=data)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.config.bucket, Key=self._object(key))
        except ClientError as error:
            if _is_missing(error):
                return False
            raise OSError(f"{self.describe(key)}: {error}") from error
        return True

    def delete(self, key: str) -> bool:
        existed = self.exists(key)  # S3 DeleteObject answers the same whether or not the key was there
        if existed:
            self.client.delete_object(Bucket=self.config.bucket, Key=self._object(key))
        return existed

    def list(self, prefix: str = "") -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        start = self._prefix + check_prefix(prefix)
        for page in paginator.paginate(Bucket=self.config.bucket, Prefix=start):
            for item in page.get("Contents", []):
                yield str(item["Key"])[len(self._prefix) :]

    def describe(self, key: str) -> str:
        return f"s3://{self.config.bucket}/{self._object(key)}"

    def __repr__(self) -> str:
        return f"S3BlobStore(s3://{self.config.bucket}/{self._prefix})"
