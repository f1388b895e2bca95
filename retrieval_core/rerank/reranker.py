"""Re-rank global search hits with local features: match, verify geometry, fuse.

Per candidate: mutual-NN + ratio matching by one float32 matrix product, then MAGSAC++ homography
inliers (the thesis counted ratio-test matches with no geometry, ~6 s per query; this is ~1-2 ms per
candidate). Candidates with fewer tentative matches than ``fusion.min_inliers`` skip RANSAC: they could
not score above zero anyway. Missing or empty local data never raises: the candidate keeps its global
score and a warning is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from retrieval_core.features.sift import LocalFeatures, descriptors_to_float
from retrieval_core.features.vlad import vlad
from retrieval_core.rerank.fusion import (
    Candidate,
    FusionConfig,
    MatchEvidence,
    RerankedHit,
    normalise_global,
    rank_fused,
)
from retrieval_core.rerank.matching import MatchMethod, match_descriptors
from retrieval_core.rerank.verification import GeometryMethod, RansacMethod, verify_geometry

__all__ = ["RerankResult", "Reranker", "RerankerConfig"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RerankerConfig:
    """Matching and verification settings.

    ``threshold_px`` (None = the method's default) is in pixels of the image SIFT saw: keypoints are
    divided by their ``pixel_scale`` first, so it holds for any original resolution. ``"homography"``
    suits facades and distant views; ``"fundamental"`` suits close 3-D scenes (on INRIA Holidays it found
    the right image first more often) but unrelated pairs reach ~10-13 inliers by chance instead of <= 7,
    so raise ``fusion.min_inliers`` to ~12 with it.
    """

    fusion: FusionConfig = field(default_factory=FusionConfig)
    match_method: MatchMethod = "mutual_ratio"
    ratio: float = 0.85
    geometry: GeometryMethod = "homography"
    ransac: RansacMethod = "usac_magsac"
    threshold_px: float | None = None
    max_iters: int = 1000


@dataclass(frozen=True, eq=False)
class RerankResult:
    """hits: re-ranked ``top_k`` then the rest in global order; timings: seconds per stage;
    missing: candidate ids (within ``top_k``) that had no usable local data."""

    hits: list[RerankedHit]
    timings: dict[str, float]
    missing: tuple[Hashable, ...]


class Reranker:
    """Re-ranks candidates given the query's and the candidates' ``LocalFeatures``.

    ``local_method="sift"`` counts verified inliers; ``"vlad"`` compares VLADs built with ``codebook``
    (k, 128). ``"patches"`` needs CNN maps, not SIFT: score with ``patch_similarity`` and call
    ``rank_fused`` directly.
    """

    def __init__(self, cfg: RerankerConfig | None = None, codebook: np.ndarray | None = None) -> None:
        self.cfg = cfg or RerankerConfig()
        method = self.cfg.fusion.local_method
        if method == "patches":
            raise ValueError("Reranker works on SIFT features; fuse patch scores with rank_fused instead")
        if method == "vlad" and codebook is None:
            raise ValueError("local_method='vlad' needs a codebook")
        self.codebook = codebook

    def rerank(
        self,
        query: LocalFeatures,
        candidates: Sequence[Candidate],
        features: Mapping[Hashable, LocalFeatures],
    ) -> RerankResult:
        """Re-rank the first ``top_k`` of ``candidates`` (in global order) using ``features`` by id."""
        start = time.perf_counter()
        cfg = self.cfg
        head, tail = list(candidates[: cfg.fusion.top_k]), list(candidates[cfg.fusion.top_k :])
        timings = {"match": 0.0, "verify": 0.0, "vlad": 0.0, "fuse": 0.0}
        absent = [c.image_id for c in head if c.image_id not in features]
        empty = [c.image_id for c in head if c.image_id in features and len(features[c.image_id]) == 0]
        if absent:
            logger.warning(
                "no local features for %d of %d candidates, e.g. %r: global score kept",
                len(absent),
                len(head),
                absent[0],
            )
        if empty:
            logger.warning(
                "no keypoints in %d of %d candidates, e.g. %r: global score kept",
                len(empty),
                len(head),
                empty[0],
            )
        if len(query) == 0 and head:
            logger.warning("query has no keypoints: global ranking kept for all %d candidates", len(head))

        local_raw: list[float | None] = [None] * len(head)
        evidence: list[MatchEvidence | None] = [None] * len(head)
        if len(query):
            scorer = self._score_sift if cfg.fusion.local_method == "sift" else self._score_vlad
            local_raw, evidence = scorer(query, head, features, timings)

        t = time.perf_counter()
        hits = rank_fused(head, local_raw, cfg.fusion, evidence)
        rest = normalise_global(np.array([c.global_score for c in tail], np.float64))
        hits += [
            RerankedHit(c.image_id, float(c.global_score), None, float(g), len(head) + i)
            for i, (c, g) in enumerate(zip(tail, rest, strict=True))
        ]
        timings["fuse"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - start
        return RerankResult(hits, timings, tuple(absent + empty))

    def _score_sift(
        self,
        query: LocalFeatures,
        head: list[Candidate],
        features: Mapping[Hashable, LocalFeatures],
        timings: dict[str, float],
    ) -> tuple[list[float | None], list[MatchEvidence | None]]:
        cfg = self.cfg
        q_desc = descriptors_to_float(query.descriptors)
        q_kps = query.keypoints / np.float32(query.pixel_scale)
        local_raw: list[float | None] = []
        evidence: list[MatchEvidence | None] = []
        for candidate in head:
            feats = features.get(candidate.image_id)
            if feats is None or len(feats) == 0:
                local_raw.append(None)
                evidence.append(None)
                continue
            t0 = time.perf_counter()
            matches = match_descriptors(q_desc, feats.descriptors, cfg.match_method, cfg.ratio)
            t1 = time.perf_counter()
            timings["match"] += t1 - t0
            inliers, points = 0, np.zeros((0, 4), np.float32)
            if len(matches) > cfg.fusion.min_inliers:  # else: could not score above 0, skip RANSAC
                result = verify_geometry(
                    q_kps,
                    feats.keypoints / np.float32(feats.pixel_scale),
                    matches,
                    method=cfg.geometry,
                    ransac=cfg.ransac,
                    threshold_px=cfg.threshold_px,
                    max_iters=cfg.max_iters,
                )
                inliers = result.inliers
                kept = matches[result.inlier_mask]
                points = np.hstack([query.keypoints[kept[:, 0]], feats.keypoints[kept[:, 1]]])
                timings["verify"] += time.perf_counter() - t1
            local_raw.append(float(inliers))
            evidence.append(MatchEvidence(inliers, len(matches), points.astype(np.float32)))
        return local_raw, evidence

    def _score_vlad(
        self,
        query: LocalFeatures,
        head: list[Candidate],
        features: Mapping[Hashable, LocalFeatures],
        timings: dict[str, float],
    ) -> tuple[list[float | None], list[MatchEvidence | None]]:
        assert self.codebook is not None
        t = time.perf_counter()
        q_vlad = vlad(query.descriptors, self.codebook)
        local_raw: list[float | None] = []
        for candidate in head:
            feats = features.get(candidate.image_id)
            if feats is None or len(feats) == 0:
                local_raw.append(None)
            else:
                local_raw.append(float(q_vlad @ vlad(feats.descriptors, self.codebook)))
        timings["vlad"] = time.perf_counter() - t
        return local_raw, [None] * len(head)
