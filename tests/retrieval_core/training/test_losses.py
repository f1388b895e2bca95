import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from retrieval_core.datasets.synthetic import make_scene, render_view
from retrieval_core.models.embedding import EmbeddingConfig, build_embedding_net
from retrieval_core.training.losses import ArcFaceHead, LinearClassifierHead, contrastive_loss


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


# Two landmarks in 2-D. Cosines: positives (0,1) 0.6, (2,3) 0.6; negatives (0,2) 0.8, (0,3) 0.0,
# (1,2) 0.96, (1,3) 0.8.
EMBEDDINGS = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.8, 0.6], [0.0, 1.0]])
LABELS = torch.tensor([0, 0, 1, 1])


def test_contrastive_loss_matches_hand_computation_without_hard_negative_weighting():
    # positives: mean(d) = mean(0.4, 0.4); negatives: mean(relu(0.4 - d)) = mean(0.2, 0, 0.36, 0.2)
    expected = 0.4 + (0.2 + 0.0 + 0.36 + 0.2) / 4
    loss = contrastive_loss(EMBEDDINGS, LABELS, margin=0.4, hard_negative_weight=0.0)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_contrastive_loss_weights_hard_negatives_by_softmax_of_similarity():
    beta = 10.0
    cosines, violations = [0.8, 0.0, 0.96, 0.8], [0.2, 0.0, 0.36, 0.2]
    weights = [math.exp(beta * c) for c in cosines]
    expected = 0.4 + sum(w * v for w, v in zip(weights, violations, strict=True)) / sum(weights)
    loss = contrastive_loss(EMBEDDINGS, LABELS, margin=0.4, hard_negative_weight=beta)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # The hardest negative (cos 0.96) dominates, so the loss exceeds the plain mean.
    assert loss.item() > contrastive_loss(EMBEDDINGS, LABELS, 0.4, 0.0).item() + 0.05


def test_contrastive_loss_uses_all_pairs_and_handles_missing_pair_types():
    # Only positive pairs: the loss is their mean distance.
    same = contrastive_loss(EMBEDDINGS[:2], torch.tensor([3, 3]), hard_negative_weight=0.0)
    assert same.item() == pytest.approx(0.4, abs=1e-6)
    # Only negatives, all beyond the margin: zero, and still differentiable.
    far = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss = contrastive_loss(far, torch.tensor([0, 1]))
    loss.backward()
    assert loss.item() == 0.0 and far.grad is not None
    with pytest.raises(ValueError):
        contrastive_loss(EMBEDDINGS, LABELS[:3])


def _after_one_step(labels: torch.Tensor) -> torch.Tensor:
    x = EMBEDDINGS.clone().requires_grad_(True)
    contrastive_loss(F.normalize(x, dim=-1), labels, 0.4, 0.0).backward()
    step = F.normalize(x - 0.1 * x.grad, dim=-1).detach()
    return step @ step.T


def test_contrastive_gradient_pulls_positives_together_and_pushes_violating_negatives():
    cos = _after_one_step(LABELS)
    assert cos[0, 1] > 0.6 and cos[2, 3] > 0.6  # positives closer
    cos = _after_one_step(torch.arange(4))  # all pairs negative
    assert cos[1, 2] < 0.96 and cos[0, 2] < 0.8  # violating negatives pushed apart


def test_arcface_adds_the_angular_margin_to_the_true_class_only():
    head = ArcFaceHead(dim=2, num_classes=2, scale=10.0, margin=0.5)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    angle = 0.3
    x = torch.tensor([[math.cos(angle), math.sin(angle)]])
    plain = head(x)
    torch.testing.assert_close(plain, 10.0 * torch.tensor([[math.cos(angle), math.sin(angle)]]))
    margin = head(x, torch.tensor([0]))
    torch.testing.assert_close(margin[0, 0], torch.tensor(10.0 * math.cos(angle + 0.5)))
    torch.testing.assert_close(margin[0, 1], plain[0, 1])


def test_linear_classifier_head_shapes():
    head = LinearClassifierHead(dim=16, num_classes=5)
    assert head(torch.randn(3, 16)).shape == (3, 5)


def _fixed_batch(n_landmarks: int = 4, views: int = 2, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for landmark in range(n_landmarks):
        scene = make_scene(landmark, (96, 96))
        rng = np.random.default_rng(landmark)
        for _ in range(views):
            view, _ = render_view(scene, rng, out_size=(size, size))
            images.append(torch.from_numpy(view).permute(2, 0, 1))
            labels.append(landmark)
    x = torch.stack(images).float() / 255.0
    return (x - 0.5) / 0.5, torch.tensor(labels)


@pytest.mark.parametrize("loss_kind", ["contrastive", "arcface"])
def test_a_few_steps_on_a_fixed_batch_reduce_the_loss(loss_kind):
    torch.manual_seed(0)
    net = build_embedding_net(EmbeddingConfig(image_size=64)).train()
    head = ArcFaceHead(net.dim, 4)
    x, labels = _fixed_batch()

    def loss_fn() -> torch.Tensor:
        embeddings = net(x)
        if loss_kind == "contrastive":
            return contrastive_loss(embeddings, labels)
        return F.cross_entropy(head(embeddings, labels), labels)

    optimizer = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=1e-4)
    with torch.no_grad():
        before = loss_fn().item()
    for _ in range(4):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()
    with torch.no_grad():
        after = loss_fn().item()
    assert after < 0.9 * before, (before, after)
