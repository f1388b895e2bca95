import pytest
import torch

from retrieval_core.models.pooling import GeM


def test_shape_and_constant_map():
    x = torch.full((2, 8, 5, 7), 0.25)
    out = GeM()(x)
    assert out.shape == (2, 8)
    torch.testing.assert_close(out, torch.full((2, 8), 0.25))


def test_p1_is_average_and_large_p_approaches_max():
    x = torch.rand(3, 4, 6, 6) + 0.1
    torch.testing.assert_close(GeM(p=1.0)(x), x.mean(dim=(-2, -1)))
    big = GeM(p=200.0)(x.double())
    torch.testing.assert_close(big, x.double().amax(dim=(-2, -1)), rtol=0.05, atol=0.0)


def test_p3_matches_formula_and_clamps_negatives():
    x = torch.randn(2, 3, 4, 4)
    expected = x.clamp(min=1e-6).pow(3).mean(dim=(-2, -1)).pow(1 / 3)
    torch.testing.assert_close(GeM()(x), expected)
    assert torch.isfinite(GeM()(-torch.ones(1, 2, 3, 3))).all()


def test_learnable_p_gets_gradient_and_frozen_p_is_buffer():
    gem = GeM(learnable=True)
    assert [name for name, _ in gem.named_parameters()] == ["p"]
    gem(torch.rand(2, 3, 4, 4) + 0.1).sum().backward()
    assert gem.p.grad is not None and gem.p.grad.abs().item() > 0

    frozen = GeM(learnable=False)
    assert list(frozen.parameters()) == []
    assert set(frozen.state_dict()) == set(gem.state_dict()) == {"p"}


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        GeM(p=0.0)
    with pytest.raises(ValueError):
        GeM()(torch.rand(2, 3, 4))
