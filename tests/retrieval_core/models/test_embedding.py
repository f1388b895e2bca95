import copy
import re
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from retrieval_core.models.embedding import EmbeddingConfig, EmbeddingNet, build_embedding_net
from retrieval_core.models.weights import WeightsError


@pytest.fixture(scope="module")
def net() -> EmbeddingNet:
    return build_embedding_net(EmbeddingConfig())


def _batch(images: list[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """``(B, 3, H, W)`` normalised with mean 0.5, std 0.5 (the TF EfficientNet-Lite convention)."""
    arrays = [np.asarray(Image.fromarray(a).resize(size, Image.Resampling.BICUBIC)) for a in images]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.5) / 0.5


def test_imagenet_weights_classify_chelsea_and_coffee(net):
    """Proves the packaged weights are really loaded: a random network does not find a cat and an espresso."""
    assert net.mean == (0.5, 0.5, 0.5) and net.std == (0.5, 0.5, 0.5)
    with torch.inference_mode():
        probs = net.logits(_batch([data.chelsea(), data.coffee()], (224, 224))).softmax(-1)
    cat, coffee = probs.argmax(-1).tolist()
    assert 281 <= cat <= 285, cat  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert coffee in (967, 968), coffee  # espresso, cup
    assert probs[0, 281:286].sum() > 0.5 and probs[1, [967, 968]].sum() > 0.5


def test_embeddings_are_unit_norm_deterministic_and_any_aspect(net):
    x = _batch([data.chelsea(), data.coffee(), data.astronaut()], (96, 64))
    with torch.inference_mode():
        a, b = net(x), net(x)
    assert a.shape == (3, net.dim) and net.dim == 1280
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(3))
    assert torch.equal(a, b)
    assert (a[0] @ a[1]).item() < 0.99  # different images, different vectors
    with torch.inference_mode():
        assert net(_batch([data.chelsea()], (64, 128))).shape == (1, 1280)


def test_version_key_and_collection_name(tmp_path):
    cfg = EmbeddingConfig()
    assert cfg.version_key == "tf_efficientnet_lite0-imagenet-384-gem3"
    assert cfg.collection_name == "tf_efficientnet_lite0_imagenet_384_gem3"
    other = EmbeddingConfig(image_size=224, gem_p=2.5)
    assert other.version_key == "tf_efficientnet_lite0-imagenet-224-gem2p5"

    a, b = tmp_path / "a.pt", tmp_path / "moved" / "b.pt"
    torch.save({"w": torch.ones(2)}, a)
    b.parent.mkdir()
    shutil.copyfile(a, b)
    key_a = EmbeddingConfig(weights=str(a)).version_key
    assert re.fullmatch(r"tf_efficientnet_lite0-ckpt[0-9a-f]{12}-384-gem3", key_a)
    assert EmbeddingConfig(weights=str(b)).version_key == key_a  # named by content, not path
    torch.save({"w": torch.zeros(2)}, a)
    assert EmbeddingConfig(weights=str(a)).version_key != key_a
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", EmbeddingConfig(weights=str(a)).collection_name)


def test_config_validation():
    with pytest.raises(ValueError):
        EmbeddingConfig(image_size=0)
    with pytest.raises(ValueError):
        EmbeddingConfig(gem_p=-1.0)
    with pytest.raises(ValueError, match="Unknown timm backbone"):
        build_embedding_net(EmbeddingConfig(backbone="no_such_net"))
    with pytest.raises(WeightsError, match="checkpoint file"):
        build_embedding_net(EmbeddingConfig(weights="imagenet21k"))


def _perturbed(net: EmbeddingNet) -> EmbeddingNet:
    """A copy whose vectors differ from the ImageNet network's, as after fine-tuning."""
    tuned = copy.deepcopy(net)
    with torch.no_grad():
        tuned.pool.p.fill_(4.0)
        tuned.backbone.conv_head.weight.mul_(1.5)
    return tuned


def test_user_checkpoint_round_trip_embedding_net(net, tmp_path):
    tuned = _perturbed(net)
    path = tmp_path / "tuned.pt"
    torch.save({"state_dict": tuned.state_dict(), "epoch": torch.tensor(7)}, path)
    loaded = build_embedding_net(EmbeddingConfig(weights=str(path)))
    assert not loaded.training and loaded.pool.p.item() == 4.0
    x = _batch([data.chelsea(), data.coffee()], (80, 64))
    with torch.inference_mode():
        expected, got, original = tuned(x), loaded(x), net(x)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    assert (got - original).abs().max() > 1e-3


@pytest.mark.parametrize("num_classes", [1000, 0])
def test_user_checkpoint_round_trip_timm_backbone(net, tmp_path, num_classes):
    tuned = _perturbed(net)
    state = tuned.backbone.state_dict()
    if num_classes == 0:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    loaded = build_embedding_net(EmbeddingConfig(weights=str(path)))
    assert loaded.backbone.num_classes == num_classes
    x = _batch([data.coffee()], (64, 64))
    with torch.inference_mode():
        tuned.pool.p.fill_(3.0)  # a backbone checkpoint has no pooling layer: GeM p comes from the config
        torch.testing.assert_close(loaded(x), tuned(x), atol=1e-6, rtol=0)


def test_checkpoint_that_does_not_fit_is_an_error(net, tmp_path):
    state = net.state_dict()
    del state["backbone.conv_stem.weight"]
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"(?s)not fit a tf_efficientnet_lite0 EmbeddingNet.*conv_stem"):
        build_embedding_net(EmbeddingConfig(weights=str(path)))
    with pytest.raises(WeightsError, match="does not fit a tf_efficientnet_lite1 backbone"):
        torch.save(net.backbone.state_dict(), path)
        build_embedding_net(EmbeddingConfig(backbone="tf_efficientnet_lite1", weights=str(path)))
