"""The experiment ladder (E1-E7 of the thesis) on one collection, as one parameterised run.

Every rung searches through the product's own ``SearchPipeline``: the same candidate selection, local
scorers, fusion and ranking as ``POST /api/search/``. What differs is only where vectors and features come
from: an exact in-memory ``ExactIndex`` over cached vectors instead of Milvus (so figures do not depend on
ANN recall), and a ``FeatureCache`` filled by the product's own extraction functions.

- E1 (first model: pretrained) and E2, E3, ... (further models: trained checkpoints): global search.
- The best global model is the one with the highest mAP on the VALIDATION queries; its top ``top_k`` hits
  per query are re-ranked by E5 SIFT (verified inliers), E6 VLAD (codebook learnt on index images'
  RootSIFT, never on a query; optionally PCA-whitened as served) and E7 CNN patches (from the same forward
  pass as the global vector). ``best`` repeats the re-ranking with the highest validation mAP.
- Each local method scores the candidates once; the fusion weight v is then chosen on the validation
  queries with ``tune_fusion_weight`` and applied unchanged to the reported queries.

Latency per query = query embedding (timed one query at a time when extracted) + the pipeline's search
(index search, query local features, loading the candidates' features, matching / scoring, fusion).
Features come from a ``FeatureCache``, so a second run (another grid, another top_k) extracts nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retrieval_core.datasets.collection import (
    UNLABELLED,
    CollectionFormatError,
    landmark_ids,
    read_collection,
)
from retrieval_core.eval.evaluation_protocol import EvalProtocol, EvalQuery, QuerySet, build_protocol
from retrieval_core.eval.extraction import (
    PatchConfig,
    ensure_cnn_features,
    ensure_sift,
    global_key,
    patch_key,
)
from retrieval_core.eval.feature_disk_cache import FeatureCache
from retrieval_core.eval.geolocation import geolocation_summary, protocol_positions
from retrieval_core.eval.ladder_config import LadderConfig
from retrieval_core.eval.metrics import (
    average_precision_at_k,
    global_average_precision,
    precision_at_k,
    recall_at_k,
)
from retrieval_core.eval.recognition_threshold import apply_threshold, choose_threshold
from retrieval_core.eval.report import REPEATED_ROW, LadderReport, LadderRow
from retrieval_core.features.compact import LocalFeatureFormat
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.features.sift import LocalFeatures, SiftConfig
from retrieval_core.features.vlad import VladEncoder, fit_pca_whitening, train_codebook, vlad
from retrieval_core.index.exact import ExactIndex
from retrieval_core.models.embedding import IMAGENET, EmbeddingConfig
from retrieval_core.rerank.fusion import FusionConfig, LocalMethod
from retrieval_core.rerank.patch_scorer import PatchScorer
from retrieval_core.rerank.scorer import GlobalOnlyScorer, LocalScorer, QueryFeatures
from retrieval_core.rerank.sift_scorer import SiftScorer, VerificationConfig
from retrieval_core.rerank.vlad_scorer import VladScorer
from retrieval_core.search.config import SearchConfig
from retrieval_core.search.decode import DecodePolicy, local_features_key
from retrieval_core.search.pipeline import (
    ScoredCandidates,
    SearchPipeline,
    rank_and_recognise,
    rank_candidates,
)
from retrieval_core.search.served import SERVED, ServedConfig
from retrieval_core.search.tuning import tune_fusion_weight

__all__ = ["LadderProgress", "run_ladder"]

LadderProgress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``."""

_LOCAL_IDS: dict[LocalMethod, str] = {"sift": "E5", "vlad": "E6", "patches": "E7"}
_LADDER = LadderConfig()

Scored = dict[str, tuple[ScoredCandidates, float]]
"""Per query relpath: the pipeline's scored candidates and the seconds the pipeline took."""


