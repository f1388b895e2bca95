from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.sift import LocalFeatures, SiftConfig, extract_sift
from retrieval_core.features.store import LocalFeatureStore
from retrieval_core.features.vlad import train_codebook
from retrieval_core.rerank.fusion import Candidate, FusionConfig
from retrieval_core.rerank.reranker import Reranker, RerankerConfig

SIZE = (300, 400)  # (height, width)
CFG = SiftConfig(max_keypoints=800)


@pytest.fixture(scope="module")
def world() -> dict:
    """A query view of scene 0, the true match (another view of scene 0) and five distractor scenes."""
    rng = np.random.default_rng(7)
    scene = make_scene(300, SIZE)
    query_view, h_query = render_view(scene, rng, SIZE)
    match_view, h_match = render_view(scene, rng, SIZE)
    features = {"match": extract_sift(match_view, CFG)}
    for i in range(5):
        features[f"other{i}"] = extract_sift(render_view(make_scene(301 + i, SIZE), rng, SIZE)[0], CFG)
    return {
        "query_view": query_view,
        "query": extract_sift(query_view, CFG),
        "features": features,
        "h_query_to_match": h_match @ np.linalg.inv(h_query),
    }


def _candidates() -> list[Candidate]:
    """Global ranking with the true match 5th."""
    ids = ["other0", "other1", "other2", "other3", "match", "other4"]
    return [Candidate(i, s) for i, s in zip(ids, [0.90, 0.88, 0.86, 0.84, 0.80, 0.78], strict=True)]


def _reprojection_error(points: np.ndarray, h: np.ndarray) -> np.ndarray:
    p = np.hstack([points[:, :2], np.ones((len(points), 1))]) @ h.T
    return np.linalg.norm(p[:, :2] / p[:, 2:] - points[:, 2:], axis=1)


def test_true_match_fifth_by_global_ends_first(world: dict, tmp_path: Path) -> None:
    store = LocalFeatureStore(tmp_path, CFG.key)
    for image_id, feats in world["features"].items():
        store.save(image_id, feats)
    candidates = _candidates()
    loaded = store.load_many([c.image_id for c in candidates])
    result = Reranker().rerank(world["query"], candidates, loaded)

    assert result.hits[0].image_id == "match"
    top = result.hits[0]
    assert top.global_rank == 4 and top.evidence is not None and top.evidence.inliers > 50
    assert top.local_score is not None and top.local_score > 0.9
    assert all(h.evidence is not None and h.evidence.inliers < 12 for h in result.hits[1:])
    assert sorted(h.image_id for h in result.hits) == sorted(c.image_id for c in candidates)
    assert [h.fused_score for h in result.hits] == sorted((h.fused_score for h in result.hits), reverse=True)
    # Matched pairs are drawable: original pixel coordinates that follow the true homography.
    points = top.evidence.points
    assert points.shape == (top.evidence.inliers, 4) and points.dtype == np.float32
    assert np.median(_reprojection_error(points, world["h_query_to_match"])) < 2.0
    assert result.missing == ()
    assert set(result.timings) >= {"match", "verify", "fuse", "total"}
    assert all(v >= 0 for v in result.timings.values())
    assert result.timings["total"] >= result.timings["match"] + result.timings["verify"]


def test_enlarged_query_is_verified_in_its_own_pixels(world: dict) -> None:
    big = cv2.resize(world["query_view"], (SIZE[1] * 2, SIZE[0] * 2), interpolation=cv2.INTER_CUBIC)
    query = extract_sift(big, SiftConfig(max_keypoints=800, long_side=SIZE[1]))
    assert query.pixel_scale == pytest.approx(2.0)
    result = Reranker().rerank(query, _candidates(), world["features"])
    top = result.hits[0]
    assert top.image_id == "match" and top.evidence is not None and top.evidence.inliers > 50
    half = np.diag([0.5, 0.5, 1.0])  # big query pixels -> original query pixels
    error = _reprojection_error(top.evidence.points, world["h_query_to_match"] @ half)
    assert np.median(error) < 2.0


def test_missing_and_empty_features_keep_their_global_score(
    world: dict, caplog: pytest.LogCaptureFixture
) -> None:
    blank = extract_sift(np.full((200, 300, 3), 90, np.uint8), CFG)
    assert len(blank) == 0
    features: dict[str, LocalFeatures] = {"blank": blank, "match": world["features"]["match"]}
    candidates = [Candidate("gone", 0.95), Candidate("blank", 0.9), Candidate("match", 0.5)]
    with caplog.at_level(logging.WARNING, logger="retrieval_core.rerank.reranker"):
        result = Reranker().rerank(world["query"], candidates, features)
    by_id = {h.image_id: h for h in result.hits}
    for image_id, score in (("gone", 0.95), ("blank", 0.9)):
        assert by_id[image_id].local_score is None and by_id[image_id].evidence is None
        assert by_id[image_id].fused_score == pytest.approx(score)
    assert by_id["match"].local_score is not None and by_id["match"].local_score > 0.9
    assert set(result.missing) == {"gone", "blank"}
    assert "no local features for 1 of 3" in caplog.text and "no keypoints in 1 of 3" in caplog.text


def test_query_without_keypoints_keeps_global_order(world: dict, caplog: pytest.LogCaptureFixture) -> None:
    query = extract_sift(np.zeros((100, 100), np.uint8), CFG)
    with caplog.at_level(logging.WARNING, logger="retrieval_core.rerank.reranker"):
        result = Reranker().rerank(query, _candidates(), world["features"])
    assert [h.image_id for h in result.hits] == [c.image_id for c in _candidates()]
    assert all(h.local_score is None for h in result.hits)
    assert "query has no keypoints" in caplog.text


def test_only_top_k_are_reranked(world: dict) -> None:
    cfg = RerankerConfig(fusion=FusionConfig(top_k=3))
    candidates = [
        *_candidates()[:2],
        Candidate("match", 0.75),
        *_candidates()[2:4],
        Candidate("other4", 0.05),
    ]
    result = Reranker(cfg).rerank(world["query"], candidates, world["features"])
    assert [h.image_id for h in result.hits][:1] == ["match"]
    assert [h.image_id for h in result.hits][3:] == ["other2", "other3", "other4"]  # global order kept
    assert all(h.local_score is None for h in result.hits[3:])
    assert [h.global_rank for h in result.hits[3:]] == [3, 4, 5]


def test_vlad_local_method_prefers_the_true_match(world: dict) -> None:
    descriptors = np.vstack([f.descriptors for f in world["features"].values()])
    codebook = train_codebook(descriptors, k=16, seed=0)
    cfg = RerankerConfig(fusion=FusionConfig(local_method="vlad"))
    result = Reranker(cfg, codebook=codebook).rerank(world["query"], _candidates(), world["features"])
    local = {h.image_id: h.local_score for h in result.hits}
    assert max(local, key=lambda i: local[i] or 0.0) == "match"
    with pytest.raises(ValueError):
        Reranker(cfg)
    with pytest.raises(ValueError):
        Reranker(RerankerConfig(fusion=FusionConfig(local_method="patches")))
