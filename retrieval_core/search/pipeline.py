"""The search pipeline: decode -> embed -> candidates from a ``VectorIndex`` -> ``LocalScorer`` -> fusion ->
ranked hits with their evidence.

Serving (the web API), fusion tuning, the evaluation ladder and the benchmarks all run this one class;
they differ only in the index (Milvus or exact), the scorer, and where the query's features come from
(a photo, or an evaluation cache filled by the same extraction functions).

Ranking: the first ``fusion.top_k`` candidates (in global order) are re-ranked by fused score; candidates
beyond them follow in global order with ``global_rank`` continuing after the head.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from retrieval_core.imaging import ImageSource
from retrieval_core.index.filters import SearchFilters
from retrieval_core.index.vector_index import VectorHit, VectorIndex
from retrieval_core.rerank.fusion import Candidate, FusionConfig, RerankedHit, normalise_global, rank_fused
from retrieval_core.rerank.scorer import LocalScorer, LocalScores, QueryFeatures, RerankMethod
from retrieval_core.search.config import SearchConfig
from retrieval_core.search.decode import decode
from retrieval_core.search.recognition import (
    LandmarkShares,
    Recognition,
    RecognitionConfig,
    recognise,
    recognised_landmark_first,
)

__all__ = [
    "Embedder",
    "LandmarkShares",
    "ScoredCandidates",
    "SearchPipeline",
    "SearchResult",
    "rank_and_recognise",
    "rank_candidates",
]


class Embedder(Protocol):
    """What the pipeline needs of a ``GlobalDescriptorExtractor``."""

    dim: int

    def extract_with_patches(
        self, images: Sequence[Image.Image], patch_top_n: int, batch_size: int = 16
    ) -> tuple[np.ndarray, list[np.ndarray]]: ...


@dataclass(frozen=True, eq=False)
class ScoredCandidates:
    """One query's candidates in global order with raw scores, before fusion.

    ids: N candidate ids; global_scores: (N,) cosines; landmark_ids: N (None = unknown);
    local: raw local scores of the first H = min(depth, N) candidates; timings: seconds per stage;
    expanded_scores: (N,) cosines to the verified-expanded query (``SearchConfig.verified_expansion``),
    fused in place of ``global_scores``; None when off or nothing was verified;
    landmark_shares: how large each landmark is in the collection, asked only when the majority rule of
    ``FusionConfig.landmark_first_majority`` needs it (None: not known).
    """

    ids: tuple[Hashable, ...]
    global_scores: np.ndarray
    landmark_ids: tuple[int | None, ...]
    local: LocalScores
    method: RerankMethod
    timings: dict[str, float] = field(default_factory=dict)
    expanded_scores: np.ndarray | None = None
    landmark_shares: LandmarkShares | None = None

    def local_raw(self) -> list[float | None]:
        """The head's raw local scores as fused (None: missing)."""
        return [None if np.isnan(v) else float(v) for v in np.asarray(self.local.raw, np.float64)]


@dataclass(frozen=True, eq=False)
class SearchResult:
    """Ranked hits (best first), the method that really ran, the weight used, per-stage milliseconds;
    ``recognition``: the landmark the hits name (the index's labels), computed once per search."""

    hits: list[RerankedHit]
    method: RerankMethod
    weight_global: float
    timings_ms: dict[str, float]
    missing: int
    query: QueryFeatures
    landmark_ids: dict[Hashable, int | None] = field(default_factory=dict)
    recognition: Recognition = field(default_factory=lambda: Recognition(None, 0.0, False))


def rank_candidates(
    scored: ScoredCandidates, fusion: FusionConfig, recognition: RecognitionConfig | None = None
) -> list[RerankedHit]:
    """The ranking of ``rank_and_recognise``, for callers that need no landmark."""
    return rank_and_recognise(scored, fusion, recognition)[0]


