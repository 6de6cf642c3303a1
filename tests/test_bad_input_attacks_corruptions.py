"""Bad-input corpus for attacks and corruptions: each mistake gets a clean error naming it.

API cases cover :func:`robustcv.attacks.attack`, :func:`robustcv.attacks.robust_accuracy`,
:func:`robustcv.corrupt`, :func:`robustcv.corruption_accuracy`, the corruption metrics
(``ce``/``mce``/``rpc``... with wrong tables) and :func:`write_corrupted`; CLI cases cover
``robustcv attack`` and ``robustcv corrupt`` (exit 2, no traceback, the message names the
argument). See ``tests/badinput.py`` for what each case asserts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from badinput import ApiCase, CliCase, bad_files, check_api, check_cli
from torch import nn

from robustcv.attacks import ATTACKS, attack, robust_accuracy
from robustcv.core.errors import InputError, ModelDataMismatchError
from robustcv.core.model import Model
from robustcv.corruptions import (
    ALEXNET_ERRORS,
    ce,
    corrupt,
    corrupt_with_draws,
    corruption_accuracy,
    mce,
    mpc,
    relative_mce,
    rpc,
    write_corrupted,
)
from robustcv.corruptions.metrics import relative_ce
from robustcv.data import ArraySource, Dataset

Files = dict[str, Path]
NAN = float("nan")
INF = float("inf")


# ------------------------------------------------------------------------------- helpers


def _loose(fn: Any) -> Any:
    """``fn`` without its static types: the cases pass wrong types on purpose."""
    return fn


def _model(channels: int = 1, size: int = 8, classes: int = 4) -> Model:
    """A small convolutional model taking ``channels``-channel ``size``x``size`` images."""
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(channels, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * size * size, classes),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return Model(net, num_classes=classes)


def _x(n: int = 4, channels: int = 1, size: int = 8) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(1))


def _y(n: int = 4) -> torch.Tensor:
    return torch.arange(n) % 4


def _with(x: torch.Tensor, value: float) -> torch.Tensor:
    x = x.clone()
    x[0, 0, 0, 0] = value
    return x


def _atk(**kw: Any) -> Any:
    """attack() on a 1-channel 8x8 4-class model; ``kw`` overrides the defaults."""
    args: dict[str, Any] = {"name": "pgd", "eps": 0.1}
    args.update(kw)
    name = args["name"]
    if isinstance(name, str) and name in ATTACKS and "steps" in ATTACKS.get(name).params:
        args.setdefault("steps", 2)  # fast
    model = args.pop("model", None) or _model()
    x = args.pop("x", None)
    y = args.pop("y", None)
    return attack(
        model,
        _x() if x is None else x,
        _y() if y is None else y,
        args.pop("name"),
        **args,
    )


def _ra(**kw: Any) -> Any:
    """robust_accuracy() on the same model, fast members, no sanity checks unless asked."""
    args: dict[str, Any] = {"eps": 0.1, "attacks": "fgsm", "sanity": False}
    args.update(kw)
    model = args.pop("model", None) or _model()
    x = args.pop("x", None)
    y = args.pop("y", None)
    return robust_accuracy(model, _x() if x is None else x, _y() if y is None else y, **args)


def _rgb(n: int = 2, size: int = 32, channels: int = 3) -> torch.Tensor:
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(2))


def _ca(**kw: Any) -> Any:
    """corruption_accuracy() of a 3-channel 16x16 model on fog severity 1."""
    args: dict[str, Any] = {"corruptions": "fog", "severities": (1,), "progress": False}
    args.update(kw)
    model = args.pop("model", None) or _model(3, 16)
    x = args.pop("x", None)
    y = args.pop("y", _y())
    return corruption_accuracy(model, _rgb(4, 16) if x is None else x, y, **args)


def _nan_net(z: torch.Tensor) -> torch.Tensor:
    return torch.full((z.shape[0], 4), NAN)


def _dataset(channels: int = 1, n: int = 4, size: int = 16) -> Dataset:
    rng = np.random.default_rng(0)
    shape = (n, size, size) if channels == 1 else (n, size, size, channels)
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    return Dataset("toy", "test", ["a", "b"], ArraySource(images, np.arange(n) % 2))


def _write(files: Files, **kw: Any) -> Any:
    args: dict[str, Any] = {"corruptions": "fog", "severities": [1], "progress": False}
    args.update(kw)
    data = args.pop("data", None) or _dataset()
    out = args.pop("out", files["tmp"] / "c-out")
    return write_corrupted(data, out, **args)


_MODEL_ERRORS = {"fog": {1: 0.5, 2: 0.6}}
_BASE_ERRORS = {"fog": {1: 0.7, 2: 0.8}}


# ------------------------------------------------------------------------------- API cases

API_CASES: list[ApiCase] = [
    # attack(): switches and hyperparameters
    ApiCase("attack-targeted-without-targets", lambda f: _atk(targeted=True), ("targets=",)),
    ApiCase("attack-steps-0", lambda f: _atk(steps=0), ("steps",)),
    ApiCase("attack-steps-float", lambda f: _atk(steps=2.5), ("steps", "2.5")),
    ApiCase("attack-steps-bool", lambda f: _atk(steps=True), ("steps",)),
    ApiCase("attack-restarts-0", lambda f: _atk(restarts=0), ("restarts",)),
    ApiCase("attack-early-stop-str", lambda f: _atk(early_stop="no"), ("early_stop",)),
    ApiCase("attack-loss-unknown", lambda f: _atk(loss="mse"), ("loss", "ce")),
    ApiCase("attack-param-typo", lambda f: _atk(stepz=3), ("stepz", "did you mean 'steps'")),
    ApiCase("attack-rel-step-nan", lambda f: _atk(rel_step=NAN), ("rel_step",)),
    ApiCase(
        "square-queries-0", lambda f: attack(_model(), _x(), _y(), "square", eps=0.1, queries=0)
    ),
    ApiCase("square-p-init-2", lambda f: _atk(name="square", p_init=2.0), ("p_init",)),
    ApiCase("noise-repeats-0", lambda f: _atk(name="noise-uniform", repeats=0), ("repeats",)),
    ApiCase("noise-repeats-float", lambda f: _atk(name="noise-uniform", repeats=2.5), ("repeats",)),
    ApiCase(
        "apgd-t-n-targets-above-classes",
        lambda f: _atk(name="apgd-t", n_targets=9),
        ("n_targets", "4 classes", "n_targets <= 3"),
    ),
    ApiCase("apgd-t-n-targets-0", lambda f: _atk(name="apgd-t", n_targets=0), ("n_targets",)),
    ApiCase("apgd-t-n-targets-float", lambda f: _atk(name="apgd-t", n_targets=2.5), ("n_targets",)),
    ApiCase("apgd-rho-nan", lambda f: _atk(name="apgd-ce", rho=NAN), ("rho",)),
    ApiCase("apgd-rho-above-1", lambda f: _atk(name="apgd-ce", rho=1.5), ("rho", "(0, 1]")),
    ApiCase(
        "deepfool-candidates-1",
        lambda f: _atk(name="deepfool", eps=None, candidates=1),
        ("candidates",),
    ),
    ApiCase("cw-lr-negative", lambda f: _atk(name="cw", eps=None, norm="l2", lr=-1.0), ("lr",)),
    ApiCase(
        "cw-search-steps-0",
        lambda f: _atk(name="cw", eps=None, norm="l2", search_steps=0),
        ("search_steps",),
    ),
    ApiCase(
        "fmn-alpha-final-negative",
        lambda f: _atk(name="fmn", eps=None, alpha_final=-1.0),
        ("alpha_final",),
    ),
    ApiCase(
        "fmn-gamma-init-2", lambda f: _atk(name="fmn", eps=None, gamma_init=2.0), ("gamma_init",)
    ),
    ApiCase(
        "hsj-max-queries-1",
        lambda f: _atk(name="hsj", eps=None, norm="l2", max_queries=1),
        ("max_queries",),
    ),
    # attack(): budget, norm, name, seed
    ApiCase("attack-eps-negative", lambda f: _atk(eps=-0.1), ("eps", ">= 0")),
    ApiCase("attack-eps-nan", lambda f: _atk(eps=NAN), ("eps",)),
    ApiCase("attack-eps-inf", lambda f: _atk(eps=INF), ("eps", "finite")),
    ApiCase("attack-eps-str", lambda f: _atk(eps="0.1"), ("eps",)),
    ApiCase("attack-eps-missing", lambda f: _atk(eps=None), ("eps=",)),
    ApiCase("attack-minnorm-eps-negative", lambda f: _atk(name="fmn", eps=-1.0), ("eps",)),
    ApiCase("attack-norm-l3", lambda f: _atk(norm="l3"), ("l3", "l2")),
    ApiCase("attack-norm-none", lambda f: _atk(norm=None), ("threat model",)),
    ApiCase("apgd-norm-l1", lambda f: _atk(name="apgd-ce", norm="l1"), ("norms", "l1")),
    ApiCase("attack-name-typo", lambda f: _atk(name="pgdd"), ("pgdd", "did you mean 'pgd'")),
    ApiCase("attack-name-none", lambda f: _atk(name=None), ("name",)),
    ApiCase("attack-name-int", lambda f: _atk(name=3), ("name",)),
    ApiCase("attack-seed-negative", lambda f: _atk(seed=-1), ("seed",)),
    ApiCase("attack-seed-str", lambda f: _atk(seed="0"), ("seed",)),
    # attack(): images, labels, targets, model
    ApiCase("attack-x-nan", lambda f: _atk(x=_with(_x(), NAN)), ("nan",)),
    ApiCase("attack-x-inf", lambda f: _atk(x=_with(_x(), INF)), ("infinite",)),
    ApiCase(
        "attack-x-meta", lambda f: _atk(x=torch.empty(4, 1, 8, 8, device="meta")), ("x", "meta")
    ),
    ApiCase("attack-y-meta", lambda f: _atk(y=_y().to("meta")), ("y", "meta")),
    ApiCase("attack-targets-meta", lambda f: _atk(targets=_y().to("meta")), ("targets", "meta")),
    ApiCase("attack-x-uint8", lambda f: _atk(x=(_x() * 255).to(torch.uint8)), ("/ 255",)),
    ApiCase("attack-x-3d", lambda f: _atk(x=_x()[0]), ("unsqueeze",)),
    ApiCase("attack-x-0-255", lambda f: _atk(x=_x() * 255), ("divide by 255",)),
    ApiCase("attack-x-numpy", lambda f: _atk(x=_x().numpy()), ("torch.tensor",)),
    ApiCase("attack-y-float", lambda f: _atk(y=_y().float()), ("y", ".long()")),
    ApiCase("attack-y-short", lambda f: _atk(y=_y()[:2]), ("y", "one label per image")),
    ApiCase("attack-y-out-of-range", lambda f: _atk(y=_y() + 4), ("y", "4 classes")),
    ApiCase("attack-targets-equal-y", lambda f: _atk(targets=_y()), ("target",)),
    ApiCase(
        "attack-targets-out-of-range", lambda f: _atk(targets=_y() + 10), ("targets", "4 classes")
    ),
    ApiCase("attack-targets-short", lambda f: _atk(targets=_y()[:2]), ("targets",)),
    ApiCase(
        "attack-targets-untargeted-attack",
        lambda f: _atk(name="apgd-dlr", targets=(_y() + 1) % 4),
        ("targets=",),
    ),
    ApiCase("attack-model-unwrapped", lambda f: _atk(model=_model().net), ("robustcv.model",)),
    ApiCase(
        "attack-channels-mismatch",
        lambda f: _atk(x=_x(channels=3)),
        ("1-channel", "3-channel", "x"),
        error=ModelDataMismatchError,
    ),
    ApiCase(
        "attack-size-mismatch",
        lambda f: _atk(x=_x(size=12)),
        ("8x8", "12x12"),
        error=ModelDataMismatchError,
    ),
    ApiCase(
        "attack-gradient-free-model",
        lambda f: _atk(model=Model(_model().net, differentiable=False, num_classes=4)),
        ("gradient", "noise-uniform"),
    ),
    ApiCase(
        "attack-nan-logits",
        lambda f: _atk(model=Model(_nan_net, num_classes=4)),
        ("nan", "nonfinite='warn'"),
    ),
    # robust_accuracy()
    ApiCase("ra-eps-empty", lambda f: _ra(eps=[]), ("eps",)),
    ApiCase("ra-eps-negative", lambda f: _ra(eps=[0.1, -1.0]), ("eps", ">= 0")),
    ApiCase("ra-eps-nan", lambda f: _ra(eps=NAN), ("eps",)),
    ApiCase("ra-eps-inf", lambda f: _ra(eps=[INF]), ("eps", "finite")),
    ApiCase("ra-eps-none", lambda f: _ra(eps=None), ("eps",)),
    ApiCase("ra-eps-str", lambda f: _ra(eps="0.1"), ("eps",)),
    ApiCase("ra-sanity-subset-0", lambda f: _ra(sanity=True, sanity_subset=0), ("sanity_subset",)),
    ApiCase(
        "ra-sanity-subset-float", lambda f: _ra(sanity=True, sanity_subset=2.5), ("sanity_subset",)
    ),
    ApiCase("ra-sanity-str", lambda f: _ra(sanity="no"), ("sanity",)),
    ApiCase("ra-attacks-empty", lambda f: _ra(attacks=""), ("attacks",)),
    ApiCase("ra-attacks-int", lambda f: _ra(attacks=3), ("attacks",)),
    ApiCase("ra-attacks-bad-pair", lambda f: _ra(attacks=[("pgd",)]), ("attacks", "pair")),
    ApiCase("ra-attacks-unknown", lambda f: _ra(attacks="nope"), ("nope",)),
    ApiCase("ra-attacks-param-typo", lambda f: _ra(attacks=[("pgd", {"stepz": 3})]), ("stepz",)),
    ApiCase("ra-attacks-steps-0", lambda f: _ra(attacks=[("pgd", {"steps": 0})]), ("steps",)),
    ApiCase("ra-attacks-twice", lambda f: _ra(attacks="fgsm,fgsm"), ("fgsm", "twice")),
    ApiCase(
        "ra-attacks-n-targets",
        lambda f: _ra(attacks=[("apgd-t", {"n_targets": 9})]),
        ("n_targets",),
    ),
    ApiCase("ra-norm-unsupported", lambda f: _ra(norm="l1", attacks="apgd-ce"), ("l1",)),
    ApiCase("ra-norm-unknown", lambda f: _ra(norm="l3"), ("l3",)),
    ApiCase("ra-x-meta", lambda f: _ra(x=torch.empty(4, 1, 8, 8, device="meta")), ("meta",)),
    ApiCase("ra-x-nan", lambda f: _ra(x=_with(_x(), NAN)), ("nan",)),
    ApiCase(
        "ra-channels-mismatch",
        lambda f: _ra(x=_x(channels=3)),
        ("1-channel", "3-channel"),
        error=ModelDataMismatchError,
    ),
    ApiCase("ra-seed-negative", lambda f: _ra(seed=-1), ("seed",)),
    ApiCase("ra-y-out-of-range", lambda f: _ra(y=_y() + 4), ("y", "4 classes")),
    ApiCase("ra-model-unwrapped", lambda f: _ra(model=_model().net), ("robustcv.model",)),
    # corrupt()
    ApiCase(
        "corrupt-4-channels",
        lambda f: corrupt(_rgb(channels=4), "frost", 3),
        ("4 channels", "x[:, :3]"),
    ),
    ApiCase(
        "corrupt-4-channels-noise",
        lambda f: corrupt(_rgb(channels=4), "gaussian_noise", 1),
        ("4 channels",),
    ),
    ApiCase(
        "corrupt-2-channels",
        lambda f: corrupt(_rgb(channels=2), "fog", 3),
        ("2 channels", "1 channel", "3 channel"),
    ),
    ApiCase(
        "corrupt-severity-float", lambda f: _loose(corrupt)(_rgb(), "fog", 2.5), ("severity", "2.5")
    ),
    ApiCase("corrupt-severity-0", lambda f: corrupt(_rgb(), "fog", 0), ("severity", "1..5")),
    ApiCase("corrupt-severity-6", lambda f: corrupt(_rgb(), "fog", 6), ("severity", "1..5")),
    ApiCase("corrupt-severity-str", lambda f: _loose(corrupt)(_rgb(), "fog", "3"), ("severity",)),
    ApiCase("corrupt-mvh-level-9", lambda f: corrupt(_rgb(), "mvh-contrast", 9), ("1..8",)),
    ApiCase("corrupt-name-typo", lambda f: corrupt(_rgb(), "fgo", 1), ("fgo", "fog")),
    ApiCase("corrupt-name-none", lambda f: _loose(corrupt)(_rgb(), None, 1), ("name",)),
    ApiCase(
        "corrupt-draws-name-none", lambda f: _loose(corrupt_with_draws)(_rgb(), None, 1), ("name",)
    ),
    ApiCase(
        "corrupt-spec-unknown",
        lambda f: corrupt(_rgb(), "fog", 1, spec="imagenet"),
        ("spec", "imagenet-c"),
    ),
    ApiCase("corrupt-seed-float", lambda f: _loose(corrupt)(_rgb(), "fog", 1, seed=1.5), ("seed",)),
    ApiCase(
        "corrupt-meta",
        lambda f: corrupt(torch.empty(2, 3, 32, 32, device="meta"), "fog", 1),
        ("meta",),
    ),
    ApiCase("corrupt-nan", lambda f: corrupt(_with(_rgb(), NAN), "fog", 1), ("nan",)),
    ApiCase("corrupt-inf", lambda f: corrupt(_with(_rgb(), INF), "fog", 1), ("infinite",)),
    ApiCase("corrupt-too-small", lambda f: corrupt(_rgb(size=4), "fog", 1), ("8x8",)),
    ApiCase("corrupt-float16", lambda f: corrupt(_rgb().half(), "fog", 1), (".float()",)),
    ApiCase(
        "corrupt-channels-last-array",
        lambda f: corrupt(_rgb().permute(0, 2, 3, 1), "fog", 1),
        ("channels-last", "permute"),
    ),
    ApiCase("corrupt-empty-batch", lambda f: corrupt(_rgb(0), "fog", 1), ("empty",)),
    ApiCase(
        "corrupt-replay-other-batch",
        lambda f: corrupt_with_draws(
            _rgb(1), "motion_blur", 2, replay=corrupt_with_draws(_rgb(2), "motion_blur", 2)[1]
        ),
        ("same batch",),
    ),
    # corruption_accuracy()
    ApiCase("ca-batch-size-float", lambda f: _ca(batch_size=2.5), ("batch_size",)),
    ApiCase("ca-batch-size-0", lambda f: _ca(batch_size=0), ("batch_size",)),
    ApiCase("ca-severity-9", lambda f: _ca(severities=(9,)), ("severity 9", "1..5")),
    ApiCase("ca-severity-float", lambda f: _ca(severities=(2.5,)), ("severities",)),
    ApiCase("ca-severities-int", lambda f: _ca(severities=3), ("severities",)),
    ApiCase("ca-severities-empty", lambda f: _ca(severities=()), ("severities",)),
    ApiCase("ca-corruption-typo", lambda f: _ca(corruptions="fgo"), ("fgo", "fog")),
    ApiCase("ca-corruptions-empty", lambda f: _ca(corruptions=[]), ("corruptions",)),
    ApiCase("ca-corruptions-twice", lambda f: _ca(corruptions="fog,fog"), ("twice",)),
    ApiCase(
        "ca-channels-mismatch",
        lambda f: _ca(model=_model(1, 16)),
        ("1-channel", "3-channel"),
        error=ModelDataMismatchError,
    ),
    ApiCase(
        "ca-size-mismatch",
        lambda f: _ca(x=_rgb(4, 32)),
        ("16x16", "32x32"),
        error=ModelDataMismatchError,
    ),
    ApiCase(
        "ca-4-channels",
        lambda f: _ca(model=_model(4, 16), x=_rgb(4, 16, channels=4)),
        ("4 channels",),
    ),
    ApiCase(
        "ca-dataset-4-channels",
        lambda f: corruption_accuracy(
            _model(4, 16), _dataset(4), corruptions="fog", severities=(1,), progress=False
        ),
        ("4 channels",),
    ),
    ApiCase("ca-y-missing", lambda f: _ca(y=None), ("labels y",)),
    ApiCase("ca-y-out-of-range", lambda f: _ca(y=_y() + 4), ("4 classes",)),
    ApiCase("ca-x-meta", lambda f: _ca(x=torch.empty(4, 3, 16, 16, device="meta")), ("meta",)),
    ApiCase("ca-x-nan", lambda f: _ca(x=_with(_rgb(4, 16), NAN)), ("nan",)),
    ApiCase("ca-baseline-unknown", lambda f: _ca(baseline="resnet"), ("baseline", "alexnet")),
    ApiCase(
        "ca-baseline-clean-error-alone",
        lambda f: _ca(baseline_clean_error=0.4),
        ("baseline_clean_error",),
    ),
    ApiCase("ca-baseline-nan", lambda f: _ca(baseline={"fog": NAN}), ("fog", "nan")),
    ApiCase("ca-progress-str", lambda f: _ca(progress="no"), ("progress",)),
    ApiCase("ca-spec-unknown", lambda f: _ca(spec="x"), ("spec",)),
    ApiCase("ca-model-unwrapped", lambda f: _ca(model=_model(3, 16).net), ("robustcv.model",)),
    ApiCase(
        "ca-dataset-and-y",
        lambda f: corruption_accuracy(_model(1, 16, 2), _dataset(), _y(), progress=False),
        ("dataset", "y"),
    ),
    # corruption metrics with wrong tables
    ApiCase("ce-baseline-lacks-corruption", lambda f: ce({"fog": 0.5}, {"frost": 0.5}), ("fog",)),
    ApiCase("ce-nan", lambda f: ce({"fog": {1: NAN}}, _BASE_ERRORS), ("nan",)),
    ApiCase("ce-baseline-zero", lambda f: ce({"fog": 0.5}, {"fog": 0.0}), ("fog", "positive")),
    ApiCase("ce-percent", lambda f: ce({"fog": {1: 50.0}}, _BASE_ERRORS), ("divide", "100")),
    ApiCase("ce-not-a-dict", lambda f: _loose(ce)([0.5], _BASE_ERRORS), ("errors_model",)),
    ApiCase("ce-severities-differ", lambda f: ce({"fog": {1: 0.5}}, _BASE_ERRORS), ("severities",)),
    ApiCase("ce-severity-key", lambda f: ce({"fog": {"one": 0.5}}, _BASE_ERRORS), ("severity",)),
    ApiCase(
        "mce-partial-table",
        lambda f: mce(_MODEL_ERRORS, ALEXNET_ERRORS),
        ("no value", "corruptions="),
    ),
    ApiCase(
        "mce-bad-group",
        lambda f: mce(_MODEL_ERRORS, _BASE_ERRORS, corruptions="some"),
        ("corruptions",),
    ),
    ApiCase("mpc-empty", lambda f: mpc({}), ("empty",)),
    ApiCase(
        "rpc-clean-0",
        lambda f: rpc({"fog": {1: 0.5}}, 0.0, corruptions=["fog"], severities=(1,)),
        ("clean",),
    ),
    ApiCase(
        "rpc-clean-nan", lambda f: rpc({"fog": {1: 0.5}}, NAN, corruptions=["fog"]), ("clean",)
    ),
    ApiCase(
        "rpc-missing-severity",
        lambda f: rpc({"fog": {1: 0.5}}, 0.9, corruptions=["fog"]),
        ("severity",),
    ),
    ApiCase(
        "relative-ce-clean-nan",
        lambda f: relative_ce(_MODEL_ERRORS, NAN, _BASE_ERRORS, 0.1),
        ("clean_error_model",),
    ),
    ApiCase(
        "relative-mce-baseline-not-above-clean",
        lambda f: relative_mce(
            _MODEL_ERRORS, 0.1, _BASE_ERRORS, clean_error_baseline=0.9, corruptions=["fog"]
        ),
        ("clean_error_baseline",),
    ),
    # write_corrupted()
    ApiCase("write-out-is-a-file", lambda f: _write(f, out=f["file"]), ("out_dir", "file")),
    ApiCase("write-out-empty", lambda f: _write(f, out=""), ("out_dir",)),
    ApiCase("write-out-not-empty", lambda f: _write(f, out=f["tmp"]), ("force",)),
    ApiCase("write-format-unknown", lambda f: _write(f, fmt="x"), ("format",)),
    ApiCase("write-batch-size-0", lambda f: _write(f, batch_size=0), ("batch_size",)),
    ApiCase("write-batch-size-float", lambda f: _write(f, batch_size=2.5), ("batch_size",)),
    ApiCase("write-severity-9", lambda f: _write(f, severities=[9]), ("severities", "1-5")),
    ApiCase("write-severities-text", lambda f: _write(f, severities="abc"), ("severities",)),
    ApiCase("write-cifar-c-subset", lambda f: _write(f, fmt="cifar-c"), ("cifar-c", "1-5")),
    ApiCase("write-4-channels", lambda f: _write(f, data=_dataset(4)), ("4 channels",)),
    ApiCase("write-corruption-typo", lambda f: _write(f, corruptions="fgo"), ("fgo", "fog")),
    ApiCase("write-spec-unknown", lambda f: _write(f, spec="x"), ("spec",)),
    ApiCase("write-seed-negative", lambda f: _write(f, seed=-1), ("seed",)),
    ApiCase("write-device-unavailable", lambda f: _write(f, device="cuda:7"), ("cuda:7",)),
    ApiCase("write-too-small", lambda f: _write(f, data=_dataset(size=4)), ("8x8", "image_size")),
]


@pytest.fixture
def files(tmp_path: Path) -> Files:
    out = bad_files(tmp_path)
    rng = np.random.default_rng(0)
    for name, channels in (("rgba", 4), ("two", 2)):
        path = tmp_path / f"{name}.npz"
        images = rng.integers(0, 256, (4, 32, 32, channels), dtype=np.uint8)
        np.savez(path, x=images, y=np.arange(4))
        out[name] = path
    return out


@pytest.mark.parametrize("case", API_CASES, ids=lambda c: c.id)
def test_api(case: ApiCase, files: Files) -> None:
    check_api(case, files)


def test_corpus_size_and_unique_ids() -> None:
    ids = [c.id for c in API_CASES] + [c.id for c in CLI_CASES]
    assert len(ids) == len(set(ids))
    assert len(API_CASES) >= 60 and len(CLI_CASES) >= 20


# ------------------------------------------------------------------------------- CLI cases

_MODEL = ["--model", "{factory}:build", "--data", "npz:{good}"]
_ATTACK = ["attack", *_MODEL, "--attacks", "fgsm", "--no-sanity", "--quiet"]
_CORRUPT = ["corrupt", "--data", "npz:{good}", "--corruptions", "fog", "--quiet"]
_OUT = ["--out", "{tmp}/c-out"]

CLI_CASES: list[CliCase] = [
    # robustcv attack
    CliCase("cli-attack-eps-abc", [*_ATTACK, "--eps", "abc"], ("--eps", "abc")),
    CliCase("cli-attack-eps-negative", [*_ATTACK, "--eps", "-1"], ("eps", ">= 0")),
    CliCase("cli-attack-eps-nan", [*_ATTACK, "--eps", "nan"], ("eps",)),
    CliCase("cli-attack-eps-inf", [*_ATTACK, "--eps", "inf"], ("eps", "finite")),
    CliCase("cli-attack-eps-empty", [*_ATTACK, "--eps", ""], ("eps",)),
    CliCase("cli-attack-eps-missing", _ATTACK, ("--eps",)),
    CliCase("cli-attack-norm-l3", [*_ATTACK, "--eps", "0.1", "--norm", "l3"], ("l3",)),
    CliCase(
        "cli-attack-unknown-attack",
        ["attack", *_MODEL, "--eps", "0.1", "--attacks", "nope"],
        ("nope",),
    ),
    CliCase(
        "cli-attack-attacks-empty",
        ["attack", *_MODEL, "--eps", "0.1", "--attacks", ""],
        ("attacks",),
    ),
    CliCase(
        "cli-attack-norm-unsupported",
        ["attack", *_MODEL, "--eps", "0.1", "--norm", "l1", "--attacks", "apgd-ce"],
        ("apgd-ce", "l1"),
    ),
    CliCase("cli-attack-limit-0", [*_ATTACK, "--eps", "0.1", "--limit", "0"], ("--limit",)),
    CliCase("cli-attack-limit-float", [*_ATTACK, "--eps", "0.1", "--limit", "2.5"], ("--limit",)),
    CliCase("cli-attack-seed-negative", [*_ATTACK, "--eps", "0.1", "--seed", "-1"], ("seed",)),
    CliCase(
        "cli-attack-batch-size-0",
        [*_ATTACK, "--eps", "0.1", "--batch-size", "0"],
        ("--batch-size",),
    ),
    CliCase(
        "cli-attack-device-unavailable",
        [*_ATTACK, "--eps", "0.1", "--device", "cuda:7"],
        ("cuda:7",),
    ),
    CliCase(
        "cli-attack-rgb-into-grey-model",
        [
            "attack",
            "--model",
            "{factory}:build",
            "--data",
            "npz:{rgb32}",
            "--eps",
            "0.1",
            "--attacks",
            "fgsm",
            "--no-sanity",
        ],
        ("model takes", "3-channel"),
    ),
    CliCase(
        "cli-attack-empty-data",
        ["attack", "--model", "{factory}:build", "--data", "npz:{empty}", "--eps", "0.1"],
        ("no images",),
    ),
    # robustcv corrupt
    CliCase("cli-corrupt-severity-9", [*_CORRUPT, *_OUT, "--severities", "9"], ("severities",)),
    CliCase("cli-corrupt-severity-0", [*_CORRUPT, *_OUT, "--severities", "0"], ("severities",)),
    CliCase("cli-corrupt-severity-abc", [*_CORRUPT, *_OUT, "--severities", "abc"], ("severities",)),
    CliCase(
        "cli-corrupt-severity-float", [*_CORRUPT, *_OUT, "--severities", "2.5"], ("severities",)
    ),
    CliCase(
        "cli-corrupt-unknown-corruption",
        ["corrupt", "--data", "npz:{good}", *_OUT, "--corruptions", "fgo"],
        ("fgo", "fog"),
    ),
    CliCase(
        "cli-corrupt-corruptions-empty",
        ["corrupt", "--data", "npz:{good}", *_OUT, "--corruptions", ""],
        ("corruptions",),
    ),
    CliCase(
        "cli-corrupt-out-is-a-file",
        [*_CORRUPT, "--out", "{file}", "--severities", "1"],
        ("--out", "file"),
    ),
    CliCase("cli-corrupt-out-empty", [*_CORRUPT, "--out", "", "--severities", "1"], ("--out",)),
    CliCase(
        "cli-corrupt-out-not-empty",
        [*_CORRUPT, "--out", "{tmp}", "--severities", "1"],
        ("--force",),
    ),
    CliCase(
        "cli-corrupt-4-channels",
        [
            "corrupt",
            "--data",
            "npz:{rgba}",
            *_OUT,
            "--corruptions",
            "fog",
            "--severities",
            "1",
            "--quiet",
        ],
        ("4 channels",),
    ),
    CliCase(
        "cli-corrupt-2-channels",
        ["corrupt", "--data", "npz:{two}", *_OUT, "--corruptions", "fog", "--quiet"],
        ("channel",),
    ),
    CliCase("cli-corrupt-limit-0", [*_CORRUPT, *_OUT, "--limit", "0"], ("--limit",)),
    CliCase("cli-corrupt-batch-size-0", [*_CORRUPT, *_OUT, "--batch-size", "0"], ("--batch-size",)),
    CliCase(
        "cli-corrupt-cifar-c-subset",
        [*_CORRUPT, *_OUT, "--format", "cifar-c", "--severities", "1"],
        ("cifar-c", "1-5"),
    ),
    CliCase("cli-corrupt-format-unknown", [*_CORRUPT, *_OUT, "--format", "x"], ("--format",)),
    CliCase("cli-corrupt-spec-unknown", [*_CORRUPT, *_OUT, "--spec", "imagenet"], ("--spec",)),
    CliCase("cli-corrupt-seed-abc", [*_CORRUPT, *_OUT, "--seed", "abc"], ("--seed",)),
    CliCase(
        "cli-corrupt-device-unavailable",
        [*_CORRUPT, *_OUT, "--device", "cuda:7", "--severities", "1"],
        ("cuda:7",),
    ),
    CliCase(
        "cli-corrupt-garbage-npz",
        ["corrupt", "--data", "npz:{garbage}", *_OUT, "--corruptions", "fog", "--quiet"],
        ("garbage.npz",),
    ),
    CliCase(
        "cli-corrupt-empty-npz",
        ["corrupt", "--data", "npz:{empty}", *_OUT, "--corruptions", "fog", "--quiet"],
        ("empty",),
    ),
    CliCase("cli-corrupt-out-missing", _CORRUPT, ("--out",)),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_cli(case: CliCase, files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    check_cli(case, files, capsys)


# --------------------------------------------------------------- what still works after


def test_valid_edge_inputs_are_accepted() -> None:
    """The checks do not refuse what is valid: a batch of one, a channels-last view,
    a fractional L0 budget (the same ball as its floor), trailing commas, np.float32."""
    model = _model()
    res = _loose(attack)(model, _x(1), _y(1), "fgsm", eps=np.float32(0.1))
    assert res.x_adv.shape == (1, 1, 8, 8)
    assert _ra(attacks="fgsm,").accuracy
    x = _rgb(1).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    assert corrupt(x, "impulse_noise", 3).shape == (1, 3, 32, 32)
    assert torch.isfinite(
        attack(model, _x(), _y(), "noise-uniform", eps=2.5, norm="l0").norms
    ).all()
    with pytest.raises(InputError):  # and the refusals are InputErrors (ValueError) throughout
        _atk(steps=0)
