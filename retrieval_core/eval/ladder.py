"""The experiment ladder (E1-E7 of the thesis) on one collection, as one parameterised run.

- E1 (first model: pretrained) and E2, E3, ... (further models: trained checkpoints): global search, brute
  force cosine in numpy over the index (the evaluation needs no vector database).
- The best global model is the one with the highest mAP on the VALIDATION queries; its top ``top_k`` hits
  per query are re-ranked by E5 SIFT (``Reranker``: matching, MAGSAC verification, inlier fusion), E6 VLAD
  (codebook learnt on index images' RootSIFT, never on a query) and E7 CNN patches (from the same forward
  pass as the global vector). ``best`` repeats the re-ranking with the highest validation mAP.
- Each local method scores the candidates once; the fusion weight v is then chosen on the validation
  queries with ``tune_fusion_weight`` and applied unchanged to the reported queries.

Latency per query = query embedding (timed one query at a time when extracted) + search + the local stage
(query local features, loading the candidates' features, matching / scoring). Features come from a
``FeatureCache``, so a second run (another grid, another top_k) extracts nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrieval_core.eval.extraction import (
    PatchConfig,
    ensure_cnn_features,
    ensure_sift,
    global_key,
    patch_key,
)
from retrieval_core.eval.feature_cache import FeatureCache
from retrieval_core.eval.metrics import average_precision_at_k, precision_at_k, recall_at_k
from retrieval_core.eval.protocol import EvalProtocol, EvalQuery, ProtocolConfig, QuerySet, build_protocol
from retrieval_core.eval.report import REPEATED_ROW, LadderReport, LadderRow
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.features.sift import SiftConfig
from retrieval_core.features.vlad import train_codebook, vlad
from retrieval_core.models.embedding import IMAGENET, EmbeddingConfig
from retrieval_core.rerank.fusion import Candidate, FusionConfig, LocalMethod, fuse
from retrieval_core.rerank.patches import patch_similarity
from retrieval_core.rerank.reranker import Reranker, RerankerConfig
from retrieval_core.rerank.tuning import DEFAULT_GRID, tune_fusion_weight

__all__ = ["LadderProgress", "run_ladder"]

LadderProgress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``."""

_LOCAL_IDS: dict[LocalMethod, str] = {"sift": "E5", "vlad": "E6", "patches": "E7"}
_PRETRAINED, _SIFT, _RERANKER = EmbeddingConfig(), SiftConfig(), RerankerConfig()
_PATCHES, _PROTOCOL = PatchConfig(), ProtocolConfig()


@dataclass(frozen=True, eq=False)
class _Hits:
    """Top-k global hits of one query: index relpaths, raw cosines, and the search's seconds."""

    ids: tuple[str, ...]
    scores: np.ndarray
    seconds: float


@dataclass(frozen=True, eq=False)
class _Local:
    """Raw local scores per query (one per hit, NaN = no data) and seconds of the query's local stage."""

    raw: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class _Global:
    """One global model's hits on both query sets and its query embedding seconds."""

    model_id: str
    config: EmbeddingConfig
    extractor: GlobalDescriptorExtractor
    hits: dict[str, dict[str, _Hits]]
    embed_seconds: dict[str, float]


@dataclass(frozen=True, eq=False)
class _Run:
    """What every stage of one ladder run shares."""

    proto: EvalProtocol
    cache: FeatureCache
    top_k: int
    grid: Sequence[float]
    notes: list[str]
    progress: LadderProgress | None
    paths: dict[str, Path] = field(init=False)
    sets: dict[str, QuerySet] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", {name: self.proto.path(name) for name in self.proto.images})
        object.__setattr__(
            self, "sets", {"reported": self.proto.reported, "validation": self.proto.validation}
        )

    def stage(self, name: str) -> Callable[[int, int], None] | None:
        progress = self.progress
        return None if progress is None else lambda done, total: progress(name, done, total)


