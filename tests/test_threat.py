"""Threat models: exact projections against independent references, random starts, steepest."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from robustcv.attacks import L0, L1, L2, Linf, ThreatModel, get_threat
from robustcv.core.errors import InputError
from robustcv.core.names import NORMS, NormEpsThreshold, canonical_norm, parse_norm_eps_threshold


def assert_close(
    actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-7, atol: float = 1e-7
) -> None:
    """Like torch.testing.assert_close (whose first call imports torch.distributed: slow)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual.detach().numpy(), expected.detach().numpy(), rtol, atol)


# ---------------------------------------------------------------------------- references
# Independent float64 solvers of  min ||d - v||_2  s.t.  ||d||_p <= eps,  -x <= d <= 1 - x.
# They solve the KKT conditions exactly on the piecewise structure (no bisection), and a scipy
# SLSQP solve cross-checks them on a few cases.


def ref_project_l2(x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    v = y - x
    lo, hi = -x, 1.0 - x
    d = np.clip(v, lo, hi)
    if np.sum(d**2) <= eps**2:
        return x + d
    if eps == 0:
        return x.copy()
    # d(t) = clip(t v); ||d(t)||^2 is piecewise quadratic in t with knots where t v_i hits a bound.
    with np.errstate(divide="ignore", invalid="ignore"):
        knots = np.where(v > 0, hi / v, np.where(v < 0, lo / v, np.inf))
    cands = np.unique(np.concatenate([[0.0, 1.0], knots[(knots > 0) & (knots < 1)]]))
    values = [np.sum(np.clip(t * v, lo, hi) ** 2) for t in cands]
    j = int(np.searchsorted(values, eps**2))  # first knot with value >= eps^2
    t_a, t_b = cands[j - 1], cands[j]
    mid = 0.5 * (t_a + t_b)
    sat = (mid * v <= lo) | (mid * v >= hi)
    const = np.sum(np.clip(mid * v, lo, hi)[sat] ** 2)
    quad = np.sum(v[~sat] ** 2)
    t = math.sqrt((eps**2 - const) / quad)
    return x + np.clip(t * v, lo, hi)


def ref_project_l1(x: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    v = y - x
    a = np.abs(v)
    u = np.where(v > 0, 1.0 - x, x)

    def size(lam: float) -> float:
        return float(np.sum(np.minimum(np.maximum(a - lam, 0.0), u)))

    if size(0.0) <= eps:
        return x + np.sign(v) * np.minimum(a, u)
    # size(lam) is piecewise linear and decreasing, with knots at a_i and a_i - u_i.
    knots = np.unique(np.concatenate([[0.0], a, np.maximum(a - u, 0.0)]))
    values = np.array([size(k) for k in knots])  # decreasing
    j = int(np.nonzero(values <= eps)[0][0])
    k_a, k_b = knots[j - 1], knots[j]
    f_a, f_b = values[j - 1], values[j]
    lam = k_a + (f_a - eps) * (k_b - k_a) / (f_a - f_b)
    return x + np.sign(v) * np.minimum(np.maximum(a - lam, 0.0), u)


def scipy_project(x: np.ndarray, y: np.ndarray, eps: float, p: int) -> np.ndarray:
    n = x.size
    if p == 2:
        res = minimize(
            lambda d: np.sum((d - (y - x)) ** 2),
            np.zeros(n),
            jac=lambda d: 2 * (d - (y - x)),
            bounds=list(zip(-x, 1 - x, strict=True)),
            constraints=[{"type": "ineq", "fun": lambda d: eps**2 - np.sum(d**2)}],
            method="SLSQP",
            options={"ftol": 1e-15, "maxiter": 500},
        )
        return x + res.x
    # L1 with split variables d = dp - dm, dp, dm >= 0 (a smooth QP).
    v = y - x
    res = minimize(
        lambda z: np.sum((z[:n] - z[n:] - v) ** 2),
        np.zeros(2 * n),
        jac=lambda z: np.concatenate([2 * (z[:n] - z[n:] - v), -2 * (z[:n] - z[n:] - v)]),
        bounds=[(0, h) for h in 1 - x] + [(0, h) for h in x],
        constraints=[{"type": "ineq", "fun": lambda z: eps - np.sum(z)}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 500},
    )
    return x + res.x[:n] - res.x[n:]


REFS = {"l2": ref_project_l2, "l1": ref_project_l1}


def make_case(seed: int, batch: int = 6, n: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Clean points (some on the faces of the box) and far-away, near or inside targets."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, n, generator=g, dtype=torch.float64)
    faces = torch.rand(batch, n, generator=g) < 0.25
    x = torch.where(faces, (torch.rand(batch, n, generator=g) < 0.5).double(), x)
    scale = torch.tensor([0.05, 0.3, 1.0, 2.0, 0.5, 3.0], dtype=torch.float64)[:batch]
    y = x + scale[:, None] * torch.randn(batch, n, generator=g, dtype=torch.float64)
    return x, y


EPS = torch.tensor([0.2, 0.1, 0.5, 1.0, 5.0, 0.0], dtype=torch.float64)


# ---------------------------------------------------------------------------- projections


@pytest.mark.parametrize("name", ["l2", "l1"])
@pytest.mark.parametrize("seed", range(8))
def test_projection_matches_exact_reference_float64(name: str, seed: int) -> None:
    x, y = make_case(seed)
    out = get_threat(name).project(x, y, EPS)
    ref = np.stack([REFS[name](x[i].numpy(), y[i].numpy(), float(EPS[i])) for i in range(6)])
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-9)


@pytest.mark.parametrize("name", ["l2", "l1"])
@pytest.mark.parametrize("seed", range(4))
def test_projection_matches_reference_float32(name: str, seed: int) -> None:
    x, y = make_case(100 + seed)
    out = get_threat(name).project(x.float(), y.float(), EPS.float())
    assert out.dtype == torch.float32
    ref = np.stack([REFS[name](x[i].numpy(), y[i].numpy(), float(EPS[i])) for i in range(6)])
    np.testing.assert_allclose(out.double().numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("name,p", [("l2", 2), ("l1", 1)])
def test_references_agree_with_scipy(name: str, p: int) -> None:
    x, y = make_case(7, n=5)
    for i in range(5):  # the last sample has eps = 0: trivial
        xi, yi, e = x[i].numpy(), y[i].numpy(), float(EPS[i])
        ours = get_threat(name).project(x[i : i + 1], y[i : i + 1], e)[0].numpy()
        np.testing.assert_allclose(REFS[name](xi, yi, e), scipy_project(xi, yi, e, p), atol=1e-5)
        np.testing.assert_allclose(ours, scipy_project(xi, yi, e, p), atol=1e-5)


def test_linf_projection_is_clamping() -> None:
    x, y = make_case(3)
    out = Linf().project(x, y, EPS)
    e = EPS[:, None].numpy()
    ref = np.clip(np.clip(y.numpy(), x.numpy() - e, x.numpy() + e), 0, 1)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-15)


def test_box_active_case_differs_from_naive_scale_then_clip() -> None:
    # x on the upper face: the naive "scale to the sphere then clip" point is not the projection.
    x = torch.tensor([[1.0, 0.5]], dtype=torch.float64)
    y = torch.tensor([[2.0, 0.6]], dtype=torch.float64)
    out = L2().project(x, y, 0.05)
    np.testing.assert_allclose(out.numpy(), [[1.0, 0.55]], atol=1e-12)
    out1 = L1().project(x, y, 0.05)
    np.testing.assert_allclose(out1.numpy(), [[1.0, 0.55]], atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", ["linf", "l2", "l1"])
def test_points_inside_the_ball_are_exactly_box_clipped(name: str, dtype: torch.dtype) -> None:
    x, y = make_case(5, batch=6, n=200)
    x, y = x.to(dtype), y.to(dtype)
    y[:, 0] = 1.5  # outside the box, but the ball is huge
    out = get_threat(name).project(x, y, 100.0)
    assert torch.equal(out, y.clamp(0, 1))
    # mixed batch: some samples inside (bit-exact box clip), the others projected
    eps = torch.full((6,), 1e-3, dtype=dtype)
    eps[1:] = 100.0
    out = get_threat(name).project(x, y, eps)
    assert torch.equal(out[1:], y[1:].clamp(0, 1))
    assert not torch.equal(out[0], y[0].clamp(0, 1))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    name=st.sampled_from(["linf", "l2", "l1"]),
    n=st.integers(1, 12),
    eps=st.floats(0.0, 3.0),
    spread=st.floats(0.01, 4.0),
)
def test_projection_properties(seed: int, name: str, n: int, eps: float, spread: float) -> None:
    g = torch.Generator().manual_seed(seed)
    threat = get_threat(name)
    x = torch.rand(4, n, generator=g, dtype=torch.float64).round(decimals=1)  # faces often
    y = x + spread * torch.randn(4, n, generator=g, dtype=torch.float64)
    out = threat.project(x, y, eps)
    # feasible: inside the box and the ball
    assert out.min() >= 0 and out.max() <= 1
    assert (threat.norm(out - x) <= eps * (1 + 1e-9) + 1e-12).all()
    # idempotent
    again = threat.project(x, out, eps)
    assert_close(again, out, atol=1e-9, rtol=0)
    # optimal: the variational inequality <y - P, z - P> <= 0 for feasible z, and P is closer
    # to y than any of them. Feasible z: a point of the ball, clipped (clipping moves toward x).
    for _ in range(20):
        r = torch.randn(4, n, generator=g, dtype=torch.float64)
        r = r / threat.norm(r).clamp(min=1e-12)[:, None]
        radius = eps * torch.rand(4, 1, generator=g, dtype=torch.float64)
        z = (x + radius * r).clamp(0, 1)
        inner = ((y - out) * (z - out)).sum(1)
        assert (inner <= 1e-9).all()
        assert ((y - out).norm(dim=1) <= (y - z).norm(dim=1) + 1e-9).all()


@pytest.mark.parametrize("name", ["linf", "l2", "l1"])
def test_per_sample_eps_equals_separate_calls_and_shapes_are_kept(name: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 4, 4, generator=g)
    y = (x + 0.5 * torch.randn(3, 2, 4, 4, generator=g)).clamp(-1, 2)
    eps = torch.tensor([0.1, 0.5, 2.0])
    threat = get_threat(name)
    out = threat.project(x, y, eps)
    assert out.shape == x.shape and out.dtype == torch.float32
    for i in range(3):
        single = threat.project(x[i : i + 1], y[i : i + 1], float(eps[i]))
        assert_close(out[i : i + 1], single, atol=1e-6, rtol=0)
    norms = threat.norm(out - x)
    assert (norms <= eps * (1 + 1e-5) + 1e-7).all()


@pytest.mark.parametrize("name", ["linf", "l2", "l1"])
def test_half_precision_is_computed_in_float32_and_cast_back(name: str) -> None:
    x = torch.full((2, 8), 0.5, dtype=torch.float16)
    y = x + torch.linspace(-1, 1, 8, dtype=torch.float16)
    out = get_threat(name).project(x, y, 0.25)
    assert out.dtype == torch.float16
    assert torch.isfinite(out).all()
    assert (get_threat(name).norm((out - x).float()) <= 0.25 * 1.01).all()


def test_norm_values() -> None:
    d = torch.tensor([[3.0, -4.0], [0.0, 0.0]])
    assert Linf().norm(d).tolist() == [4.0, 0.0]
    assert L2().norm(d).tolist() == [5.0, 0.0]
    assert L1().norm(d).tolist() == [7.0, 0.0]
    assert L2().norm(torch.ones(2, 3, 2, 2)).shape == (2,)


# ---------------------------------------------------------------------------- random start


@pytest.mark.parametrize("name", ["linf", "l2", "l1"])
def test_random_start_is_feasible_and_deterministic(name: str) -> None:
    threat = get_threat(name)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 5, 5, generator=g)
    x[:4] = 0.0  # corner of the box: the clip matters
    eps = torch.linspace(0.0, 3.0, 16)
    x0 = threat.random_start(x, eps, torch.Generator().manual_seed(1))
    assert x0.shape == x.shape and x0.dtype == x.dtype
    assert x0.min() >= 0 and x0.max() <= 1
    assert (threat.norm(x0 - x) <= eps * (1 + 1e-5) + 1e-7).all()
    assert torch.equal(x0[0], x[0])  # eps = 0
    again = threat.random_start(x, eps, torch.Generator().manual_seed(1))
    assert torch.equal(x0, again)
    other = threat.random_start(x, eps, torch.Generator().manual_seed(2))
    assert not torch.equal(x0, other)
    assert not torch.equal(x0[8:], x[8:])


@pytest.mark.parametrize(
    "name,mean_ratio",
    # E[||d|| / eps] for uniform points in a 2-D ball: Linf uses E|d_1| = eps / 2 instead.
    [("linf", 0.5), ("l2", 2 / 3), ("l1", 2 / 3)],
)
def test_random_start_is_uniform_in_a_small_ball(name: str, mean_ratio: float) -> None:
    threat = get_threat(name)
    x = torch.full((4000, 2), 0.5, dtype=torch.float64)
    d = threat.random_start(x, 0.1, torch.Generator().manual_seed(3)) - x
    size = d[:, 0].abs() if name == "linf" else threat.norm(d)
    assert abs(float(size.mean()) / 0.1 - mean_ratio) < 0.02
    assert abs(float(d.mean())) < 0.004  # symmetric
    if name == "l1":  # uniform in the diamond: each quadrant equally likely
        quadrant = (d[:, 0] > 0).long() * 2 + (d[:, 1] > 0).long()
        counts = torch.bincount(quadrant, minlength=4).double() / 4000
        assert (counts - 0.25).abs().max() < 0.03


def test_random_start_rejects_bad_generator_and_infinite_eps() -> None:
    x = torch.tensor([[0.1, 0.5, 0.9], [0.0, 1.0, 0.3]])
    with pytest.raises(InputError, match=r"torch\.Generator"):
        L2().random_start(x, 0.1, 0)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="finite"):
        Linf().random_start(x, math.inf, torch.Generator())


