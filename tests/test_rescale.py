"""Clipping-aware rescaling against a float64 bisection reference, gradients, batching, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustcv.attacks import clipping_aware_rescale, rescale_to_norm
from robustcv.core.errors import InputError


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-7, atol: float = 1e-7
) -> None:
    """Like torch.testing.assert_close (whose first call imports torch.distributed: slow)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual.detach().numpy(), expected.detach().numpy(), rtol, atol)


PS = [1.0, 1.5, 2.0, 3.0, math.inf]


def clipped_norm(x: np.ndarray, d: np.ndarray, eta: float, p: float, lo: float, hi: float) -> float:
    return float(np.linalg.norm(np.clip(x + eta * d, lo, hi) - x, ord=p))


def ref_eta(
    x: np.ndarray, d: np.ndarray, eps: float, p: float, lo: float = 0.0, hi: float = 1.0
) -> float:
    """Smallest eta with ||clip(x + eta d) - x||_p >= eps, by bisection on the monotone norm;
    the full-saturation eta when eps is out of reach."""
    nz = d != 0
    if eps == 0 or not nz.any():
        return 0.0
    room = np.where(d > 0, hi - x, x - lo)
    eta_max = float(np.max(room[nz] / np.abs(d[nz])))
    if clipped_norm(x, d, eta_max, p, lo, hi) < eps:
        return eta_max
    a, b = 0.0, eta_max
    for _ in range(200):
        m = 0.5 * (a + b)
        if clipped_norm(x, d, m, p, lo, hi) >= eps:
            b = m
        else:
            a = m
    return b


def make_case(seed: int, n: int = 9) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eight samples: generic, saturating, on the faces, sparse delta, zero delta, eps = 0, eps
    out of reach, tiny eps."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(8, n, generator=g, dtype=torch.float64)
    d = torch.randn(8, n, generator=g, dtype=torch.float64)
    x[2, :4] = 1.0
    x[2, 4:7] = 0.0
    d[3, ::2] = 0.0
    d[4] = 0.0
    eps = torch.tensor([0.3, 1.2, 0.8, 0.4, 0.5, 0.0, 50.0, 1e-4], dtype=torch.float64)
    return x, d, eps


def reference(x: torch.Tensor, d: torch.Tensor, eps: torch.Tensor, p: float) -> np.ndarray:
    return np.array(
        [ref_eta(x[i].numpy(), d[i].numpy(), float(eps[i]), p) for i in range(x.shape[0])]
    )


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("seed", range(4))
def test_matches_bisection_reference_float64(p: float, seed: int) -> None:
    x, d, eps = make_case(seed)
    eta = clipping_aware_rescale(x, d, eps, p)
    assert eta.shape == (8,) and eta.dtype == torch.float64
    np.testing.assert_allclose(eta.numpy(), reference(x, d, eps, p), rtol=1e-9, atol=1e-14)
    assert eta[4] == 0 and eta[5] == 0  # zero delta, eps = 0
    # reachable samples land exactly on eps
    norms = np.array(
        [clipped_norm(x[i].numpy(), d[i].numpy(), float(eta[i]), p, 0, 1) for i in range(8)]
    )
    full = np.array(
        [
            np.linalg.norm(np.clip(x[i].numpy() + 1e9 * d[i].numpy(), 0, 1) - x[i].numpy(), ord=p)
            for i in range(8)
        ]
    )
    reach = full >= eps.numpy()
    assert reach[[0, 2, 3, 5, 7]].all() and not reach[[4, 6]].any()
    np.testing.assert_allclose(norms[reach], eps.numpy()[reach], rtol=1e-9)
    np.testing.assert_allclose(norms[~reach], full[~reach], rtol=1e-9)


@pytest.mark.parametrize("p", PS)
@pytest.mark.parametrize("seed", range(3))
def test_matches_reference_float32(p: float, seed: int) -> None:
    x, d, eps = make_case(10 + seed, n=50)
    eta = clipping_aware_rescale(x.float(), d.float(), eps.float(), p)
    assert eta.dtype == torch.float32
    ref = reference(x.float().double(), d.float().double(), eps.float().double(), p)
    np.testing.assert_allclose(eta.double().numpy(), ref, rtol=1e-5, atol=1e-12)