def run_ladder(
    root: Path,
    *,
    cache_dir: Path,
    models: Sequence[EmbeddingConfig] = (_PRETRAINED,),
    model_ids: Sequence[str] | None = None,
    sift: SiftConfig = _SIFT,
    query_sift: SiftConfig | None = None,
    reranker: RerankerConfig = _RERANKER,
    vlad_k: int = 64,
    patches: PatchConfig | None = _PATCHES,
    fusion_grid: Sequence[float] = DEFAULT_GRID,
    top_k: int = 100,
    protocol: ProtocolConfig = _PROTOCOL,
    device: str | None = None,
    batch_size: int = 16,
    progress: LadderProgress | None = None,
) -> LadderReport:
    """Run every rung on the collection at ``root`` and return the report (see the module docstring).

    ``vlad_k=0`` skips E6, ``patches=None`` skips E7; ``query_sift`` (default ``sift``) may use fewer
    keypoints for queries. Features are cached under ``cache_dir`` (one cache per collection).
    """
    if not models:
        raise ValueError("need at least one model (the first is the pretrained E1)")
    ids = list(model_ids) if model_ids is not None else [f"E{i}" for i in range(1, len(models) + 1)]
    if (
        len(ids) != len(models)
        or len(set(ids)) != len(ids)
        or set(ids) & {*_LOCAL_IDS.values(), REPEATED_ROW}
    ):
        raise ValueError(f"model ids {ids} must be unique, one per model, and not E5-E7 or 'best'")
    if top_k < 10:
        raise ValueError(f"top_k must be at least 10, got {top_k}")
    query_sift = query_sift or sift
    proto = build_protocol(root, protocol)
    if not proto.queries:
        raise ValueError(f"{root}: no reported query has a relevant index image ({proto.summary()})")
    cache = FeatureCache(cache_dir, collection=proto.root)
    run = _Run(proto, cache, top_k, fusion_grid, list(proto.notes), progress)

    models_run: list[_Global] = []
    rows: list[LadderRow] = []
    for model_id, config in zip(ids, models, strict=True):
        extractor = GlobalDescriptorExtractor.from_config(config, device)
        models_run.append(_run_global(run, model_id, extractor, patches, batch_size))
        rows.append(_global_row(run, models_run[-1]))

    best_model = _best_global(run, models_run, rows)
    local_rows = [_sift_row(run, best_model, sift, query_sift, reranker)]
    if vlad_k > 0:
        local_rows.append(_vlad_row(run, best_model, sift, query_sift, reranker.fusion, vlad_k))
    if patches is not None:
        local_rows.append(_patch_row(run, best_model, patches, reranker.fusion))
    rows.extend(local_rows)
    tuned = [row for row in local_rows if row.validation_map is not None]
    if tuned:
        best = max(tuned, key=lambda row: row.validation_map or 0.0)
        rows.append(dataclasses.replace(best, id=REPEATED_ROW, method=f"best on validation: {best.id}"))

    settings = {
        "models": {model.model_id: _model_name(model.config) for model in models_run},
        "best_global": best_model.model_id,
        "sift": sift.key,
        "query_sift": query_sift.key,
        "reranker": dataclasses.asdict(reranker),
        "vlad_k": vlad_k,
        "patches": None if patches is None else dataclasses.asdict(patches),
        "fusion_grid": [float(v) for v in fusion_grid],
        "protocol": dataclasses.asdict(protocol),
    }
    return LadderReport(
        root=proto.root,
        protocol=proto.summary(),
        top_k=top_k,
        rows=tuple(rows),
        queries=proto.queries,
        settings=settings,
        extracted=dict(cache.stats.computed),
        notes=tuple(run.notes),
    )


def _run_global(
    run: _Run,
    model_id: str,
    extractor: GlobalDescriptorExtractor,
    patches: PatchConfig | None,
    batch_size: int,
) -> _Global:
    """Extract (or load) the model's vectors (and patches) and search both query sets."""
    reported = [q.relpath for q in run.proto.queries]
    asked = set(reported)
    rest = [name for name in run.proto.images if name not in asked]
    paths, cache = run.paths, run.cache
    # Reported queries one at a time: their seconds are a single query's embedding latency.
    failed = ensure_cnn_features(
        cache,
        extractor,
        paths,
        reported,
        patches,
        one_at_a_time=True,
        progress=run.stage(f"{model_id} queries"),
    )
    failed += ensure_cnn_features(
        cache, extractor, paths, rest, patches, batch_size=batch_size, progress=run.stage(f"{model_id} index")
    )
    run.notes.extend(failed)
    key = global_key(extractor)
    hits = {name: _search(cache, key, query_set, run.top_k) for name, query_set in run.sets.items()}
    embed = dict(zip(reported, cache.seconds(key, reported).tolist(), strict=True))
    return _Global(model_id, extractor.config, extractor, hits, embed)


