from __future__ import annotations

import math

import numpy as np
import pytest

from retrieval_core.rerank.fusion import (
    Candidate,
    FusionConfig,
    fuse,
    normalise_global,
    normalise_local,
    rank_fused,
)
from retrieval_core.rerank.scorer import LocalScores
from retrieval_core.search.pipeline import ScoredCandidates
from retrieval_core.search.tuning import tune_fusion_weight


def test_inlier_normalisation_matches_the_documented_curve() -> None:
    cfg = FusionConfig(inlier_saturation=20.0, min_inliers=8)
    scores = normalise_local(np.array([0, 5, 8, 20, 40, 60, 500, np.nan]), cfg)
    np.testing.assert_allclose(scores[:3], 0.0)  # chance level carries no evidence
    np.testing.assert_allclose(scores[3:6], [0.45, 0.80, 0.93], atol=0.01)
    assert 0.999 < scores[6] <= 1.0
    assert math.isnan(scores[7])
    assert np.all(np.diff(normalise_local(np.arange(200.0), cfg)) >= 0)


def test_cosine_local_scores_are_clipped() -> None:
    for method in ("vlad", "patches"):
        cfg = FusionConfig(local_method=method)  # type: ignore[arg-type]
        np.testing.assert_allclose(normalise_local(np.array([-0.3, 0.4, 1.2]), cfg), [0.0, 0.4, 1.0])
    np.testing.assert_allclose(normalise_global(np.array([-0.2, 0.5, 1.0])), [0.0, 0.5, 1.0])


def test_fuse_weights_and_missing_local() -> None:
    g = np.array([0.9, 0.5, 0.6])
    local = np.array([0.0, 100.0, np.nan])
    np.testing.assert_allclose(fuse(g, local, FusionConfig(weight_global=1.0)), g)
    only_local = fuse(g, local, FusionConfig(weight_global=0.0))
    np.testing.assert_allclose(only_local[:2], normalise_local(local[:2], FusionConfig()))
    assert only_local[2] == pytest.approx(0.6)  # missing local: global score kept
    mixed = fuse(g, local, FusionConfig(weight_global=0.7))
    assert mixed[0] == pytest.approx(0.63) and mixed[2] == pytest.approx(0.6)
    with pytest.raises(ValueError):
        fuse(g, local[:2], FusionConfig())


def test_rank_fused_orders_by_fused_then_global_rank() -> None:
    candidates = [Candidate(f"id{i}", s) for i, s in enumerate([0.8, 0.7, 0.7, 0.6])]
    hits = rank_fused(candidates, [0.0, None, 0.0, 80.0], FusionConfig(weight_global=0.5))
    assert [h.image_id for h in hits] == ["id3", "id1", "id0", "id2"]
    assert [h.global_rank for h in hits] == [3, 1, 0, 2]
    assert hits[1].local_score is None and hits[1].fused_score == pytest.approx(0.7)
    assert hits[0].local_score is not None and hits[0].local_score > 0.9
    assert rank_fused([], [], FusionConfig()) == []
    with pytest.raises(ValueError):
        rank_fused(candidates, [1.0], FusionConfig())


@pytest.mark.parametrize(
    "kwargs",
    [{"weight_global": 1.5}, {"top_k": 0}, {"local_method": "orb"}, {"inlier_saturation": 0.0}],
)
def test_config_is_validated(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FusionConfig(**kwargs)  # type: ignore[arg-type]


def _validation_queries(
    informative: bool, n_queries: int = 30, n: int = 50, seed: int = 0
) -> tuple[list[ScoredCandidates], list[set[int]]]:
    """Global scores put the relevant images mid-list; local inliers are high for them if informative."""
    rng = np.random.default_rng(seed)
    scored, positives = [], []
    for _ in range(n_queries):
        relevant = np.zeros(n, bool)
        relevant[rng.choice(n, 3, replace=False)] = True
        g = np.sort(rng.uniform(0.4, 0.8, n))[::-1] + np.where(relevant, 0.02, 0.0)
        if informative:
            local = np.where(relevant, rng.uniform(40, 200, n), rng.uniform(0, 10, n))
        else:
            local = rng.uniform(0, 200, n)
        scored.append(ScoredCandidates(tuple(range(n)), g, (None,) * n, LocalScores(local), "sift"))
        positives.append(set(np.flatnonzero(relevant).tolist()))
    return scored, positives


def test_tuning_picks_local_when_it_helps_and_global_when_it_does_not() -> None:
    fusion = FusionConfig(top_k=50)
    best, table = tune_fusion_weight(*_validation_queries(informative=True), fusion=fusion)
    scores = dict(table)
    assert len(table) == 21 and best < 1.0
    assert scores[best] == pytest.approx(1.0) and scores[best] > scores[1.0] + 0.3
    # Ties go to the largest weight_global reaching the best score.
    assert all(score < scores[best] for v, score in table if v > best)

    best_noise, table_noise = tune_fusion_weight(*_validation_queries(informative=False), fusion=fusion)
    assert best_noise >= 0.8
    assert dict(table_noise)[best_noise] >= dict(table_noise)[0.0]


def test_tuning_counts_relevant_images_the_search_missed_and_ignores_junk() -> None:
    scored, positives = _validation_queries(informative=True, n_queries=5)
    fusion = FusionConfig(top_k=50)
    _, full = tune_fusion_weight(scored, positives, fusion=fusion, grid=[0.0])
    missed = [p | {f"not retrieved {i}" for i in range(3)} for p in positives]
    _, halved = tune_fusion_weight(scored, missed, fusion=fusion, grid=[0.0])
    assert full[0][1] == pytest.approx(1.0) and halved[0][1] == pytest.approx(0.5)
    # Junk ranked above the positives does not count against them: global order, all others junk.
    _, global_only = tune_fusion_weight(scored, positives, fusion=fusion, grid=[1.0])
    junk = [set(s.ids) - p for s, p in zip(scored, positives, strict=True)]
    _, with_junk = tune_fusion_weight(scored, positives, junk, fusion=fusion, grid=[1.0])
    assert global_only[0][1] < 0.9 and with_junk[0][1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        tune_fusion_weight(scored, positives[:2], fusion=fusion)


def test_promote_puts_the_flagged_hits_first_and_keeps_each_tiers_order() -> None:
    from retrieval_core.rerank.fusion import RerankedHit, promote, two_tiers

    hits = [RerankedHit(i, 0.5, None, fused, i) for i, fused in enumerate([0.9, 0.7, 0.4, 0.1])]
    promoted = promote(hits, [False, True, False, True])
    assert [h.image_id for h in promoted] == [1, 3, 0, 2]
    assert [h.fused_score for h in promoted] == pytest.approx([0.85, 0.55, 0.45, 0.2])
    np.testing.assert_allclose(two_tiers(np.array([0.0, 1.0]), np.array([True, False])), [0.5, 0.5])
    with pytest.raises(ValueError, match="one flag per hit"):
        promote(hits, [True])
