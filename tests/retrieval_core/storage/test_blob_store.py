"""BlobStore: the same behaviour on a local folder and on a real S3-compatible server (moto, own process).

The feature stores run on both; on S3 their keys are the local layout, so a deployment can move between
the two by copying files to objects.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import boto3
import numpy as np
import pytest

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.sift import LocalFeatures, SiftConfig, extract_sift
from retrieval_core.features.store import LocalFeatureStore, PatchStore
from retrieval_core.storage import (
    BlobStore,
    CachedBlobStore,
    LocalBlobStore,
    S3BlobStore,
    S3Config,
    StorageConfig,
    open_blob_store,
)
from retrieval_core.storage.dev_server import local_s3_server


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Config]:
    with local_s3_server(bucket="blob-tests") as config:
        yield config


@pytest.fixture(params=["local", "s3", "s3-cached"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """A fresh, empty store of each backend (an S3 prefix per test keeps tests apart in one bucket)."""
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs")
    config: S3Config = request.getfixturevalue("s3_server")
    remote = S3BlobStore(replace(config, prefix=f"t/{uuid.uuid4().hex}"))
    return remote if request.param == "s3" else CachedBlobStore(remote, LocalBlobStore(tmp_path / "cache"))


@pytest.fixture(scope="module")
def feats() -> LocalFeatures:
    view, _ = render_view(make_scene(5, (240, 320)), np.random.default_rng(1), out_size=(240, 320))
    return extract_sift(view, SiftConfig(max_keypoints=200))


def test_put_get_exists_delete_and_list(blobs: BlobStore) -> None:
    assert isinstance(blobs, BlobStore)
    blobs.put("sift/k/0a/1.npz", b"one")
    blobs.put("sift/k/0b/2.npz", b"two")
    blobs.put("other/3.npz", b"three")
    blobs.put("sift/k/0a/1.npz", b"one again")  # overwrite
    assert blobs.get("sift/k/0a/1.npz") == b"one again"
    assert blobs.exists("sift/k/0b/2.npz") and not blobs.exists("sift/k/0b/9.npz")
    assert sorted(blobs.list("sift/")) == ["sift/k/0a/1.npz", "sift/k/0b/2.npz"]
    assert sorted(blobs.list()) == ["other/3.npz", "sift/k/0a/1.npz", "sift/k/0b/2.npz"]
    assert list(blobs.list("nothing/")) == []
    assert blobs.delete("other/3.npz") and not blobs.delete("other/3.npz")
    with pytest.raises(KeyError):
        blobs.get("other/3.npz")


def test_get_many_leaves_out_absent_keys(blobs: BlobStore) -> None:
    for i in range(40):
        blobs.put(f"many/{i}.bin", bytes([i]) * (i + 1))
    wanted = [f"many/{i}.bin" for i in range(0, 50, 2)]
    found = blobs.get_many(wanted)
    assert sorted(found) == sorted(f"many/{i}.bin" for i in range(0, 40, 2))
    assert all(found[f"many/{i}.bin"] == bytes([i]) * (i + 1) for i in range(0, 40, 2))
    assert blobs.get_many([]) == {}


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "a//b", "./a", "a/"])
def test_keys_that_could_escape_or_alias_are_refused(blobs: BlobStore, bad: str) -> None:
    with pytest.raises(ValueError):
        blobs.put(bad, b"x")
    with pytest.raises(ValueError):
        list(blobs.list(bad.rstrip("/") or "x"))  # a prefix must end with "/"


def test_local_store_keeps_the_on_disk_layout_and_leaves_no_temp_files(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    blobs.put("k/ab/7.npz", b"data")
    assert (tmp_path / "k" / "ab" / "7.npz").read_bytes() == b"data"
    assert [p.name for p in (tmp_path / "k" / "ab").iterdir()] == ["7.npz"]
    (tmp_path / "k" / "ab" / ".8.npz.x1.tmp").write_bytes(b"half")  # an unfinished write of another process
    assert list(blobs.list("k/")) == ["k/ab/7.npz"]


def test_feature_stores_on_either_backend_round_trip_and_report_missing_and_corrupt(
    blobs: BlobStore, feats: LocalFeatures, caplog: pytest.LogCaptureFixture
) -> None:
    store = LocalFeatureStore(blobs, "rootsift-v1")
    assert store.is_empty()
    for image_id in (1, 2, 3):
        store.save(image_id, feats)
    blobs.put(store.key_for(3), b"not a zip file")  # a corrupt object
    assert not store.is_empty() and sorted(store.ids()) == ["1", "2", "3"]
    assert store.has(2) and not store.has(4)
    with caplog.at_level(logging.WARNING):
        loaded = store.load_many([1, 2, 3, 4])
    assert sorted(loaded) == [1, 2] and loaded.missing == (3, 4)
    np.testing.assert_array_equal(loaded[2].descriptors, feats.descriptors)
    np.testing.assert_array_equal(loaded[1].keypoints, feats.keypoints)
    assert "unreadable" in caplog.text and store.describe(3) in caplog.text
    assert store.delete(1) and not store.has(1)
    with pytest.raises(KeyError):
        store.load(1)

    patches = PatchStore(blobs, "cnn-top4")
    vectors = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    patches.save("p", vectors)
    np.testing.assert_allclose(patches.load_many(["p"])["p"], vectors, atol=1e-2)


def test_a_local_store_is_the_same_folder_as_before(tmp_path: Path, feats: LocalFeatures) -> None:
    by_path = LocalFeatureStore(tmp_path, "k")
    by_blobs = LocalFeatureStore(LocalBlobStore(tmp_path), "k")
    by_path.save(5, feats)
    assert by_blobs.has(5) and by_blobs.path_for(5) == by_path.path_for(5) == tmp_path / by_path.key_for(5)
    np.testing.assert_array_equal(by_blobs.load(5).descriptors, feats.descriptors)


def test_object_store_features_have_no_file_path(s3_server: S3Config) -> None:
    store = LocalFeatureStore(S3BlobStore(s3_server), "k")
    with pytest.raises(ValueError, match="no file paths"):
        store.path_for(1)
    assert store.describe(1).startswith(f"s3://{s3_server.bucket}/k/")


def test_open_blob_store_scopes_each_folder_under_the_bucket_prefix(
    s3_server: S3Config, tmp_path: Path
) -> None:
    s3 = open_blob_store(StorageConfig(backend="s3", s3=replace(s3_server, prefix="deploy")), "sift")
    s3.put("k/00/1.npz", b"x")
    raw = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    listed = raw.list_objects_v2(Bucket=s3_server.bucket, Prefix="deploy/")["Contents"]
    assert [item["Key"] for item in listed] == ["deploy/sift/k/00/1.npz"]

    local = open_blob_store(StorageConfig(root=tmp_path), "sift")
    local.put("k/00/1.npz", b"x")
    assert (tmp_path / "sift" / "k" / "00" / "1.npz").is_file()
    with pytest.raises(ValueError, match="bucket"):
        StorageConfig(backend="s3")


def test_an_unreachable_object_store_is_an_error_for_one_key_and_a_logged_gap_in_a_bulk_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    config = S3Config("b", endpoint_url=endpoint, access_key_id="x", secret_access_key="x", timeout_s=1)
    dead = S3BlobStore(config)
    with pytest.raises(OSError, match=r"s3://b/k/1\.npz"):
        dead.get("k/1.npz")
    with caplog.at_level(logging.WARNING):
        assert LocalFeatureStore(dead, "k").load_many([1, 2]).missing == (1, 2)
    assert "could not fetch s3://b/k/" in caplog.text and "no stored features for 2 of 2" in caplog.text


def test_a_cached_store_serves_what_it_read_from_its_local_copy(
    s3_server: S3Config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    remote = S3BlobStore(replace(s3_server, prefix=f"c/{uuid.uuid4().hex}"))
    for i in range(3):
        remote.put(f"k/{i}.npz", bytes([i]) * 10)  # written by another process (a worker)
    cached = CachedBlobStore(remote, LocalBlobStore(tmp_path / "cache"))
    found = cached.get_many(["k/0.npz", "k/1.npz", "k/9.npz"])
    assert found == {"k/0.npz": b"\0" * 10, "k/1.npz": b"\1" * 10}
    assert sorted(cached.cache.list("k/")) == ["k/0.npz", "k/1.npz"]
    remote.delete("k/0.npz")  # gone from the bucket: the copy still answers (features never change bytes)
    assert cached.get("k/0.npz") == b"\0" * 10 and cached.get("k/2.npz") == b"\2" * 10
    cached.put("k/5.npz", b"new")
    assert remote.get("k/5.npz") == b"new" and cached.cache.get("k/5.npz") == b"new"
    assert cached.delete("k/5.npz") and not cached.cache.exists("k/5.npz") and not remote.exists("k/5.npz")

    (tmp_path / "not-a-folder").write_bytes(b"")
    broken = CachedBlobStore(remote, LocalBlobStore(tmp_path / "not-a-folder"))
    with caplog.at_level(logging.WARNING):
        assert broken.get("k/1.npz") == b"\1" * 10  # an unusable cache costs speed, not the read
    assert "could not cache" in caplog.text