def _search(cache: FeatureCache, key: str, query_set: QuerySet, top_k: int) -> dict[str, _Hits]:
    """Exact cosine top ``k`` per query; ties by index order, so rankings are reproducible."""
    if not query_set.queries or not query_set.index:
        return {}
    index = cache.load_matrix(key, query_set.index).astype(np.float32)
    queries = cache.load_matrix(key, [q.relpath for q in query_set.queries]).astype(np.float32)
    k = min(top_k, len(query_set.index))
    out: dict[str, _Hits] = {}
    for query, vector in zip(query_set.queries, queries, strict=True):
        t0 = time.perf_counter()
        scores = index @ vector
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]
        seconds = time.perf_counter() - t0
        out[query.relpath] = _Hits(
            tuple(query_set.index[i] for i in top), scores[top].astype(np.float64), seconds
        )
    return out


def _scores(
    queries: Sequence[EvalQuery], rankings: Mapping[str, Sequence[str]], k: int
) -> tuple[float, float, float, dict[str, float]]:
    """mAP@k, mean P@10, mean recall@k and per-query AP@k (junk removed, GLDv2 normaliser)."""
    per_query: dict[str, float] = {}
    precision, recall = [], []
    for q in queries:
        ranking = rankings.get(q.relpath, ())
        ap = average_precision_at_k(ranking, q.positives, k, q.junk)
        per_query[q.relpath] = float(ap or 0.0)
        precision.append(precision_at_k(ranking, q.positives, 10, q.junk))
        recall.append(recall_at_k(ranking, q.positives, k, q.junk) or 0.0)
    if not per_query:
        return float("nan"), float("nan"), float("nan"), {}
    return (
        float(np.mean(list(per_query.values()))),
        float(np.mean(precision)),
        float(np.mean(recall)),
        per_query,
    )


def _validation_map(
    queries: Sequence[EvalQuery], rankings: Mapping[str, Sequence[str]], k: int
) -> float | None:
    return _scores(queries, rankings, k)[0] if queries else None


def _global_row(run: _Run, model: _Global) -> LadderRow:
    hits = model.hits["reported"]
    rankings = {q: h.ids for q, h in hits.items()}
    mean_ap, p10, recall, per_query = _scores(run.proto.queries, rankings, run.top_k)
    latency = [model.embed_seconds[q] + h.seconds for q, h in hits.items()]
    validation = {q: h.ids for q, h in model.hits["validation"].items()}
    return LadderRow(
        id=model.model_id,
        method=_model_name(model.config),
        map_at_k=mean_ap,
        precision_at_10=p10,
        recall_at_k=recall,
        median_latency_ms=1e3 * float(np.nanmedian(latency)),
        index_bytes=_global_bytes(run, model),
        weight_global=None,
        validation_map=_validation_map(run.proto.validation.queries, validation, run.top_k),
        per_query_ap=per_query,
        rankings=rankings,
    )


def _best_global(run: _Run, models: Sequence[_Global], rows: Sequence[LadderRow]) -> _Global:
    """Highest validation mAP (ties: the later, trained model); without validation, the last model."""
    scored = [(row.validation_map, i) for i, row in enumerate(rows) if row.validation_map is not None]
    if not scored:
        run.notes.append("no validation queries: the last model is re-ranked and v stays at its default")
        return models[-1]
    return models[max(scored)[1]]


def _sift_row(
    run: _Run, model: _Global, sift: SiftConfig, query_sift: SiftConfig, reranker: RerankerConfig
) -> LadderRow:
    """E5: verified SIFT inliers fused with the global score."""
    _ensure_sift(run, sift, query_sift)
    fusion = dataclasses.replace(reranker.fusion, top_k=run.top_k, local_method="sift")
    sift_reranker = Reranker(dataclasses.replace(reranker, fusion=fusion))
    local = {
        name: _sift_scores(run.cache, sift, query_sift, sift_reranker, model.hits[name]) for name in run.sets
    }
    name = f"{model.model_id} + SIFT re-rank ({reranker.geometry} verification)"
    return _local_row(run, "sift", name, model, local, fusion, run.cache.sift_nbytes(sift, run.proto.index))


