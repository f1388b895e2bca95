"""Retrieval levers measured side by side through the product's pipeline (the E1-E7 ladder), on one or
more collections, one row per lever and per combination: global mAP@100 (E1), SIFT re-ranked mAP@100 (E5,
its fusion weight tuned on validation queries only) and their p50 / p95 query latency, next to the oracle
re-rank (every positive of the global top ``depth`` moved first: the ceiling of any re-rank at that depth)
and the share of the oracle's gain the re-rank captures.

Each figure is given on all reported queries and on the hard subset: the ``--hard`` fraction of reported
queries with the lowest global AP under the baseline row, fixed before any lever is measured.

The default protocol is the hard dev benchmark: leave-one-out (every labelled image is a query against
all the others, itself removed; a seeded 20 % of them are validation queries, tuned on and never
reported). Features are cached under --cache, so rows that change only search settings extract nothing.
``--base served`` measures each lever on top of the served defaults (``LadderOptions()``, as ``evaluate``
runs them) instead of the lever baseline (``BASE``); ``--standard`` keeps the collections' own protocol (the
hard sets' ``ground_truth.json``). Every cell also gives the validation queries' mAP: defaults are chosen on
those, never on the reported ones.

    .venv/bin/python bench/levers.py ../shared/datasets/sfm_landmarks ../shared/datasets/holidays_partial
    .venv/bin/python bench/levers.py --base served --standard --threads 1 ../shared/datasets/campus_gps
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import cv2
import torch
from threadpoolctl import threadpool_limits

from retrieval_core.eval.headroom import captured_fraction, hardest_queries, mean_over, oracle_map
from retrieval_core.eval.ladder import run_ladder
from retrieval_core.eval.options import LadderOptions

# The lever baseline: homography, 8 inliers, 1000 query keypoints (serving uses 500, the "600 query
# keypoints" row shows what that costs) and the full local-feature format.
BASE = LadderOptions(
    vlad_k=0,
    patches=0,
    leave_one_out=True,
    validation_fraction=0.2,
    geometry="homography",
    min_inliers=8,
    query_keypoints=1000,
    verified_expansion=0,
    landmark_first=0.0,
    landmark_first_majority=0.0,
    local_format="full",
)
# The served defaults as ``evaluate`` runs them, without the VLAD and patch rungs.
SERVED = LadderOptions(vlad_k=0, patches=0)
# The served verification: fundamental matrix (12 inliers), and verified query expansion n=5 (15 inliers).
FUNDAMENTAL: dict[str, object] = {"geometry": "fundamental", "min_inliers": 12}
FUNDAMENTAL_VQE: dict[str, object] = {
    **FUNDAMENTAL,
    "verified_expansion": 5,
    "verified_expansion_inliers": 15,
}


def _sift_rows() -> dict[str, dict[str, object]]:
    """SIFT levers for street and indoor scenes on top of the served SIFT (1000 index keypoints of which
    the 750 strongest are stored, 500 query keypoints, long side 640).

    A keypoint row scales the three budgets together (query half the index, three quarters of the index
    stored), so it changes how many keypoints match, not the served ratios; a long-side row changes the
    size photos are shrunk to before detection (smaller photos are never enlarged).
    """
    rows: dict[str, dict[str, object]] = {"upright SIFT": {"upright": True}}
    for index in (500, 2000):
        rows[f"SIFT {index} index / {index // 2} query keypoints"] = {
            "sift_keypoints": index,
            "query_keypoints": index // 2,
            "local_format": f"2bit-uint16-k{3 * index // 4}",
        }
    for side in (480, 960, 1024):
        rows[f"SIFT long side {side} px"] = {"sift_long_side": side}
    return rows


LEVERS: dict[str, dict[str, object]] = {
    "baseline (384 px GeM, RootSIFT homography)": {},
    "input 512 px": {"image_size": 512},
    "input 768 px": {"image_size": 768},
    "fundamental matrix, min 12 inliers": FUNDAMENTAL,
    "2000 index keypoints": {"sift_keypoints": 2000, "query_keypoints": 1000},
    "SIFT at 1024 px, 2000 keypoints": {
        "sift_long_side": 1024,
        "sift_keypoints": 2000,
        "query_keypoints": 1000,
    },
    "re-rank depth 50": {"rerank_depth": 50},
    "re-rank depth 200": {"rerank_depth": 200},
    "fundamental (12) + verified QE n=3 (20 inliers)": {**FUNDAMENTAL, "verified_expansion": 3},
    "fundamental (12) + verified QE n=5 (15 inliers)": FUNDAMENTAL_VQE,
    **{
        f"fundamental (12) + verified QE n=5 (15) + landmark first (confidence {c})": {
            **FUNDAMENTAL_VQE,
            "landmark_first": c,
        }
        for c in (0.05, 0.1, 0.2, 0.4, 0.6)
    },
    **{
        f"fundamental (12) + verified QE n=5 (15) + landmark first (0.1), else a majority of {m:.0%}": {
            **FUNDAMENTAL_VQE,
            "landmark_first": 0.1,
            "landmark_first_majority": m,
        }
        for m in (0.5, 0.7, 0.9)
    },
    **{
        f"fundamental (12) + verified QE n=5 (15) + landmark first (0.1), else a majority of {m:.0%} "
        f"at {lift:g}x its share": {
            **FUNDAMENTAL_VQE,
            "landmark_first": 0.1,
            "landmark_first_majority": m,
            "landmark_first_lift": lift,
        }
        for m, lift in ((0.5, 3.0), (0.7, 3.0))
    },
    **{
        "served keypoints and format (fundamental (12), verified QE n=5 (15), landmark first (0.1), "
        f"500 query keypoints, index SIFT stored {fmt})": {
            **FUNDAMENTAL_VQE,
            "landmark_first": 0.1,
            "query_keypoints": 500,
            "local_format": fmt,
        }
        for fmt in ("2bit-uint16-k750", "full", "4bit-uint16-k750", "2bit-uint16", "4bit-uint16-k400")
    },
    "fundamental (12) + re-rank depth 50": {**FUNDAMENTAL, "rerank_depth": 50},
    "fundamental (12), 600 query keypoints": {**FUNDAMENTAL, "query_keypoints": 600},
    # Rows meant for ``--base served`` (the served verification already on).
    **_sift_rows(),
    "homography, min 8 inliers": {"geometry": "homography", "min_inliers": 8},
    "homography": {"geometry": "homography"},
    "min 8 inliers": {"min_inliers": 8},
    "min 20 inliers": {"min_inliers": 20},
    "1000 query keypoints": {"query_keypoints": 1000},
    "re-rank depth 100": {"rerank_depth": 100},
    "verified QE off": {"verified_expansion": 0},
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
    parser.add_argument(
        "--base",
        choices=["baseline", "served"],
        default="baseline",
        help="what each lever changes: the lever baseline (BASE) or the served defaults",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--hard", type=float, default=0.3, help="fraction of reported queries in the hard subset (0-1]"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    threadpool_limits(1)
    base = SERVED if args.base == "served" else BASE
    base = dataclasses.replace(
        base, leave_one_out=not args.standard, validation_fraction=0.1 if args.standard else 0.2
    )
    wanted = [name.strip() for name in args.only.split("|") if name.strip()]
    unknown = set(wanted) - set(LEVERS)
    if unknown:
        raise SystemExit(f"unknown levers: {', '.join(sorted(unknown))}; choose from: {' | '.join(LEVERS)}")
    levers = {name: change for name, change in LEVERS.items() if not wanted or name in wanted}

    baseline_name = next(iter(LEVERS))
    if baseline_name not in levers:  # the hard subset is chosen on the baseline row
        levers = {baseline_name: LEVERS[baseline_name], **levers}
    results: dict[str, dict[str, list[str]]] = {}
    for root in args.roots:
        hard: frozenset[str] | None = None
        for name, change in levers.items():
            options = dataclasses.replace(base, **change)  # type: ignore[arg-type]  # LEVERS: field -> value of its type
            started = time.perf_counter()
            report = run_ladder(root, cache_dir=args.cache / root.name, **options.ladder_kwargs())
            e1, e5 = report.row("E1"), report.row("E5")
            if hard is None:
                hard = hardest_queries(e1.per_query_ap, args.hard)
            depth = options.rerank_depth or options.top_k
            oracle = oracle_map(e1.rankings, report.queries, depth, report.top_k)
            cells = [_cell(e1.per_query_ap, e5.per_query_ap, oracle, subset) for subset in (None, hard)]
            validation = f"{_pct(e1.validation_map)} / {_pct(e5.validation_map)}"
            results.setdefault(name, {})[root.name] = [
                validation,
                *cells,
                f"{100 * e1.recall_at_k:.1f} %",
                f"{e1.median_latency_ms:.0f} / {e1.p95_latency_ms:.0f}",
                f"{e5.median_latency_ms:.0f} / {e5.p95_latency_ms:.0f}",
            ]
            print(
                f"[{time.perf_counter() - started:5.0f} s] {root.name} | {name}: validation {validation} | "
                f"all {cells[0]} | "
                f"hard ({len(hard)}) {cells[1]} | "
                f"global recall@{report.top_k} {100 * e1.recall_at_k:.1f} % | "
                f"global p50/p95 {e1.median_latency_ms:.0f}/{e1.p95_latency_ms:.0f} ms | "
                f"+SIFT p50/p95 {e5.median_latency_ms:.0f}/{e5.p95_latency_ms:.0f} ms | "
                f"v={e5.weight_global} | {report.protocol}",
                file=sys.stderr,
                flush=True,
            )
    names = [root.name for root in args.roots]
    header = " | ".join(
        f"{n}: validation · all · hard {args.hard:.0%} · global recall@{base.top_k} · global p50 / p95 ms · "
        "+SIFT p50 / p95 ms"
        for n in names
    )
    print(
        "cells: validation global / +SIFT mAP@100; reported global mAP@100 / +SIFT / oracle re-rank "
        "(captured share)"
    )
    print(f"| lever | {header} |")
    print("|---|" + "---|" * len(names))
    for name, per_set in results.items():
        label = "served defaults" if args.base == "served" and name == baseline_name else name
        print(f"| {label} | " + " | ".join(" · ".join(per_set[n]) for n in names) + " |")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _cell(
    global_ap: Mapping[str, float],
    reranked_ap: Mapping[str, float],
    oracle_ap: Mapping[str, float],
    subset: frozenset[str] | None,
) -> str:
    """``global / re-ranked / oracle (captured %)`` in mAP@100 points over ``subset``."""
    g, r, o = (100 * mean_over(ap, subset) for ap in (global_ap, reranked_ap, oracle_ap))
    share = captured_fraction(g, r, o)
    return f"{g:.2f} / {r:.2f} / {o:.2f} ({'-' if share is None else f'{100 * share:.0f} %'})"


if __name__ == "__main__":
    main()