# ---------------------------------------------------------------------------- steepest


def _random_unit(threat: ThreatModel, shape: tuple[int, ...], g: torch.Generator) -> torch.Tensor:
    r = torch.randn(shape, generator=g, dtype=torch.float64)
    if threat.name == "linf":
        return torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    return r / threat.norm(r)[:, None]


@pytest.mark.parametrize("name", ["linf", "l2"])
def test_steepest_has_unit_norm_and_maximises_the_inner_product(name: str) -> None:
    threat = get_threat(name)
    g = torch.Generator().manual_seed(0)
    grad = torch.randn(5, 20, generator=g, dtype=torch.float64)
    d = threat.steepest(grad)
    assert_close(threat.norm(d), torch.ones(5, dtype=torch.float64))
    best = (grad * d).sum(1)
    dual = {"linf": 1.0, "l2": 2.0}[name]
    assert_close(best, torch.linalg.vector_norm(grad, ord=dual, dim=1))
    for _ in range(50):
        u = _random_unit(threat, (5, 20), g)
        assert ((grad * u).sum(1) <= best + 1e-12).all()


def test_l1_steepest_with_k1_is_the_exact_l1_steepest_ascent() -> None:
    threat = L1(k=1)
    g = torch.Generator().manual_seed(0)
    grad = torch.randn(5, 20, generator=g, dtype=torch.float64)
    d = threat.steepest(grad)
    assert_close(threat.norm(d), torch.ones(5, dtype=torch.float64))
    best = (grad * d).sum(1)
    assert_close(best, grad.abs().amax(1))
    for _ in range(50):
        u = _random_unit(threat, (5, 20), g)
        assert ((grad * u).sum(1) <= best + 1e-12).all()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 10), n=st.integers(1, 30))
