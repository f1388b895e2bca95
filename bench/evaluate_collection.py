"""Run the E1-E7 experiment ladder on a collection and write its report (Markdown, JSON, plots).

    python bench/evaluate_collection.py ../shared/datasets/sfm_landmarks --out var/eval/sfm --train-fraction 0
    python bench/evaluate_collection.py ROOT --out OUT --checkpoint e2.pt --model-ids E1,E2

The first model is the pretrained backbone (E1); each ``--checkpoint`` adds a trained model. Features are
cached in ``OUT/cache`` (or ``--cache``), so re-running with another ``--grid`` extracts nothing. The
protocol (which images are reported queries, which are validation queries for tuning) comes from the
collection: see ``retrieval_core.eval.evaluation_protocol``. Prints the Markdown table at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import torch
from threadpoolctl import threadpool_limits

from retrieval_core.eval.ladder import run_ladder
from retrieval_core.eval.options import LadderOptions


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("root", type=Path, help="collection folder")
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument("--cache", type=Path, help="feature cache (default OUT/cache)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch, BLAS and OpenCV threads (1: fastest on shared cores)"
    )
    LadderOptions.add_arguments(parser)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    threadpool_limits(args.threads)  # BLAS: 2 threads on 2 busy cores made matching 6x slower than 1
    options = LadderOptions.from_arguments(vars(args))
    start = time.perf_counter()
    last = {"stage": ""}

    def progress(stage: str, done: int, total: int) -> None:
        if stage != last["stage"] or done == total:
            print(
                f"[{time.perf_counter() - start:6.1f} s] {stage}: {done}/{total}", file=sys.stderr, flush=True
            )
            last["stage"] = stage

    report = run_ladder(
        args.root, cache_dir=args.cache or args.out / "cache", progress=progress, **options.ladder_kwargs()
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
