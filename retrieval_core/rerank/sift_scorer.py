"""SIFT re-ranking: mutual-NN + ratio matching, then geometric verification; the score is the inlier count.

Per candidate: one float32 matrix product for matching, then MAGSAC++ (homography by default) inliers
(the thesis counted ratio-test matches with no geometry, ~6 s per query; this is ~1-2 ms per candidate).
Candidates with no more tentative matches than ``min_inliers`` skip RANSAC: they could not score above zero
anyway. Missing or empty local data never raises: the candidate's score is NaN and a warning is logged.
Candidates' features may come from a compact store (``LOCAL_FEATURES_FORMAT``: fewer keypoints, 2- or 4-bit
descriptors decoded to uint8 levels); the query's are always extracted at full precision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from retrieval_core.features.sift import LocalFeatures, SiftConfig, descriptors_to_float, extract_sift
from retrieval_core.rerank.fusion import FusionConfig, MatchEvidence
from retrieval_core.rerank.matching import MatchMethod, match_descriptors
from retrieval_core.rerank.scorer import LocalScores, QueryFeatures, RerankMethod
from retrieval_core.rerank.verification import GeometryMethod, RansacMethod, verify_geometry

__all__ = ["LocalFeatureSource", "SiftScorer", "VerificationConfig", "query_local_features"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerificationConfig:
    """Matching and verification settings.

    ``threshold_px`` (None = the method's default) is in pixels of the image SIFT saw: keypoints are
    divided by their ``pixel_scale`` first, so it holds for any original resolution. ``"homography"``
    suits facades and distant views; ``"fundamental"`` suits close 3-D scenes (on INRIA Holidays it found
    the right image first more often) but unrelated pairs reach ~10-13 inliers by chance instead of <= 7,
    so raise ``FusionConfig.min_inliers`` to ~12 with it.
    """

    match_method: MatchMethod = "mutual_ratio"
    ratio: float = 0.85
    geometry: GeometryMethod = "homography"
    ransac: RansacMethod = "usac_magsac"
    threshold_px: float | None = None
    max_iters: int = 1000


class LocalFeatureSource(Protocol):
    """Stored local features by image id (the on-disk store in the product, a cache in evaluation)."""

    def load_many(self, image_ids: Sequence[Hashable]) -> Mapping[Hashable, LocalFeatures]:
        """Features of the ids that have them; absent ids are left out."""
        ...


def query_local_features(query: QueryFeatures, cfg: SiftConfig) -> LocalFeatures:
    """The query's precomputed features, else SIFT of its decoded image."""
    if query.sift is not None:
        return query.sift
    if query.image is None:
        raise ValueError("the query has neither SIFT features nor a decoded image")
    return extract_sift(np.asarray(query.image), cfg)


class SiftScorer:
    """Verified inliers between the query's and each candidate's stored ``LocalFeatures``."""

    method: RerankMethod = "sift"
    needs_patches = False

    def __init__(
        self,
        features: LocalFeatureSource,
        query_sift: SiftConfig,
        verification: VerificationConfig | None = None,
        *,
        min_inliers: int = FusionConfig().min_inliers,
    ) -> None:
        self.features = features
        self.query_sift = query_sift
        self.cfg = verification or VerificationConfig()
        self.min_inliers = min_inliers

    def score(self, query: QueryFeatures, candidate_ids: Sequence[Hashable]) -> LocalScores:
        timings = {"query_features": 0.0, "load": 0.0, "match": 0.0, "verify": 0.0}
        t = time.perf_counter()
        mine = query_local_features(query, self.query_sift)
        timings["query_features"] = time.perf_counter() - t
        t = time.perf_counter()
        stored = self.features.load_many(list(candidate_ids))
        timings["load"] = time.perf_counter() - t
        raw = np.full(len(candidate_ids), np.nan)
        evidence: list[MatchEvidence | None] = [None] * len(candidate_ids)
        absent = [i for i in candidate_ids if i not in stored]
        empty = [i for i in candidate_ids if i in stored and len(stored[i]) == 0]
        _warn(absent, "no local features", len(candidate_ids))
        _warn(empty, "no keypoints", len(candidate_ids))
        if len(mine) == 0:
            if candidate_ids:
                logger.warning("query has no keypoints: global ranking kept for %d candidates", len(raw))
            return LocalScores(raw, evidence, timings, tuple(candidate_ids))
        q_desc = descriptors_to_float(mine.descriptors)
        q_kps = mine.keypoints / np.float32(mine.pixel_scale)
        for position, image_id in enumerate(candidate_ids):
            theirs = stored.get(image_id)
            if theirs is None or len(theirs) == 0:
                continue
            raw[position], evidence[position] = self._verify(mine, q_desc, q_kps, theirs, timings)
        return LocalScores(raw, evidence, timings, tuple(absent + empty))

    def _verify(
        self,
        mine: LocalFeatures,
        q_desc: np.ndarray,
        q_kps: np.ndarray,
        theirs: LocalFeatures,
        timings: dict[str, float],
    ) -> tuple[float, MatchEvidence]:
        cfg = self.cfg
        t0 = time.perf_counter()
        matches = match_descriptors(q_desc, theirs.descriptors, cfg.match_method, cfg.ratio)
        t1 = time.perf_counter()
        timings["match"] += t1 - t0
        inliers, points = 0, np.zeros((0, 4), np.float32)
        if len(matches) > self.min_inliers:  # else: could not score above 0, skip RANSAC
            result = verify_geometry(
                q_kps,
                theirs.keypoints / np.float32(theirs.pixel_scale),
                matches,
                method=cfg.geometry,
                ransac=cfg.ransac,
                threshold_px=cfg.threshold_px,
                max_iters=cfg.max_iters,
            )
            inliers = result.inliers
            kept = matches[result.inlier_mask]
            points = np.hstack([mine.keypoints[kept[:, 0]], theirs.keypoints[kept[:, 1]]])
            timings["verify"] += time.perf_counter() - t1
        return float(inliers), MatchEvidence(inliers, len(matches), points.astype(np.float32))


def _warn(ids: Sequence[Hashable], what: str, total: int) -> None:
    if ids:
        logger.warning(
            "%s for %d of %d candidates, e.g. %r: global score kept", what, len(ids), total, ids[0]
        )
