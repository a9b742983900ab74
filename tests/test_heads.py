import math

import numpy as np
import pytest
import torch

from pipeline.models.heads import create_head

DTYPES = [torch.float32, torch.float64]
S, M = 30.0, 0.35


def _inputs(dtype: torch.dtype):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(6, 8, generator=generator, dtype=dtype)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    return x, labels


def _cosines(x: torch.Tensor, weight: torch.Tensor) -> np.ndarray:
    a = x.double().numpy()
    w = weight.detach().double().numpy()
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    return np.clip(a @ w.T, -1, 1)


def _expected(name: str, cos: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = S * cos.copy()
    for i, y in enumerate(labels):
        c = cos[i, y]
        if name == "arcface":
            theta = math.acos(c)
            out[i, y] = S * (math.cos(theta + M) if theta + M <= math.pi else c - M * math.sin(M))
        elif name == "cosface":
            out[i, y] = S * (c - M)
        elif name == "circle":
            out[i] = [
                S * max(cos[i, j] + M, 0) * (cos[i, j] - M) for j in range(cos.shape[1])
            ]
            out[i, y] = S * max(1 + M - c, 0) * (c - (1 - M))
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_head_is_a_plain_bias_free_product(dtype):
    x, labels = _inputs(dtype)
    head = create_head("linear", 8, 5).to(dtype)
    assert [n for n, _ in head.named_parameters()] == ["weight"]
    assert float(head.weight.detach().std()) < 0.01  # strong baseline: normal, std 0.001
    expected = x.numpy() @ head.weight.detach().numpy().T
    np.testing.assert_allclose(head(x, labels).detach().numpy(), expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["arcface", "cosface", "circle"])
def test_margin_heads_match_the_formulas(name, dtype):
    x, labels = _inputs(dtype)
    head = create_head(name, 8, 5, scale=S, margin=M)
    cos = _cosines(x, head.weight)
    got = head(x, labels).detach().double().numpy()
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    np.testing.assert_allclose(got, _expected(name, cos, labels.numpy()), rtol=tol, atol=tol)
    # without labels: the scaled cosine, no margin
    np.testing.assert_allclose(head(x).detach().double().numpy(), S * cos, rtol=tol, atol=tol)


def test_arcface_falls_back_where_theta_plus_m_passes_pi():
    head = create_head("arcface", 4, 2, scale=S, margin=M)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    x = torch.tensor([[-1.0, 0.02, 0, 0]], dtype=torch.float64)  # theta near pi for class 0
    cos = _cosines(x, head.weight)
    assert math.acos(cos[0, 0]) + M > math.pi
    got = head(x, torch.tensor([0])).detach().numpy()
    np.testing.assert_allclose(got, _expected("arcface", cos, np.array([0])), rtol=1e-9)


def test_circle_alphas_carry_no_gradient():
    x, labels = _inputs(torch.float64)
    x.requires_grad_(True)
    head = create_head("circle", 8, 5, scale=S, margin=M).double()
    head(x, labels)[0, 0].backward()  # target logit of sample 0: s*alpha_p*(cos - delta_p)
    cos = _cosines(x.detach(), head.weight)[0, 0]
    # d logit / d cos with alpha_p held constant is s*alpha_p
    w = head.weight.detach()[0]
    a = x.detach()[0]
    dcos_dx = w / w.norm() / a.norm() - (a @ w) / (w.norm() * a.norm() ** 3) * a
    expected = S * max(1 + M - cos, 0) * dcos_dx
    np.testing.assert_allclose(x.grad[0].numpy(), expected.numpy(), rtol=1e-7)


@pytest.mark.parametrize("name", ["arcface", "cosface", "circle"])
def test_margin_heads_stay_float32_under_bf16_autocast(name):
    x, labels = _inputs(torch.float32)
    head = create_head(name, 8, 5, scale=S, margin=M)
    reference = head(x, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = head(x.bfloat16(), labels)
    assert got.dtype == torch.float32
    assert torch.allclose(got, reference, atol=0.5)  # only the bf16 rounding of the input


def test_unknown_head_is_rejected():
    with pytest.raises(ValueError, match="unknown head"):
        create_head("sphereface", 8, 5)
