"""End-to-end search latency with SIFT re-ranking, on a real Milvus Lite server.

Indexes a collection once (global embeddings into Milvus, SIFT into a feature store), then for each query
measures the stages a search runs: decode, global embedding, ANN top-K in Milvus, query SIFT, loading the
candidates' SIFT, matching, verification, fusion; and prints p50/p95 per stage and end to end, plus top-1
accuracy before and after re-ranking. Target (2 cores): end-to-end p50 <= 0.4 s with K = 100.

    .venv/bin/python bench/search_latency.py --dataset ../shared/datasets/sfm_landmarks --queries 30
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from retrieval_core.datasets.collection import read_collection
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.features.sift import SiftConfig, extract_sift
from retrieval_core.features.store import LocalFeatureStore
from retrieval_core.index.milvus_store import MilvusVectorStore
from retrieval_core.models.embedding import EmbeddingConfig
from retrieval_core.rerank.fusion import Candidate, FusionConfig
from retrieval_core.rerank.reranker import Reranker, RerankerConfig
from retrieval_core.runtime import limit_native_threads
from webapp import localstack


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
    extractor = GlobalDescriptorExtractor.from_config(EmbeddingConfig(image_size=args.image_size))
    index_sift = SiftConfig(max_keypoints=args.index_keypoints)
    query_sift = SiftConfig(max_keypoints=args.query_keypoints)
    reranker = Reranker(
        RerankerConfig(fusion=FusionConfig(weight_global=args.weight_global, top_k=args.top_k))
    )

    with tempfile.TemporaryDirectory() as tmp:
        port = localstack.free_port()
        milvus = localstack.start_milvus(port, Path(tmp) / "milvus")
        try:
            store = MilvusVectorStore(f"http://127.0.0.1:{port}", "bench", extractor.dim)
            store.ensure_collection()
            started = time.perf_counter()
            result = extractor.extract_paths([item.path for item in index])
            ids = [int(i) for i in result.indices]
            store.upsert(ids, result.vectors, [None] * len(ids))
            store.flush()
            sift_store = LocalFeatureStore(Path(tmp) / "sift", index_sift.key)
            for i in ids:
                sift_store.save(i, extract_sift(np.asarray(extractor.load(index[i].path)), index_sift))
            print(
                f"indexed {len(ids)} images in {time.perf_counter() - started:.1f} s; {len(queries)} queries"
            )

            stages: dict[str, list[float]] = {}
            hits_global = hits_fused = 0
            for n, query in enumerate([queries[0], *queries]):  # the first run warms up, not counted
                t = {"start": time.perf_counter()}
                image = extractor.load(query.path)
                t["decode"] = time.perf_counter()
                vector = extractor.extract([image])
                t["embed"] = time.perf_counter()
                ann = store.search(vector, k=args.top_k)[0]
                t["ann"] = time.perf_counter()
                query_features = extract_sift(np.asarray(image), query_sift)
                t["query_sift"] = time.perf_counter()
                loaded = sift_store.load_many([hit.image_id for hit in ann])
                t["load"] = time.perf_counter()
                reranked = reranker.rerank(
                    query_features, [Candidate(h.image_id, h.score) for h in ann], loaded
                )
                t["rerank"] = time.perf_counter()
                if n == 0:
                    continue
                marks = list(t.items())
                for (_, before), (stage, after) in itertools.pairwise(marks):
                    stages.setdefault(stage, []).append(after - before)
                for stage in ("match", "verify", "fuse"):
                    stages.setdefault(f"  {stage}", []).append(reranked.timings[stage])
                stages.setdefault("end-to-end", []).append(t["rerank"] - t["start"])
                hits_global += index[ann[0].image_id].landmark == query.landmark
                hits_fused += index[int(reranked.hits[0].image_id)].landmark == query.landmark
        finally:
            localstack.stop(milvus)

    print(f"{'stage':<14}{'p50 ms':>9}{'p95 ms':>9}")
    for stage, values in stages.items():
        ms = np.array(values) * 1e3
        print(f"{stage:<14}{np.percentile(ms, 50):9.1f}{np.percentile(ms, 95):9.1f}")
    print(
        f"top-1 landmark correct: global {hits_global}/{len(queries)}, re-ranked {hits_fused}/{len(queries)}"
    )


if __name__ == "__main__":
    main()