def test_l1_steepest_is_sparse_and_optimal_on_its_polytope(seed: int, k: int, n: int) -> None:
    threat = L1(k=k)
    kk = min(k, n)
    g = torch.Generator().manual_seed(seed)
    grad = torch.randn(3, n, generator=g, dtype=torch.float64)
    d = threat.steepest(grad)
    assert_close(threat.norm(d), torch.ones(3, dtype=torch.float64))
    assert ((d != 0).sum(1) <= kk).all()
    assert (d.abs() <= 1 / kk + 1e-15).all()
    assert ((d * grad) >= 0).all()
    best = (grad * d).sum(1)
    assert_close(best, grad.abs().topk(kk, dim=1).values.mean(1))
    # vertices of {||u||_1 <= 1, ||u||_inf <= 1/k}: random signs on random k-subsets, / k
    for _ in range(20):
        idx = torch.rand(3, n, generator=g).argsort(1)[:, :kk]
        signs = torch.where(torch.rand(3, kk, generator=g) < 0.5, -1.0, 1.0).double()
        u = torch.zeros(3, n, dtype=torch.float64).scatter(1, idx, signs / kk)
        assert ((grad * u).sum(1) <= best + 1e-12).all()


def test_l1_steepest_with_fewer_nonzeros_than_k_is_still_unit() -> None:
    d = L1(k=3).steepest(torch.tensor([[0.0, -2.0, 0.0, 0.0]]))
    assert d.tolist() == [[0.0, -1.0, 0.0, 0.0]]


