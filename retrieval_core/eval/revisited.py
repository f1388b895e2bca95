"""The revisited Oxford/Paris protocol (Radenović et al., CVPR 2018): mAP and mP@k at Easy, Medium, Hard.

Follows the official ``revisitop`` evaluation: ``ranks`` is an ``(n_index, n_queries)`` array of index-image
numbers, best first, per column; AP is the trapezoidal area under the precision-recall curve after junk
images are removed from the ranking; queries without positives are left out of the means. Settings:

- Easy: positives ``easy``; junk ``junk + hard``.
- Medium: positives ``easy + hard``; junk ``junk``.
- Hard: positives ``hard``; junk ``junk + easy``.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

Difficulty = Literal["easy", "medium", "hard"]
DIFFICULTIES: tuple[Difficulty, ...] = ("easy", "medium", "hard")


@dataclass(frozen=True)
class QueryGroundTruth:
    """Index-image numbers (0-based, into ``imlist``) of one query, and its box ``(x1, y1, x2, y2)``."""

    easy: tuple[int, ...]
    hard: tuple[int, ...]
    junk: tuple[int, ...]
    bbx: tuple[float, ...] | None = None

    def protocol(self, difficulty: Difficulty) -> tuple[np.ndarray, np.ndarray]:
        """``(positives, junk)`` index numbers for one difficulty setting."""
        easy, hard, junk = (np.asarray(ids, np.int64) for ids in (self.easy, self.hard, self.junk))
        if difficulty == "easy":
            return easy, np.concatenate([junk, hard])
        if difficulty == "medium":
            return np.concatenate([easy, hard]), junk
        if difficulty == "hard":
            return hard, np.concatenate([junk, easy])
        raise ValueError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, got {difficulty!r}")


@dataclass(frozen=True)
class RevisitedGroundTruth:
    """Contents of a ``gnd_roxford5k.pkl``-style file: index and query image names and per-query truth."""

    imlist: tuple[str, ...]
    qimlist: tuple[str, ...]
    gnd: tuple[QueryGroundTruth, ...]


@dataclass(frozen=True)
class RankingScores:
    """mAP and mean precision at each kappa over scored queries.

    Per-query APs are NaN for skipped queries (no positives); the means are NaN when every query is skipped.
    """

    mean_ap: float
    mean_precision: Mapping[int, float]
    aps: tuple[float, ...]
    n_skipped: int


@dataclass(frozen=True)
class RevisitedResult:
    easy: RankingScores
    medium: RankingScores
    hard: RankingScores

    def summary(self) -> str:
        """One line per setting, in percent, like the official example prints."""
        lines = []
        for name in DIFFICULTIES:
            scores: RankingScores = getattr(self, name)
            mps = ", ".join(f"mP@{k} {100 * v:.2f}" for k, v in scores.mean_precision.items())
            lines.append(f"{name:6s} mAP {100 * scores.mean_ap:.2f}  {mps}")
        return "\n".join(lines)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Ground-truth files are pickles: allow numpy arrays and builtins, never arbitrary code."""

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "scalar"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"ground-truth file refers to {module}.{name}, which is not allowed")


def load_revisited_gnd(path: Path) -> RevisitedGroundTruth:
    """Read a revisitop ``gnd_*.pkl`` file (keys ``imlist``, ``qimlist``, ``gnd``) and check its indices."""
    with Path(path).open("rb") as handle:
        raw = _NumpyOnlyUnpickler(handle, encoding="latin1").load()
    return parse_revisited_gnd(raw)


def parse_revisited_gnd(raw: Mapping[str, Any]) -> RevisitedGroundTruth:
    """Validate an already loaded ground-truth dict (same layout as the pickle)."""
    missing = [key for key in ("imlist", "qimlist", "gnd") if key not in raw]
    if missing:
        raise ValueError(f"ground truth lacks key(s) {', '.join(missing)}")
    imlist = tuple(str(name) for name in raw["imlist"])
    qimlist = tuple(str(name) for name in raw["qimlist"])
    if len(raw["gnd"]) != len(qimlist):
        raise ValueError(f"ground truth has {len(raw['gnd'])} gnd entries for {len(qimlist)} queries")
    gnd = []
    for number, entry in enumerate(raw["gnd"]):
        lists = {}
        for key in ("easy", "hard", "junk"):
            ids = tuple(int(i) for i in np.asarray(entry.get(key, ()), np.int64).ravel())
            if any(not 0 <= i < len(imlist) for i in ids):
                raise ValueError(f"query {number}: {key} refers to an image outside imlist")
            lists[key] = ids
        bbx = entry.get("bbx")
        box = None if bbx is None else tuple(float(v) for v in np.asarray(bbx).ravel())
        gnd.append(QueryGroundTruth(lists["easy"], lists["hard"], lists["junk"], box))
    return RevisitedGroundTruth(imlist, qimlist, tuple(gnd))