@dataclass(frozen=True, eq=False)
class _Global:
    """One global model: its extractor, an exact index per query set, and query embedding seconds."""

    model_id: str
    config: EmbeddingConfig
    extractor: GlobalDescriptorExtractor
    indexes: dict[str, ExactIndex]
    vectors: dict[str, np.ndarray]
    embed_seconds: dict[str, float]


@dataclass(frozen=True, eq=False)
class _Run:
    """What every stage of one ladder run shares: how it searches (``served``) and what it evaluates."""

    proto: EvalProtocol
    cache: FeatureCache
    served: ServedConfig
    ladder: LadderConfig
    notes: list[str]
    progress: LadderProgress | None
    labels: Mapping[str, str] = field(default_factory=dict)
    positions: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """relpath -> (latitude, longitude), for geolocation (empty: the collection has no positions)."""
    """relpath -> landmark, for recognition GAP (empty: the collection has no labels)."""
    paths: dict[str, Path] = field(init=False)
    sets: dict[str, QuerySet] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", {name: self.proto.path(name) for name in self.proto.images})
        object.__setattr__(
            self, "sets", {"reported": self.proto.reported, "validation": self.proto.validation}
        )

    @property
    def search(self) -> SearchConfig:
        return self.served.search

    def stage(self, name: str) -> Callable[[int, int], None] | None:
        progress = self.progress
        return None if progress is None else lambda done, total: progress(name, done, total)


