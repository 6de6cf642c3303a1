"""Contract tests over the whole attack registry, plus runner behaviour."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustcv.attacks import ATTACKS, attack
from robustcv.core.model import Model

FIXED = [e.name for e in ATTACKS if not e.obj.minimum_norm]
EPS = {"linf": 0.05, "l2": 0.5, "l1": 4.0, "l0": 6.0}


def _net(seed: int = 0, classes: int = 4) -> Model:
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, classes)
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return Model(net, num_classes=classes)


def _data(n: int = 12, classes: int = 4, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, classes, (n,), generator=g)


def _params(name: str) -> dict[str, int]:
    spec = ATTACKS.get(name)
    small = {"steps": 5, "repeats": 3, "restarts": 1, "n_targets": 2, "queries": 100}
    return {k: v for k, v in small.items() if k in spec.params}


PAIRS = [(n, norm) for n in FIXED for norm in ATTACKS.get(n).norms]


@pytest.mark.parametrize(("name", "norm"), PAIRS)
def test_bounds_budget_untouched_and_cost(name: str, norm: str) -> None:
    model = _net()
    x, y = _data()
    x0, y0 = x.clone(), y.clone()
    res = attack(model, x, y, name, eps=EPS[norm], norm=norm, **_params(name))
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert res.x_adv.shape == x.shape and res.x_adv.dtype == torch.float32
    assert float(res.x_adv.min()) >= 0.0 and float(res.x_adv.max()) <= 1.0
    assert bool((res.norms <= EPS[norm] * (1 + 1e-4) + 1e-6).all())
    # the runner's success is the model's own verdict on x_adv
    pred = model.predict(res.x_adv)
    assert torch.equal(res.success, pred != y)
    assert res.forward_passes >= 2 * len(y)
    if ATTACKS.get(name).kind == "gradient":
        assert res.backward_passes > 0
    else:
        assert res.backward_passes == 0
    assert res.to_dict()["name"] == name and "x_adv" not in res.to_dict()


@pytest.mark.parametrize("name", FIXED)
def test_same_seed_same_result_and_batch_size_invariance(name: str) -> None:
    model = _net()
    x, y = _data(16)
    a = attack(model, x, y, name, eps=0.1, seed=3, **_params(name))
    b = attack(model, x, y, name, eps=0.1, seed=3, **_params(name))
    assert torch.equal(a.x_adv, b.x_adv)
    parts = [
        attack(model, x[i : i + 5], y[i : i + 5], name, eps=0.1, seed=3, **_params(name))
        for i in range(0, 16, 5)
    ]
    success = torch.cat([p.success for p in parts])
    norms = torch.cat([p.norms for p in parts])
    assert float((success == a.success).float().mean()) >= 0.99
    assert torch.allclose(norms, a.norms, atol=1e-4)


def test_attacks_lower_accuracy_and_restore_mode() -> None:
    model = _net()
    x, y = _data(40)
    y = model.predict(x)  # every sample starts correctly classified
    model.net.train()
    res = attack(model, x, y, "pgd", eps=0.3, steps=20)
    assert model.net.training  # mode restored
    assert res.success_rate > 0.5
    assert res.robust_accuracy == pytest.approx(1 - res.success_rate)


def test_targeted_pgd_reaches_targets() -> None:
    model = _net()
    x, _ = _data(20)
    y = model.predict(x)
    targets = (y + 1) % 4
    res = attack(model, x, y, "pgd", eps=0.5, targets=targets, steps=30)
    assert res.targeted and res.success_rate > 0.5
    assert torch.equal(res.success, model.predict(res.x_adv) == targets)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"eps": -0.1}, "eps must be"),
        ({"eps": 0.1, "norm": "l3"}, "l2|l1"),
        ({"eps": 0.1, "stepz": 3}, "did you mean 'steps'"),
        ({"eps": 0.1, "steps": 0}, "steps must be a positive int"),
        ({}, "needs a budget"),
    ],
)
def test_bad_input(kwargs: dict[str, object], match: str) -> None:
    x, y = _data(4)
    with pytest.raises(ValueError, match=match):
        attack(_net(), x, y, "pgd", **kwargs)  # type: ignore[arg-type]


def test_unsupported_norm_is_refused() -> None:
    x, y = _data(4)
    with pytest.raises(ValueError, match="supports norms linf, l2"):
        attack(_net(), x, y, "apgd-ce", eps=1.0, norm="l1")


def test_unknown_attack_and_target_equal_label() -> None:
    x, y = _data(4)
    with pytest.raises(ValueError, match="did you mean 'pgd'"):
        attack(_net(), x, y, "pgdd", eps=0.1)
    with pytest.raises(ValueError, match="target must be a different class"):
        attack(_net(), x, y, "pgd", eps=0.1, targets=y.clone())


def test_gradient_attack_on_gradient_free_model_names_alternatives() -> None:
    base = _net()
    free = Model(lambda z: base.net(z), differentiable=False, num_classes=4)
    x, y = _data(4)
    with pytest.raises(ValueError, match="noise-gaussian"):
        attack(free, x, y, "pgd", eps=0.1)
    res = attack(free, x, y, "noise-uniform", eps=0.1, repeats=2)
    assert res.backward_passes == 0


def test_nan_logits_raise_or_with_warn_mark_failures_and_the_rest_continue() -> None:
    from robustcv.core.errors import InputError
    from robustcv.core.model import NonFiniteLogitsWarning

    model = _net()

    def net(z: torch.Tensor) -> torch.Tensor:
        out = model.net(z)
        bad = z.flatten(1)[:, 0] > 0.9  # samples whose first pixel is bright give NaN
        return torch.where(bad[:, None], torch.full_like(out, float("nan")), out)

    x, y = _data(10)
    x[0, 0, 0, 0] = 0.95
    x[1:, 0, 0, 0] = 0.1
    # by default NaN logits are the model's problem: a clean error, not a plausible number
    with pytest.raises(InputError, match="NaN or infinite logits"):
        attack(Model(net, num_classes=4), x, y, "noise-uniform", eps=0.01, repeats=2)
    # opting in: the samples are marked failed and the rest of the batch continues
    with pytest.warns(NonFiniteLogitsWarning):
        res = attack(
            Model(net, num_classes=4, nonfinite="warn"), x, y, "noise-uniform", eps=0.01, repeats=2
        )
    assert res.failures.get(0) == "NaN logits"
    assert not bool(res.success[0])
    assert set(res.failures) == {0}


@pytest.mark.fmnist
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in FIXED if ATTACKS.get(n).kind == "gradient"])
def test_white_box_strength_on_zoo_model(name: str, fmnist_test) -> None:  # type: ignore[no-untyped-def]
    from robustcv import load_model

    model = load_model("zoo:fmnist-cnn")
    x, y = fmnist_test.x[:500], fmnist_test.y[:500]
    res = attack(model, x, y, name, eps=0.2)
    assert res.robust_accuracy <= 0.2, (name, res.robust_accuracy)


def test_robust_accuracy_worst_case_never_above_members() -> None:
    from robustcv.attacks import robust_accuracy

    model = _net()
    x, y = _data(30)
    budgets = [0.02, 0.05, 0.1]
    ens = robust_accuracy(model, x, y, eps=list(reversed(budgets)), attacks="fgsm,pgd")
    assert ens.eps == budgets
    for name in ("fgsm", "pgd"):
        alone = robust_accuracy(model, x, y, eps=budgets, attacks=[name])
        assert all(a <= b + 1e-12 for a, b in zip(ens.accuracy, alone.accuracy, strict=True))
    # accuracy is consistent with per-sample outcomes and monotone in eps
    for e, acc in zip(ens.eps, ens.accuracy, strict=True):
        robust = sum(
            b is None or (b != "clean" and at is not None and at > e)
            for b, at in zip(ens.broken_by, ens.broken_at, strict=True)
        )
        assert acc == pytest.approx(robust / len(y))
    assert ens.accuracy == sorted(ens.accuracy, reverse=True)
    assert ens.clean_accuracy >= ens.accuracy[0]
    assert sum(ens.share_broken_by.values()) == pytest.approx(1 - ens.accuracy[-1])
    assert ens.to_dict()["norm"] == "linf"


def test_robust_accuracy_bad_input() -> None:
    from robustcv.attacks import robust_accuracy

    x, y = _data(4)
    with pytest.raises(ValueError, match="eps must be"):
        robust_accuracy(_net(), x, y, eps=[-1.0])
    with pytest.raises(ValueError, match="did you mean"):
        robust_accuracy(_net(), x, y, eps=0.1, attacks="pgdd")
    with pytest.raises(ValueError, match="does not support norm"):
        robust_accuracy(_net(), x, y, eps=1.0, norm="l1", attacks="apgd-ce")


def test_apgd_dlr_switches_to_margin_below_three_classes() -> None:
    model = _net(classes=2)
    x, y = _data(8, classes=2)
    res = attack(model, x, y, "apgd-dlr", eps=0.1, steps=5)
    assert "margin" in res.config["notes"]["loss"]
    res_t = attack(_net(classes=3), *_data(8, classes=3), "apgd-t", eps=0.1, steps=5)
    assert "margin" in res_t.config["notes"]["loss"]


def test_cli_attack_json(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    import numpy as np

    from robustcv.cli.main import main

    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "d.npz",
        x=rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        y=rng.integers(0, 10, 12),
    )
    code = main(
        [
            "attack",
            "--model",
            "zoo:fmnist-cnn",
            "--data",
            f"npz:{tmp_path / 'd.npz'}",
            "--eps",
            "0.1,0.02",
            "--attacks",
            "fgsm",
            "--json",
            "--quiet",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["eps"] == [0.02, 0.1] and out["n"] == 12
    assert out["accuracy"][0] >= out["accuracy"][1]
    assert (
        main(
            [
                "attack",
                "--model",
                "zoo:fmnist-cnn",
                "--data",
                f"npz:{tmp_path / 'd.npz'}",
                "--eps",
                "a",
            ]
        )
        == 2
    )


MINNORM = [e.name for e in ATTACKS if e.obj.minimum_norm]
MINNORM_PAIRS = [(n, norm) for n in MINNORM for norm in ATTACKS.get(n).norms]


@pytest.mark.parametrize(("name", "norm"), MINNORM_PAIRS)
def test_minimum_norm_contract(name: str, norm: str) -> None:
    model = _net()
    x, y = _data(16)
    x0 = x.clone()
    res = attack(model, x, y, name, norm=norm, steps=30)
    assert torch.equal(x, x0)
    assert res.eps is None and res.success.float().mean() >= 0.8
    assert float(res.x_adv.min()) >= 0 and float(res.x_adv.max()) <= 1
    ok = res.success
    from robustcv.attacks import get_threat

    measured = get_threat(norm).norm(res.x_adv - x)
    assert torch.allclose(res.norms[ok], measured[ok], atol=1e-5)
    assert bool(torch.isinf(res.norms[~ok]).all())
    assert torch.equal(
        model.predict(res.x_adv)[ok] != y[ok], torch.ones(int(ok.sum()), dtype=torch.bool)
    )
    # batch-size invariance
    parts = [
        attack(model, x[i : i + 5], y[i : i + 5], name, norm=norm, steps=30)
        for i in range(0, 16, 5)
    ]
    assert torch.allclose(torch.cat([p.norms for p in parts]), res.norms, atol=1e-4)
    # a budget caps the norms
    capped = attack(model, x, y, name, norm=norm, steps=30, eps=float(res.norms[ok].median()))
    assert bool((capped.norms <= float(res.norms[ok].median()) * (1 + 1e-4) + 1e-6).all())


def test_fmn_median_is_tight_against_apgd() -> None:
    """At FMN's median minimal L-inf norm, APGD-CE breaks roughly half (not all) of the samples."""
    model = _net()
    x, _ = _data(60)
    y = model.predict(x)
    fm = attack(model, x, y, "fmn", norm="linf", steps=100)
    med = float(fm.norms.median())
    ap = attack(model, x, y, "apgd-ce", eps=med, steps=50)
    assert 0.2 <= ap.robust_accuracy <= 0.8, (med, ap.robust_accuracy)


