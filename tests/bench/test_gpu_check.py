"""bench/gpu_check.py end to end on the CPU, at toy sizes, so the command a GPU machine runs cannot rot:
both recipes train, the served model embeds, the stack's gpu worker indexes, checkpoints serve alike."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from retrieval_core.datasets.synthetic import write_collection

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_every_section_on_the_cpu(tmp_path: Path) -> None:
    collection = tmp_path / "photos"
    write_collection(collection, n_landmarks=4, views_per_landmark=5, seed=0)
    out = tmp_path / "out"
    command = [
        sys.executable, str(ROOT / "bench" / "gpu_check.py"), str(collection), "--out", str(out),
        "--device", "cpu", "--steps", "2", "--batch", "2x2", "--train-size", "64", "--batch-sizes", "2,4",
        "--repeats", "1", "--workers", "1", "--neighbours", "4", "--timeout", "120",
    ]  # fmt: skip
    # The command runs its own stack (private ports, database); only the served size is made small.
    env = {**os.environ, "EMBEDDING_IMAGE_SIZE": "64", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    summary = json.loads((out / "gpu_check.json").read_text())
    assert summary["device"].startswith("CPU")
    assert [run["recipe"] for run in summary["training"]] == ["e3", "self"]
    for run in summary["training"]:
        assert run["steps"] == 2 and [step for step, _ in run["losses"]] == [1, 2]
        assert all(math.isfinite(loss) and loss >= 0 for _, loss in run["losses"])
        assert run["images_per_s"] > 0 and run["process_peak_rss_mib"] > 0
        assert run["amp"] == "off" and run["channels_last"] is True  # no autocast on the CPU
    assert summary["training"][1]["mining"]["pseudo_landmarks"] >= 2  # views of one scene were paired

    embedding = summary["embedding"]
    assert embedding["image_size"] == 64
    assert [row["batch_size"] for row in embedding["network"]] == [2, 4]
    assert all(row["images_per_s"] > 0 for row in embedding["network"])
    assert embedding["pipeline"]["images"] == 20 and embedding["pipeline"]["images_per_s"] > 0

    indexing = summary["indexing"]
    assert indexing["images"] == 20 and indexing["indexed"] == 20 and indexing["failed"] == 0
    assert indexing["gpu_worker_device"] == ["cpu"]  # the worker's own log says where it embedded
    assert indexing["indexed_images_per_s"] >= indexing["with_local_features_images_per_s"] > 0

    portability = summary["portability"]
    assert portability["device_checkpoint_on_cpu"]["passed"]
    assert portability["device_checkpoint_on_cpu"]["min_cosine"] >= 0.999
    if not torch.cuda.is_available():
        assert "no CUDA" in portability["cpu_checkpoint_on_cuda"]["skipped"]
    assert (out / "loss.png").read_bytes().startswith(b"\x89PNG")
    assert "all checks passed" in done.stdout