def _vlad_row(
    run: _Run, model: _Global, sift: SiftConfig, query_sift: SiftConfig, fusion: FusionConfig, k: int
) -> LadderRow:
    """E6: VLAD of the same SIFT features. The codebook is learnt on images in both indexes only, so
    never on a reported or validation query."""
    _ensure_sift(run, sift, query_sift)
    proto = run.proto
    codebook = _codebook(run.cache, sift, sorted(set(proto.index) & set(proto.validation.index)), k)
    index_images = sorted({*proto.index, *proto.validation.index})
    index_features = run.cache.load_sift(sift, index_images)
    index_vlads = {image: vlad(feats.descriptors, codebook) for image, feats in index_features.items()}
    local = {
        name: _vlad_scores(run.cache, query_sift, codebook, index_vlads, model.hits[name])
        for name in run.sets
    }
    fusion = dataclasses.replace(fusion, top_k=run.top_k, local_method="vlad")
    index_bytes = sum(index_vlads[image].nbytes for image in proto.index)
    return _local_row(
        run, "vlad", f"{model.model_id} + VLAD re-rank (k={k})", model, local, fusion, index_bytes
    )


def _patch_row(run: _Run, model: _Global, patches: PatchConfig, fusion: FusionConfig) -> LadderRow:
    """E7: CNN patch sets from the global model's own feature map."""
    key = patch_key(model.extractor, patches)
    local = {name: _patch_scores(run.cache, key, patches, model.hits[name]) for name in run.sets}
    fusion = dataclasses.replace(fusion, top_k=run.top_k, local_method="patches")
    name = f"{model.model_id} + CNN patch re-rank (top {patches.top_n}, {patches.method})"
    return _local_row(run, "patches", name, model, local, fusion, run.cache.nbytes(key, run.proto.index))


def _ensure_sift(run: _Run, sift: SiftConfig, query_sift: SiftConfig) -> None:
    proto = run.proto
    queries = [q.relpath for q in (*proto.queries, *proto.validation.queries)]
    index_images = sorted({*proto.index, *proto.validation.index})
    run.notes.extend(ensure_sift(run.cache, query_sift, run.paths, queries, run.stage("SIFT queries")))
    run.notes.extend(ensure_sift(run.cache, sift, run.paths, index_images, run.stage("SIFT index")))


def _global_bytes(run: _Run, model: _Global) -> int:
    return run.cache.nbytes(model.config.version_key, run.proto.index)


def _sift_scores(
    cache: FeatureCache,
    sift: SiftConfig,
    query_sift: SiftConfig,
    reranker: Reranker,
    hits: Mapping[str, _Hits],
) -> _Local:
    """Verified inliers per candidate; seconds = query SIFT + loading candidates' features + re-ranking."""
    out = _Local()
    query_features = cache.load_sift(query_sift, list(hits))
    extract = dict(zip(hits, cache.sift_seconds(query_sift, list(hits)).tolist(), strict=True))
    for q, h in hits.items():
        t0 = time.perf_counter()
        features = cache.load_sift(sift, h.ids)
        candidates = [Candidate(i, float(score)) for i, score in zip(h.ids, h.scores, strict=True)]
        result = reranker.rerank(query_features[q], candidates, features)
        out.seconds[q] = extract[q] + time.perf_counter() - t0
        raw = np.full(len(h.ids), np.nan)
        for hit in result.hits:
            if hit.evidence is not None:
                raw[hit.global_rank] = hit.evidence.inliers
        out.raw[q] = raw
    return out


def _codebook(cache: FeatureCache, sift: SiftConfig, train_ids: Sequence[str], k: int) -> np.ndarray:
    digest = hashlib.sha256("\n".join(train_ids).encode()).hexdigest()[:12]
    name = f"vlad-{sift.key}-k{k}-{digest}"

    def train() -> np.ndarray:
        features = cache.load_sift(sift, train_ids)
        return train_codebook(np.concatenate([f.descriptors for f in features.values()]), k=k, seed=0)

    return cache.codebook(name, train, {"extractor_key": sift.key, "images": len(train_ids), "seed": 0})


def _vlad_scores(
    cache: FeatureCache,
    query_sift: SiftConfig,
    codebook: np.ndarray,
    index_vlads: Mapping[str, np.ndarray],
    hits: Mapping[str, _Hits],
) -> _Local:
    """VLAD cosine per candidate, index VLADs precomputed (as a product would store them); seconds =
    query SIFT + query VLAD + scoring."""
    out = _Local()
    query_features = cache.load_sift(query_sift, list(hits))
    extract = dict(zip(hits, cache.sift_seconds(query_sift, list(hits)).tolist(), strict=True))
    for q, h in hits.items():
        t0 = time.perf_counter()
        raw = np.stack([index_vlads[i] for i in h.ids]) @ vlad(query_features[q].descriptors, codebook)
        empty = np.array([not index_vlads[i].any() for i in h.ids])
        out.seconds[q] = extract[q] + time.perf_counter() - t0
        out.raw[q] = np.where(empty | (len(query_features[q]) == 0), np.nan, raw.astype(np.float64))
    return out