def test_robust_accuracy_uses_minimum_norm_members_once() -> None:
    from robustcv.attacks import robust_accuracy

    model = _net()
    x, y = _data(30)
    res = robust_accuracy(
        model,
        x,
        y,
        eps=[0.01, 0.05, 0.1],
        attacks=[("fmn", {"steps": 30}), ("pgd", {"steps": 10})],
        sanity=False,
    )
    clean = [b == "clean" for b in res.broken_by]
    for b, at, mn, c in zip(res.broken_by, res.broken_at, res.min_norm, clean, strict=True):
        if c:
            assert mn == 0.0
        elif b == "fmn":
            # broken by FMN at the smallest budget that covers its minimal norm
            assert mn is not None and at is not None and mn <= at
            assert all(e >= at or e < mn for e in res.eps)
        elif b == "pgd":
            assert mn is not None and at is not None and mn <= at + 1e-6
    alone = robust_accuracy(
        model, x, y, eps=[0.01, 0.05, 0.1], attacks=[("pgd", {"steps": 10})], sanity=False
    )
    assert all(a <= b for a, b in zip(res.accuracy, alone.accuracy, strict=True))
    assert res.median_min_norm is None or res.median_min_norm >= 0


def test_l0_default_ensemble_and_sanity_checks_run() -> None:
    from robustcv.attacks import robust_accuracy
    from robustcv.attacks.ensemble import _ensemble

    assert [n for n, _ in _ensemble("default", "l0")] == ["fmn", "noise-uniform", "noise-gaussian"]
    assert [n for n, _ in _ensemble("default", "linf")] == ["fmn", "apgd-ce", "apgd-t", "square"]
    assert [n for n, _ in _ensemble("default", "l1")] == ["fmn", "pgd"]
    model = _net()
    x, y = _data(20)
    res = robust_accuracy(
        model, x, y, eps=[2, 8], norm="l0", attacks=[("fmn", {"steps": 30}), "noise-uniform"]
    )
    assert res.norm == "l0" and res.accuracy[0] >= res.accuracy[1]
    # minimal counts are integers and every robust-at-eps sample needs more than eps values
    found = [v for v in res.min_norm if v is not None]
    assert found and all(float(v).is_integer() for v in found)
    checks = {f.check: f for f in res.sanity}
    assert checks["fgsm-beats-pgd"].explanation.startswith("skipped")
    assert "large-budget" in checks


