"""Run the E1-E7 experiment ladder on a collection and write its report (Markdown, JSON, plots).

    python bench/evaluate_collection.py ../shared/datasets/sfm_landmarks --out var/eval/sfm --train-fraction 0
    python bench/evaluate_collection.py ROOT --out OUT --checkpoint e2.pt --model-ids E1,E2

The first model is the pretrained backbone (E1); each ``--checkpoint`` adds a trained model. Features are
cached in ``OUT/cache`` (or ``--cache``), so re-running with another ``--grid`` extracts nothing. The
protocol (which images are reported queries, which are validation queries for tuning) comes from the
collection: see ``retrieval_core.eval.protocol``. Prints the Markdown table at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import torch
from threadpoolctl import threadpool_limits

from retrieval_core.eval.extraction import PatchConfig
from retrieval_core.eval.ladder import run_ladder
from retrieval_core.eval.protocol import ProtocolConfig
from retrieval_core.eval.splits import SplitConfig
from retrieval_core.features.sift import SiftConfig
from retrieval_core.models.embedding import EmbeddingConfig
from retrieval_core.rerank.tuning import DEFAULT_GRID


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path, help="collection folder")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--cache", type=Path, help="feature cache (default OUT/cache)")
    parser.add_argument("--backbone", default="tf_efficientnet_lite0")
    parser.add_argument("--image-size", type=int, default=384)
    parser.add_argument("--checkpoint", action="append", default=[], help="trained model (repeatable)")
    parser.add_argument("--model-ids", help="comma-separated row ids, one per model (default E1,E2,...)")
    parser.add_argument("--sift-keypoints", type=int, default=1000)
    parser.add_argument("--query-keypoints", type=int, help="keypoints of query images (default: same)")
    parser.add_argument("--sift-long-side", type=int, default=640)
    parser.add_argument("--vlad-k", type=int, default=64, help="0 skips E6")
    parser.add_argument("--no-patches", action="store_true", help="skip E7")
    parser.add_argument("--patches", type=int, default=32, help="CNN patches kept per image")
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--grid", help="comma-separated fusion weights (default 0, 0.05, ..., 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-fraction", type=float, default=0.5, help="seeded split only")
    parser.add_argument("--validation-fraction", type=float, default=0.1, help="seeded split only")
    parser.add_argument("--queries-per-landmark", type=int, default=1, help="seeded split only")
    parser.add_argument("--validation-per-landmark", type=int, default=2, help="labels.csv queries only")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch, BLAS and OpenCV threads (1: fastest on shared cores)"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    threadpool_limits(args.threads)  # BLAS: 2 threads on 2 busy cores made matching 6x slower than 1
    models = [EmbeddingConfig(backbone=args.backbone, image_size=args.image_size)]
    models += [
        EmbeddingConfig(backbone=args.backbone, weights=str(path), image_size=args.image_size)
        for path in args.checkpoint
    ]
    sift = SiftConfig(max_keypoints=args.sift_keypoints, long_side=args.sift_long_side)
    query_sift = (
        SiftConfig(max_keypoints=args.query_keypoints, long_side=args.sift_long_side)
        if args.query_keypoints
        else None
    )
    protocol = ProtocolConfig(
        split=SplitConfig(
            seed=args.seed,
            train_fraction=args.train_fraction,
            validation_fraction=args.validation_fraction,
            queries_per_landmark=args.queries_per_landmark,
        ),
        seed=args.seed,
        validation_per_landmark=args.validation_per_landmark,
    )
    grid = tuple(float(v) for v in args.grid.split(",")) if args.grid else DEFAULT_GRID
    start = time.perf_counter()
    last = {"stage": ""}

    def progress(stage: str, done: int, total: int) -> None:
        if stage != last["stage"] or done == total:
            print(
                f"[{time.perf_counter() - start:6.1f} s] {stage}: {done}/{total}", file=sys.stderr, flush=True
            )
            last["stage"] = stage

    report = run_ladder(
        args.root,
        cache_dir=args.cache or args.out / "cache",
        models=models,
        model_ids=args.model_ids.split(",") if args.model_ids else None,
        sift=sift,
        query_sift=query_sift,
        vlad_k=args.vlad_k,
        patches=None if args.no_patches else PatchConfig(top_n=args.patches),
        fusion_grid=grid,
        top_k=args.top_k,
        protocol=protocol,
        progress=progress,
    )
    paths = report.write(args.out)
    print(
        f"[{time.perf_counter() - start:6.1f} s] wrote {', '.join(p.name for p in paths)} to {args.out}",
        file=sys.stderr,
    )
    print(f"extracted this run: {dict(report.extracted)}")
    for note in report.notes:
        print(f"note: {note}")
    print()
    print(report.to_markdown())


if __name__ == "__main__":
    main()
