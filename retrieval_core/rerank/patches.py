"""CNN "patch" descriptors: the strongest locations of a conv feature map, compared set to set.

The thesis's best re-ranker (E7) used all 7x7 locations of the head map and recomputed index maps per
query. Keeping only the ``top_n`` most activated locations (they sit on the landmark, not sky or road) makes
the per-image patch set small enough to store beside the global vector and compare in microseconds.
Feature maps come from a ReLU network, so patch cosines lie in [0, 1].
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = ["PatchMethod", "patch_similarity", "select_patches"]

PatchMethod = Literal["asymmetric", "mutual_nn"]


def select_patches(feature_map: Any, top_n: int = 32) -> np.ndarray:
    """(C, H, W) numpy array or torch tensor -> (min(top_n, H*W), C) float32 unit-L2 patch descriptors.

    Rows are ordered by decreasing activation norm; locations with an all-zero vector are dropped.
    """
    if top_n <= 0:
        raise ValueError(f"top_n must be positive, got {top_n}")
    if hasattr(feature_map, "detach"):  # torch tensor, without importing torch here
        feature_map = feature_map.detach().float().cpu().numpy()
    fmap = np.asarray(feature_map, dtype=np.float32)
    if fmap.ndim != 3:
        raise ValueError(f"feature_map must be (C, H, W), got {fmap.shape}")
    channels = fmap.shape[0]
    locations = fmap.reshape(channels, -1).T  # (H*W, C)
    norms = np.linalg.norm(locations, axis=1)
    order = np.argsort(-norms, kind="stable")[:top_n]
    order = order[norms[order] > 1e-12]
    return (locations[order] / norms[order, None]).astype(np.float32)


def patch_similarity(
    query_patches: np.ndarray,
    index_patches: np.ndarray,
    method: PatchMethod = "asymmetric",
) -> float:
    """Similarity of two patch sets (Nq, C) and (Ni, C), unit rows; 0.0 if either is empty.

    ``asymmetric``: mean over query patches of the best cosine in the index image (the thesis's score;
    asks "is every part of my photo somewhere in that one?").
    ``mutual_nn``: sum of cosines of mutually nearest pairs divided by Nq, so unmatched query patches count
    as zero; stricter against images that share one generic pattern.
    """
    if method not in ("asymmetric", "mutual_nn"):
        raise ValueError(f"method must be 'asymmetric' or 'mutual_nn', got {method!r}")
    if len(query_patches) == 0 or len(index_patches) == 0:
        return 0.0
    sim = np.asarray(query_patches, np.float32) @ np.asarray(index_patches, np.float32).T
    best = sim.max(axis=1)
    if method == "asymmetric":
        return float(best.mean())
    mutual = sim.argmax(axis=0)[sim.argmax(axis=1)] == np.arange(len(sim))
    return float(best[mutual].sum() / len(query_patches))
