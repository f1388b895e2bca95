"""STORAGE_BACKEND=s3: the files one process publishes whole and others load (VLAD codebooks with their
whitening, model version checkpoints) live in the bucket, and readers load them from there through
STORAGE_CACHE_DIR; a real S3-compatible server process on loopback, no mocked client. With the default
local backend they stay the files under FEATURES_ROOT / VAR_DIR that they always were."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.vlad import codebook_from_bytes
from retrieval_core.models.embedding import EmbeddingConfig, build_embedding_net
from retrieval_core.storage import S3Config
from retrieval_core.storage.dev_server import local_s3_server
from tests.conftest import encode_jpeg
from tests.deploy.buckets import bucket_client, use_bucket
from webapp.storage import StoredFileUnavailable

PREFIX = "site-p"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Config]:
    with local_s3_server(bucket="landmarks-published") as config:
        yield config


@pytest.fixture
def s3_files(settings, s3_server: S3Config, tmp_path: Path):
    """Features, codebooks and checkpoints in the bucket; the web process reads through a cache folder."""
    use_bucket(settings, s3_server, PREFIX, tmp_path / "features")  # FEATURES_ROOT must stay empty
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGE_CACHE_DIR = str(tmp_path / "cache")
    return settings


def _object(reference: str, config: S3Config) -> str:
    """The object key of an ``s3://bucket/key`` reference."""
    assert reference.startswith(f"s3://{config.bucket}/{PREFIX}/")
    return reference.removeprefix(f"s3://{config.bucket}/")


def _register_photos(count: int) -> list[int]:
    from webapp.catalog.services import register_image

    rng = np.random.default_rng(5)
    scene = make_scene(3, (240, 320))
    ids = []
    for n in range(count):
        view, _ = render_view(scene, rng, out_size=(240, 320))
        photo = encode_jpeg(view)
        ids.append(register_image(photo, original_name=f"{n}.jpg", schedule=False).image.pk)
    return ids


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_codebook_built_on_s3_is_in_the_bucket_and_the_vlad_scorer_loads_it_from_there(
    s3_files, s3_server: S3Config, empty_vector_store: None
) -> None:
    from retrieval_core.rerank.vlad_scorer import VladScorer
    from webapp.embeddings.services import get_active_version
    from webapp.reranking import local_features
    from webapp.reranking.scoring import RerankUnavailable, build_scorer

    ids = _register_photos(3)
    assert local_features.extract_local_features(ids)["extracted"] == 3  # SIFT into the bucket
    codebook = local_features.build_codebook(8, whitening_dim=2)

    # All three files are objects under STORAGE_PREFIX/codebooks/, named by their content; none is local.
    stem = _object(codebook.path, s3_server).removesuffix(".npy")
    assert stem.startswith(f"{PREFIX}/codebooks/{codebook.key}-")
    bucket = bucket_client(s3_server)
    stored = {
        suffix: bucket.get_object(Bucket=s3_server.bucket, Key=stem + suffix)["Body"].read()
        for suffix in (".npy", ".json", ".pca.npz")
    }
    assert not Path(s3_files.FEATURES_ROOT).exists()

    # The web process (a cold encoder cache) loads it from the bucket, keeping a copy in STORAGE_CACHE_DIR.
    local_features.clear_caches()
    scorer = build_scorer("vlad", get_active_version(), min_inliers=8)
    assert isinstance(scorer, VladScorer)
    centroids = codebook_from_bytes(stored[".npy"], stored[".json"])[0]
    np.testing.assert_array_equal(scorer.encoder.centroids, centroids)
    assert scorer.encoder.whitening is not None and scorer.encoder.dim == 2
    cached = Path(s3_files.STORAGE_CACHE_DIR) / "codebooks" / (stem.rpartition("/")[2] + ".npy")
    assert cached.read_bytes() == stored[".npy"]
    # The cpu workers encode every image's VLAD with the same codebook, read from the bucket too.
    assert local_features.extract_local_features(ids)["vlad"] == 3

    # Its object gone (and no cached copy): a clear refusal that says what to do, not a crash.
    bucket.delete_object(Bucket=s3_server.bucket, Key=stem + ".npy")
    shutil.rmtree(s3_files.STORAGE_CACHE_DIR)
    local_features.clear_caches()
    with pytest.raises(RerankUnavailable, match=r"no such object in the bucket.*build_local_features --vlad"):
        build_scorer("vlad", get_active_version(), min_inliers=8)
    with pytest.raises(StoredFileUnavailable, match=r"codebooks/.*\.npy: no such object"):
        local_features.extract_local_features(ids)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_codebook_stays_a_file_under_features_root_by_default(
    settings, tmp_path: Path, empty_vector_store: None
) -> None:
    from webapp.reranking import local_features

    settings.MEDIA_ROOT = tmp_path / "media"
    settings.FEATURES_ROOT = tmp_path / "features"
    ids = _register_photos(3)
    local_features.extract_local_features(ids)
    codebook = local_features.build_codebook(8)
    assert codebook.path == str(tmp_path / "features" / "codebooks" / f"{codebook.key}.npy")
    assert Path(codebook.path).is_file() and Path(codebook.settings_path).is_file()
    local_features.clear_caches()
    assert local_features.vlad_encoder(codebook).centroids.shape == (8, 128)


