"""Mining training pairs by geometric verification on a generated collection, then training on them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from threadpoolctl import threadpool_limits

from retrieval_core.datasets.collection import read_collection
from retrieval_core.datasets.positions import distance_m
from retrieval_core.datasets.synthetic import write_collection
from retrieval_core.eval.evaluation_protocol import EvalQuery
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.models.embedding import EmbeddingConfig
from retrieval_core.training import TrainConfig, ValidationSet, train
from retrieval_core.training.collection_mining import DEFAULT_SIFT, prepare_collection_features
from retrieval_core.training.pair_mining import (
    MINED_PREFIX,
    CandidatePair,
    MinedPair,
    MiningConfig,
    MiningState,
    mine,
    summarise,
)
from retrieval_core.training.self_supervised import cluster_agreement, held_out_images, mined_split

CONFIG = MiningConfig(neighbours=8, min_inliers=12, chunk_pairs=40)


@pytest.fixture(autouse=True)
def _one_thread():
    """One thread: the suite shares two cores, and oversubscribed int8 matching slows down many times over."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """8 synthetic landmarks x 6 views, with global vectors and RootSIFT extracted once."""
    root = tmp_path_factory.mktemp("mining")
    write_collection(root / "c", n_landmarks=8, views_per_landmark=6, seed=5, image_size=(120, 160))
    items = read_collection(root / "c")
    extractor = GlobalDescriptorExtractor.from_config(EmbeddingConfig(image_size=96), device="cpu")
    sift = dataclasses.replace(DEFAULT_SIFT, max_keypoints=300, long_side=160)
    features = prepare_collection_features(
        root / "cache", {i.relpath: i.path for i in items}, extractor, sift
    )
    assert not features.failures
    return root, items, features


def _mine(collection, directory, config=CONFIG, **kwargs):
    _, _, features = collection
    return mine(directory, features.ids, features.index, features.sift, config, **kwargs)


def test_mined_components_recover_the_landmarks_and_training_on_them_raises_validation_map(
    collection, tmp_path
):
    _, items, _ = collection
    stages: list[tuple[str, int, int]] = []
    result = _mine(collection, tmp_path / "state", progress=lambda *a: stages.append(a))
    assert result is not None
    truth = {item.relpath: item.landmark for item in items}
    agreement = cluster_agreement(truth, result)
    assert agreement.adjusted_rand >= 0.9 and agreement.purity >= 0.95 and agreement.coverage >= 0.9
    stats = result.statistics
    assert stats["chunks_done"] == stats["chunks"] >= 2 and stats["positive_pairs"] > 0
    assert stages[-1] == ("verification", stats["chunks"], stats["chunks"])
    assert all(name.startswith(MINED_PREFIX) for name in result.components)
    # Hard negatives are globally similar pairs from different landmarks, never from the same one.
    assert result.negatives and all(truth[str(a)] != truth[str(b)] for a, b, _ in result.negatives)

    split = mined_split(
        result, {i.relpath: i.path for i in items}, validation_fraction=0.4, queries_per_component=2
    )
    assert not {i.relpath for i in split.train} & {q.relpath for q in split.val_queries}
    config = TrainConfig(
        recipe="e3", epochs=3, steps_per_epoch=3, p=3, k=4, image_size=64, workers=1, device="cpu", lr=1e-4
    )
    trained = train(config, split.train, ValidationSet(split.val_queries, split.val_index), tmp_path / "run")
    assert trained.initial_map is not None and trained.best_map is not None
    assert trained.best_map > trained.initial_map


def test_mining_resumes_from_its_saved_chunks_and_refuses_another_job(collection, tmp_path):
    whole = _mine(collection, tmp_path / "whole")
    polls = 0

    def stop_after_two_chunks() -> bool:
        nonlocal polls
        polls += 1
        return polls > 2

    assert _mine(collection, tmp_path / "split", should_stop=stop_after_two_chunks) is None
    assert len(list((tmp_path / "split" / "chunks").iterdir())) == 2
    resumed = _mine(collection, tmp_path / "split")
    assert resumed is not None and whole is not None
    assert resumed.to_dict() == whole.to_dict()
    with pytest.raises(ValueError, match="other images or settings"):
        _mine(collection, tmp_path / "split", dataclasses.replace(CONFIG, min_inliers=30))


def test_held_out_images_never_contribute_a_pair_or_a_negative(collection, tmp_path):
    _, items, _ = collection
    labels = {item.relpath: item.landmark for item in items}
    query = next(i.relpath for i in items if i.landmark == "landmark_002")
    held = held_out_images([EvalQuery(query, frozenset())], labels=labels)
    assert held == {i.relpath for i in items if i.landmark == "landmark_002"}  # by component (label)
    result = _mine(collection, tmp_path / "held", exclude=held)
    assert result is not None and not held & set(result.ids)
    touched = {str(x) for a, b, _ in (*result.positives, *result.negatives) for x in (a, b)}
    assert touched and not touched & held


def _state(tmp_path: Path, ids: list[str], pairs: list[MinedPair], config: MiningConfig) -> MiningState:
    candidates = [CandidatePair(p.a, p.b, p.similarity) for p in pairs]
    state = MiningState.create(tmp_path, config, ids, candidates)
    rows = [[p.a, p.b, p.similarity, p.inliers, p.matches] for p in pairs]
    (tmp_path / "chunks").mkdir()
    (tmp_path / "chunks" / "000000.json").write_text(json.dumps(rows))
    return state


def test_curated_labels_take_precedence_and_gps_keeps_nearby_images_from_being_negatives(tmp_path):
    config = MiningConfig(
        min_inliers=15, negative_max_inliers=8, min_negative_distance_m=500, chunk_pairs=100
    )
    ids = ["a", "b", "c", "d", "e", "f"]
    pairs = [
        MinedPair(0, 1, 0.9, 40),  # a-b verified; a is labelled "tower": b inherits it
        MinedPair(1, 2, 0.8, 30),  # b-c verified but c is labelled "bridge": a conflict, not a positive
        MinedPair(3, 4, 0.85, 25),  # d-e verified, unlabelled: a mined pseudo-landmark
        MinedPair(0, 3, 0.7, 2),  # a-d look alike, no match: a hard negative (far apart)
        MinedPair(4, 5, 0.75, 1),  # e-f look alike, no match, but 100 m apart: not a negative
        MinedPair(2, 5, 0.6, None),  # no local features: unknown, neither
    ]
    gps = {"a": (48.0, 2.0), "d": (48.1, 2.0), "e": (51.5, -0.1), "f": (51.5009, -0.1)}
    assert 90 < distance_m(gps["e"], gps["f"]) < 110
    labels = {"a": "tower", "c": "bridge", "f": "bridge"}
    result = summarise(_state(tmp_path, ids, pairs, config), labels=labels, gps=gps)
    assert result.labels == {
        "a": "tower",
        "b": "tower",
        "c": "bridge",
        "f": "bridge",
        "d": "mined-0001",
        "e": "mined-0001",
    }
    assert result.statistics["label_conflicts"] == 1 and result.statistics["negatives_too_close"] == 1
    assert result.negatives == (("a", "d", 0.7),)
    assert {(a, b) for a, b, _ in result.positives} == {("a", "b"), ("d", "e")}
    assert result.statistics["unverifiable_pairs"] == 1 and result.statistics["labelled_components"] == 2