def test_l1_default_k_is_one_percent_at_least_one() -> None:
    assert L1().sparsity_k(3 * 32 * 32) == 30
    assert L1().sparsity_k(5) == 1
    assert L1(k=1000).sparsity_k(10) == 10
    d = L1().steepest(torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    assert ((d != 0).sum((1, 2, 3)) == 7).all()


@pytest.mark.parametrize("threat", [Linf(), L2(), L1(), L1(k=4)])
def test_steepest_zero_gradient_gives_zero_direction(threat: ThreatModel) -> None:
    grad = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    grad[1] = 0.0
    d = threat.steepest(grad)
    assert d.shape == grad.shape and d.dtype == grad.dtype
    assert torch.isfinite(d).all()
    assert torch.equal(d[1], torch.zeros_like(d[1]))
    assert (threat.norm(d[[0, 2]]) > 0.99).all()


@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_l2_steepest_survives_tiny_and_huge_gradients(scale: float) -> None:
    grad = torch.tensor([[3.0, 4.0]]) * scale
    d = L2().steepest(grad)
    assert_close(d, torch.tensor([[0.6, 0.8]]))


# ---------------------------------------------------------------------------- lookup and errors


@pytest.mark.parametrize(
    "name,cls",
    [
        ("linf", Linf),
        ("inf", Linf),
        ("Linf", Linf),
        ("L_inf", Linf),
        ("l2", L2),
        ("2", L2),
        ("L-2", L2),
        ("l1", L1),
        ("1", L1),
        (" L1 ", L1),
    ],
)
def test_get_threat_names_and_aliases(name: str, cls: type[ThreatModel]) -> None:
    threat = get_threat(name)
    assert type(threat) is cls
    assert threat.name == cls.name


def test_names_and_orders() -> None:
    assert (Linf.name, Linf.p) == ("linf", math.inf)
    assert (L2.name, L2.p) == ("l2", 2.0)
    assert (L1.name, L1.p) == ("l1", 1.0)


def test_unknown_norm_suggests_close_matches() -> None:
    with pytest.raises(InputError, match=r"unknown threat model 'lnf'; did you mean 'linf'"):
        get_threat("lnf")
    with pytest.raises(InputError, match="did you mean") as err:
        get_threat("l3")
    assert "'l2'" in str(err.value) and "'l1'" in str(err.value)
    with pytest.raises(InputError, match="known"):
        get_threat("chebyshev")
    with pytest.raises(InputError, match="pass its name"):
        get_threat(2)  # type: ignore[arg-type]


def test_threat_models_are_frozen() -> None:
    with pytest.raises(AttributeError):
        L1().k = 3  # type: ignore[misc]


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": 1.5}, {"k_fraction": 0.0}, {"k_fraction": 2}])
def test_l1_rejects_bad_sparsity(kwargs: dict[str, float]) -> None:
    with pytest.raises(InputError):
        L1(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["linf", "l2", "l1"])
def test_projection_input_errors(name: str) -> None:
    threat = get_threat(name)
    x = torch.tensor([[0.1, 0.5, 0.9], [0.0, 1.0, 0.3]])
    with pytest.raises(InputError, match="shape"):
        threat.project(x, torch.zeros(2, 4), 0.1)
    with pytest.raises(InputError, match="non-negative"):
        threat.project(x, x, -0.1)
    with pytest.raises(InputError, match="non-negative"):
        threat.project(x, x, torch.tensor([0.1, -0.1]))
    with pytest.raises(InputError, match="non-negative"):
        threat.project(x, x, math.nan)
    with pytest.raises(InputError, match=r"shape \(2,\)"):
        threat.project(x, x, torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(InputError, match="outside the bounds"):
        threat.project(x + 1.0, x, 0.1)
    with pytest.raises(InputError, match="floating"):
        threat.project(x.long(), x.long(), 0.1)
    with pytest.raises(InputError, match=r"torch\.Tensor"):
        threat.project(x.numpy(), x, 0.1)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="float or a tensor"):
        threat.project(x, x, "0.1")  # type: ignore[arg-type]


@pytest.mark.parametrize("threat", [Linf(), L2(), L1()], ids=lambda t: t.name)
def test_unchecked_projection_matches_checked(threat):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(6, 1, 5, 5, generator=g)
    x_adv = x + 0.5 * torch.randn(x.shape, generator=g)
    for eps in (torch.rand(6, generator=g) * 2, torch.tensor(0.3), 0.3):
        fast = threat.project(x, x_adv, eps, check=False)
        assert torch.equal(fast, threat.project(x, x_adv, eps))


# ------------------------------------------------------------------------------------------ L0


def _l0_brute_force(x: np.ndarray, v: np.ndarray, k: int) -> float:
    """Smallest squared distance to ``v`` over all subsets of <= k coordinates (box-clipped)."""
    import itertools

    n = x.size
    best = math.inf
    for size in range(min(k, n) + 1):
        for subset in itertools.combinations(range(n), size):
            z = x.copy()
            idx = list(subset)
            z[idx] = np.clip(v[idx], 0.0, 1.0)
            best = min(best, float(((z - v) ** 2).sum()))
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [0, 1, 2, 4, 7])
def test_l0_projection_is_the_exact_euclidean_projection(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.random(7)
    v = x + rng.normal(0, 0.8, 7)  # some targets leave the box
    got = L0().project(torch.tensor(x)[None], torch.tensor(v)[None], eps=float(k))[0].numpy()
    assert np.count_nonzero(got != x) <= k and got.min() >= 0 and got.max() <= 1
    assert ((got - v) ** 2).sum() == pytest.approx(_l0_brute_force(x, v, k), abs=1e-12)


def test_l0_projection_per_sample_budgets_fractions_and_infinity() -> None:
    x = torch.full((3, 5), 0.5)
    target = torch.tensor([[0.9, 0.1, 0.8, 0.55, 2.0]] * 3)
    out = L0().project(x, target, eps=torch.tensor([1.0, 2.9, math.inf]))
    assert L0().norm(out - x).tolist() == [1.0, 2.0, 5.0]
    assert out[0, 4] == 1.0  # the clipped 2.0 still gains the most (0.25 of 2.25 remains)
    torch.testing.assert_close(out[2], target[2].clamp(0, 1))


def test_l0_random_start_and_steepest() -> None:
    x = torch.rand(4, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    a = L0().random_start(x, 5.0, torch.Generator().manual_seed(1))
    b = L0().random_start(x, 5.0, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and bool((L0().norm(a - x) <= 5).all())
    assert L0().norm(a - x).sum() >= 4 * 4  # almost surely every chosen value moves
    g = torch.randn(3, 10)
    torch.testing.assert_close(L0().steepest(g), L2().steepest(g))
    assert get_threat("L_0") == L0() and get_threat("0").name == "l0"


# ----------------------------------------------------------------------------- norm names (core)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("linf", "linf"), ("Inf", "linf"), ("L_inf", "linf"), ("l-inf", "linf"), ("linfty", "linf"),
     ("L∞", "linf"), ("2", "l2"), ("L-2", "l2"), (" l2 ", "l2"), ("1", "l1"), ("l_1", "l1"),
     ("0", "l0"), ("L0", "l0")],
)  # fmt: skip
def test_canonical_norm_aliases(name: str, canonical: str) -> None:
    assert canonical_norm(name) == canonical
    assert get_threat(name).name == canonical  # the threat models use the same table


def test_canonical_norm_errors_name_the_fix() -> None:
    assert NORMS == ("linf", "l2", "l1", "l0")
    with pytest.raises(InputError, match=r"unknown norm 'lnf'; did you mean 'linf'\?"):
        canonical_norm("lnf")
    with pytest.raises(InputError, match=r"known: linf \(or inf\), l2 \(or 2\)"):
        canonical_norm("chebyshev")
    with pytest.raises(InputError, match=r"norm 'L1' is not supported here; use linf"):
        canonical_norm("L1", allowed=("linf", "l2"))
    with pytest.raises(InputError, match=r"unknown norm 'l3'; did you mean 'l2' or 'l1'\?"):
        canonical_norm("l3", allowed=("linf", "l2", "l1"))
    with pytest.raises(InputError, match="pass its name"):
        canonical_norm(2)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not canonical"):
        canonical_norm("linf", allowed=("inf",))


def test_norm_eps_threshold_grammar() -> None:
    assert parse_norm_eps_threshold("0.5@linf:0.1") == NormEpsThreshold(0.5, "linf", 0.1)
    value, norm, eps = parse_norm_eps_threshold(" .3 @ L_2 : 1.5e0 ")
    assert (value, norm, eps) == (0.3, "l2", 1.5)
    cases = [
        ("0.5", "V@NORM:EPS"),
        ("0.5@linf", "V@NORM:EPS"),
        ("0.5@linf:abc", "V@NORM:EPS"),
        ("x@linf:0.1", "V@NORM:EPS"),
        ("0.5@linf:0.1@l2", "V@NORM:EPS"),
        ("1.5@linf:0.1", r"fraction in \[0, 1\]"),
        ("0.5@linf:0", "eps must be a positive"),
        ("0.5@linf3:0.1", "unknown norm 'linf3'; did you mean 'linf'"),
    ]
    for text, needle in cases:
        with pytest.raises(InputError, match=needle):
            parse_norm_eps_threshold(text, what="--min-robust-acc")
    with pytest.raises(InputError, match=r"--min-robust-acc needs V@NORM:EPS, got '0.5'"):
        parse_norm_eps_threshold("0.5", what="--min-robust-acc")
    with pytest.raises(InputError, match="not supported here"):
        parse_norm_eps_threshold("0.5@l1:1", allowed=("linf", "l2"))