def rank_and_recognise(
    scored: ScoredCandidates, fusion: FusionConfig, recognition: RecognitionConfig | None = None
) -> tuple[list[RerankedHit], Recognition]:
    """Fuse the head (``len(scored.local.raw)`` candidates) and append the rest in global order; and the
    landmark the fused ranking names (``recognise`` over its first ``recognition.top_n`` hits, with the
    candidates' index labels).

    With verified expansion the global part of the fusion (and each hit's ``global_score``) is the cosine
    to the expanded query; ``global_rank`` stays the original order. With ``fusion.landmark_first`` the
    head's photos of the recognised landmark then move first (``recognised_landmark_first``, reusing the
    same recognition: a search recognises once)."""
    recognition = recognition or RecognitionConfig()
    head = len(scored.local.raw)
    scores = scored.global_scores if scored.expanded_scores is None else scored.expanded_scores
    candidates = [Candidate(i, float(s)) for i, s in zip(scored.ids, scores, strict=True)]
    if scored.method == "none":
        fusion = dataclasses.replace(fusion, weight_global=1.0)
    else:
        fusion = dataclasses.replace(fusion, local_method=scored.method)
    hits = rank_fused(candidates[:head], scored.local_raw(), fusion, scored.local.evidence)
    rest_scores = normalise_global(np.asarray(scores[head:], np.float64))
    rest = [
        RerankedHit(c.image_id, c.global_score, None, float(g), head + i)
        for i, (c, g) in enumerate(zip(candidates[head:], rest_scores, strict=True))
    ]
    landmarks = dict(zip(scored.ids, scored.landmark_ids, strict=True))
    answer = recognise([*hits, *rest], landmarks, recognition)
    if fusion.landmark_first:
        hits = recognised_landmark_first(
            hits,
            landmarks,
            fusion.landmark_first,
            fusion.landmark_first_majority,
            scored.landmark_shares,
            fusion.landmark_first_lift,
            answer=answer,
            voters=recognition.top_n,
        )
    return hits + rest, answer


