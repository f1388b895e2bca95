"""Bytes per image and SIFT re-rank mAP@100 of each local-feature storage format, side by side, through the
product's pipeline (the E1/E5 rungs of the ladder, as bench/levers.py runs them).

Per collection, index SIFT is extracted once in today's full format (1000 RootSIFT keypoints, uint8
descriptors, float32 geometry); every other format's store is filled from it with ``as_stored`` (exactly
what ``index_local_features`` would store, without extracting again), and the ladder then re-ranks from
that store. Queries use 500 keypoints at full precision, as served (``SIFT_QUERY_MAX_KEYPOINTS``).
Protocol: leave-one-out (every labelled image a query against all the others, a seeded 20 % of them
validation queries on which the fusion weight v is tuned; reported figures are on the other 80 %), or with
``--standard`` the collection's own query split (as bench/levers.py); the served verification (fundamental
matrix, min 12 inliers). Rows are printed to stderr as they finish, the Markdown table at the end.
Bytes per image are the mean size of the stored ``.npz`` files (headers included); "load 100" is the
median time to load and decode 100 candidates' features from the local store (the re-rank's load step).

    .venv/bin/python bench/local_feature_formats.py ../shared/datasets/sfm_landmarks \\
        ../shared/datasets/holidays_partial ../shared/datasets/wonders7
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import cv2
import torch
from threadpoolctl import threadpool_limits

from retrieval_core.eval.feature_disk_cache import FeatureCache
from retrieval_core.eval.ladder import run_ladder
from retrieval_core.eval.options import LadderOptions
from retrieval_core.features.compact import FULL_FORMAT, LocalFeatureFormat, as_stored
from retrieval_core.features.store import LocalFeatureStore
from retrieval_core.search.decode import DecodePolicy, local_features_key

# Served search settings, the E5 rung alone, on the leave-one-out protocol.
BASE = LadderOptions(vlad_k=0, patches=0, leave_one_out=True, validation_fraction=0.2)
FORMATS = (
    "full",
    "2bit-uint16-k750",
    "8bit-float32-k250",
    "2bit-uint16",
    "4bit-uint16-k400",
    "2bit-uint16-k500",
)


def fill_from_full(cache: FeatureCache, options: LadderOptions, fmt: LocalFeatureFormat) -> int:
    """Store every index image's full-format SIFT in ``fmt`` as well (what extracting in ``fmt`` would
    store); returns how many images were written."""
    config, _ = options.configs()
    sift, policy = config.index_sift, DecodePolicy.for_embedding(config.embedding)
    full = cache.sift_store(local_features_key(sift, policy))
    target = cache.sift_store(local_features_key(sift, policy, fmt), fmt)
    file_ids = list(full.ids())
    if not file_ids:
        raise SystemExit(f"no full-format SIFT in {cache.root} yet: run with 'full' in --formats first")
    written = 0
    for file_id in file_ids:
        if not target.has(file_id):
            target.save(file_id, as_stored(full.load(file_id), fmt))
            written += 1
    return written


def store_figures(store: LocalFeatureStore, repeats: int = 5) -> tuple[float, float, float]:
    """Mean bytes and keypoints per stored image, and median ms to load 100 of them."""
    ids = sorted(store.ids())
    sizes = [store.path_for(i).stat().st_size for i in ids]
    loaded = store.load_many(ids)
    keypoints = statistics.fmean(len(f) for f in loaded.values())
    batch = ids[:100]
    seconds = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        store.load_many(batch)
        seconds.append(time.perf_counter() - t0)
    return statistics.fmean(sizes), keypoints, 1e3 * statistics.median(seconds) * 100 / len(batch)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("roots", type=Path, nargs="+", help="collection folders")
    parser.add_argument("--cache", type=Path, default=Path("var/local-formats-cache"))
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated format names")
    parser.add_argument(
        "--standard", action="store_true", help="the collections' own protocol, not leave-one-out"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    base = dataclasses.replace(BASE, leave_one_out=False, validation_fraction=0.1) if args.standard else BASE
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    threadpool_limits(1)
    try:
        formats = [LocalFeatureFormat.parse(name) for name in args.formats.split(",")]
    except ValueError as error:
        raise SystemExit(str(error)) from None
    # Full first: the others derive from its store. Leaving "full" out of --formats ranks only the others
    # (e.g. in a second process beside a running one), from a full store that must already be there.
    rank_full = FULL_FORMAT in formats
    formats = [FULL_FORMAT] * rank_full + [f for f in formats if f != FULL_FORMAT]

    results: dict[LocalFeatureFormat, dict[str, tuple[float, float, float, float, float]]] = {}
    for root in args.roots:
        cache_dir = args.cache / root.name
        for fmt in formats:
            options = dataclasses.replace(base, local_format=fmt.name)
            started = time.perf_counter()
            if fmt != FULL_FORMAT:
                fill_from_full(FeatureCache(cache_dir, collection=root), options, fmt)
            report = run_ladder(root, cache_dir=cache_dir, **options.ladder_kwargs())
            e1, e5 = report.row("E1"), report.row("E5")
            config, _ = options.configs()
            policy = DecodePolicy.for_embedding(config.embedding)
            store = FeatureCache(cache_dir, collection=root).sift_store(
                local_features_key(config.index_sift, policy, fmt)
            )
            size, keypoints, load_ms = store_figures(store)
            results.setdefault(fmt, {})[root.name] = (
                size,
                keypoints,
                load_ms,
                100 * e1.map_at_k,
                100 * e5.map_at_k,
            )
            print(
                f"[{time.perf_counter() - started:5.0f} s] {root.name} | {fmt.name}: {size / 1024:.1f} KB, "
                f"{keypoints:.0f} keypoints, load 100 {load_ms:.1f} ms | E1 {100 * e1.map_at_k:.2f} "
                f"E5 {100 * e5.map_at_k:.2f} (v={e5.weight_global}) | {report.protocol}",
                file=sys.stderr,
                flush=True,
            )
    names = [root.name for root in args.roots]
    print(
        "| format | "
        + " | ".join(f"{n}: KB/image · keypoints · load 100 ms · mAP@100 global → +SIFT" for n in names)
        + " |"
    )
    print("|---|" + "---|" * len(names))
    for fmt, per_set in results.items():
        cells = [
            f"{size / 1024:.1f} · {kp:.0f} · {ms:.1f} · {g:.2f} → {s:.2f}"
            for size, kp, ms, g, s in (per_set[n] for n in names)
        ]
        print(f"| {fmt.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
