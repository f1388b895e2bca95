from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest

from retrieval_core.eval import compute_ap, compute_map, evaluate_revisited, load_revisited_gnd
from retrieval_core.eval.revisited import parse_revisited_gnd

# Six index images, two queries. q0: easy {0, 2}, hard {4}, junk {1}. q1: hard {3} only.
RAW = {
    "imlist": [f"im{i}" for i in range(6)],
    "qimlist": ["q0", "q1"],
    "gnd": [
        {
            "easy": np.array([0, 2]),
            "hard": np.array([4]),
            "junk": np.array([1]),
            "bbx": np.array([1, 2, 30, 40]),
        },
        {"easy": np.array([], dtype=np.int64), "hard": np.array([3]), "junk": np.array([], dtype=np.int64)},
    ],
}
RANKS = np.array([[1, 0, 3, 4, 2, 5], [3, 0, 1, 2, 4, 5]]).T  # (n_index, n_queries)


def _official_compute_map(ranks: np.ndarray, gnd: list[dict], kappas: list[int]) -> tuple[float, np.ndarray]:
    """The junk-shifting loop of revisitop ``compute_map``, restated as the reference."""
    total, prs, scored = 0.0, np.zeros(len(kappas)), 0
    for i, g in enumerate(gnd):
        if len(g["ok"]) == 0:
            continue
        pos = np.arange(ranks.shape[0])[np.isin(ranks[:, i], g["ok"])]
        junk = np.arange(ranks.shape[0])[np.isin(ranks[:, i], g["junk"])]
        k = ij = 0
        for ip in range(len(pos)):
            while ij < len(junk) and pos[ip] > junk[ij]:
                k, ij = k + 1, ij + 1
            pos[ip] -= k
        ap = 0.0
        for j, rank in enumerate(pos):
            p0 = 1.0 if rank == 0 else j / rank
            ap += (p0 + (j + 1) / (rank + 1)) / (2 * len(g["ok"]))
        total += ap
        pos = pos + 1
        for j, kappa in enumerate(kappas):
            kq = min(pos.max(), kappa)
            prs[j] += (pos <= kq).sum() / kq
        scored += 1
    return total / scored, prs / scored


def test_compute_ap_trapezoid() -> None:
    assert compute_ap(np.array([0, 2]), 2) == pytest.approx(0.5 + (1 / 2 + 2 / 3) / 4)
    assert compute_ap(np.array([0]), 1) == pytest.approx(1.0)
    assert compute_ap(np.array([1]), 1) == pytest.approx(0.25)
    assert compute_ap(np.array([], dtype=np.int64), 3) == 0.0


def test_hand_made_gnd_all_settings() -> None:
    gt = parse_revisited_gnd(RAW)
    result = evaluate_revisited(RANKS, gt)

    # Easy: q0 positives {0,2} junk {1,4} -> ranks [0, 2]; q1 has no easy positive and is skipped
    assert result.easy.mean_ap == pytest.approx(0.5 + (1 / 2 + 2 / 3) / 4)
    assert result.easy.n_skipped == 1 and math.isnan(result.easy.aps[1])
    assert result.easy.mean_precision == {
        1: pytest.approx(1.0),
        5: pytest.approx(2 / 3),
        10: pytest.approx(2 / 3),
    }

    # Medium: q0 positives {0,2,4} junk {1} -> ranks [0, 2, 3]; q1 -> [0]
    ap_q0 = 2 / 6 + (1 / 2 + 2 / 3) / 6 + (2 / 3 + 3 / 4) / 6
    assert result.medium.aps == (pytest.approx(ap_q0), pytest.approx(1.0))
    assert result.medium.mean_ap == pytest.approx((ap_q0 + 1) / 2)
    assert result.medium.mean_precision[5] == pytest.approx((3 / 4 + 1) / 2)

    # Hard: q0 positives {4} junk {1,0,2} -> rank [1]; q1 -> [0]
    assert result.hard.aps == (pytest.approx(0.25), pytest.approx(1.0))
    assert result.hard.mean_ap == pytest.approx(0.625)
    assert result.hard.mean_precision == {
        1: pytest.approx(0.5),
        5: pytest.approx(0.75),
        10: pytest.approx(0.75),
    }
    assert "mAP 62.50" in result.summary()


def test_matches_the_official_loop_on_random_data() -> None:
    rng = np.random.default_rng(0)
    n_index, n_queries = 60, 8
    ranks = np.stack([rng.permutation(n_index) for _ in range(n_queries)], axis=1)
    gnd = []
    for _ in range(n_queries):
        chosen = rng.permutation(n_index)
        gnd.append({"ok": chosen[: rng.integers(1, 12)], "junk": chosen[20 : 20 + rng.integers(0, 15)]})
    ours = compute_map(ranks, [g["ok"] for g in gnd], [g["junk"] for g in gnd], (1, 5, 10))
    ref_map, ref_pr = _official_compute_map(ranks, gnd, [1, 5, 10])
    assert ours.mean_ap == pytest.approx(ref_map)
    assert list(ours.mean_precision.values()) == pytest.approx(list(ref_pr))


def test_load_pickle_and_refuse_code(tmp_path: Path) -> None:
    path = tmp_path / "gnd_tiny.pkl"
    path.write_bytes(pickle.dumps(RAW))
    gt = load_revisited_gnd(path)
    assert gt.imlist[2] == "im2" and gt.qimlist == ("q0", "q1")
    assert gt.gnd[0].easy == (0, 2) and gt.gnd[0].bbx == (1.0, 2.0, 30.0, 40.0)
    assert gt.gnd[1].bbx is None

    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"imlist": [], "qimlist": [], "gnd": [Evil()]}))
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        load_revisited_gnd(evil)


def test_bad_ground_truth_and_ranks_are_refused() -> None:
    with pytest.raises(ValueError, match="qimlist"):
        parse_revisited_gnd({"imlist": [], "gnd": []})
    with pytest.raises(ValueError, match="2 gnd entries for 1 queries"):
        parse_revisited_gnd({**RAW, "qimlist": ["q0"]})
    with pytest.raises(ValueError, match="outside imlist"):
        parse_revisited_gnd({**RAW, "imlist": ["im0", "im1"]})
    gt = parse_revisited_gnd(RAW)
    with pytest.raises(ValueError, match="one column per query"):
        evaluate_revisited(RANKS.T, gt)
    with pytest.raises(ValueError, match="outside imlist"):
        evaluate_revisited(RANKS + 1, gt)


def test_all_queries_without_positives_give_nan_not_an_exception() -> None:
    scores = compute_map(np.array([[0], [1]]), [np.array([], np.int64)], [np.array([], np.int64)])
    assert math.isnan(scores.mean_ap) and scores.n_skipped == 1
