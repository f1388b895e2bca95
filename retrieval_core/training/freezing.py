"""Freezing the early stages of a backbone: what ImageNet taught them (edges, textures) is kept as is.

A few hundred mined pairs are too few to improve generic low-level filters, and enough to spoil them; the
late stages, which decide what counts as "the same place", are where a small collection can teach
something. Frozen stages also need no backward pass, which is most of a CPU step at full resolution.
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["backbone_stages", "freeze_early_stages"]


def backbone_stages(backbone: Any) -> tuple[list[nn.Module], list[nn.Module]]:
    """``(stem, stages)`` of a timm backbone, input side first: EfficientNet / MobileNet style models
    (``conv_stem``, ``bn1``, ``blocks``) and ResNets (``conv1``, ``bn1``, ``layer1``..``layer4``).

    Raises ``ValueError`` for other layouts, so a frozen-stage setting is never silently ignored.
    """
    if isinstance(getattr(backbone, "blocks", None), nn.Sequential):
        stem = [getattr(backbone, name) for name in ("conv_stem", "bn1") if hasattr(backbone, name)]
        return stem, list(backbone.blocks)
    if all(hasattr(backbone, f"layer{i}") for i in range(1, 5)):
        stem = [getattr(backbone, name) for name in ("conv1", "bn1") if hasattr(backbone, name)]
        return stem, [getattr(backbone, f"layer{i}") for i in range(1, 5)]
    raise ValueError(f"cannot find the stages of a {type(backbone).__name__} backbone to freeze")


def freeze_early_stages(backbone: Any, stages: int) -> int:
    """Stop gradients through the stem and the first ``stages`` stages (0 freezes nothing); their
    BatchNorm layers are put in eval mode by the caller's `train()` handling. Returns the number of frozen
    parameters. ``stages`` beyond the backbone's count is an error."""
    if stages < 0:
        raise ValueError(f"frozen stages must not be negative, got {stages}")
    if stages == 0:
        return 0
    stem, blocks = backbone_stages(backbone)
    if stages > len(blocks):
        raise ValueError(f"the backbone has {len(blocks)} stages; cannot freeze {stages}")
    frozen = 0
    for module in (*stem, *blocks[:stages]):
        for parameter in module.parameters():
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    return frozen
