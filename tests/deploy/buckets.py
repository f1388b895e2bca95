"""The object-storage tests' shared set-up: settings that point every store at one bucket of the S3 server
process (moto on loopback, ``retrieval_core.storage.dev_server``), and a plain client to look inside it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3

from retrieval_core.storage import S3Config


def use_bucket(settings: Any, server: S3Config, prefix: str, features_root: Path) -> Any:
    """``STORAGE_BACKEND=s3`` on ``server``'s bucket under ``prefix`` (created on first use);
    ``features_root`` is the local folder that must stay empty."""
    settings.STORAGE_BACKEND = "s3"
    settings.FEATURES_ROOT = features_root
    settings.AWS_STORAGE_BUCKET_NAME = server.bucket
    settings.AWS_S3_ENDPOINT_URL = server.endpoint_url
    settings.AWS_ACCESS_KEY_ID = server.access_key_id
    settings.AWS_SECRET_ACCESS_KEY = server.secret_access_key
    settings.STORAGE_PREFIX = prefix
    settings.STORAGE_CREATE_BUCKET = True
    return settings


def bucket_client(server: S3Config) -> Any:
    """A boto3 client of ``server``, for checking what the product put in (or taking it away)."""
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        region_name=server.region,
    )