def run_ladder(
    root: Path,
    config: ServedConfig = SERVED,
    ladder: LadderConfig = _LADDER,
    *,
    cache_dir: Path,
    device: str | None = None,
    progress: LadderProgress | None = None,
) -> LadderReport:
    """Run every rung on the collection at ``root`` and return the report (see the module docstring).

    ``config`` is how every row searches, the served preset unless told otherwise: its fusion (re-rank
    depth ``fusion.top_k``, inlier floor, landmark first), verified expansion, index and query SIFT,
    verification and the stored format of index SIFT (queries stay at full precision, as in serving).
    ``ladder`` names the rows, the fusion grid and the protocol (``LadderConfig``). Features are cached
    under ``cache_dir``.
    """
    models, ids = ladder.rows(config.embedding)
    if (
        len(ids) != len(models)
        or len(set(ids)) != len(ids)
        or set(ids) & {*_LOCAL_IDS.values(), REPEATED_ROW}
    ):
        raise ValueError(f"model ids {ids} must be unique, one per model, and not E5-E7 or 'best'")
    sift, query_sift, verification = config.index_sift, config.query_sift, config.verification
    local_format = LocalFeatureFormat.parse(config.local_format)
    proto = build_protocol(root, ladder.protocol)
    if not proto.queries:
        raise ValueError(f"{root}: no reported query has a relevant index image ({proto.summary()})")
    cache = FeatureCache(cache_dir, collection=proto.root)
    labels, positions = _landmark_labels(proto.root), protocol_positions(proto.root, proto.images)
    run = _Run(proto, cache, config, ladder, [*proto.notes], progress, labels, positions)
    patches, vlad_k, vlad_whiten = ladder.patches, ladder.vlad_k, ladder.vlad_whiten

    models_run: list[_Global] = []
    rows: list[LadderRow] = []
    for model_id, embedding in zip(ids, models, strict=True):
        extractor = GlobalDescriptorExtractor.from_config(embedding, device)
        models_run.append(_run_global(run, model_id, extractor, patches, ladder.batch_size))
        rows.append(_global_row(run, models_run[-1]))

    best_model = _best_global(run, models_run, rows)
    policy = DecodePolicy.for_embedding(best_model.config)
    local_rows = [_sift_row(run, best_model, sift, query_sift, verification, policy, local_format)]
    if vlad_k > 0:
        local_rows.append(
            _vlad_row(run, best_model, sift, query_sift, policy, vlad_k, vlad_whiten, local_format)
        )
    if patches is not None:
        local_rows.append(_patch_row(run, best_model, patches))
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
        "local_format": local_format.name,
        "decode": dataclasses.asdict(policy),
        "verification": dataclasses.asdict(verification),
        "fusion": dataclasses.asdict(run.search.fusion),
        "vlad_k": vlad_k,
        "vlad_whiten": vlad_whiten,
        "verified_expansion": {
            "neighbours": run.search.verified_expansion,
            "inliers": run.search.verified_expansion_inliers,
        },
        "patches": None if patches is None else dataclasses.asdict(patches),
        "fusion_grid": [float(v) for v in ladder.fusion_grid],
        "protocol": dataclasses.asdict(ladder.protocol),
    }
    return LadderReport(
        root=proto.root,
        protocol=proto.summary(),
        top_k=ladder.top_k,
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
    """Extract (or load) the model's vectors (and patches); an exact index per query set."""
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

    def matrix(names: Sequence[str]) -> np.ndarray:
        return cache.load_matrix(key, names).astype(np.float32)

    # The index's curated labels as integer ids, as Milvus returns them with each hit (recognition, and
    # FusionConfig.landmark_first); a query's own label is never looked up.
    label_ids = landmark_ids(run.labels.values())

    def landmarks(names: Sequence[str]) -> list[int | None]:
        return [label_ids.get(run.labels.get(name, "")) for name in names]

    indexes = {
        name: ExactIndex(query_set.index, matrix(query_set.index), landmarks(query_set.index))
        for name, query_set in run.sets.items()
        if query_set.queries and query_set.index
    }
    queries = [q.relpath for query_set in run.sets.values() for q in query_set.queries]
    vectors = dict(zip(queries, matrix(queries), strict=True))
    embed = dict(zip(reported, cache.seconds(key, reported).tolist(), strict=True))
    return _Global(model_id, extractor.config, extractor, indexes, vectors, embed)


def _score(
    run: _Run,
    model: _Global,
    scorer: LocalScorer,
    query_features: Callable[[str], QueryFeatures],
) -> dict[str, Scored]:
    """Candidates and raw scores of every query of both sets, through the product's pipeline."""
    out: dict[str, Scored] = {}
    config = dataclasses.replace(run.search, k=run.ladder.top_k)
    for name, query_set in run.sets.items():
        out[name] = {}
        index = model.indexes.get(name)
        if index is None:
            continue
        pipeline = SearchPipeline(model.extractor, index, scorer, config, landmark_shares=index)
        for query in query_set.queries:
            features = query_features(query.relpath)
            t0 = time.perf_counter()
            itself = (query.relpath,) if query_set.leave_one_out else ()
            hits = pipeline.candidates(features, run.ladder.top_k, exclude_ids=itself)
            scored = pipeline.score(features, hits, exclude_ids=itself)
            out[name][query.relpath] = (scored, time.perf_counter() - t0)
    return out


def _scores(
    queries: Sequence[EvalQuery], rankings: Mapping[str, Sequence[Hashable]], k: int
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


def _rankings(scored: Scored, fusion: FusionConfig) -> dict[str, tuple[str, ...]]:
    """Each query's ranking exactly as the product orders it (``rank_candidates``)."""
    return {q: tuple(str(hit.image_id) for hit in rank_candidates(s, fusion)) for q, (s, _) in scored.items()}


def _validation_map(run: _Run, scored: Scored, fusion: FusionConfig) -> float | None:
    queries = run.proto.validation.queries
    return _scores(queries, _rankings(scored, fusion), run.ladder.top_k)[0] if queries and scored else None


def _global_row(run: _Run, model: _Global) -> LadderRow:
    scored = _score(run, model, GlobalOnlyScorer(), lambda q: QueryFeatures(vector=model.vectors[q]))
    rankings = _rankings(scored["reported"], run.search.fusion)
    gap, threshold = _recognition(run, scored, run.search.fusion)
    mean_ap, p10, recall, per_query = _scores(run.proto.queries, rankings, run.ladder.top_k)
    latency = [model.embed_seconds[q] + seconds for q, (_, seconds) in scored["reported"].items()]
    return LadderRow(
        id=model.model_id,
        method=_model_name(model.config),
        map_at_k=mean_ap,
        precision_at_10=p10,
        recall_at_k=recall,
        median_latency_ms=_percentile_ms(latency, 50),
        p95_latency_ms=_percentile_ms(latency, 95),
        index_bytes=_global_bytes(run, model),
        weight_global=None,
        validation_map=_validation_map(run, scored["validation"], run.search.fusion),
        per_query_ap=per_query,
        rankings=rankings,
        gap=gap,
        geolocation=_geolocation(run, scored, run.search.fusion),
        recognition_threshold=threshold,
    )


def _best_global(run: _Run, models: Sequence[_Global], rows: Sequence[LadderRow]) -> _Global:
    """Highest validation mAP (ties: the later, trained model); without validation, the last model."""
    scored = [(row.validation_map, i) for i, row in enumerate(rows) if row.validation_map is not None]
    if not scored:
        run.notes.append("no validation queries: the last model is re-ranked and v stays at its default")
        return models[-1]
    return models[max(scored)[1]]


class _CachedSift:
    """The evaluation cache as a ``LocalFeatureSource``."""

    def __init__(self, cache: FeatureCache, key: str) -> None:
        self.cache, self.key = cache, key

    def load_many(self, image_ids: Sequence[Hashable]) -> dict[Hashable, LocalFeatures]:
        found: dict[Hashable, LocalFeatures] = {}
        found.update(self.cache.load_sift(self.key, [str(i) for i in image_ids]))
        return found


class _CachedPatches:
    """The evaluation cache as a ``PatchSource``."""

    def __init__(self, cache: FeatureCache, key: str) -> None:
        self.cache, self.key = cache, key

    def load_many(self, image_ids: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
        ids = [str(i) for i in image_ids]
        return dict(zip(ids, self.cache.load(self.key, ids), strict=True))


def _all_queries(run: _Run) -> list[str]:
    return [q.relpath for query_set in run.sets.values() for q in query_set.queries]


def _ensure_sift(
    run: _Run, sift: SiftConfig, query_sift: SiftConfig, policy: DecodePolicy, fmt: LocalFeatureFormat
) -> tuple[str, str]:
    """Index and query SIFT in the cache, extracted as the product extracts them (index images stored in
    ``fmt``, queries at full precision); their cache keys."""
    proto = run.proto
    index_images = sorted({*proto.index, *proto.validation.index})
    run.notes.extend(
        ensure_sift(run.cache, query_sift, policy, run.paths, _all_queries(run), run.stage("SIFT queries"))
    )
    run.notes.extend(
        ensure_sift(run.cache, sift, policy, run.paths, index_images, run.stage("SIFT index"), fmt)
    )
    return local_features_key(sift, policy, fmt), local_features_key(query_sift, policy)


def _with_query_sift(
    run: _Run, model: _Global, key: str
) -> tuple[Callable[[str], QueryFeatures], dict[str, float]]:
    """Query features with cached SIFT, and each reported query's SIFT extraction seconds."""
    queries = _all_queries(run)
    features = run.cache.load_sift(key, queries)
    seconds = dict(zip(queries, run.cache.sift_seconds(key, queries).tolist(), strict=True))
    return lambda q: QueryFeatures(vector=model.vectors[q], sift=features[q]), seconds


def _sift_row(
    run: _Run,
    model: _Global,
    sift: SiftConfig,
    query_sift: SiftConfig,
    verification: VerificationConfig,
    policy: DecodePolicy,
    fmt: LocalFeatureFormat,
) -> LadderRow:
    """E5: verified SIFT inliers fused with the global score."""
    index_key, query_key = _ensure_sift(run, sift, query_sift, policy, fmt)
    scorer = SiftScorer(
        _CachedSift(run.cache, index_key), query_sift, verification, min_inliers=run.search.fusion.min_inliers
    )
    query_features, extract = _with_query_sift(run, model, query_key)
    scored = _score(run, model, scorer, query_features)
    name = f"{model.model_id} + SIFT re-rank ({verification.geometry} verification)"
    local_bytes = run.cache.sift_nbytes(index_key, run.proto.index)
    return _local_row(run, "sift", name, model, scored, extract, local_bytes)


def _vlad_row(
    run: _Run,
    model: _Global,
    sift: SiftConfig,
    query_sift: SiftConfig,
    policy: DecodePolicy,
    k: int,
    whiten: int,
    fmt: LocalFeatureFormat,
) -> LadderRow:
    """E6: VLAD of the same SIFT features. The codebook (and whitening) is learnt on images in both
    indexes only, so never on a reported or validation query (leave-one-out: on the whole collection,
    without labels, as the product learns it)."""
    index_key, query_key = _ensure_sift(run, sift, query_sift, policy, fmt)
    proto = run.proto
    train_ids = sorted(set(proto.index) & set(proto.validation.index))
    encoder = _vlad_encoder(run, index_key, train_ids, k, whiten)
    index_images = sorted({*proto.index, *proto.validation.index})
    index_features = run.cache.load_sift(index_key, index_images)
    vectors = np.stack([encoder.encode(index_features[image].descriptors) for image in index_images])
    scorer = VladScorer(encoder, ExactIndex(index_images, vectors), query_sift)
    query_features, extract = _with_query_sift(run, model, query_key)
    scored = _score(run, model, scorer, query_features)
    index_bytes = len(proto.index) * vectors.shape[1] * vectors.dtype.itemsize
    whitened = f", PCA-whitened to {vectors.shape[1]}" if whiten else ""
    name = f"{model.model_id} + VLAD re-rank (k={k}{whitened})"
    return _local_row(run, "vlad", name, model, scored, extract, index_bytes)


def _vlad_encoder(run: _Run, key: str, train_ids: Sequence[str], k: int, whiten: int) -> VladEncoder:
    digest = hashlib.sha256("\n".join(train_ids).encode()).hexdigest()[:12]
    name = f"vlad-{key}-k{k}-{digest}"

    def train() -> np.ndarray:
        features = run.cache.load_sift(key, list(train_ids))
        return train_codebook(np.concatenate([f.descriptors for f in features.values()]), k=k, seed=0)

    centroids = run.cache.codebook(name, train, {"extractor_key": key, "images": len(train_ids), "seed": 0})
    if not whiten:
        return VladEncoder(centroids)
    features = run.cache.load_sift(key, list(train_ids))
    vlads = np.stack([vlad(f.descriptors, centroids) for f in features.values() if len(f)])
    return VladEncoder(centroids, fit_pca_whitening(vlads, min(whiten, len(vlads) - 1)))


def _patch_row(run: _Run, model: _Global, patches: PatchConfig) -> LadderRow:
    """E7: CNN patch sets from the global model's own feature map."""
    key = patch_key(model.extractor, patches)
    queries = _all_queries(run)
    query_patches = dict(zip(queries, run.cache.load(key, queries), strict=True))
    scorer = PatchScorer(_CachedPatches(run.cache, key), patches.method)
    scored = _score(
        run,
        model,
        scorer,
        lambda q: QueryFeatures(vector=model.vectors[q], patches=query_patches[q].astype(np.float32)),
    )
    name = f"{model.model_id} + CNN patch re-rank (top {patches.top_n}, {patches.method})"
    return _local_row(run, "patches", name, model, scored, {}, run.cache.nbytes(key, run.proto.index))


def _global_bytes(run: _Run, model: _Global) -> int:
    return run.cache.nbytes(model.config.version_key, run.proto.index)


def _local_row(
    run: _Run,
    method: LocalMethod,
    name: str,
    model: _Global,
    scored: Mapping[str, Scored],
    extract_seconds: Mapping[str, float],
    local_bytes: int,
) -> LadderRow:
    """Tune v on validation, rank the reported queries with it, score."""
    proto, k = run.proto, run.ladder.top_k
    fusion = dataclasses.replace(run.search.fusion, local_method=method)
    validation = [q for q in proto.validation.queries if q.relpath in scored["validation"]]
    weight, table = fusion.weight_global, list[tuple[float, float]]()
    if validation:
        weight, table = tune_fusion_weight(
            [scored["validation"][q.relpath][0] for q in validation],
            [q.positives for q in validation],
            [q.junk for q in validation],
            fusion=fusion,
            grid=run.ladder.fusion_grid,
            k=k,
        )
    chosen = dataclasses.replace(fusion, weight_global=weight)
    rankings = _rankings(scored["reported"], chosen)
    mean_ap, p10, recall, per_query = _scores(proto.queries, rankings, k)
    recognition = _recognition(run, scored, chosen)
    latency = [
        model.embed_seconds[q] + extract_seconds.get(q, 0.0) + seconds
        for q, (_, seconds) in scored["reported"].items()
    ]
    return LadderRow(
        id=_LOCAL_IDS[method],
        method=name,
        map_at_k=mean_ap,
        precision_at_10=p10,
        recall_at_k=recall,
        median_latency_ms=_percentile_ms(latency, 50),
        p95_latency_ms=_percentile_ms(latency, 95),
        index_bytes=_global_bytes(run, model) + local_bytes,
        weight_global=weight,
        validation_map=dict(table).get(weight) if table else None,
        per_query_ap=per_query,
        rankings=rankings,
        tuning=tuple(table),
        gap=recognition[0],
        geolocation=_geolocation(run, scored, chosen),
        recognition_threshold=recognition[1],
    )


def _percentile_ms(seconds: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of per-query seconds, in milliseconds (NaN: no queries)."""
    return 1e3 * float(np.nanpercentile(seconds, q)) if len(seconds) else float("nan")


def _geolocation(run: _Run, scored: Mapping[str, Scored], fusion: FusionConfig) -> dict[str, object] | None:
    """Where each query was taken, estimated as served from the row's own ranking, against the first
    result's position (``retrieval_core.eval.geolocation``); None without positions."""
    if not run.positions:
        return None
    rankings = {
        name: {q: rank_candidates(s, fusion) for q, (s, _) in by_query.items()}
        for name, by_query in scored.items()
    }
    return geolocation_summary(rankings, run.positions, run.served.geolocation)


def _landmark_labels(root: Path) -> dict[str, str]:
    """relpath -> landmark of the labelled images of the collection (none for ground_truth.json-only sets)."""
    try:
        items = read_collection(root)
    except CollectionFormatError:
        return {}
    return {item.relpath: item.landmark for item in items if item.landmark != UNLABELLED}


def _recognition(
    run: _Run, scored: Mapping[str, Scored], fusion: FusionConfig
) -> tuple[float | None, float | None]:
    """GAP on the reported queries with the threshold chosen on the validation ones (the recognition the
    product makes, ``rank_and_recognise``, from the index's label ids); None, None without labels."""
    if not run.labels:
        return None, None
    names: dict[Hashable | None, str] = {i: name for name, i in landmark_ids(run.labels.values()).items()}

    def predictions(
        queries: Sequence[EvalQuery], name: str
    ) -> tuple[list[tuple[str | None, float]], list[str | None]]:
        out: list[tuple[str | None, float]] = []
        for q in queries:
            if q.relpath not in scored[name]:
                out.append((None, 0.0))
                continue
            _, answer = rank_and_recognise(scored[name][q.relpath][0], fusion, run.search.recognition)
            out.append((names.get(answer.landmark), answer.confidence))
        return out, [run.labels.get(q.relpath) for q in queries]

    threshold = 0.0
    if run.proto.validation.queries:
        threshold, _ = choose_threshold(*predictions(run.proto.validation.queries, "validation"))
    reported, truths = predictions(run.proto.queries, "reported")
    return global_average_precision(apply_threshold(reported, threshold), truths), threshold


def _model_name(config: EmbeddingConfig) -> str:
    weights = "ImageNet" if config.weights == IMAGENET else Path(config.weights).name
    return f"{config.backbone} {weights}, {config.image_size} px, GeM"