def _patch_scores(cache: FeatureCache, key: str, cfg: PatchConfig, hits: Mapping[str, _Hits]) -> _Local:
    """Patch-set similarity per candidate; seconds = loading the candidates' patches + scoring."""
    out = _Local()
    query_patches = dict(zip(hits, cache.load(key, list(hits)), strict=True))
    for q, h in hits.items():
        t0 = time.perf_counter()
        mine = query_patches[q].astype(np.float32)
        theirs = cache.load(key, h.ids)
        raw = [patch_similarity(mine, p.astype(np.float32), cfg.method) if len(p) else np.nan for p in theirs]
        out.seconds[q] = time.perf_counter() - t0
        out.raw[q] = np.array(raw, np.float64) if len(mine) else np.full(len(h.ids), np.nan)
    return out


def _local_row(
    run: _Run,
    method: LocalMethod,
    name: str,
    model: _Global,
    local: Mapping[str, _Local],
    fusion: FusionConfig,
    local_bytes: int,
) -> LadderRow:
    """Tune v on validation, fuse the reported queries with it, score."""
    proto, k = run.proto, run.top_k
    validation = [q for q in proto.validation.queries if q.relpath in model.hits["validation"]]
    weight, table = fusion.weight_global, []
    if validation:
        weight, table = _tune(
            validation, model.hits["validation"], local["validation"].raw, fusion, run.grid, k
        )
    chosen = dataclasses.replace(fusion, weight_global=weight)
    hits = model.hits["reported"]
    rankings = _fused_rankings(hits, local["reported"].raw, chosen)
    mean_ap, p10, recall, per_query = _scores(proto.queries, rankings, k)
    latency = [model.embed_seconds[q] + hits[q].seconds + local["reported"].seconds[q] for q in hits]
    return LadderRow(
        id=_LOCAL_IDS[method],
        method=name,
        map_at_k=mean_ap,
        precision_at_10=p10,
        recall_at_k=recall,
        median_latency_ms=1e3 * float(np.nanmedian(latency)),
        index_bytes=_global_bytes(run, model) + local_bytes,
        weight_global=weight,
        validation_map=dict(table).get(weight) if table else None,
        per_query_ap=per_query,
        rankings=rankings,
        tuning=tuple(table),
    )


def _tune(
    queries: Sequence[EvalQuery],
    hits: Mapping[str, _Hits],
    raw: Mapping[str, np.ndarray],
    fusion: FusionConfig,
    grid: Sequence[float],
    k: int,
) -> tuple[float, list[tuple[float, float]]]:
    """``tune_fusion_weight`` on the validation queries, junk candidates removed first."""
    global_scores, local_scores, relevance, n_relevant = [], [], [], []
    for q in queries:
        h = hits[q.relpath]
        keep = np.array([i not in q.junk for i in h.ids], bool)
        global_scores.append(h.scores[keep])
        local_scores.append(raw[q.relpath][keep])
        relevance.append(np.array([i in q.positives for i in h.ids], bool)[keep])
        n_relevant.append(len(q.positives))
    return tune_fusion_weight(
        global_scores, local_scores, relevance, grid=grid, cfg=fusion, n_relevant_per_query=n_relevant, k=k
    )


def _fused_rankings(
    hits: Mapping[str, _Hits], raw: Mapping[str, np.ndarray], fusion: FusionConfig
) -> dict[str, tuple[str, ...]]:
    """Candidates per query by fused score (ties: better global rank first)."""
    out = {}
    for q, h in hits.items():
        fused = fuse(h.scores, raw[q], fusion)
        order = np.lexsort((np.arange(len(fused)), -fused))
        out[q] = tuple(h.ids[i] for i in order)
    return out


def _model_name(config: EmbeddingConfig) -> str:
    weights = "ImageNet" if config.weights == IMAGENET else Path(config.weights).name
    return f"{config.backbone} {weights}, {config.image_size} px, GeM"
