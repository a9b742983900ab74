import numpy as np
import pytest
import torch

from pipeline.models.pooling import AttentionPool, GeM, create_pooling

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


def _attention(channels: int, weight: torch.Tensor | None = None, dtype: torch.dtype = torch.float32) -> AttentionPool:
    layer = create_pooling("attention", channels=channels).to(dtype)
    if weight is not None:
        with torch.no_grad():
            layer.score.weight.copy_(weight.view(1, channels, 1, 1))
    return layer


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_pooling_starts_as_average_pooling(dtype):
    x = torch.randn(3, 5, 4, 6, dtype=dtype, generator=torch.Generator().manual_seed(0))
    layer = _attention(5, dtype=dtype)  # zero score: uniform attention logits
    np.testing.assert_allclose(layer(x).detach().numpy(), x.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)
    # any uniform score agrees: a map whose channel 0 is constant gets the same weight everywhere
    constant = x.clone()
    constant[:, 0] = 2.0
    shifted = _attention(5, torch.tensor([7.0, 0, 0, 0, 0], dtype=dtype), dtype)
    np.testing.assert_allclose(shifted(constant).detach().numpy(), constant.mean(dim=(2, 3)).numpy(), rtol=1e-5, atol=1e-6)


def test_attention_pooling_one_hot_map_picks_that_position():
    x = torch.rand(2, 4, 3, 5, generator=torch.Generator().manual_seed(1))
    x[:, 0] = 0.0
    x[0, 0, 2, 1] = 1.0  # image 0 attends to (2, 1), image 1 to (0, 4)
    x[1, 0, 0, 4] = 1.0
    layer = _attention(4, torch.tensor([200.0, 0, 0, 0]))  # softmax of 200 vs 0: one-hot to 1e-87
    got = layer(x)
    torch.testing.assert_close(got[0], x[0, :, 2, 1])
    torch.testing.assert_close(got[1], x[1, :, 0, 4])


@pytest.mark.parametrize("dtype", DTYPES)
def test_attention_pooling_matches_numpy_reference(dtype):
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(3, 6, 4, 5, dtype=dtype, generator=generator)
    weight = torch.randn(6, dtype=dtype, generator=generator)
    got = _attention(6, weight, dtype)(x).double().detach().numpy()
    a, w = x.double().numpy(), weight.double().numpy()
    expected = np.empty((3, 6))
    for b in range(3):  # brute force, position by position
        scores = np.array([[w @ a[b, :, i, j] for j in range(5)] for i in range(4)])
        e = np.exp(scores - scores.max())
        p = e / e.sum()
        expected[b] = [sum(p[i, j] * a[b, c, i, j] for i in range(4) for j in range(5)) for c in range(6)]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_masked_attention_pooling_ignores_positions_outside_the_mask():
    generator = torch.Generator().manual_seed(3)
    x, weight = torch.randn(2, 3, 4, 4, generator=generator), torch.randn(3, generator=generator)
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[0, 1:3, 0:2] = True
    mask[1, 3, 3] = True
    layer = _attention(3, weight)
    for b in range(2):  # the masked result is the unmasked layer on the masked positions alone
        inside = x[b][:, mask[b]].unsqueeze(-1).unsqueeze(0)  # (1, C, n, 1)
        torch.testing.assert_close(layer(x, mask)[b], layer(inside)[0])
    torch.testing.assert_close(layer(x, mask)[1], x[1, :, 3, 3])
    torch.testing.assert_close(_attention(3)(x, mask), create_pooling("avg")(x, mask))


def test_attention_pooling_gradients_reach_the_score_and_the_map():
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(4), requires_grad=True)
    layer = _attention(4)  # from the zero start: the score must still learn
    (layer(x) * torch.arange(4.0)).sum().backward()
    assert layer.score.weight.grad is not None and float(layer.score.weight.grad.abs().sum()) > 0
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert list(dict(layer.named_parameters())) == ["score.weight"]


def test_attention_pooling_under_bf16_autocast_computes_in_float32():
    x = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(5))
    layer = _attention(8, torch.linspace(-1, 1, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x.bfloat16())
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, layer(x), rtol=0.05, atol=0.05)


def test_attention_pooling_needs_the_channels():
    with pytest.raises(ValueError, match="attention pooling needs the feature map's channels"):
        create_pooling("attention")
