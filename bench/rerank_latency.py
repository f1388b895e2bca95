"""Latency of local-feature re-ranking of 100 candidates per query, stage by stage.

    python bench/rerank_latency.py --synthetic 60
    python bench/rerank_latency.py --dataset ../shared/datasets/sfm_landmarks --queries 20

SIFT is extracted for the collection once into a temporary LocalFeatureStore; then, per query, the product's
own ``SiftScorer`` and ``rank_candidates`` run: query SIFT, loading the candidates' features from the store,
matching, verification, fusion. The whole collection is
the candidate list (cycled up to ``--candidates``), with made-up descending global scores, so the figures
are the cost of re-ranking alone; the global ANN search comes on top. The query's own landmark is always
among the candidates, so the run also tells how often the strongest local evidence (most inliers) is on
an image of the query's landmark. Options left out take the served value
(``retrieval_core.search.served.SERVED``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

from retrieval_core.datasets.collection import CollectionItem, read_collection
from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.sift import extract_sift
from retrieval_core.features.store import LocalFeatureStore
from retrieval_core.imaging import load_image
from retrieval_core.rerank.scorer import QueryFeatures
from retrieval_core.rerank.sift_scorer import SiftScorer
from retrieval_core.search.pipeline import ScoredCandidates, rank_candidates
from retrieval_core.search.served import SERVED, replace_given

STAGES = ("extract_query", "load", "match", "verify", "fuse")


@dataclass(frozen=True)
class Image:
    image_id: str
    landmark: str
    pixels: np.ndarray


def synthetic_images(
    n: int, n_queries: int, size: tuple[int, int], seed: int
) -> tuple[list[Image], list[Image]]:
    """``n`` collection images (2 views per scene) and one extra view of each of the first queries' scenes."""
    rng = np.random.default_rng(seed)
    scenes = [make_scene(seed * 10_000 + i, size) for i in range((n + 1) // 2)]
    collection = [
        Image(f"s{i // 2:04d}_{i % 2}", f"s{i // 2:04d}", render_view(scenes[i // 2], rng, size)[0])
        for i in range(n)
    ]
    queries = [
        Image(f"q{j:04d}", f"s{j % len(scenes):04d}", render_view(scenes[j % len(scenes)], rng, size)[0])
        for j in range(n_queries)
    ]
    return collection, queries


def dataset_images(root: Path, n_queries: int, long_side: int) -> tuple[list[Image], list[Image]]:
    """Collection = images not marked ``split=query``; queries = marked ones, else one per landmark."""
    items = read_collection(root)

    def load(item: CollectionItem) -> Image:
        pixels = np.asarray(load_image(item.path, draft_long_side=long_side))
        return Image(item.relpath.replace("/", "__"), item.landmark, pixels)

    marked = [it for it in items if it.split == "query"]
    if not marked:
        seen: set[str] = set()
        for it in items:
            if it.landmark not in seen and sum(o.landmark == it.landmark for o in items) > 1:
                marked.append(it)
                seen.add(it.landmark)
    marked = marked[:n_queries]
    chosen = {it.relpath for it in marked}
    return [load(it) for it in items if it.relpath not in chosen], [load(it) for it in marked]


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Cap OpenCV and BLAS threads (a web/worker process on 2 shared cores should not oversubscribe)."""
    cv2.setNumThreads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(n):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--dataset", type=Path, help="collection folder (labels.csv or a folder per landmark)"
    )
    source.add_argument("--synthetic", type=int, metavar="N", help="N synthetic images (2 views per scene)")
    parser.add_argument("--queries", type=int, default=20)
    # Left out (None): the served value.
    parser.add_argument("--candidates", type=int, help="candidates re-ranked (RERANK_TOP_K)")
    parser.add_argument("--index-keypoints", type=int, help="SIFT_MAX_KEYPOINTS")
    parser.add_argument("--query-keypoints", type=int, help="SIFT_QUERY_MAX_KEYPOINTS")
    parser.add_argument("--long-side", type=int, help="SIFT_LONG_SIDE")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV + BLAS threads (default 1)")
    parser.add_argument("--geometry", choices=("homography", "fundamental"), help="RERANK_GEOMETRY")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    index_cfg = replace_given(SERVED.index_sift, max_keypoints=args.index_keypoints, long_side=args.long_side)
    query_cfg = replace_given(SERVED.query_sift, max_keypoints=args.query_keypoints, long_side=args.long_side)
    fusion = replace_given(SERVED.search.fusion, top_k=args.candidates)
    candidates = fusion.top_k
    if args.synthetic:
        collection, queries = synthetic_images(args.synthetic, args.queries, (480, 640), args.seed)
    else:
        collection, queries = dataset_images(args.dataset, args.queries, index_cfg.long_side)
    if not collection or not queries:
        raise SystemExit("need at least one collection image and one query")

    with threads(args.threads), tempfile.TemporaryDirectory() as tmp:
        store = LocalFeatureStore(Path(tmp), index_cfg.key)
        verification = replace_given(SERVED.verification, geometry=args.geometry)
        scorer = SiftScorer(store, query_cfg, verification, min_inliers=fusion.min_inliers)  # type: ignore[arg-type]  # keys str | int, protocol Hashable (see LocalFeatureSource)
        start = time.perf_counter()
        n_keypoints = []
        for image in collection:
            feats = extract_sift(image.pixels, index_cfg)
            n_keypoints.append(len(feats))
            store.save(image.image_id, feats)
        index_time = time.perf_counter() - start
        print(
            f"collection: {len(collection)} images, SIFT {index_time / len(collection) * 1e3:.0f} ms/image, "
            f"{np.mean(n_keypoints):.0f} keypoints/image ({index_cfg.key}); threads={args.threads}"
        )

        landmark_of: dict[Hashable, str] = {image.image_id: image.landmark for image in collection}
        ids = [image.image_id for image in collection]
        rng = np.random.default_rng(args.seed)
        per_stage: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total")}
        top1_correct, top1_possible = 0, 0
        for q, query in enumerate([queries[0], *queries]):  # first run warms caches, not counted
            # The query's own landmark first, then random others, cycled up to --candidates, shuffled.
            same = [i for i in ids if landmark_of[i] == query.landmark]
            others = [ids[j] for j in rng.permutation(len(ids)) if landmark_of[ids[j]] != query.landmark]
            pool = (same + others) or ids
            cand_ids = [pool[i % len(pool)] for i in range(candidates)]
            cand_ids = [cand_ids[j] for j in rng.permutation(len(cand_ids))]
            scores = np.sort(rng.uniform(0.3, 0.9, candidates))[::-1]

            t0 = time.perf_counter()
            local = scorer.score(
                QueryFeatures(np.zeros(1, np.float32), image=PILImage.fromarray(query.pixels)), cand_ids
            )
            t1 = time.perf_counter()
            scored = ScoredCandidates(tuple(cand_ids), scores, (None,) * len(cand_ids), local, "sift")
            hits = rank_candidates(scored, fusion)
            t2 = time.perf_counter()
            if q == 0:
                continue
            timing = {
                "extract_query": local.timings["query_features"],
                "load": local.timings["load"],
                "match": local.timings["match"],
                "verify": local.timings["verify"],
                "fuse": t2 - t1,
                "total": t2 - t0,
            }
            for stage in per_stage:
                per_stage[stage].append(timing[stage])
            if same:  # is the candidate with the most inliers of the query's landmark?
                top1_possible += 1
                best = max(hits, key=lambda h: h.local_score or 0.0)
                top1_correct += landmark_of[best.image_id] == query.landmark

    print(f"{len(queries)} queries x {candidates} candidates (query {query_cfg.max_keypoints} keypoints)")
    print(f"{'stage':<14}{'p50 ms':>9}{'p95 ms':>9}{'mean ms':>9}")
    for stage, values in per_stage.items():
        ms = np.array(values) * 1e3
        name = "end-to-end" if stage == "total" else stage
        print(f"{name:<14}{np.percentile(ms, 50):9.1f}{np.percentile(ms, 95):9.1f}{ms.mean():9.1f}")
    if top1_possible:
        print(
            f"candidate with the strongest local evidence is of the query's landmark: "
            f"{top1_correct}/{top1_possible} queries"
        )


if __name__ == "__main__":
    main()
