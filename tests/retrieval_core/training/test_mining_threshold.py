"""Summarising the same verified pairs at another inlier threshold, without verifying again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval_core.training.pair_mining import CandidatePair, MiningConfig, MiningState, summarise


def _state(directory: Path) -> MiningState:
    ids = [f"img{n}.jpg" for n in range(6)]
    # (a, b, inliers): a strong pair, a chain of two medium links, and a weak pair.
    rows = [(0, 1, 80), (2, 3, 20), (3, 4, 20), (4, 5, 3)]
    pairs = [CandidatePair(a, b, 0.9) for a, b, _ in rows]
    state = MiningState.create(directory, MiningConfig(neighbours=2, min_inliers=15), ids, pairs)
    (directory / "chunks").mkdir()
    verified = [[a, b, 0.9, inliers, inliers] for a, b, inliers in rows]
    (directory / "chunks" / "000000.json").write_text(json.dumps(verified))
    return state


def test_a_higher_threshold_keeps_only_the_strong_pairs_of_the_same_verification(tmp_path: Path) -> None:
    state = _state(tmp_path)
    loose = summarise(state)
    strict = summarise(state.with_threshold(50))
    assert loose.statistics["components"] == 2 and loose.statistics["covered_images"] == 5
    assert strict.statistics["components"] == 1 and strict.statistics["covered_images"] == 2
    assert strict.statistics["verified_pairs"] == loose.statistics["verified_pairs"] == 4
    assert state.config.min_inliers == 15  # the stored job is unchanged


def test_a_threshold_at_or_below_the_negative_ceiling_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="negative_max_inliers"):
        _state(tmp_path).with_threshold(8)