def _trained_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint as the trainer writes ``best.pt`` (weights and embedding settings), with
    weights no other model has, so that loading them back is a real check."""
    net = build_embedding_net(EmbeddingConfig())
    state = {key: value.clone() for key, value in net.state_dict().items()}
    state["pool.p"] = torch.full_like(state["pool.p"], 3.5)
    first = next(key for key, value in state.items() if value.dtype.is_floating_point and value.ndim == 4)
    state[first] += 0.01
    config = EmbeddingConfig()
    embedding = {"backbone": config.backbone, "image_size": config.image_size, "gem_p": config.gem_p}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state, "embedding": embedding}, path)
    return state


@pytest.mark.django_db
def test_a_published_checkpoint_is_what_a_model_version_loads(
    s3_files, s3_server: S3Config, tmp_path: Path, scene_photo: bytes
) -> None:
    from webapp.embeddings import services as embeddings
    from webapp.embeddings.models import EmbeddingModelVersion

    best = tmp_path / "var" / "training" / "1-run" / "best.pt"
    state = _trained_checkpoint(best)
    version = embeddings.register_checkpoint(best, name="run 1 e3")
    key = _object(version.weights, s3_server)
    assert key.startswith(f"{PREFIX}/models/") and key.endswith(".pt")
    uploaded = bucket_client(s3_server).get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
    assert uploaded == best.read_bytes()
    best.unlink()  # the worker's VAR_DIR is not the web server's: only the bucket has it now

    # The web process: the version's weights are loaded once, through a copy in STORAGE_CACHE_DIR.
    embeddings.get_extractor.cache_clear()
    loaded = embeddings.get_extractor(version.config).net.state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in state.items())
    assert (Path(s3_files.STORAGE_CACHE_DIR) / "models" / Path(key).name).is_file()

    # Without a cache folder, a temporary copy while loading, removed after.
    s3_files.STORAGE_CACHE_DIR = ""
    embeddings.get_extractor.cache_clear()
    assert torch.equal(embeddings.get_extractor(version.config).net.state_dict()["pool.p"], state["pool.p"])

    # The object gone: a ConnectionError naming it (a search answers 503), not a crash or a random net.
    bucket_client(s3_server).delete_object(Bucket=s3_server.bucket, Key=key)
    embeddings.get_extractor.cache_clear()
    with pytest.raises(StoredFileUnavailable, match=r"models/.*\.pt: no such object in the bucket") as error:
        embeddings.get_extractor(version.config)
    assert isinstance(error.value, ConnectionError) and error.value.missing
    EmbeddingModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    upload = SimpleUploadedFile("q.jpg", scene_photo, content_type="image/jpeg")
    response = Client().post("/api/search/", {"image": upload})
    assert response.status_code == 503 and "cannot be read" in response.json()["error"]


@pytest.mark.django_db
def test_a_checkpoint_stays_where_training_wrote_it_by_default(settings, tmp_path: Path) -> None:
    """Local backend: nothing is copied, the version records the file's path as it always did."""
    from webapp.embeddings import services as embeddings

    settings.FEATURES_ROOT = tmp_path / "features"
    best = tmp_path / "var" / "training" / "2-run" / "best.pt"
    _trained_checkpoint(best)
    version = embeddings.register_checkpoint(best, name="run 2 e3")
    assert version.weights == str(best) and not (tmp_path / "features").exists()
    assert embeddings.get_extractor(version.config).net.state_dict()["pool.p"].item() == 3.5


def test_a_reference_outside_this_process_bucket_is_refused_with_the_reason(s3_files) -> None:
    from webapp.storage import read_file

    for reference in ("s3://another-bucket/x/models/a.pt", f"s3://landmarks-published/{PREFIX}/sift/a.npz"):
        with pytest.raises(StoredFileUnavailable, match="not a codebook or checkpoint under"):
            read_file(reference)
    s3_files.STORAGE_BACKEND = "local"
    with pytest.raises(StoredFileUnavailable, match="STORAGE_BACKEND=local"):
        read_file(f"s3://landmarks-published/{PREFIX}/models/a.pt")
