"""End-to-end search latency through the product's ``SearchPipeline`` on a real Milvus Lite server.

Indexes a collection once (global embeddings into Milvus, SIFT into a feature store, both decoded by the
product's decode policy), then runs each query through the same pipeline ``POST /api/search/`` runs:
decode, global embedding, ANN top-K in Milvus, query SIFT, loading the candidates' SIFT, matching,
verification, fusion; and prints p50/p95 per stage and end to end, plus top-1 accuracy before and after
re-ranking. Target (2 cores): end-to-end p50 <= 0.4 s with K = 100. (The HTTP layer and the catalogue join
come on top: see bench/load.py.) Every option left out takes the served value
(``retrieval_core.search.served.SERVED``); Milvus holds each photo's landmark id, as served.

    .venv/bin/python bench/search_latency.py --dataset ../shared/datasets/sfm_landmarks --queries 30
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from retrieval_core.datasets.collection import landmark_ids, read_collection
from retrieval_core.features.compact import LocalFeatureFormat
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.features.store import LocalFeatureStore
from retrieval_core.index.exact import ExactIndex
from retrieval_core.index.milvus_store import MilvusVectorStore
from retrieval_core.index.vector_index import integer_id
from retrieval_core.rerank.feature_lru import CachedFeatureSource
from retrieval_core.rerank.sift_scorer import SiftScorer
from retrieval_core.runtime import limit_native_threads
from retrieval_core.search.decode import DecodePolicy, decode, index_local_features, local_features_key
from retrieval_core.search.pipeline import SearchPipeline
from retrieval_core.search.served import SERVED, replace_given
from webapp import localstack

STAGES = (
    "decode",
    "embed",
    "ann",
    "rerank_query_features",
    "rerank_load",
    "rerank_match",
    "rerank_verify",
    "rerank_verified_expansion",
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, required=True, help="collection folder")
    parser.add_argument("--queries", type=int, default=30)
    # Left out (None): the served value.
    parser.add_argument("--top-k", type=int, help="candidates re-ranked (RERANK_TOP_K)")
    parser.add_argument("--image-size", type=int, help="EMBEDDING_IMAGE_SIZE")
    parser.add_argument("--index-keypoints", type=int, help="SIFT_MAX_KEYPOINTS")
    parser.add_argument("--query-keypoints", type=int, help="SIFT_QUERY_MAX_KEYPOINTS")
    parser.add_argument("--weight-global", type=float, help="FUSION_WEIGHT_GLOBAL")
    parser.add_argument("--geometry", choices=["fundamental", "homography"], help="RERANK_GEOMETRY")
    parser.add_argument("--min-inliers", type=int, help="RERANK_MIN_INLIERS")
    parser.add_argument("--verified-expansion", type=int, help="RERANK_VERIFIED_EXPANSION")
    parser.add_argument("--verified-expansion-inliers", type=int, help="RERANK_VERIFIED_EXPANSION_INLIERS")
    parser.add_argument("--landmark-first", type=float, help="RERANK_LANDMARK_FIRST")
    parser.add_argument("--landmark-first-majority", type=float, help="RERANK_LANDMARK_FIRST_MAJORITY")
    parser.add_argument("--landmark-first-lift", type=float, help="RERANK_LANDMARK_FIRST_LIFT")
    parser.add_argument("--local-format", help="LOCAL_FEATURES_FORMAT")
    parser.add_argument("--threads", type=int, default=2, help="torch threads; BLAS and OpenCV run on 1")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also run the previous path (no feature cache) on the same queries, interleaved, and "
        "print the ratio",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    limit_native_threads()

    items = read_collection(args.dataset)
    rng = np.random.default_rng(0)
    query_positions = set(
        rng.choice(len(items), size=min(args.queries, len(items) // 4), replace=False).tolist()
    )
    queries = [items[i] for i in sorted(query_positions)]
    index = [item for i, item in enumerate(items) if i not in query_positions]
    embedding = replace_given(SERVED.embedding, image_size=args.image_size)
    extractor = GlobalDescriptorExtractor.from_config(embedding)
    policy = DecodePolicy.for_embedding(embedding, SERVED.search.decode.max_pixels)
    index_sift = replace_given(SERVED.index_sift, max_keypoints=args.index_keypoints)
    query_sift = replace_given(SERVED.query_sift, max_keypoints=args.query_keypoints)
    fusion = replace_given(
        SERVED.search.fusion,
        weight_global=args.weight_global,
        top_k=args.top_k,
        min_inliers=args.min_inliers,
        landmark_first=args.landmark_first,
        landmark_first_majority=args.landmark_first_majority,
        landmark_first_lift=args.landmark_first_lift,
    )
    search = replace_given(
        SERVED.search,
        fusion=fusion,
        decode=policy,
        verified_expansion=args.verified_expansion,
        verified_expansion_inliers=args.verified_expansion_inliers,
    )
    fmt = LocalFeatureFormat.parse(args.local_format or SERVED.local_format)
    label_ids = landmark_ids(item.landmark for item in index)  # as Milvus holds them

    with tempfile.TemporaryDirectory() as tmp:
        port = localstack.free_port()
        milvus = localstack.start_milvus(port, Path(tmp) / "milvus")
        try:
            store = MilvusVectorStore(f"http://127.0.0.1:{port}", "bench", extractor.dim)
            store.ensure_collection()
            started = time.perf_counter()
            result = extractor.extract_paths(
                [item.path for item in index], decode=lambda source: decode(source, policy)
            )
            ids = [int(i) for i in result.indices]
            landmarks = [label_ids.get(index[i].landmark) for i in ids]
            store.upsert(ids, result.vectors, landmarks)
            store.flush()
            # Each landmark's share of the collection, as the catalogue gives it to the served pipeline.
            shares = ExactIndex(ids, np.zeros((len(ids), 1), np.float32), landmarks)
            sift_key = local_features_key(index_sift, policy, fmt)
            sift_store = LocalFeatureStore(Path(tmp) / "sift", sift_key, fmt)
            for i in ids:
                sift_store.save(i, index_local_features(index[i].path, index_sift, policy, fmt))
            print(
                f"indexed {len(ids)} images in {time.perf_counter() - started:.1f} s; {len(queries)} queries"
            )
            verification = replace_given(SERVED.verification, geometry=args.geometry)
            cache = CachedFeatureSource(sift_store, 256 * 2**20)  # type: ignore[arg-type]  # keys str | int, protocol Hashable (see LocalFeatureSource)
            variants = {
                "product": SearchPipeline(
                    extractor,
                    store,
                    SiftScorer(cache, query_sift, verification, min_inliers=fusion.min_inliers),
                    search,
                    landmark_shares=shares,
                ),
                # Without the feature LRU, for the ratio.
                "previous": SearchPipeline(
                    extractor,
                    store,
                    SiftScorer(
                        sift_store,  # type: ignore[arg-type]  # keys str | int, protocol Hashable (see LocalFeatureSource)
                        query_sift,
                        verification,
                        min_inliers=fusion.min_inliers,
                    ),
                    search,
                    landmark_shares=shares,
                ),
            }
            if not args.compare:
                del variants["previous"]
            stages: dict[str, dict[str, list[float]]] = {name: {} for name in variants}
            correct = {name: [0, 0] for name in variants}  # top-1 landmark: global, re-ranked
            for n, query in enumerate([queries[0], *queries]):  # the first run warms up, not counted
                photo = query.path.read_bytes()
                order = list(variants) if n % 2 else list(reversed(variants))  # alternate who goes first
                for name in order:
                    searched = variants[name].search(photo)
                    if n == 0:
                        continue
                    for stage in (*STAGES, "fuse", "total"):
                        stages[name].setdefault(stage, []).append(searched.timings_ms.get(stage, 0.0))
                    by_global = min(searched.hits, key=lambda hit: hit.global_rank)
                    first = searched.hits[0]
                    correct[name][0] += index[integer_id(by_global.image_id)].landmark == query.landmark
                    correct[name][1] += index[integer_id(first.image_id)].landmark == query.landmark
        finally:
            localstack.stop(milvus)

    names = list(stages)
    print(f"{'stage':<24}" + "".join(f"{name + ' p50':>16}{name + ' p95':>16}" for name in names))
    for stage in stages[names[0]]:
        label = "end-to-end" if stage == "total" else stage
        cells = "".join(
            f"{np.percentile(stages[name][stage], 50):16.1f}{np.percentile(stages[name][stage], 95):16.1f}"
            for name in names
        )
        print(f"{label:<24}{cells}")
    for name in names:
        g, r = correct[name]
        print(f"{name}: top-1 landmark correct: global {g}/{len(queries)}, re-ranked {r}/{len(queries)}")
    if len(names) == 2:
        ratio = np.percentile(stages["product"]["total"], 50) / np.percentile(stages["previous"]["total"], 50)
        print(f"end-to-end p50 product / previous: {ratio:.2f} (same queries, interleaved, one run)")
    print(f"feature cache: {cache.hits} hits, {cache.misses} misses, {cache.bytes / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
