"""Issue 18 item 4: fixed standard eps points in every audit's grid, and the Mann-Whitney U test
`robustcv compare` uses on the minimal-perturbation distributions (checked against scipy)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu

from robustcv.audit.suites.adversarial import SUITE, AdversarialConfig, standard_eps
from robustcv.core.errors import InputError
from robustcv.core.stats import mann_whitney
from robustcv.report.compare import RANK_TEST, compare

# ------------------------------------------------------------------------------- standard eps


@pytest.mark.parametrize(
    "name", ["fashion-mnist", "fmnist", "Fashion_MNIST", "fashion-mnist-shortcut"]
)
def test_standard_eps_fashion_mnist_and_variants(name: str) -> None:
    assert standard_eps(name, (1, 28, 28)) == {"linf": (0.05, 0.1), "l2": (1.0,)}


def test_standard_eps_by_image_size() -> None:
    # up to 32 px: RobustBench's CIFAR points; larger: ImageNet's L-inf 4/255 and L2 3.0
    for shape in [(3, 32, 32), (1, 28, 28), (32, 16), (3, 8, 32)]:
        assert standard_eps("photos", shape) == {"linf": (8 / 255,), "l2": (0.5,)}
    for shape in [(3, 33, 33), (3, 224, 224), (1, 64, 20)]:
        assert standard_eps("my-data", shape) == {"linf": (4 / 255,), "l2": (3.0,)}
    # only a name of the family counts: "mnist" is not in the data registry, "fmnistx" is not
    # a variant
    assert standard_eps("mnist", (1, 28, 28))["linf"] == (8 / 255,)
    assert standard_eps("fmnistx", (1, 28, 28))["linf"] == (8 / 255,)


@pytest.mark.parametrize("shape", [(), (28,), (1, 0, 28), (1, 28.0, 28), (1, True, 28)])
def test_standard_eps_refuses_bad_shapes(shape: tuple[Any, ...]) -> None:
    with pytest.raises(InputError, match="image_shape"):
        standard_eps("fashion-mnist", shape)


def test_standard_eps_config_switch() -> None:
    assert AdversarialConfig().standard_eps is True
    assert AdversarialConfig(standard_eps=False).standard_eps is False
    with pytest.raises(InputError, match=r"adversarial\.standard_eps must be true or false"):
        AdversarialConfig(standard_eps="no")  # type: ignore[arg-type]


def _ctx(name: str, shape: tuple[int, ...], eps: dict[str, tuple[float, ...]], **cfg: Any) -> Any:
    """Just what ``AdversarialSuite.grid`` reads: the config and the evaluated images."""
    data = SimpleNamespace(name=name, x=torch.zeros((2, *shape)))
    config = SimpleNamespace(adversarial=AdversarialConfig(**cfg), eps=eps)
    return SimpleNamespace(config=config, data=data)


def _pilot(norms: list[float | None], correct: list[bool]) -> dict[str, Any]:
    return {"adversarial:linf/pilot#0": {"min_norm": norms, "clean_correct": correct}}


def test_grid_holds_pilot_standard_and_requested_points() -> None:
    # correctly classified: 0.02, 0.04, inf -> median 0.04; the misclassified 0.0 is left out
    deps = _pilot([0.02, None, 0.0, 0.04], [True, True, False, True])
    pilot = [0.01, 0.02, 0.04, 0.06, 0.08]
    grid = SUITE.grid(_ctx("fashion-mnist", (1, 28, 28), {"linf": (0.3,)}), "linf", deps)
    assert grid["median"] == pytest.approx(0.04)
    assert grid["eps"] == sorted({*pilot, 0.05, 0.1, 0.3})
    assert grid["standard"] == [0.05, 0.1]
    src = grid["source"]
    assert "x pilot median 0.04" in src and "0.05, 0.1: the fashion-mnist standard points" in src
    assert "[0.3] from --eps" in src
    # a point the pilot already made is not repeated
    deps = _pilot([0.1], [True])
    grid = SUITE.grid(_ctx("fashion-mnist", (1, 28, 28), {}), "linf", deps)
    assert grid["eps"] == [0.025, 0.05, 0.1, 0.15, 0.2]
    # other data: the default by image size
    grid = SUITE.grid(_ctx("photos", (3, 32, 32), {}), "linf", _pilot([0.02], [True]))
    assert 8 / 255 in grid["eps"] and len(grid["eps"]) == 6
    assert "RobustBench CIFAR" in grid["source"]
    # switched off: the pilot grid (and requested eps) only, as before the standard points
    grid = SUITE.grid(
        _ctx("fashion-mnist", (1, 28, 28), {"linf": (0.3,)}, standard_eps=False), "linf", deps
    )
    assert grid["eps"] == [0.025, 0.05, 0.1, 0.15, 0.2, 0.3]
    assert grid["standard"] == [] and "standard" not in grid["source"]
    # the fallback grid (no minimal perturbation found) gets them too
    grid = SUITE.grid(_ctx("photos", (3, 64, 64), {}), "l2", {})
    assert grid["eps"] == [0.1, 0.25, 0.5, 1.0, 2.0, 3.0]


# ------------------------------------------------------------------------------ Mann-Whitney


@pytest.mark.parametrize("seed", range(6))
def test_mann_whitney_matches_scipy_with_ties_and_infinities(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 8, size=int(rng.integers(1, 60))).astype(float) / 10
    b = rng.integers(1, 10, size=int(rng.integers(2, 60))).astype(float) / 10
    a[rng.random(a.size) < 0.2] = np.inf  # "no perturbation found"
    b[rng.random(b.size) < 0.3] = np.inf
    for continuity in (True, False):
        ours = mann_whitney(a, b, continuity=continuity)
        ref = mannwhitneyu(a, b, method="asymptotic", use_continuity=continuity)
        assert ours.u == pytest.approx(float(ref.statistic), rel=1e-12)
        assert ours.p_value == pytest.approx(float(ref.pvalue), rel=1e-9, abs=1e-15)
        assert (ours.n_a, ours.n_b) == (a.size, b.size)


def test_mann_whitney_direction_none_and_degenerate_cases() -> None:
    low, high = [0.1, 0.2, 0.3, 0.4], [0.5, 0.6, None, None]  # None counts as +inf
    res = mann_whitney(low, high)
    assert res.u == 0 and res.effect == 0 and res.z < 0 and res.p_value < 0.05
    assert mann_whitney(high, low).z > 0
    # every value tied: nothing to tell apart
    assert mann_whitney([math.inf] * 3, [None, None]).p_value == 1.0
    assert mann_whitney([0.5], [0.5]).z == 0.0
    # a large sample: the normal approximation is tight
    rng = np.random.default_rng(7)
    a, b = rng.exponential(1.0, 500), rng.exponential(1.3, 400)
    ref = mannwhitneyu(a, b, method="asymptotic")
    assert mann_whitney(a, b).p_value == pytest.approx(float(ref.pvalue), rel=1e-9)


@pytest.mark.parametrize(
    ("a", "match"),
    [([], "sample a is empty"), ([0.1, float("nan")], "NaN"), (["x"], "numbers")],
)
def test_mann_whitney_refuses_bad_samples(a: list[Any], match: str) -> None:
    with pytest.raises(InputError, match=match):
        mann_whitney(a, [0.1, 0.2])


# --------------------------------------------------------------------------------- compare


def _audit(min_norms: list[float | None], acc: float) -> dict[str, Any]:
    correct = [math.inf if v is None else v for v in min_norms if v != 0]
    median = sorted(correct)[(len(correct) - 1) // 2]
    linf = {
        "eps": [0.05, 0.1],
        "standard_eps": [0.05, 0.1],
        "accuracy": [{"value": acc, "n": 200}, {"value": acc / 2, "n": 200}],
        "min_norms": min_norms,
        "median_min_norm": median if math.isfinite(median) else None,
    }
    return {"model": {"spec": "m"}, "suites": {"adversarial": {"norms": {"linf": linf}}}}


def test_compare_judges_minimal_perturbations_with_the_rank_test() -> None:
    rng = np.random.default_rng(3)
    small = [round(float(v), 4) for v in rng.uniform(0.01, 0.08, 60)]
    large = [round(float(v), 4) for v in rng.uniform(0.05, 0.2, 50)]
    a = _audit([0.0, 0.0, *small], 0.30)  # two images misclassified unattacked
    b = _audit([0.0, *large, None, None], 0.45)  # two images never broken
    res = compare(a, b)
    rows = {r.key: r for r in res.rows}
    row = rows["adversarial/linf/median_min_norm"]
    ref = mannwhitneyu(small, [*large, math.inf, math.inf], method="asymptotic")
    assert row.test == RANK_TEST and row.p_value == pytest.approx(float(ref.pvalue), rel=1e-9)
    assert row.within_noise is False and row.better == "b"
    assert row.a is not None and row.b is not None
    assert (row.a["n"], row.b["n"]) == (60, 52)  # correctly classified pilot images
    # the shared standard points: two-proportion verdicts, not n/a
    for key in ("adversarial/linf/acc@0.05", "adversarial/linf/acc@0.1"):
        assert rows[key].test == "two-proportion z-test" and rows[key].within_noise is not None
    assert "Mann-Whitney U" in res.rule
    # the same distribution on both sides: within the noise, no winner
    same = compare(a, a).rows
    row = {r.key: r for r in same}["adversarial/linf/median_min_norm"]
    assert row.within_noise is True and row.p_value == 1.0 and row.better is None


@pytest.mark.slow  # Square runs 1000 queries: over 20 s on a loaded 2-core machine
def test_black_box_check_runs_at_the_largest_eps_with_survivors() -> None:
    """A grid that ends in standard points breaking every image keeps the check meaningful."""
    from tiny_audit import tiny_model

    from robustcv.attacks.sanity import run_sanity_checks

    model = tiny_model()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    y = model.predict(x)  # every image correctly classified
    eps = [0.01, 0.02, 0.05, 0.1]
    robust = torch.tensor([[True, True, False, False], [True, False, False, False]] * 2)
    findings = run_sanity_checks(
        model, x, y, norm="linf", eps=eps, robust=robust, member=("fgsm", {}), subset=4
    )
    check = next(f for f in findings if f.check == "black-box-beats-white-box")
    assert check.detail["eps"] == 0.02  # not 0.1, where nothing is left to break
    assert set(check.detail["broken"]) >= {"noise-uniform", "square"}