def test_fgsm_random_start_and_step_knobs() -> None:
    """fgsm's defaults are the plain one-step-of-eps attack; random_start + rel_step (FGSM-RS,
    Wong et al. 2020) is seeded per sample, batch-size invariant and stays in the budget."""
    model = _net()
    x, y = _data(16)
    plain = attack(model, x, y, "fgsm", eps=0.1)
    explicit = attack(model, x, y, "fgsm", eps=0.1, random_start=False, rel_step=1.0)
    assert torch.equal(plain.x_adv, explicit.x_adv)
    assert plain.config["random_start"] is False and plain.config["rel_step"] == 1.0
    half = attack(model, x, y, "fgsm", eps=0.1, rel_step=0.5)
    assert torch.allclose(half.norms, plain.norms / 2)  # a step of 0.5 eps
    for norm in ("linf", "l2"):
        eps = EPS[norm]
        rs = attack(model, x, y, "fgsm", eps=eps, norm=norm, random_start=True, rel_step=1.25)
        assert bool((rs.norms <= eps * (1 + 1e-4) + 1e-6).all())
        again = attack(model, x, y, "fgsm", eps=eps, norm=norm, random_start=True, rel_step=1.25)
        other = attack(
            model, x, y, "fgsm", eps=eps, norm=norm, random_start=True, rel_step=1.25, seed=1
        )
        assert torch.equal(rs.x_adv, again.x_adv) and not torch.equal(rs.x_adv, other.x_adv)
        part = attack(model, x[5:], y[5:], "fgsm", eps=eps, norm=norm, random_start=True,
                      rel_step=1.25)  # fmt: skip
        assert torch.allclose(part.x_adv, rs.x_adv[5:], atol=1e-6)
        assert not torch.equal(rs.x_adv, plain.x_adv)
    for bad in (0.0, -1.0, None):
        with pytest.raises(ValueError, match="rel_step must be"):
            attack(model, x, y, "fgsm", eps=0.1, rel_step=bad)


