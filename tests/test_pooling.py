import numpy as np
import pytest
import torch

from pipeline.models.pooling import GeM, create_pooling

DTYPES = [torch.float32, torch.float64]


def _positive_map(dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(3, 5, 4, 6, generator=generator, dtype=dtype) + 0.1


@pytest.mark.parametrize("dtype", DTYPES)
def test_gem_matches_numpy_formula(dtype):
    x = _positive_map(dtype)
    got = GeM(p=3.0)(x).double().detach().numpy()
    a = x.double().numpy()
    expected = np.mean(a**3, axis=(2, 3)) ** (1 / 3)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gem_at_p_one_is_average_pooling(dtype):
    x = _positive_map(dtype)
    np.testing.assert_allclose(
        GeM(p=1.0)(x).detach().numpy(), create_pooling("avg")(x).numpy(), rtol=1e-5
    )
    np.testing.assert_allclose(create_pooling("avg")(x).numpy(), x.mean(dim=(2, 3)).numpy(), rtol=1e-6)


def test_gem_tends_to_max_pooling_as_p_grows():
    x = _positive_map(torch.float64)
    maximum = create_pooling("max")(x)
    np.testing.assert_allclose(maximum.numpy(), x.amax(dim=(2, 3)).numpy())
    gaps = [float((maximum - GeM(p=p, learnable=False)(x)).abs().max()) for p in (1, 3, 10, 50, 500)]
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps
    assert gaps[-1] < 0.01 * float(maximum.min())


def test_gem_p_is_learnable_or_fixed():
    x = _positive_map(torch.float32)
    learnable = GeM(p=3.0)
    learnable(x).sum().backward()
    assert learnable.p.grad is not None and learnable.p.grad.abs() > 0
    fixed = GeM(p=3.0, learnable=False)
    assert list(fixed.parameters()) == [] and "p" in dict(fixed.named_buffers())


def test_gem_clamps_negative_inputs_and_low_p():
    x = torch.full((1, 2, 2, 2), -1.0)
    assert torch.allclose(GeM(p=3.0)(x), torch.full((1, 2), 1e-6), rtol=1e-3)
    gem = GeM(p=3.0)
    with torch.no_grad():
        gem.p.fill_(0.2)  # a learnt p below 1 acts as average pooling
    y = _positive_map(torch.float32)
    assert torch.allclose(gem(y), y.mean(dim=(2, 3)), rtol=1e-5)


def test_gem_under_bf16_autocast_computes_in_float32():
    x = _positive_map(torch.float32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = GeM(p=3.0)(x.bfloat16())
    assert got.dtype == torch.float32
    assert torch.allclose(got, GeM(p=3.0)(x), rtol=1e-2)


def test_unknown_pooling_is_rejected():
    with pytest.raises(ValueError, match="unknown pooling"):
        create_pooling("median")
