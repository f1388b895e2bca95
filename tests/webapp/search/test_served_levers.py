"""The retrieval levers reach the served pipeline from the settings (nothing read inside retrieval_core)."""

from __future__ import annotations

import pytest

from webapp.reranking.fusion import fusion_config
from webapp.reranking.local_features import sift_config, sift_store


@pytest.mark.django_db
def test_lever_settings_configure_the_served_fusion_and_features(settings, live_services) -> None:
    settings.RERANK_MIN_INLIERS = 12
    settings.RERANK_LANDMARK_FIRST = 0.4
    settings.RERANK_LANDMARK_FIRST_MAJORITY = 0.7
    settings.RERANK_LANDMARK_FIRST_LIFT = 2.5
    cfg = fusion_config("sift")
    assert (cfg.min_inliers, cfg.local_method) == (12, "sift")
    assert (cfg.landmark_first, cfg.landmark_first_majority, cfg.landmark_first_lift) == (0.4, 0.7, 2.5)
    assert fusion_config("none").weight_global == 1.0
    settings.RERANK_VERIFIED_EXPANSION = 3
    from webapp.search.pipeline import served_pipeline

    assert served_pipeline("sift").config.verified_expansion == 3
    assert served_pipeline("none").config.verified_expansion == 0
    plain_key = sift_store().extractor_key
    settings.SIFT_UPRIGHT = True
    assert sift_config().upright and sift_config(query=True).upright
    assert sift_store().extractor_key != plain_key  # upright features never mix with rotated ones


@pytest.mark.django_db
def test_served_sift_reads_candidates_through_one_bounded_cache_per_store(settings, tmp_path) -> None:
    from retrieval_core.rerank.feature_lru import CachedFeatureSource
    from webapp.embeddings.services import get_active_version
    from webapp.reranking.scoring import build_scorer, clear_feature_caches

    settings.FEATURES_ROOT = tmp_path
    settings.RERANK_FEATURE_CACHE_MB = 8
    clear_feature_caches()
    version = get_active_version()
    first = build_scorer("sift", version, min_inliers=12)
    again = build_scorer("sift", version, min_inliers=12)
    assert isinstance(first.features, CachedFeatureSource)  # type: ignore[attr-defined]
    assert first.features is again.features and first.features.max_bytes == 8 * 2**20  # type: ignore[attr-defined]
    settings.FEATURES_ROOT = tmp_path / "other"
    assert build_scorer("sift", version, min_inliers=12).features is not first.features  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_landmark_shares_count_indexed_photos_only() -> None:
    import numpy as np

    from retrieval_core.datasets.synthetic import make_scene, render_view
    from tests.conftest import encode_jpeg
    from webapp.catalog.models import Image
    from webapp.catalog.services import get_or_create_landmark, register_image
    from webapp.search.pipeline import CatalogueLandmarkShares

    big, small = get_or_create_landmark("Big"), get_or_create_landmark("Small")
    labels = [big, big, big, small, None, small]
    ids = [
        register_image(
            encode_jpeg(render_view(make_scene(i, (96, 128)), np.random.default_rng(i), (96, 128))[0]),
            original_name=f"{i}.jpg",
            landmark=label,
            schedule=False,
        ).image.pk
        for i, label in enumerate(labels)
    ]
    Image.objects.filter(pk__in=ids[:5]).update(status=Image.Status.INDEXED)  # the last one is pending
    shares = CatalogueLandmarkShares().shares([big.pk, small.pk, 999_999])
    assert shares == {big.pk: pytest.approx(3 / 5), small.pk: pytest.approx(1 / 5)}
    assert CatalogueLandmarkShares().shares([]) == {}