def compute_ap(positive_ranks: np.ndarray, n_positives: int) -> float:
    """Trapezoidal AP from the sorted 0-based ranks of the retrieved positives (junk already removed)."""
    ranks = np.asarray(positive_ranks, np.float64)
    found = np.arange(len(ranks), dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision_before = np.where(ranks == 0, 1.0, found / ranks)
    precision_after = (found + 1) / (ranks + 1)
    return float(((precision_before + precision_after) / (2.0 * n_positives)).sum())


def compute_map(
    ranks: np.ndarray,
    positives: Sequence[np.ndarray],
    junk: Sequence[np.ndarray],
    kappas: Sequence[int] = (1, 5, 10),
) -> RankingScores:
    """mAP and mP@kappas of ``ranks`` ``(n_ranked, n_queries)`` given per-query positive and junk ids.

    Precision at ``kappa`` is, as in revisitop, measured at ``min(kappa, rank of the last retrieved
    positive)``: a query whose positives all come before ``kappa`` is not penalised for having few.
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[1] != len(positives) or len(junk) != len(positives):
        raise ValueError(
            f"ranks must be (n_index, n_queries) with one column per query; got {ranks.shape} for "
            f"{len(positives)} queries"
        )
    n_queries = ranks.shape[1]
    aps = np.full(n_queries, np.nan)
    precisions = np.full((n_queries, len(kappas)), np.nan)
    for q in range(n_queries):
        ok = np.asarray(positives[q])
        if ok.size == 0:
            continue
        column = ranks[:, q]
        pos = np.flatnonzero(np.isin(column, ok))
        junk_pos = np.flatnonzero(np.isin(column, np.asarray(junk[q])))
        pos = pos - np.searchsorted(junk_pos, pos, side="left")  # junk ranked earlier frees its place
        aps[q] = compute_ap(pos, len(ok))
        for j, kappa in enumerate(kappas):
            if pos.size == 0:
                precisions[q, j] = 0.0
                continue
            cutoff = min(int(pos.max()) + 1, kappa)
            precisions[q, j] = np.count_nonzero(pos + 1 <= cutoff) / cutoff
    scored = ~np.isnan(aps)
    if not scored.any():  # NaN means, as the official code gives, rather than an exception mid-report
        return RankingScores(float("nan"), {int(k): float("nan") for k in kappas}, tuple(aps), n_queries)
    mean_precision = {int(k): float(precisions[scored, j].mean()) for j, k in enumerate(kappas)}
    return RankingScores(
        mean_ap=float(aps[scored].mean()),
        mean_precision=mean_precision,
        aps=tuple(float(a) for a in aps),
        n_skipped=int((~scored).sum()),
    )


def evaluate_revisited(
    ranks: np.ndarray, ground_truth: RevisitedGroundTruth, kappas: Sequence[int] = (1, 5, 10)
) -> RevisitedResult:
    """Score ``ranks`` ``(n_index, n_queries)`` at the Easy, Medium and Hard settings."""
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or ranks.shape[1] != len(ground_truth.gnd):
        raise ValueError(f"ranks must have one column per query ({len(ground_truth.gnd)}), got {ranks.shape}")
    if ranks.size and (ranks.min() < 0 or ranks.max() >= len(ground_truth.imlist)):
        raise ValueError("ranks refer to images outside imlist")
    scores = {}
    for difficulty in DIFFICULTIES:
        sets = [query.protocol(difficulty) for query in ground_truth.gnd]
        scores[difficulty] = compute_map(ranks, [s[0] for s in sets], [s[1] for s in sets], kappas)
    return RevisitedResult(**scores)