def test_unreachable_eps_gives_full_saturation() -> None:
    x = torch.tensor([[0.5, 0.9, 0.0]], dtype=torch.float64)
    d = torch.tensor([[1.0, 0.5, -1.0]], dtype=torch.float64)
    # rooms 0.5, 0.1, 0.0 -> breakpoints 0.5, 0.2, 0.0: all saturate at eta = 0.5
    for p in PS:
        assert float(clipping_aware_rescale(x, d, 10.0, p)) == pytest.approx(0.5)
        assert float(clipping_aware_rescale(x, d, math.inf, p)) == pytest.approx(0.5)
    # a delta pointing out of the box everywhere cannot move at all
    out = clipping_aware_rescale(torch.zeros(1, 3), -torch.ones(1, 3), 0.1, 2.0)
    assert out.tolist() == [0.0]


def test_known_values() -> None:
    x = torch.tensor([[0.5, 0.9]])
    d = torch.tensor([[1.0, 1.0]])
    # p = 2: 0.1^2 + eta^2 = 0.3^2 once the second coordinate saturates
    assert float(clipping_aware_rescale(x, d, 0.3, 2)) == pytest.approx(math.sqrt(0.08), rel=1e-6)
    assert float(clipping_aware_rescale(x, d, 0.05, 2)) == pytest.approx(0.05 / math.sqrt(2))
    assert float(clipping_aware_rescale(x, d, 0.3, math.inf)) == pytest.approx(0.3)
    assert float(clipping_aware_rescale(x, d, 0.05, math.inf)) == pytest.approx(0.05)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    p=st.sampled_from([*PS, 1.2, 7.0]),
    n=st.integers(1, 15),
    eps=st.floats(0.0, 4.0),
    sparsity=st.floats(0.0, 0.9),
)
def test_reference_property(seed: int, p: float, n: int, eps: float, sparsity: float) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, n, generator=g, dtype=torch.float64).round(decimals=1)
    d = torch.randn(3, n, generator=g, dtype=torch.float64)
    d = torch.where(torch.rand(3, n, generator=g, dtype=torch.float64) < sparsity, 0.0, d)
    eta = clipping_aware_rescale(x, d, eps, p)
    ref = reference(x, d, torch.full((3,), eps, dtype=torch.float64), p)
    np.testing.assert_allclose(eta.numpy(), ref, rtol=1e-7, atol=1e-12)


def test_other_bounds_and_scale_invariance() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 6, generator=g, dtype=torch.float64) * 3 - 1
    d = torch.randn(4, 6, generator=g, dtype=torch.float64)
    eps = torch.tensor([0.5, 2.0, 4.0, 100.0], dtype=torch.float64)
    for p in PS:
        eta = clipping_aware_rescale(x, d, eps, p, bounds=(-1.0, 2.0))
        ref = [ref_eta(x[i].numpy(), d[i].numpy(), float(eps[i]), p, -1.0, 2.0) for i in range(4)]
        np.testing.assert_allclose(eta.numpy(), ref, rtol=1e-9)
        # eta scales inversely with delta (tiny and huge deltas included)
        for s in (1e-20, 1e20):
            assert_close(clipping_aware_rescale(x, d * s, eps, p, bounds=(-1.0, 2.0)) * s, eta)


@pytest.mark.parametrize("p", PS)
def test_batched_equals_per_sample(p: float) -> None:
    x, d, eps = make_case(3)
    x = x.float().reshape(8, 1, 3, 3)
    d = d.float().reshape(8, 1, 3, 3)
    eta = clipping_aware_rescale(x, d, eps.float(), p)
    for i in range(8):
        single = clipping_aware_rescale(x[i : i + 1], d[i : i + 1], float(eps[i]), p)
        assert_close(eta[i : i + 1], single)