class SearchPipeline:
    """``SearchPipeline(embedder, index, scorer, config).search(photo)``; see the module docstring."""

    def __init__(
        self,
        embedder: Embedder,
        index: VectorIndex,
        scorer: LocalScorer,
        config: SearchConfig,
        landmark_shares: LandmarkShares | None = None,
    ) -> None:
        if embedder.dim != index.dim:
            raise ValueError(f"the embedder makes {embedder.dim}-d vectors, the index holds {index.dim}-d")
        self.embedder = embedder
        self.index = index
        self.scorer = scorer
        self.config = config
        self.landmark_shares = landmark_shares

    @property
    def method(self) -> RerankMethod:
        return self.scorer.method

    @property
    def fusion(self) -> FusionConfig:
        return self.config.fusion

    def decode(self, source: ImageSource) -> Image.Image:
        """The photo as indexing decodes it; raises ``ImageLoadError`` for bad input."""
        return decode(source, self.config.decode)

    def embed(self, image: Image.Image) -> QueryFeatures:
        """Global vector (and CNN patches when the scorer needs them) from one forward pass."""
        top_n = self.config.patch_top_n if self.scorer.needs_patches else 0
        vectors, patches = self.embedder.extract_with_patches([image], top_n)
        return QueryFeatures(vector=vectors[0], image=image, patches=patches[0] if patches else None)

    def depth(self, k: int) -> int:
        """How many candidates the index returns: enough to re-rank, never fewer than asked for."""
        return k if self.method == "none" else max(k, self.fusion.top_k)

    def candidates(
        self,
        query: QueryFeatures,
        k: int,
        *,
        exclude_ids: Sequence[Hashable] = (),
        filters: SearchFilters | None = None,
    ) -> list[VectorHit]:
        return self.index.search(
            query.vector[None], k=self.depth(k), exclude_ids=exclude_ids, filters=filters
        )[0]

    def score(
        self,
        query: QueryFeatures,
        hits: Sequence[VectorHit],
        *,
        exclude_ids: Sequence[Hashable] = (),
        filters: SearchFilters | None = None,
    ) -> ScoredCandidates:
        """Raw local scores of the first ``fusion.top_k`` hits (none for ``rerank=none``), and with
        verified expansion on, every candidate's cosine to the expanded query."""
        ids = tuple(hit.image_id for hit in hits)
        head = 0 if self.method == "none" else min(self.fusion.top_k, len(ids))
        started = time.perf_counter()
        local = self.scorer.score(query, ids[:head])
        timings = {**local.timings, "local": time.perf_counter() - started}
        started = time.perf_counter()
        expanded = self._verified_expansion(query, ids, local, exclude_ids, filters)
        if expanded is not None:
            timings["verified_expansion"] = time.perf_counter() - started
        return ScoredCandidates(
            ids=ids,
            global_scores=np.array([hit.score for hit in hits], np.float64),
            landmark_ids=tuple(hit.landmark_id for hit in hits),
            local=local,
            method=self.method,
            timings=timings,
            expanded_scores=expanded,
            landmark_shares=self.landmark_shares,
        )

    def _verified_expansion(
        self,
        query: QueryFeatures,
        ids: Sequence[Hashable],
        local: LocalScores,
        exclude_ids: Sequence[Hashable],
        filters: SearchFilters | None,
    ) -> np.ndarray | None:
        """``(N,)`` cosines of the candidates to the query averaged with the stored vectors of its most
        verified candidates (Chum et al.'s average query expansion, on geometrically verified images only,
        so it cannot drift to a look-alike); None when off or nothing reached the inlier threshold.
        Candidates outside the expanded query's top N get the lowest score it returned."""
        n, threshold = self.config.verified_expansion, self.config.verified_expansion_inliers
        if not n or local.evidence is None or not ids:
            return None
        inliers = [0 if e is None else e.inliers for e in local.evidence]
        best = sorted(range(len(inliers)), key=lambda i: (-inliers[i], i))[:n]
        chosen = [ids[i] for i in best if inliers[i] >= threshold]
        if not chosen:
            return None
        vector = _average_query(query.vector, chosen, self.index.get_vectors(chosen))
        hits = self.index.search(
            vector[None], k=len(ids), exclude_ids=exclude_ids, filters=filters
        )[0]
        by_id = {hit.image_id: hit.score for hit in hits}
        floor = min(by_id.values(), default=0.0)
        return np.array([by_id.get(i, floor) for i in ids], np.float64)

    def rank(
        self, scored: ScoredCandidates, fusion: FusionConfig | None = None
    ) -> tuple[list[RerankedHit], Recognition]:
        """The ranked hits and the landmark they name (``rank_and_recognise``)."""
        return rank_and_recognise(scored, fusion or self.fusion, self.config.recognition)

    def search(
        self,
        photo: ImageSource | Image.Image,
        *,
        k: int | None = None,
        exclude_ids: Sequence[Hashable] = (),
        filters: SearchFilters | None = None,
    ) -> SearchResult:
        """Decode (unless given decoded: a photo is decoded once, by whoever has it first), embed and
        search; see `search_query`. ``decode`` is timed only when this call decoded."""
        started = time.perf_counter()
        image = photo if isinstance(photo, Image.Image) else self.decode(photo)
        decoded = time.perf_counter()
        query = self.embed(image)
        embedded = time.perf_counter()
        result = self.search_query(query, k=k, exclude_ids=exclude_ids, filters=filters)
        if not isinstance(photo, Image.Image):
            result.timings_ms["decode"] = _ms(decoded - started)
        result.timings_ms["embed"] = _ms(embedded - decoded)
        result.timings_ms["total"] = _ms(time.perf_counter() - started)
        return result

    def search_query(
        self,
        query: QueryFeatures,
        *,
        k: int | None = None,
        exclude_ids: Sequence[Hashable] = (),
        filters: SearchFilters | None = None,
    ) -> SearchResult:
        """Candidates, local scores and fusion for an embedded query; all hits, best first."""
        k = k or self.config.k
        t = time.perf_counter()
        hits = self.candidates(query, k, exclude_ids=exclude_ids, filters=filters)
        ann = time.perf_counter() - t
        scored = self.score(query, hits, exclude_ids=exclude_ids, filters=filters)
        t = time.perf_counter()
        ranked, recognition = self.rank(scored)
        timings = {"ann": ann, **{f"rerank_{s}": v for s, v in scored.timings.items()}}
        timings["fuse"] = time.perf_counter() - t
        return SearchResult(
            hits=ranked,
            method=self.method,
            weight_global=1.0 if self.method == "none" else self.fusion.weight_global,
            timings_ms={stage: _ms(seconds) for stage, seconds in timings.items()},
            missing=len(scored.local.missing),
            query=query,
            landmark_ids=dict(zip(scored.ids, scored.landmark_ids, strict=True)),
            recognition=recognition,
        )


def elapsed_ms(since: float) -> float:
    """Milliseconds since a ``time.perf_counter()`` mark, for per-stage timings in responses."""
    return _ms(time.perf_counter() - since)


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 2)


def _average_query(
    vector: np.ndarray, chosen: Sequence[Hashable], stored: Mapping[Hashable, np.ndarray]
) -> np.ndarray:
    """``(D,)`` query + the stored vectors of the ``chosen`` images (those that have one), unit length."""
    out = np.asarray(vector, np.float64).copy()
    for image_id in chosen:
        if image_id in stored:
            out += np.asarray(stored[image_id], np.float64)
    return (out / max(float(np.linalg.norm(out)), 1e-12)).astype(np.float32)