# ------------------------------------------------------------------------ memory layouts

ALL = ATTACKS.names()
# few steps and queries: the layout tests compare two runs, they do not need strong attacks
_FAST = {
    "steps": 4,
    "repeats": 2,
    "restarts": 1,
    "n_targets": 2,
    "queries": 60,
    "search_steps": 2,
    "init_evals": 10,
    "max_evals": 40,
    "max_queries": 300,
}


def _net3(seed: int = 0, classes: int = 4) -> Model:
    """A 3-channel 8x8 model: channels-last layouts differ from contiguous only with C > 1."""
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, classes)
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return Model(net, num_classes=classes)


def _attack_layouts() -> tuple[torch.Tensor, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    g = torch.Generator().manual_seed(5)
    big = torch.rand(4, 3, 16, 16, generator=g)
    y = torch.randint(0, 4, (4,), generator=g)
    x = big[:, :, ::2, ::2].contiguous()
    nhwc = x.permute(0, 2, 3, 1).contiguous().numpy()
    return y, {
        "channels-last (from_numpy(nhwc).permute)": (
            torch.from_numpy(nhwc).permute(0, 3, 1, 2),
            y,
        ),
        "channels_last memory format": (x.contiguous(memory_format=torch.channels_last), y),
        "strided view x[:, :, ::2, ::2]": (big[:, :, ::2, ::2], y),
        "batch slice x[1:3]": (x[1:3], y[1:3]),
        "batch of one x[2:3]": (x[2:3], y[2:3]),
        "cropped view": (big[:, :, 4:12, 3:11], y),
    }


@pytest.mark.parametrize("name", ALL)
def test_every_layout_gives_the_contiguous_result(name: str) -> None:
    """Channels-last, strided and sliced views and a batch of one: same x_adv (to 1e-6), same
    success and norms as ``.contiguous()`` with the same seed; the inputs stay untouched."""
    spec = ATTACKS.get(name)
    model = _net3()
    params = {k: v for k, v in _FAST.items() if k in spec.params}
    norm = spec.norms[0]
    kw: dict[str, object] = {"norm": norm, "seed": 3, **params}
    if not spec.minimum_norm:
        kw["eps"] = EPS[norm]
    _, layouts = _attack_layouts()
    for label, (xv, yv) in layouts.items():
        x0 = xv.clone()
        got = attack(model, xv, yv, name, **kw)  # type: ignore[arg-type]
        want = attack(model, xv.contiguous(), yv, name, **kw)  # type: ignore[arg-type]
        diff = float((got.x_adv - want.x_adv).abs().max())
        assert diff <= 1e-6, f"{name} {label}: x_adv differs from .contiguous() by {diff}"
        assert torch.equal(got.success, want.success), f"{name} {label}: success differs"
        assert torch.allclose(got.norms, want.norms, atol=1e-6), f"{name} {label}: norms differ"
        assert torch.equal(xv, x0), f"{name} {label}: modified its input"


def test_robust_accuracy_on_a_channels_last_batch() -> None:
    from robustcv.attacks import robust_accuracy

    model = _net3()
    _, layouts = _attack_layouts()
    xv, yv = layouts["channels-last (from_numpy(nhwc).permute)"]
    kw: dict[str, object] = {"eps": [0.02, 0.1], "attacks": [("pgd", {"steps": 4}), "fgsm"]}
    got = robust_accuracy(model, xv, yv, sanity=False, **kw)  # type: ignore[arg-type]
    want = robust_accuracy(model, xv.contiguous(), yv, sanity=False, **kw)  # type: ignore[arg-type]
    assert got.accuracy == want.accuracy and got.broken_by == want.broken_by


# ------------------------------------------------------------------------ bad input (more)


def test_targeted_switch_points_at_targets() -> None:
    x, y = _data(4)
    with pytest.raises(ValueError, match="targets="):
        attack(_net(), x, y, "pgd", eps=0.1, targeted=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": True}, "steps must be a positive int"),
        ({"steps": 2.5}, "steps must be a positive int"),
        ({"n_targets": 4}, "n_targets=4 but the model has 4 classes"),
        ({"n_targets": 2.5}, "n_targets must be a positive int"),
        ({"rho": float("nan")}, "rho must be a finite number"),
        ({"rho": 1.5}, r"rho must be in \(0, 1\]"),
        ({"early_stop": "no"}, "early_stop must be True or False"),
    ],
)
def test_bad_hyperparameters_name_the_argument(kwargs: dict[str, object], match: str) -> None:
    x, y = _data(4)
    with pytest.raises(ValueError, match=match):
        attack(_net(), x, y, "apgd-t", eps=0.1, **kwargs)  # type: ignore[arg-type]


def test_default_ensemble_caps_n_targets_at_the_other_classes() -> None:
    from robustcv.attacks.ensemble import _ensemble

    members = dict(_ensemble("default", "linf", 4))
    assert members["apgd-t"]["n_targets"] == 3
    assert dict(_ensemble("default", "linf"))["apgd-t"]["n_targets"] == 9
