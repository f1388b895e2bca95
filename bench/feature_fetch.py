"""Loading 100 re-ranking candidates' local features: local disk next to an S3-compatible object store.

    python bench/feature_fetch.py --dataset ../shared/datasets/sfm_landmarks
    python bench/feature_fetch.py --synthetic 150 --parallel 1,4,16,32

SIFT is extracted once with the served settings (1000 RootSIFT keypoints, 640 px long side, the served
decode policy) and saved with the product's ``LocalFeatureStore`` twice: into a local folder (warm page
cache, as on a serving machine) and into a bucket of an S3-compatible server on loopback (moto's server, a
Python process of its own: started here, gone at the end). Then, in one run and interleaved, each store's
``load_many`` of ``--candidates`` random ids is timed ``--repeats`` times: the query-time step of
``SiftScorer``. For S3 it runs with each ``--parallel`` count of concurrent GETs
(``STORAGE_PARALLEL_GETS``), and through a warm local cache (``STORAGE_CACHE_DIR``: every id read once).

The figure is a ratio to local disk measured side by side. Loopback has no network latency, and moto is
much slower per request than MinIO or S3; a real network adds about one round trip per parallel wave.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from retrieval_core.datasets.collection import read_collection
from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.features.sift import LocalFeatures, extract_sift
from retrieval_core.features.store import LoadedFeatures, LocalFeatureStore
from retrieval_core.search.decode import index_local_features
from retrieval_core.search.served import SERVED
from retrieval_core.storage import CachedBlobStore, LocalBlobStore, S3BlobStore
from retrieval_core.storage.dev_server import local_s3_server

SERVED_SIFT, SERVED_DECODE = SERVED.index_sift, SERVED.search.decode


def dataset_features(root: Path) -> list[LocalFeatures]:
    return [index_local_features(item.path, SERVED_SIFT, SERVED_DECODE) for item in read_collection(root)]


def synthetic_features(n: int, seed: int = 0) -> list[LocalFeatures]:
    rng = np.random.default_rng(seed)
    views = [render_view(make_scene(seed + i, (480, 640)), rng, (480, 640))[0] for i in range(n)]
    return [extract_sift(view, SERVED_SIFT) for view in views]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", type=Path, help="a collection folder (labels.csv or one per landmark)")
    source.add_argument("--synthetic", type=int, help="this many synthetic 640x480 scenes instead")
    parser.add_argument(
        "--candidates", type=int, default=None, help="ids per load_many (default: the served RERANK_TOP_K)"
    )
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--parallel", default="1,16", help="concurrent GETs to try, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.candidates is None:
        args.candidates = SERVED.search.fusion.top_k
    parallel = [int(p) for p in args.parallel.split(",")]

    started = time.perf_counter()
    features = dataset_features(args.dataset) if args.dataset else synthetic_features(args.synthetic)
    print(f"extracted SIFT of {len(features)} images in {time.perf_counter() - started:.1f} s "
          f"(mean {np.mean([len(f) for f in features]):.0f} keypoints)")
    ids = list(range(len(features)))
    rng = random.Random(args.seed)
    draws = [
        [rng.choice(ids) for _ in range(args.candidates)] if len(ids) < args.candidates
        else rng.sample(ids, args.candidates)
        for _ in range(args.repeats)
    ]

    with tempfile.TemporaryDirectory() as folder, local_s3_server(bucket="bench") as s3:
        key = "bench-sift"
        local = LocalFeatureStore(Path(folder), key)
        for image_id, feats in zip(ids, features, strict=True):
            local.save(image_id, feats)
        remote = LocalFeatureStore(S3BlobStore(replace(s3, prefix="features")), key)
        for image_id, feats in zip(ids, features, strict=True):
            remote.save(image_id, feats)
        sizes = [local.path_for(i).stat().st_size for i in ids]
        stores: dict[str, Callable[[list[int]], LoadedFeatures]] = {"local disk": local.load_many}
        for count in parallel:
            store = LocalFeatureStore(S3BlobStore(replace(s3, prefix="features", parallel_gets=count)), key)
            stores[f"S3 (moto, loopback), {count} GET{'s' if count > 1 else ''} in flight"] = store.load_many
        # STORAGE_CACHE_DIR: the web server's local copy, in its steady state (every id read once before).
        cached = LocalFeatureStore(
            CachedBlobStore(S3BlobStore(replace(s3, prefix="features", parallel_gets=max(parallel))),
                            LocalBlobStore(Path(folder) / "cache")),
            key,
        )  # fmt: skip
        cached.load_many(ids)
        stores["S3 read through a local cache (warm)"] = cached.load_many
        for load in stores.values():  # warm up: connections, page cache, imports
            load(draws[0])
        times: dict[str, list[float]] = {name: [] for name in stores}
        cpu: dict[str, list[float]] = {name: [] for name in stores}
        for draw in draws:  # interleaved, so drifting machine load hits every store alike
            for name, load in stores.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                loaded = load(draw)
                times[name].append((time.perf_counter() - start) * 1000)
                cpu[name].append((time.process_time() - start_cpu) * 1000)  # this (client) process only
                assert not loaded.missing, f"{name}: missing {loaded.missing[:3]}"

    print(f"stored bytes per image: mean {np.mean(sizes) / 1024:.1f} KiB "
          f"(load of {args.candidates} candidates = {args.candidates * np.mean(sizes) / 2**20:.1f} MiB)")
    print(f"cpu cores: {os.cpu_count()}; {args.repeats} loads of {args.candidates} random ids each")
    base = statistics.median(times["local disk"])
    print(f"{'store':<44} {'p50 ms':>8} {'p95 ms':>8} {'x local':>8} {'client CPU ms':>14}")
    for name, values in times.items():
        p50 = statistics.median(values)
        client = statistics.median(cpu[name])
        print(f"{name:<44} {p50:8.1f} {percentile(values, 95):8.1f} {p50 / base:8.2f} {client:14.1f}")


if __name__ == "__main__":
    main()
