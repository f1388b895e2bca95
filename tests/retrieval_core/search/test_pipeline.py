"""The one search pipeline: exact index -> local scorer -> fusion -> ranked hits with evidence."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.sift import LocalFeatures, SiftConfig, extract_sift
from retrieval_core.features.store import LocalFeatureStore, PatchStore
from retrieval_core.features.vlad import VladEncoder, fit_pca_whitening, train_codebook, vlad
from retrieval_core.index.exact import ExactIndex
from retrieval_core.index.filters import SearchFilters
from retrieval_core.rerank.fusion import FusionConfig
from retrieval_core.rerank.patch_scorer import PatchScorer
from retrieval_core.rerank.scorer import GlobalOnlyScorer, LocalScorer, QueryFeatures
from retrieval_core.rerank.sift_scorer import SiftScorer
from retrieval_core.rerank.vlad_scorer import VladScorer
from retrieval_core.search.config import SearchConfig
from retrieval_core.search.pipeline import SearchPipeline

SIZE = (300, 400)  # (height, width)
CFG = SiftConfig(max_keypoints=800)
IDS = ["other0", "other1", "other2", "other3", "match", "other4"]
GLOBAL = [0.90, 0.88, 0.86, 0.84, 0.80, 0.78]  # the true match is 5th by global score


class VectorsOf:
    """A stand-in for the network: each decoded image's vector is looked up by its size."""

    def __init__(self, vectors: dict[tuple[int, int], np.ndarray], dim: int = 2) -> None:
        self.vectors = vectors
        self.dim = dim

    def extract_with_patches(
        self, images: Sequence[Image.Image], patch_top_n: int, batch_size: int = 16
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        return np.stack([self.vectors[image.size] for image in images]), []


def _unit(score: float) -> np.ndarray:
    """A 2-d unit vector whose inner product with [1, 0] is ``score``."""
    return np.array([score, np.sqrt(1 - score**2)], np.float32)


def _index(ids: Sequence[str] = IDS, scores: Sequence[float] = GLOBAL) -> ExactIndex:
    return ExactIndex(list(ids), np.stack([_unit(s) for s in scores]))


def _pipeline(scorer: LocalScorer, **fusion: object) -> SearchPipeline:
    config = SearchConfig(k=6, fusion=FusionConfig(**fusion))  # type: ignore[arg-type]
    return SearchPipeline(VectorsOf({}), _index(), scorer, config)


QUERY_VECTOR = np.array([1.0, 0.0], np.float32)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A query view of scene 0, the true match (another view of scene 0) and five distractor scenes."""
    rng = np.random.default_rng(7)
    scene = make_scene(300, SIZE)
    query_view, h_query = render_view(scene, rng, SIZE)
    match_view, h_match = render_view(scene, rng, SIZE)
    features = {"match": extract_sift(match_view, CFG)}
    for i in range(5):
        features[f"other{i}"] = extract_sift(render_view(make_scene(301 + i, SIZE), rng, SIZE)[0], CFG)
    store = LocalFeatureStore(tmp_path_factory.mktemp("sift"), CFG.key)
    for image_id, feats in features.items():
        store.save(image_id, feats)
    return {
        "query_view": query_view,
        "query": extract_sift(query_view, CFG),
        "features": features,
        "store": store,
        "h_query_to_match": h_match @ np.linalg.inv(h_query),
    }


def _reprojection_error(points: np.ndarray, h: np.ndarray) -> np.ndarray:
    p = np.hstack([points[:, :2], np.ones((len(points), 1))]) @ h.T
    return np.linalg.norm(p[:, :2] / p[:, 2:] - points[:, 2:], axis=1)


def test_true_match_fifth_by_global_ends_first(world: dict) -> None:
    pipeline = _pipeline(SiftScorer(world["store"], CFG))
    result = pipeline.search_query(QueryFeatures(QUERY_VECTOR, sift=world["query"]))

    assert result.method == "sift" and result.missing == 0
    top = result.hits[0]
    assert top.image_id == "match"
    assert top.global_rank == 4 and top.evidence is not None and top.evidence.inliers > 50
    assert top.local_score is not None and top.local_score > 0.9
    assert all(h.evidence is not None and h.evidence.inliers < 12 for h in result.hits[1:])
    assert sorted(h.image_id for h in result.hits) == sorted(IDS)
    assert [h.fused_score for h in result.hits] == sorted((h.fused_score for h in result.hits), reverse=True)
    # Matched pairs are drawable: original pixel coordinates that follow the true homography.
    points = top.evidence.points
    assert points.shape == (top.evidence.inliers, 4) and points.dtype == np.float32
    assert np.median(_reprojection_error(points, world["h_query_to_match"])) < 2.0
    assert {"ann", "rerank_load", "rerank_match", "rerank_verify", "rerank_local", "fuse"} <= set(
        result.timings_ms
    )
    assert all(v >= 0 for v in result.timings_ms.values())


def test_the_query_is_decoded_and_its_sift_computed_from_the_photo(world: dict, tmp_path: Path) -> None:
    photo = tmp_path / "query.png"
    Image.fromarray(world["query_view"]).save(photo)
    embedder = VectorsOf({(SIZE[1], SIZE[0]): QUERY_VECTOR})
    pipeline = SearchPipeline(embedder, _index(), SiftScorer(world["store"], CFG), SearchConfig(k=3))
    result = pipeline.search(photo.read_bytes())
    assert result.hits[0].image_id == "match" and len(result.hits) == 6
    assert result.query.image is not None and result.query.image.size == (SIZE[1], SIZE[0])
    assert {"decode", "embed", "total"} <= set(result.timings_ms)
    # The query itself can be excluded (an image of the collection searched with its own photo).
    excluded = pipeline.search(photo.read_bytes(), exclude_ids=["match"])
    assert "match" not in [hit.image_id for hit in excluded.hits]
    # The query's SIFT is computed by the scorer from the decoded photo, after the embedding.
    assert result.query.sift is None and result.hits[0].evidence is not None


def test_enlarged_query_is_verified_in_its_own_pixels(world: dict) -> None:
    big = cv2.resize(world["query_view"], (SIZE[1] * 2, SIZE[0] * 2), interpolation=cv2.INTER_CUBIC)
    query = extract_sift(big, SiftConfig(max_keypoints=800, long_side=SIZE[1]))
    assert query.pixel_scale == pytest.approx(2.0)
    result = _pipeline(SiftScorer(world["store"], CFG)).search_query(QueryFeatures(QUERY_VECTOR, sift=query))
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

    class Stored:
        def load_many(self, ids: Sequence[str]) -> dict[str, LocalFeatures]:
            return {i: features[i] for i in ids if i in features}

    index = _index(["gone", "blank", "match"], [0.95, 0.9, 0.5])
    pipeline = SearchPipeline(VectorsOf({}), index, SiftScorer(Stored(), CFG), SearchConfig())
    with caplog.at_level(logging.WARNING, logger="retrieval_core.rerank.sift_scorer"):
        result = pipeline.search_query(QueryFeatures(QUERY_VECTOR, sift=world["query"]))
    by_id = {h.image_id: h for h in result.hits}
    for image_id, score in (("gone", 0.95), ("blank", 0.9)):
        assert by_id[image_id].local_score is None and by_id[image_id].evidence is None
        assert by_id[image_id].fused_score == pytest.approx(score, abs=1e-6)
    assert by_id["match"].local_score is not None and by_id["match"].local_score > 0.9
    assert result.missing == 2
    assert "no local features for 1 of 3" in caplog.text and "no keypoints for 1 of 3" in caplog.text


def test_query_without_keypoints_keeps_global_order(world: dict, caplog: pytest.LogCaptureFixture) -> None:
    query = extract_sift(np.zeros((100, 100), np.uint8), CFG)
    with caplog.at_level(logging.WARNING, logger="retrieval_core.rerank.sift_scorer"):
        result = _pipeline(SiftScorer(world["store"], CFG)).search_query(
            QueryFeatures(QUERY_VECTOR, sift=query)
        )
    assert [h.image_id for h in result.hits] == IDS
    assert all(h.local_score is None for h in result.hits)
    assert "query has no keypoints" in caplog.text


def _scorers(world: dict, tmp_path: Path) -> dict[str, LocalScorer]:
    descriptors = np.vstack([f.descriptors for f in world["features"].values()])
    encoder = VladEncoder(train_codebook(descriptors, k=16, seed=0))
    vlads = ExactIndex(IDS, np.stack([encoder.encode(world["features"][i].descriptors) for i in IDS]))
    patches = PatchStore(tmp_path, "patches")
    rng = np.random.default_rng(0)
    for image_id in IDS:
        patches.save(image_id, rng.normal(size=(4, 8)))
    return {
        "sift": SiftScorer(world["store"], CFG),
        "vlad": VladScorer(encoder, vlads, CFG),
        "patches": PatchScorer(patches),
        "none": GlobalOnlyScorer(),
    }


@pytest.mark.parametrize("method", ["sift", "vlad", "patches", "none"])
def test_only_the_first_top_k_are_reranked_and_the_rest_keep_global_order(
    world: dict, tmp_path: Path, method: str
) -> None:
    """Every method: the head is re-ranked, the tail follows in global order with its global rank."""
    scorer = _scorers(world, tmp_path)[method]
    pipeline = SearchPipeline(
        VectorsOf({}), _index(), scorer, SearchConfig(k=6, fusion=FusionConfig(top_k=3, weight_global=0.3))
    )
    query = QueryFeatures(
        QUERY_VECTOR,
        sift=world["query"],
        patches=np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32),
    )
    result = pipeline.search_query(query)
    assert result.method == method
    assert sorted(h.global_rank for h in result.hits[:3]) == [0, 1, 2]
    assert [h.image_id for h in result.hits][3:] == ["other3", "match", "other4"]
    assert [h.global_rank for h in result.hits[3:]] == [3, 4, 5]
    assert all(h.local_score is None for h in result.hits[3:])
    if method == "none":
        assert [h.image_id for h in result.hits] == IDS and result.weight_global == 1.0
    else:
        assert all(h.local_score is not None for h in result.hits[:3])


@pytest.mark.parametrize("whiten", [0, 4])
def test_vlad_scorer_prefers_the_true_match(world: dict, whiten: int) -> None:
    descriptors = np.vstack([f.descriptors for f in world["features"].values()])
    codebook = train_codebook(descriptors, k=16, seed=0)
    whitening = None
    if whiten:
        whitening = fit_pca_whitening(
            np.stack([vlad(f.descriptors, codebook) for f in world["features"].values()]), whiten
        )
    encoder = VladEncoder(codebook, whitening)
    assert encoder.dim == (whiten or 16 * 128)
    vectors = ExactIndex(IDS, np.stack([encoder.encode(world["features"][i].descriptors) for i in IDS]))
    scores = VladScorer(encoder, vectors, CFG).score(QueryFeatures(QUERY_VECTOR, sift=world["query"]), IDS)
    assert IDS[int(np.nanargmax(scores.raw))] == "match"
    # A candidate without a stored VLAD has no local score, not a zero.
    partial = VladScorer(encoder, ExactIndex(IDS[:3], vectors.vectors[:3]), CFG)
    assert np.isnan(partial.score(QueryFeatures(QUERY_VECTOR, sift=world["query"]), IDS).raw[3:]).all()


def test_exact_index_excludes_ids_and_breaks_ties_by_insertion_order() -> None:
    index = ExactIndex(["a", "b", "c", "d"], np.stack([_unit(0.5), _unit(0.9), _unit(0.5), _unit(0.7)]))
    hits = index.search(QUERY_VECTOR[None], k=10)[0]
    assert [h.image_id for h in hits] == ["b", "d", "a", "c"]
    assert [h.image_id for h in index.search(QUERY_VECTOR[None], k=2, exclude_ids=["b"])[0]] == ["d", "a"]
    assert index.get_vectors(["c", "zz"]).keys() == {"c"}
    with pytest.raises(ValueError):
        index.search(QUERY_VECTOR[None], filters=SearchFilters(landmark_id=1))
    with pytest.raises(ValueError):
        SearchPipeline(
            VectorsOf({}), ExactIndex(["a"], np.ones((1, 3), np.float32)), GlobalOnlyScorer(), SearchConfig()
        )


def test_verified_expansion_lifts_a_positive_that_looks_like_the_verified_match(
    world: dict, tmp_path: Path
) -> None:
    """'twin' shows the match's place but cannot be verified against the query; averaging the query with
    the verified match brings it up from last to second, and turning it off leaves it last."""
    store = LocalFeatureStore(tmp_path / "sift", CFG.key)
    for image_id, feats in world["features"].items():
        store.save(image_id, feats)
    store.save(
        "twin", extract_sift(render_view(make_scene(399, SIZE), np.random.default_rng(1), SIZE)[0], CFG)
    )

    def at(score: float, towards: np.ndarray) -> np.ndarray:
        return np.array([score, *(np.sqrt(1 - score**2) * towards)], np.float32)

    match = at(0.80, np.array([1.0, 0.0]))
    vectors = {i: at(s, np.array([0.0, 1.0])) for i, s in zip(IDS, GLOBAL, strict=True) if i != "match"}
    vectors |= {"match": match, "twin": at(0.70, np.array([1.0, 0.0]))}  # cos(twin, match) = 0.99
    index = ExactIndex(list(vectors), np.stack(list(vectors.values())))
    query = QueryFeatures(np.array([1.0, 0.0, 0.0], np.float32), sift=world["query"])

    def ranking(expansion: int) -> list[str]:
        config = SearchConfig(k=7, verified_expansion=expansion, verified_expansion_inliers=20)
        result = SearchPipeline(VectorsOf({}, dim=3), index, SiftScorer(store, CFG), config).search_query(
            query
        )
        return [str(hit.image_id) for hit in result.hits]

    assert ranking(0)[0] == "match" and ranking(0)[-1] == "twin"
    assert ranking(1)[:2] == ["match", "twin"]
