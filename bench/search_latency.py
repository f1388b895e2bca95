"""End-to-end search latency through the product's ``SearchPipeline`` on a real Milvus Lite server.

Indexes a collection once (global embeddings into Milvus, SIFT into a feature store, both decoded by the
product's decode policy), then runs each query through the same pipeline ``POST /api/search/`` runs:
decode, global embedding, ANN top-K in Milvus, query SIFT, loading the candidates' SIFT, matching,
verification, fusion; and prints p50/p95 per stage and end to end, plus top-1 accuracy before and after
re-ranking. Target (2 cores): end-to-end p50 <= 0.4 s with K = 100. (The HTTP layer and the catalogue join
come on top: see bench/load.py.)

    .venv/bin/python bench/search_latency.py --dataset ../shared/datasets/sfm_landmarks --queries 30
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from retrieval_core.datasets.collection import read_collection
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.features.sift import SiftConfig
from retrieval_core.features.store import LocalFeatureStore
from retrieval_core.index.milvus_store import MilvusVectorStore
from retrieval_core.models.embedding import EmbeddingConfig
from retrieval_core.rerank.fusion import FusionConfig
from retrieval_core.rerank.sift_scorer import SiftScorer, VerificationConfig
from retrieval_core.runtime import limit_native_threads
from retrieval_core.search.config import SearchConfig
from retrieval_core.search.decode import DecodePolicy, decode, index_local_features
from retrieval_core.search.pipeline import SearchPipeline
from webapp import localstack

STAGES = ("decode", "embed", "ann", "rerank_query_features", "rerank_load", "rerank_match", "rerank_verify")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, required=True, help="collection folder")
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=384)
    parser.add_argument("--index-keypoints", type=int, default=1000)
    parser.add_argument("--query-keypoints", type=int, default=500)
    parser.add_argument("--weight-global", type=float, default=0.5)
    parser.add_argument("--geometry", choices=["fundamental", "homography"], default="fundamental")
    parser.add_argument("--min-inliers", type=int, default=12, help="as RERANK_MIN_INLIERS (served: 12)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads; BLAS and OpenCV run on 1")
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
    embedding = EmbeddingConfig(image_size=args.image_size)
    extractor = GlobalDescriptorExtractor.from_config(embedding)
    policy = DecodePolicy.for_embedding(embedding)
    index_sift = SiftConfig(max_keypoints=args.index_keypoints)
    query_sift = SiftConfig(max_keypoints=args.query_keypoints)
    fusion = FusionConfig(weight_global=args.weight_global, top_k=args.top_k, min_inliers=args.min_inliers)

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
            store.upsert(ids, result.vectors, [None] * len(ids))
            store.flush()
            sift_store = LocalFeatureStore(Path(tmp) / "sift", index_sift.key)
            for i in ids:
                sift_store.save(i, index_local_features(index[i].path, index_sift, policy))
            print(
                f"indexed {len(ids)} images in {time.perf_counter() - started:.1f} s; {len(queries)} queries"
            )
            pipeline = SearchPipeline(
                extractor,
                store,
                SiftScorer(
                    sift_store,
                    query_sift,
                    VerificationConfig(geometry=args.geometry),  # type: ignore[arg-type]
                    min_inliers=fusion.min_inliers,
                ),
                SearchConfig(k=10, fusion=fusion, decode=policy),
            )

            stages: dict[str, list[float]] = {}
            hits_global = hits_fused = 0
            for n, query in enumerate([queries[0], *queries]):  # the first run warms up, not counted
                searched = pipeline.search(query.path.read_bytes())
                if n == 0:
                    continue
                for stage in (*STAGES, "fuse", "total"):
                    stages.setdefault(stage, []).append(searched.timings_ms.get(stage, 0.0))
                by_global = min(searched.hits, key=lambda hit: hit.global_rank)
                hits_global += index[int(by_global.image_id)].landmark == query.landmark  # type: ignore[call-overload]
                hits_fused += index[int(searched.hits[0].image_id)].landmark == query.landmark  # type: ignore[call-overload]
        finally:
            localstack.stop(milvus)

    print(f"{'stage':<24}{'p50 ms':>9}{'p95 ms':>9}")
    for stage, values in stages.items():
        name = "end-to-end" if stage == "total" else stage
        print(f"{name:<24}{np.percentile(values, 50):9.1f}{np.percentile(values, 95):9.1f}")
    print(
        f"top-1 landmark correct: global {hits_global}/{len(queries)}, re-ranked {hits_fused}/{len(queries)}"
    )


if __name__ == "__main__":
    main()
