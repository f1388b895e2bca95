"""The GPU path in one command, on whatever device is present (CUDA when available, else the CPU).

    .venv/bin/python bench/gpu_check.py ../shared/datasets/indoor_tower --out /tmp/gpu_check
    .venv/bin/python bench/gpu_check.py ../shared/datasets/indoor_tower --out /tmp/gpu_check \\
        --limit 64 --steps 4 --batch 4x4 --batch-sizes 16,32 --workers 2      # small, for 2 CPU cores

A sample of the collection (``--limit`` images, whole landmarks spread over the folder, linked into
OUT/sample) goes through four checks:

1. training: ``e3`` (the collection's labels) and ``self`` (pseudo-landmarks mined from the same photos
   without their labels: global neighbours verified by RootSIFT + MAGSAC++) each run
   `retrieval_core.training.train` for ``--steps`` optimiser steps with channels-last, and mixed precision
   where the device has it (bf16, or fp16 with loss scaling on CUDA cards without bf16; full precision on
   the CPU). Reports images/s (median step after the first), peak memory, the loss curve (OUT/loss.png);
2. embedding: the served model (settings: backbone, weights, input size) on the device; images/s of the
   network for each ``--batch-sizes`` (uint8 square batches at the served size: copy to the device,
   normalise, forward, vectors back) and of the served pipeline over the sample's files (decode included);
3. indexing: the stack of `make run` (honcho over the Procfile: Redis, the Milvus Lite server, the gpu and
   cpu Celery workers, beat) on free ports, warmed up, then the sample imported: images/s until every photo
   is indexed (gpu worker: decode, embed, upsert into Milvus) and until its local features are stored (cpu
   worker). The gpu worker embeds on the device its log names (it sees no CUDA with ``--device cpu``);
4. portability: the checkpoint the device trained serves on the CPU with the same vectors (cosine >=
   ``--min-cosine`` on the sample), and a checkpoint trained on the CPU serves on CUDA (skipped without one).

Writes OUT/gpu_check.json (every figure) and prints readable lines; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench import ingest_throughput as stack_bench  # noqa: E402  (no Django import at module level)
from retrieval_core.datasets.collection import CollectionItem, read_collection  # noqa: E402
from retrieval_core.datasets.synthetic import write_collection  # noqa: E402
from retrieval_core.eval.splits import split_within_landmarks  # noqa: E402
from retrieval_core.features.global_ import GlobalDescriptorExtractor  # noqa: E402
from retrieval_core.models.embedding import EmbeddingConfig  # noqa: E402
from retrieval_core.training import (  # noqa: E402
    TrainConfig,
    TrainEvent,
    ValidationSet,
    checkpoint_embedding_config,
    train,
)
from retrieval_core.training.collection_mining import DEFAULT_SIFT, prepare_collection_features  # noqa: E402
from retrieval_core.training.pair_mining import MiningConfig, mine  # noqa: E402
from retrieval_core.training.self_supervised import mined_split  # noqa: E402
from retrieval_core.training.trainer import autocast_dtype  # noqa: E402

RECIPES = ("e3", "self")
SUMMARY = "gpu_check.json"
_MIB = 1024 * 1024
_WARMUP_SEED = 7919  # photos no collection generated with the usual small seeds duplicates


@dataclasses.dataclass(frozen=True)
class CheckSettings:
    """What one run measures (command-line options)."""

    device: torch.device
    steps: int
    p: int
    k: int
    train_size: int
    workers: int
    batch_sizes: tuple[int, ...]
    repeats: int
    neighbours: int
    min_inliers: int
    min_cosine: float
    timeout: float


# -- the sample -----------------------------------------------------------------------------------------


def sample_collection(root: Path, limit: int, folder: Path) -> list[CollectionItem]:
    """Whole landmarks spread evenly over ``root`` until ``limit`` images, linked into ``folder`` (a
    folder per landmark, the layout every part reads). Whole landmarks keep the views that mining pairs."""
    by_landmark: defaultdict[str, list[CollectionItem]] = defaultdict(list)
    for item in read_collection(root):
        by_landmark[item.landmark].append(item)
    names = sorted(by_landmark)
    mean_size = max(1, sum(len(group) for group in by_landmark.values()) // max(1, len(names)))
    wanted = min(len(names), max(2, -(-limit // mean_size)))
    chosen, count = [], 0
    for i in range(wanted):
        name = names[round(i * len(names) / wanted)]
        chosen.append(name)
        count += len(by_landmark[name])
        if count >= limit:
            break
    for name in chosen:
        for item in by_landmark[name]:
            target = folder / name / item.path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(item.path.resolve())
    return read_collection(folder)


# -- memory -----------------------------------------------------------------------------------------------


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device: torch.device) -> dict[str, float]:
    """CUDA: the allocator's peak since the last reset. CPU: the process's peak resident set so far (the
    kernel keeps no resettable peak, so a later section reports at least an earlier one's)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return {"cuda_peak_allocated_mib": torch.cuda.max_memory_allocated(device) / _MIB}
    return {"process_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


# -- 1. training ----------------------------------------------------------------------------------------


def labelled_data(
    items: list[CollectionItem],
) -> tuple[list[CollectionItem], ValidationSet]:
    """``e3``: the labels, one validation query and one index image held out per landmark."""
    train_items, queries, index = split_within_landmarks(items, seed=0, val_queries=1, val_index=1)
    return train_items, ValidationSet(queries, index)


def mined_data(
    items: list[CollectionItem], settings: CheckSettings, work: Path
) -> tuple[list[CollectionItem], ValidationSet, dict[str, Any]]:
    """``self``: the same photos without labels; pseudo-landmarks and validation pairs mined from them by
    the product's mining (ImageNet vectors on the device, RootSIFT + MAGSAC++ verification)."""
    start = time.perf_counter()
    paths = {item.relpath: item.path for item in items}
    extractor = GlobalDescriptorExtractor.from_config(
        EmbeddingConfig(image_size=settings.train_size), settings.device
    )
    features = prepare_collection_features(work / "features", paths, extractor, DEFAULT_SIFT)
    config = MiningConfig(neighbours=settings.neighbours, min_inliers=settings.min_inliers)
    result = mine(work / "mining", list(features.ids), features.index, features.sift, config)
    assert result is not None  # no should_stop was given
    split = mined_split(result, {key: paths[str(key)] for key in result.ids}, seed=0)
    mining = {
        "seconds": time.perf_counter() - start,
        "pseudo_landmarks": split.landmarks,
        "train_images": len(split.train),
        "positive_pairs": result.statistics.get("positive_pairs"),
    }
    return split.train, ValidationSet(split.val_queries, split.val_index), mining


def train_recipe(
    recipe: str, items: list[CollectionItem], settings: CheckSettings, work: Path
) -> dict[str, Any]:
    """One recipe for ``settings.steps`` steps on the device: speed, memory, losses, the checkpoint."""
    mining: dict[str, Any] | None = None
    if recipe == "self":
        train_items, validation, mining = mined_data(items, settings, work / "self-data")
    else:
        train_items, validation = labelled_data(items)
    landmarks = len({item.landmark for item in train_items})
    cuda = settings.device.type == "cuda"
    config = TrainConfig(
        recipe="e3",  # `self` trains the e3 loss on mined labels
        epochs=1,
        steps_per_epoch=settings.steps,
        p=min(settings.p, landmarks),
        k=settings.k,
        image_size=settings.train_size,
        amp=cuda,  # CPU autocast (bf16) is slower than fp32 on CPUs without AMX
        channels_last=True,
        workers=settings.workers,
        device=str(settings.device),
    )
    events: list[TrainEvent] = []
    reset_peak_memory(settings.device)
    start = time.perf_counter()
    result = train(config, train_items, validation, work / recipe, progress=events.append)
    seconds = time.perf_counter() - start
    steps = [e for e in events if e.kind == "step"]
    rates = [e.images_per_s or 0.0 for e in steps]
    timed = rates[1:] or rates  # the first step pays for cuDNN's choices and the first batch's decoding
    return {
        "recipe": recipe,
        "train_images": len(train_items),
        "landmarks": landmarks,
        "batch": f"{config.p}x{config.k}",
        "image_size": config.image_size,
        "steps": result.steps,
        "amp": str(autocast_dtype(settings.device)).removeprefix("torch.") if config.amp else "off",
        "channels_last": True,
        "images_per_s": statistics.median(timed),
        "seconds": seconds,
        "losses": [[e.step, e.loss] for e in steps],
        "validation_map": {"before": result.initial_map, "after": result.best_map},
        # The weights after the last step (``best.pt`` may still hold the starting ones after a few steps).
        "checkpoint": str(result.last_checkpoint),
        **({"mining": mining} if mining else {}),
        **peak_memory_mib(settings.device),
    }


def plot_losses(runs: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    for run in runs:
        steps, losses = zip(*run["losses"], strict=True) if run["losses"] else ((), ())
        axes.plot(steps, losses, marker="o", label=f"{run['recipe']} ({run['batch']}, {run['amp']})")
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    axes.set_title(title, fontsize=9)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# -- 2. embedding -----------------------------------------------------------------------------------------


def embedding_throughput(
    config: EmbeddingConfig, paths: list[Path], settings: CheckSettings, pipeline_batch: int
) -> dict[str, Any]:
    """images/s of the served model on the device: the network per batch size, and the pipeline."""
    extractor = GlobalDescriptorExtractor.from_config(config, settings.device)
    size = config.image_size
    per_batch = []
    for batch_size in settings.batch_sizes:
        batch = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
        reset_peak_memory(settings.device)
        extractor.embed_batch(batch)  # warm-up (cuDNN picks its kernels for this shape)
        best = float("inf")
        for _ in range(settings.repeats):
            start = time.perf_counter()
            extractor.embed_batch(batch)  # returns numpy: the device has finished
            best = min(best, time.perf_counter() - start)
        per_batch.append(
            {"batch_size": batch_size, "images_per_s": batch_size / best, **peak_memory_mib(settings.device)}
        )
    extractor.extract_paths(paths[:pipeline_batch], batch_size=pipeline_batch, workers=settings.workers)
    start = time.perf_counter()
    result = extractor.extract_paths(paths, batch_size=pipeline_batch, workers=settings.workers)
    pipeline = len(result.indices) / (time.perf_counter() - start)
    return {
        "model": config.version_key,
        "image_size": size,
        "network": per_batch,
        "pipeline": {"images": len(paths), "batch_size": pipeline_batch, "images_per_s": pipeline},
    }


# -- 3. indexing by the gpu worker ----------------------------------------------------------------------


def indexing_throughput(folder: Path, run_dir: Path, settings: CheckSettings) -> dict[str, Any]:
    """The `make run` stack on free ports imports ``folder``: images/s to indexed and to local features."""
    from webapp.catalog.models import Image
    from webapp.catalog.services import import_collection

    # Beat schedules nothing that indexing needs; the web server is not asked.
    stack = stack_bench.start_stack(
        ROOT / "Procfile", run_dir, ["redis", "milvus", "worker-gpu", "worker-cpu"]
    )
    try:
        stack_bench.wait_for_workers(stack, {"gpu", "cpu"}, settings.timeout)
        warmup = run_dir / "warmup"
        write_collection(warmup, n_landmarks=2, views_per_landmark=2, seed=_WARMUP_SEED)
        warm = import_collection(warmup).scheduled_image_ids
        stack_bench.wait("warm-up", lambda: stack_bench.unfinished(warm) == 0, settings.timeout, stack)

        def pending(ids: list[int]) -> int:
            return Image.objects.filter(pk__in=ids, status=Image.Status.PENDING).count()

        start = time.perf_counter()
        report = import_collection(folder)
        ids = report.scheduled_image_ids
        indexed = stack_bench.wait("indexing", lambda: pending(ids) == 0, settings.timeout, stack)
        done = stack_bench.wait(
            "local features", lambda: stack_bench.unfinished(ids) == 0, settings.timeout, stack
        )
        statuses = dict(
            (status, Image.objects.filter(pk__in=ids, status=status).count())
            for status in (Image.Status.INDEXED, Image.Status.FAILED)
        )
    finally:
        stack_bench.stop_stack(stack)
    lines = (run_dir / "stack.log").read_text(errors="replace").splitlines()
    devices = sorted(
        {
            line.rsplit(" loaded on ", 1)[1].strip()
            for line in lines
            if "worker-gpu" in line and " loaded on " in line
        }
    )
    return {
        "images": len(ids),
        "indexed": statuses[Image.Status.INDEXED],
        "failed": statuses[Image.Status.FAILED],
        "gpu_worker_device": devices,
        "indexed_images_per_s": len(ids) / (indexed - start),
        "with_local_features_images_per_s": len(ids) / (done - start),
        "seconds": done - start,
    }


# -- 4. portability -----------------------------------------------------------------------------------------


def served_vectors(checkpoint: Path, paths: list[Path], device: torch.device | str) -> np.ndarray:
    """``(N, D)`` vectors the checkpoint serves on ``device`` (loaded as the workers load a version)."""
    extractor = GlobalDescriptorExtractor.from_config(checkpoint_embedding_config(checkpoint), device)
    return extractor.extract_paths(paths, workers=1).vectors


def min_cosine(
    checkpoint: Path, paths: list[Path], first: torch.device | str, second: torch.device | str
) -> float:
    a, b = served_vectors(checkpoint, paths, first), served_vectors(checkpoint, paths, second)
    return float(np.min(np.sum(a * b, axis=1)))


def portability(
    device_checkpoint: Path, items: list[CollectionItem], settings: CheckSettings, work: Path
) -> dict[str, Any]:
    paths = [item.path for item in items[:16]]
    trained_here = min_cosine(device_checkpoint, paths, settings.device, "cpu")
    checks: dict[str, Any] = {
        "device_checkpoint_on_cpu": {
            "min_cosine": trained_here,
            "passed": trained_here >= settings.min_cosine,
            "note": "" if settings.device.type == "cuda" else "trained on the CPU: both sides ran on the CPU",
        }
    }
    if not torch.cuda.is_available():
        checks["cpu_checkpoint_on_cuda"] = {"skipped": "no CUDA device: a CPU checkpoint on CUDA not checked"}
        return checks
    cpu = dataclasses.replace(settings, device=torch.device("cpu"), steps=1)
    train_items, validation = labelled_data(items)
    config = TrainConfig(
        epochs=1,
        steps_per_epoch=1,
        p=min(cpu.p, len({i.landmark for i in train_items})),
        k=cpu.k,
        image_size=cpu.train_size,
        amp=False,
        workers=cpu.workers,
        device="cpu",
    )
    result = train(config, train_items, validation, work / "cpu-trained")
    on_cuda = min_cosine(result.last_checkpoint, paths, "cpu", settings.device)
    checks["cpu_checkpoint_on_cuda"] = {"min_cosine": on_cuda, "passed": on_cuda >= settings.min_cosine}
    return checks


# -- the command ----------------------------------------------------------------------------------------


def _report(summary: dict[str, Any], say: Callable[[str], None]) -> None:
    say(f"device: {summary['device']} (torch {summary['torch']})")
    for run in summary["training"]:
        memory = ", ".join(f"{k} {v:.0f}" for k, v in run.items() if k.endswith("_mib"))
        losses = [loss for _, loss in run["losses"]]
        say(
            f"train {run['recipe']:4s}: {run['images_per_s']:7.1f} images/s  batch {run['batch']} at "
            f"{run['image_size']} px, amp {run['amp']}, channels-last; {run['steps']} steps in "
            f"{run['seconds']:.1f} s; loss {losses[0]:.4f} -> {losses[-1]:.4f}; {memory}"
        )
        if "mining" in run:
            mining = run["mining"]
            say(
                f"    mined {mining['pseudo_landmarks']} pseudo-landmarks ({mining['train_images']} training "
                f"images) in {mining['seconds']:.1f} s"
            )
    embedding = summary["embedding"]
    say(f"embedding {embedding['model']} at {embedding['image_size']} px:")
    for row in embedding["network"]:
        memory = ", ".join(f"{k} {v:.0f}" for k, v in row.items() if k.endswith("_mib"))
        say(f"    network batch {row['batch_size']:4d}: {row['images_per_s']:8.1f} images/s; {memory}")
    pipeline = embedding["pipeline"]
    say(
        f"    pipeline (decode included) batch {pipeline['batch_size']}: {pipeline['images_per_s']:.1f} "
        f"images/s over {pipeline['images']} files"
    )
    indexing = summary.get("indexing")
    if indexing:
        say(
            f"indexing by the gpu worker on {', '.join(indexing['gpu_worker_device']) or '?'}: "
            f"{indexing['indexed_images_per_s']:.1f} images/s indexed, "
            f"{indexing['with_local_features_images_per_s']:.1f} with local features "
            f"({indexing['indexed']}/{indexing['images']} indexed, {indexing['failed']} failed)"
        )
    for name, check in summary["portability"].items():
        if "skipped" in check:
            say(f"{name}: skipped ({check['skipped']})")
        else:
            verdict = "ok" if check["passed"] else "FAILED"
            note = f" ({check['note']})" if check.get("note") else ""
            say(f"{name}: min cosine {check['min_cosine']:.6f} {verdict}{note}")


def _failures(summary: dict[str, Any]) -> list[str]:
    failed = [name for name, check in summary["portability"].items() if check.get("passed") is False]
    indexing = summary.get("indexing")
    if indexing and (indexing["failed"] or indexing["indexed"] != indexing["images"]):
        failed.append("indexing")
    return failed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dataset", type=Path, help="a collection folder (a folder per landmark, labels)")
    parser.add_argument("--out", type=Path, required=True, help="receives gpu_check.json and loss.png")
    parser.add_argument("--device", help="cuda, cuda:1, cpu (default: cuda when available)")
    parser.add_argument("--limit", type=int, default=512, help="images of the sample (whole landmarks)")
    parser.add_argument("--steps", type=int, default=50, help="optimiser steps per recipe")
    parser.add_argument("--batch", default="8x4", help="training batch PxK")
    parser.add_argument("--train-size", type=int, default=224, help="training crop side")
    parser.add_argument("--batch-sizes", default="16,32,64,128,256", help="embedding batch sizes")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per batch size (the best counts)")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="decode threads")
    parser.add_argument("--neighbours", type=int, default=10, help="self: candidate pairs per image")
    parser.add_argument("--min-inliers", type=int, default=15, help="self: inliers of a positive pair")
    parser.add_argument("--min-cosine", type=float, default=0.999)
    parser.add_argument("--skip-indexing", action="store_true", help="no stack (training/embedding only)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each stack phase")
    args = parser.parse_args(argv)
    if not args.dataset.is_dir():
        parser.error(f"{args.dataset} is not a folder")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    p, k = (int(v) for v in args.batch.lower().split("x"))
    settings = CheckSettings(
        device=device,
        steps=args.steps,
        p=p,
        k=k,
        train_size=args.train_size,
        workers=args.workers,
        batch_sizes=tuple(int(v) for v in args.batch_sizes.split(",")),
        repeats=args.repeats,
        neighbours=args.neighbours,
        min_inliers=args.min_inliers,
        min_cosine=args.min_cosine,
        timeout=args.timeout,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    # The stack's settings (free ports, a private database) before Django reads them; a gpu worker asked
    # to run on the CPU must not see the card.
    (work / "stack").mkdir()
    os.environ.update(stack_bench.stack_environment(work / "stack"))
    if device.type == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import django

    django.setup()
    from django.conf import settings as django_settings
    from django.core.management import call_command

    from webapp.embeddings.services import configured_embedding

    started = time.perf_counter()

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        items = sample_collection(args.dataset, args.limit, work / "sample")
        say(
            f"sample: {len(items)} images of {len({i.landmark for i in items})} landmarks from {args.dataset}"
        )
        training = [train_recipe(recipe, items, settings, work / "runs") for recipe in RECIPES]
        plot_losses(training, args.out / "loss.png", f"{device_name(device)}, {args.steps} steps")
        paths = [item.path for item in items]
        embedding = embedding_throughput(
            configured_embedding(), paths, settings, django_settings.EMBEDDING_BATCH_SIZE
        )
        indexing = None
        if not args.skip_indexing:
            call_command("migrate", verbosity=0)
            indexing = indexing_throughput(work / "sample", work / "stack", settings)
        e3 = Path(training[0]["checkpoint"])
        summary: dict[str, Any] = {
            "date": datetime.date.today().isoformat(),
            "command": shlex.join([Path(sys.executable).name, *sys.argv]),
            "device": device_name(device),
            "torch": torch.__version__,
            "sample": {"images": len(items), "landmarks": len({i.landmark for i in items})},
            "training": training,
            "embedding": embedding,
            "indexing": indexing,
            "portability": portability(e3, items, settings, work / "portability"),
            "seconds": time.perf_counter() - started,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for run in summary["training"]:
        run.pop("checkpoint")  # deleted with the work folder
    (args.out / SUMMARY).write_text(json.dumps(summary, indent=2))
    _report(summary, say)
    failed = _failures(summary)
    say(f"{'FAILED: ' + ', '.join(failed) if failed else 'all checks passed'}; {args.out / SUMMARY}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
