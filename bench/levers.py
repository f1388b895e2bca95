"""Retrieval levers measured side by side through the product's pipeline (the E1-E7 ladder), on one or
more collections, one row per lever and per combination: global mAP@100 (E1), SIFT re-ranked mAP@100 (E5,
its fusion weight tuned on validation queries only) and their median query latency.

The default protocol is the hard dev benchmark: leave-one-out (every labelled image is a query against
all the others, itself removed; a seeded 20 % of them are validation queries, tuned on and never
reported). Features are cached under --cache, so rows that change only search settings extract nothing.

    .venv/bin/python bench/levers.py ../shared/datasets/sfm_landmarks ../shared/datasets/holidays_partial
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import cv2
import torch
from threadpoolctl import threadpool_limits

from retrieval_core.eval.ladder import run_ladder
from retrieval_core.eval.options import LadderOptions

BASE = LadderOptions(
    vlad_k=0, patches=0, leave_one_out=True, validation_fraction=0.2, geometry="homography", min_inliers=8
)
LEVERS: dict[str, dict[str, object]] = {
    "baseline (384 px GeM, RootSIFT homography)": {},
    "input 512 px": {"image_size": 512},
    "input 768 px": {"image_size": 768},
    "PCA-whitening 64": {"whiten": 64},
    "PCA-whitening 128": {"whiten": 128},
    "aQE n=2": {"query_expansion": 2},
    "DBA k=2": {"dba": 2},
    "aQE n=2 + DBA k=2": {"query_expansion": 2, "dba": 2},
    "PCA-whitening 128 + aQE n=2": {"whiten": 128, "query_expansion": 2},
    "verified first (15 inliers)": {"verified_first": 15},
    "verified first (25 inliers)": {"verified_first": 25},
    "upright SIFT": {"upright": True},
    "fundamental matrix, min 12 inliers": {"geometry": "fundamental", "min_inliers": 12},
    "2000 index keypoints": {"sift_keypoints": 2000, "query_keypoints": 1000},
    "SIFT at 1024 px, 2000 keypoints": {
        "sift_long_side": 1024,
        "sift_keypoints": 2000,
        "query_keypoints": 1000,
    },
    "768 px multi-scale (1, 0.707, 0.5)": {"image_size": 768, "scales": (0.707, 0.5)},
    "re-rank depth 50": {"rerank_depth": 50},
    "re-rank depth 200": {"rerank_depth": 200},
    "fundamental (12) + upright SIFT + aQE n=2": {
        "geometry": "fundamental",
        "min_inliers": 12,
        "upright": True,
        "query_expansion": 2,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("roots", type=Path, nargs="+", help="collection folders")
    parser.add_argument("--cache", type=Path, default=Path("var/levers-cache"))
    parser.add_argument("--only", default="", help="lever names separated by '|' (exact)")
    parser.add_argument(
        "--standard", action="store_true", help="the collections' own protocol, not leave-one-out"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    threadpool_limits(1)
    base = dataclasses.replace(BASE, leave_one_out=False, validation_fraction=0.1) if args.standard else BASE
    wanted = [name.strip() for name in args.only.split("|") if name.strip()]
    unknown = set(wanted) - set(LEVERS)
    if unknown:
        raise SystemExit(f"unknown levers: {', '.join(sorted(unknown))}; choose from: {' | '.join(LEVERS)}")
    levers = {name: change for name, change in LEVERS.items() if not wanted or name in wanted}

    results: dict[str, dict[str, tuple[float, float, float, float]]] = {}
    for root in args.roots:
        for name, change in levers.items():
            options = dataclasses.replace(base, **change)  # type: ignore[arg-type]
            started = time.perf_counter()
            report = run_ladder(root, cache_dir=args.cache / root.name, **options.ladder_kwargs())
            e1, e5 = report.row("E1"), report.row("E5")
            results.setdefault(name, {})[root.name] = (
                100 * e1.map_at_k,
                100 * e5.map_at_k,
                e1.median_latency_ms,
                e5.median_latency_ms,
            )
            print(
                f"[{time.perf_counter() - started:5.0f} s] {root.name} | {name}: E1 {100 * e1.map_at_k:.2f} "
                f"E5 {100 * e5.map_at_k:.2f} (v={e5.weight_global}) | {report.protocol}",
                file=sys.stderr,
                flush=True,
            )
    names = [root.name for root in args.roots]
    print("| lever | " + " | ".join(f"{n} global · +SIFT · p50 ms" for n in names) + " |")
    print("|---|" + "---|" * len(names))
    for name, per_set in results.items():
        cells = [f"{g:.2f} · {s:.2f} · {tg:.0f} / {ts:.0f}" for g, s, tg, ts in (per_set[n] for n in names)]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