@pytest.mark.parametrize("p", PS)
def test_gradcheck(p: float) -> None:
    g = torch.Generator().manual_seed(1)
    x = (0.1 + 0.8 * torch.rand(3, 5, generator=g, dtype=torch.float64)).requires_grad_()
    d = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    # reachable with no saturation, reachable with some saturation, out of reach
    eps = torch.tensor([0.05, 0.6, 30.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda xx, dd: clipping_aware_rescale(xx, dd, eps, p), (x, d), eps=1e-7, atol=1e-6
    )


@pytest.mark.parametrize("p", PS)
def test_gradients_are_finite_for_degenerate_samples(p: float) -> None:
    x, d, eps = make_case(0)
    d = d.clone().requires_grad_()
    eta = clipping_aware_rescale(x, d, eps, p)
    eta.sum().backward()
    assert d.grad is not None
    assert torch.isfinite(d.grad).all()
    assert torch.equal(d.grad[4], torch.zeros(9, dtype=torch.float64))  # zero delta
    # through the rescaled point too
    d2 = d.detach().clone().requires_grad_()
    rescale_to_norm(x, d2, eps, p).square().sum().backward()
    assert d2.grad is not None and torch.isfinite(d2.grad).all()


@pytest.mark.parametrize("p", PS)
def test_rescale_to_norm_lands_on_eps(p: float) -> None:
    g = torch.Generator().manual_seed(4)
    x = torch.rand(4, 3, 8, 8, generator=g)
    x[0] = 1.0
    d = torch.randn(4, 3, 8, 8, generator=g)
    eps = torch.tensor([0.5, 0.9, 0.1, 0.3] if p == math.inf else [0.5, 1.0, 0.1, 2.0])
    out = rescale_to_norm(x, d, eps, p)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    norms = torch.linalg.vector_norm((out - x).reshape(4, -1), ord=p, dim=1)
    assert_close(norms, eps, rtol=1e-5, atol=1e-6)
    if p == math.inf:  # the naive point reaches eps there (x[0] has room downwards)
        return
    # a naive rescale-then-clip undershoots where the box is active
    naive = (
        x
        + eps.view(-1, 1, 1, 1)
        * d
        / torch.linalg.vector_norm(d.reshape(4, -1), ord=p, dim=1).view(-1, 1, 1, 1)
    ).clamp(0, 1)
    naive_norm = torch.linalg.vector_norm((naive - x).reshape(4, -1), ord=p, dim=1)
    assert naive_norm[0] < eps[0] * 0.9


def test_input_errors() -> None:
    x = torch.tensor([[0.1, 0.5, 0.9], [0.0, 1.0, 0.3]])
    d = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -3.0]])
    for bad_p in (0.5, 0, -1, math.nan):
        with pytest.raises(InputError, match="p >= 1"):
            clipping_aware_rescale(x, d, 0.1, bad_p)
    with pytest.raises(InputError, match="number"):
        clipping_aware_rescale(x, d, 0.1, "2")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="non-negative"):
        clipping_aware_rescale(x, d, -0.1, 2)
    with pytest.raises(InputError, match="non-negative"):
        clipping_aware_rescale(x, d, torch.tensor([0.1, -1.0]), 2)
    with pytest.raises(InputError, match="shape"):
        clipping_aware_rescale(x, torch.zeros(2, 4), 0.1, 2)
    with pytest.raises(InputError, match=r"shape \(2,\)"):
        clipping_aware_rescale(x, d, torch.tensor([0.1, 0.2, 0.3]), 2)
    with pytest.raises(InputError, match="lo < hi"):
        clipping_aware_rescale(x, d, 0.1, 2, bounds=(1.0, 0.0))
    with pytest.raises(InputError, match="pair"):
        clipping_aware_rescale(x, d, 0.1, 2, bounds=(1.0,))  # type: ignore[arg-type]
    with pytest.raises(InputError, match="outside the bounds"):
        clipping_aware_rescale(x * 2 + 1, d, 0.1, 2)
    with pytest.raises(InputError, match="outside the bounds"):
        rescale_to_norm(x, d, 0.1, 2, bounds=(0.5, 1.0))
