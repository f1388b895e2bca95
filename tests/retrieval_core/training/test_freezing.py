"""Frozen early stages keep their weights through a training run; the late stages still learn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from retrieval_core.datasets.collection import CollectionItem
from retrieval_core.models.embedding import EmbeddingNet
from retrieval_core.models.weights import imagenet_state_dict
from retrieval_core.training import TrainConfig, train
from retrieval_core.training.freezing import backbone_stages, freeze_early_stages


def _items(folder: Path, landmarks: int = 2, per_landmark: int = 4) -> list[CollectionItem]:
    rng = np.random.default_rng(0)
    items = []
    for landmark in range(landmarks):
        base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        for n in range(per_landmark):
            pixels = np.kron(base, np.ones((8, 8, 1), np.uint8)) + rng.integers(0, 20, (64, 64, 3), np.uint8)
            path = folder / f"l{landmark}_{n}.jpg"
            Image.fromarray(pixels).save(path)
            items.append(CollectionItem(path, path.name, f"l{landmark}", None))
    return items


def test_freeze_counts_stem_and_first_stages() -> None:
    net = EmbeddingNet(num_classes=0)
    stem, stages = backbone_stages(net.backbone)
    expected = sum(p.numel() for m in (*stem, stages[0], stages[1]) for p in m.parameters())
    assert freeze_early_stages(net.backbone, 2) == expected
    assert not any(p.requires_grad for p in stages[1].parameters())
    assert all(p.requires_grad for p in stages[2].parameters())


def test_freeze_rejects_more_stages_than_the_backbone_has() -> None:
    net = EmbeddingNet(num_classes=0)
    with pytest.raises(ValueError, match="stages"):
        freeze_early_stages(net.backbone, 99)
    with pytest.raises(ValueError, match="cannot find the stages"):
        freeze_early_stages(torch.nn.Linear(2, 2), 1)


def test_training_leaves_frozen_stages_unchanged(tmp_path: Path) -> None:
    items = _items(tmp_path)
    config = TrainConfig(
        recipe="e3",
        epochs=1,
        steps_per_epoch=2,
        p=2,
        k=2,
        lr=1e-3,
        image_size=64,
        frozen_stages=3,
        device="cpu",
        workers=1,
        init_weights="imagenet",
    )
    result = train(config, items, None, tmp_path / "run")
    start = EmbeddingNet(num_classes=0)
    start.backbone.load_state_dict(imagenet_state_dict(config.backbone, start.backbone.state_dict()))
    trained = torch.load(result.last_checkpoint, weights_only=True)["state_dict"]
    before = start.state_dict()
    frozen = [k for k in before if k.startswith(("backbone.conv_stem", "backbone.blocks.2."))]
    learnt = [k for k in before if k.startswith("backbone.blocks.6.") and k.endswith("weight")]
    assert frozen and learnt
    assert all(torch.equal(before[k], trained[k]) for k in frozen)
    assert any(not torch.equal(before[k], trained[k]) for k in learnt)
