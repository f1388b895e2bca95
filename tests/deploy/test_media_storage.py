"""MEDIA_STORAGE=s3: photos, thumbnails and other media live in the feature store's bucket under
STORAGE_PREFIX/media/ (a real S3-compatible server process on loopback, no mocked client), and the
indexing, local-feature and analysis services the Celery tasks call read them back from there."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.test import Client

from retrieval_core.imaging import ImageLoadError
from retrieval_core.storage import S3Config
from retrieval_core.storage.dev_server import local_s3_server
from tests.deploy.buckets import bucket_client, use_bucket
from webapp.media import MediaS3Storage, MediaUnavailable, list_media, local_media_paths, replace_media

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "site-m"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Config]:
    with local_s3_server(bucket="landmarks-photos") as config:
        yield config


@pytest.fixture
def s3_media(settings, s3_server: S3Config, tmp_path: Path):
    """Features and media in the bucket; MEDIA_ROOT and FEATURES_ROOT must stay empty."""
    use_bucket(settings, s3_server, PREFIX, tmp_path / "features")
    settings.MEDIA_STORAGE = "s3"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGE_CACHE_DIR = ""
    # Setting STORAGES makes Django build default_storage again, from the settings above.
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "webapp.media.MediaS3Storage"}}
    return settings


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_photo_goes_to_the_bucket_and_indexing_reads_it_from_there(
    s3_media, s3_server: S3Config, scene_photo: bytes, empty_vector_store: None
) -> None:
    from webapp.catalog.models import Image
    from webapp.catalog.services import register_image
    from webapp.curation.analysis import analyse_quality
    from webapp.embeddings import services as embeddings
    from webapp.reranking.local_features import extract_local_features, sift_store

    image = register_image(scene_photo, original_name="a.jpg", source="a.jpg", schedule=False).image
    # The content-addressed names of local storage, as object keys under STORAGE_PREFIX/media/.
    assert image.file.name.startswith("images/") and image.thumbnail.name.startswith("thumbs/")
    bucket = bucket_client(s3_server)
    stored = bucket.get_object(Bucket=s3_server.bucket, Key=f"{PREFIX}/media/{image.file.name}")
    assert stored["Body"].read() == scene_photo
    bucket.head_object(Bucket=s3_server.bucket, Key=f"{PREFIX}/media/{image.thumbnail.name}")
    assert not Path(s3_media.MEDIA_ROOT).exists()  # nothing went to the local folder

    # What the gpu, cpu and analysis tasks call: each reads the photo back from the bucket.
    assert embeddings.index_images([image.pk]) == {"indexed": 1, "failed": 0}
    assert embeddings.get_store(embeddings.get_active_version()).count() == 1
    assert extract_local_features([image.pk])["extracted"] == 1
    assert sift_store().has(image.pk)
    assert analyse_quality([image.pk])["unreadable"] == 0
    assert not Path(s3_media.MEDIA_ROOT).exists() and not Path(s3_media.FEATURES_ROOT).exists()

    # Pages link it as before, and the web server streams it from the bucket.
    assert image.file.url == f"/media/{image.file.name}"
    response = Client().get(image.file.url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == scene_photo
    assert Client().get("/media/images/no-such-photo.jpg").status_code == 404

    # A photo gone from the bucket fails with the reason, as a missing file does: no silent fallback.
    default_storage.delete(image.file.name)
    assert embeddings.index_images([image.pk]) == {"indexed": 0, "failed": 1}
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED and "File not found" in image.index_error


@pytest.mark.django_db
def test_an_unreachable_store_is_not_the_photos_fault(s3_media, scene_photo: bytes) -> None:
    """Indexing raises a ConnectionError (the task retries it) instead of marking the photo failed, and the
    media URL answers 503, not 500."""
    from webapp.catalog.models import Image
    from webapp.catalog.services import register_image
    from webapp.embeddings import services as embeddings

    image = register_image(scene_photo, original_name="b.jpg", schedule=False).image
    s3_media.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    s3_media.STORAGES = {**s3_media.STORAGES}  # a new default_storage with that endpoint
    with pytest.raises(MediaUnavailable):
        embeddings.index_images([image.pk])
    assert Image.objects.get(pk=image.pk).status == Image.Status.PENDING
    assert Client().get(image.file.url).status_code == 503
    # "More like this" reads the photo first: the store's outage is a 503 with its reason, not a 500.
    Image.objects.filter(pk=image.pk).update(status=Image.Status.INDEXED)
    similar = Client().get(f"/api/images/{image.pk}/similar/")
    assert similar.status_code == 503 and "photo store" in similar.json()["error"]


def test_local_copies_reports_and_listing_on_the_bucket(s3_media, tmp_path: Path) -> None:
    assert isinstance(storages["default"], MediaS3Storage)
    name = default_storage.save("images/00/copy-me.jpg", ContentFile(b"jpeg bytes"))
    s3_media.STORAGE_CACHE_DIR = str(tmp_path / "cache")
    with local_media_paths() as local_path:
        path = local_path(name)
        assert path == tmp_path / "cache" / "media" / name and path.read_bytes() == b"jpeg bytes"
        with pytest.raises(ImageLoadError, match=r"File not found: images/00/gone\.jpg"):
            local_path("images/00/gone.jpg")
    assert path.is_file()  # the cache folder keeps it: photo names are content-addressed

    s3_media.STORAGE_CACHE_DIR = ""
    with local_media_paths() as local_path:
        temporary = local_path(name)
        assert temporary.read_bytes() == b"jpeg bytes"
    assert not temporary.exists()  # without a cache folder, the copies go with the block

    replace_media("evaluations/1/plot.png", b"old")
    replace_media("evaluations/1/plot.png", b"new")  # a re-run replaces, under the same name
    assert list_media("evaluations/1") == ["evaluations/1/plot.png"]
    assert default_storage.open("evaluations/1/plot.png").read() == b"new"
    assert list_media("evaluations/2") == []


def test_local_media_are_served_from_media_root_and_bad_names_are_no_500(settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    name = default_storage.save("images/00/local.jpg", ContentFile(b"local bytes"))
    client = Client()
    response = client.get(f"/media/{name}")
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"local bytes"
    assert response["Content-Type"] == "image/jpeg"
    assert client.get("/media/images/00/missing.jpg").status_code == 404
    assert client.get("/media/images/00").status_code == 404  # a folder
    assert client.get("/media/images/%00.jpg").status_code == 404
    assert client.get("/media/../../etc/passwd").status_code in (400, 404)
    with local_media_paths() as local_path:
        assert local_path(name) == tmp_path / "media" / name  # the stored file itself, no copy


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"MEDIA_STORAGE": "s3", "STORAGE_BACKEND": "local"}, "MEDIA_STORAGE=s3 needs STORAGE_BACKEND=s3"),
        ({"MEDIA_STORAGE": "bucket"}, "MEDIA_STORAGE must be local or s3"),
    ],
)
def test_bad_media_settings_stop_the_process_with_a_clear_message(
    environment: dict[str, str], message: str
) -> None:
    env = {**os.environ, "AWS_STORAGE_BUCKET_NAME": "b", **environment}
    result = subprocess.run(
        [sys.executable, "-c", "import webapp.settings"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr and message in result.stderr
