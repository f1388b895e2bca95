"""STORAGE_BACKEND=s3: the served stores of local features and CNN patches live in the bucket (a real
S3-compatible server process on loopback), under STORAGE_PREFIX, with the local layout's keys."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.compact import as_stored
from retrieval_core.features.sift import SiftConfig, extract_sift
from retrieval_core.storage import CachedBlobStore, LocalBlobStore, S3BlobStore, S3Config
from retrieval_core.storage.dev_server import local_s3_server
from tests.deploy.buckets import bucket_client, use_bucket
from webapp.storage import feature_blobs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Config]:
    with local_s3_server(bucket="landmarks-media") as config:
        yield config


@pytest.fixture
def s3_settings(settings, s3_server: S3Config, tmp_path: Path):
    # FEATURES_ROOT must stay empty: the features go to the bucket.
    return use_bucket(settings, s3_server, "site-a", tmp_path / "features")


def _object_keys(config: S3Config) -> list[str]:
    client = bucket_client(config)
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket=config.bucket).get("Contents", []))


def test_sift_and_patch_stores_follow_the_storage_settings(s3_settings, s3_server: S3Config) -> None:
    from webapp.embeddings.models import EmbeddingModelVersion
    from webapp.embeddings.services import patch_store
    from webapp.reranking.local_features import sift_store

    view, _ = render_view(make_scene(2, (200, 260)), np.random.default_rng(2), out_size=(200, 260))
    features = extract_sift(view, SiftConfig(max_keypoints=150))
    store = sift_store()
    assert isinstance(store.blobs, S3BlobStore)
    store.save(7, features)
    version = EmbeddingModelVersion(name="v", collection_name="c_v1", dim=8)
    patch_store(version).save(7, np.ones((3, 8), np.float32))

    keys = _object_keys(s3_server)
    assert f"site-a/sift/{store.key_for(7)}" in keys
    assert any(key.startswith("site-a/patches/c_v1-top") for key in keys)
    assert not Path(s3_settings.FEATURES_ROOT).exists()  # nothing went to the local folder
    # Another process (a fresh store, as the web server would make) reads what the worker wrote.
    loaded = sift_store().load_many([7, 8])
    assert list(loaded) == [7] and loaded.missing == (8,)
    # As stored in the served LOCAL_FEATURES_FORMAT (compact by default: quantised descriptors).
    np.testing.assert_array_equal(loaded[7].descriptors, as_stored(features, store.format).descriptors)
    assert not sift_store().is_empty() and list(sift_store().ids()) == ["7"]


def test_a_cache_folder_keeps_what_the_web_process_read(s3_settings, tmp_path: Path) -> None:
    from webapp.reranking.local_features import sift_store

    view, _ = render_view(make_scene(3, (200, 260)), np.random.default_rng(3), out_size=(200, 260))
    sift_store().save(11, extract_sift(view, SiftConfig(max_keypoints=100)))  # a worker, no cache
    s3_settings.STORAGE_CACHE_DIR = str(tmp_path / "cache")
    web = sift_store()
    assert isinstance(web.blobs, CachedBlobStore)
    assert list(web.load_many([11])) == [11]
    assert (tmp_path / "cache" / "sift" / web.key_for(11)).is_file()


def test_local_backend_keeps_the_features_root_layout(settings, tmp_path: Path) -> None:
    settings.STORAGE_BACKEND = "local"
    settings.FEATURES_ROOT = tmp_path
    blobs = feature_blobs("sift")
    assert isinstance(blobs, LocalBlobStore) and blobs.root == tmp_path / "sift"


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"STORAGE_BACKEND": "s3"}, "needs AWS_STORAGE_BUCKET_NAME"),
        ({"STORAGE_BACKEND": "nfs"}, "must be local or s3"),
    ],
)
def test_bad_storage_settings_stop_the_process_with_a_clear_message(
    environment: dict[str, str], message: str
) -> None:
    env = {**os.environ, **environment}
    env.pop("AWS_STORAGE_BUCKET_NAME", None)
    result = subprocess.run(
        [sys.executable, "-c", "import webapp.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and message in result.stderr
