"""Choosing recognition's "not in the collection" threshold on validation queries, and applying it.

Evaluation only: serving reads the chosen threshold from its configuration (``RecognitionConfig``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

from retrieval_core.eval.metrics import global_average_precision

__all__ = ["THRESHOLD_GRID", "apply_threshold", "choose_threshold"]

THRESHOLD_GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(20))
"""Thresholds ``choose_threshold`` tries: 0, 0.05, ..., 0.95."""


def choose_threshold(
    predictions: Sequence[tuple[Hashable | None, float]],
    truths: Sequence[Hashable | None],
    grid: Sequence[float] = THRESHOLD_GRID,
) -> tuple[float, float]:
    """The "not in the collection" threshold chosen on validation queries, and the GAP it gives there.

    ``predictions``: per query (landmark, confidence); ``truths``: per query its landmark (None: not in the
    collection). GAP alone never favours a threshold (dropping the least confident predictions cannot
    raise it), so the threshold maximises right minus wrong answers among those given (an abstention
    scores 0; ties: the lowest threshold); the GAP is that of the answers kept. No queries: 0 and NaN.
    """
    if not predictions:
        return 0.0, float("nan")
    best, best_net = 0.0, -math.inf
    for threshold in grid:
        answered = [
            (p, t) for (p, c), t in zip(predictions, truths, strict=True) if p is not None and c >= threshold
        ]
        right = sum(p == t for p, t in answered)
        net = right - (len(answered) - right)
        if net > best_net:
            best, best_net = float(threshold), net
    return best, global_average_precision(apply_threshold(predictions, best), truths)


def apply_threshold(
    predictions: Sequence[tuple[Hashable | None, float]], threshold: float
) -> list[tuple[Hashable | None, float]]:
    """Predictions below ``threshold`` become "no prediction" ``(None, 0.0)``."""
    return [(p, c) if p is not None and c >= threshold else (None, 0.0) for p, c in predictions]
