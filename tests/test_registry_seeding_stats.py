"""Registry, seeding, binomial confidence intervals and JSON-able results."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import beta

from robustcv.core.errors import InputError
from robustcv.core.registry import Entry, Registry
from robustcv.core.results import Result, to_jsonable
from robustcv.core.seeding import check_seed, derive_seed, make_generator
from robustcv.core.stats import binomial_ci

# ---------------------------------------------------------------------------- registry


def _registry() -> Registry[int]:
    reg: Registry[int] = Registry("recipe")
    reg.add("standard", 1, summary="plain cross-entropy", aliases=("std", "plain"))
    reg.add("PGD-AT", 2, summary="adversarial training")
    reg.add("trades", 3)
    return reg


def test_registry_lookup_by_name_alias_and_case():
    reg = _registry()
    assert reg.get("standard") == 1
    assert reg.get("STANDARD") == 1
    assert reg.get("  std ") == 1
    assert reg.get("Plain") == 1
    assert reg.get("pgd-at") == 2
    assert reg.canonical("PLAIN") == "standard"
    assert reg.canonical("PGD-AT") == "pgd-at"


def test_registry_entry_names_len_iter_contains():
    reg = _registry()
    entry = reg.entry("std")
    assert entry == Entry("standard", 1, "plain cross-entropy", ("std", "plain"))
    assert reg.names() == ["standard", "pgd-at", "trades"]
    assert len(reg) == 3
    assert [e.obj for e in reg] == [1, 2, 3]
    assert "Std" in reg and "trades" in reg
    assert "nope" not in reg
    assert 1 not in reg
    assert None not in reg


def test_registry_iteration_is_a_snapshot():
    reg = _registry()
    it = iter(reg)
    reg.add("later", 4)
    assert [e.name for e in it] == ["standard", "pgd-at", "trades"]


def test_registry_unknown_name_suggests_close_matches():
    reg = _registry()
    with pytest.raises(
        ValueError,
        match=r"unknown recipe 'standart'; did you mean 'standard'\? "
        r"\(known: pgd-at, standard, trades\)",
    ):
        reg.get("standart")


def test_registry_unknown_name_without_close_match():
    reg = _registry()
    with pytest.raises(InputError) as info:
        reg.entry("zzzzzz")
    msg = str(info.value)
    assert msg == "unknown recipe 'zzzzzz' (known: pgd-at, standard, trades)"


def test_registry_suggests_aliases_too():
    reg = _registry()
    with pytest.raises(ValueError, match=r"did you mean .*'plain'"):
        reg.get("plaim")


@pytest.mark.parametrize(
    ("name", "aliases", "taken"),
    [
        ("standard", (), "standard"),
        ("Standard", (), "standard"),
        ("other", ("std",), "std"),
        ("other", ("STD",), "std"),
        ("std", (), "std"),
        ("other", ("trades",), "trades"),
        ("other", ("TRADES",), "trades"),
    ],
)
def test_registry_refuses_duplicates(name, aliases, taken):
    reg = _registry()
    with pytest.raises(ValueError, match=rf"recipe name '{taken}' is already registered"):
        reg.add(name, 9, aliases=aliases)
    # a refused registration leaves the registry unchanged
    assert reg.names() == ["standard", "pgd-at", "trades"]
    assert reg.get("std") == 1 and reg.get("trades") == 3


def test_registry_decorator_returns_object():
    reg: Registry[object] = Registry("attack")

    @reg.register("fgsm", summary="one step", aliases=("FastGrad",))
    def fgsm() -> str:
        return "ok"

    assert fgsm() == "ok"
    assert reg.get("fastgrad") is fgsm
    assert reg.entry("fgsm").summary == "one step"


# ---------------------------------------------------------------------------- seeding


@pytest.mark.parametrize("seed", [0, 1, 2**63 - 1])
def test_check_seed_accepts(seed):
    assert check_seed(seed) == seed


@pytest.mark.parametrize(
    ("seed", "pattern"),
    [
        (True, r"seed must be an int, got bool"),
        (1.0, r"seed must be an int, got float"),
        ("3", r"seed must be an int, got str"),
        (None, r"seed must be an int, got NoneType"),
        (np.int64(3), r"seed must be an int, got int64"),
        (-1, r"seed=-1 is out of range"),
        (2**63, r"seed=9223372036854775808 is out of range"),
    ],
)
def test_check_seed_rejects(seed, pattern):
    with pytest.raises(ValueError, match=pattern):
        check_seed(seed)


def test_check_seed_name_in_message():
    with pytest.raises(ValueError, match=r"^data_seed must be an int.*data_seed=0"):
        check_seed(0.5, name="data_seed")


def test_make_generator_is_deterministic_and_isolated():
    torch.manual_seed(123)
    global_before = torch.rand(3)
    torch.manual_seed(123)
    a = torch.rand(5, generator=make_generator(7))
    b = torch.rand(5, generator=make_generator(7))
    c = torch.rand(5, generator=make_generator(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the global RNG was not touched
    assert torch.equal(torch.rand(3), global_before)
    gen = make_generator(0, device="cpu")
    assert gen.device == torch.device("cpu")
    assert gen.initial_seed() == 0
    with pytest.raises(ValueError, match="out of range"):
        make_generator(-5)


def test_derive_seed_matches_definition():
    text = "\x1f".join(["0", repr("fog"), repr(3)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    expected = int.from_bytes(digest[:8], "little") & (2**63 - 1)
    assert derive_seed(0, "fog", 3) == expected


def test_derive_seed_depends_on_every_input():
    base = derive_seed(0, "fog", 3)
    assert derive_seed(0, "fog", 3) == base
    others = {
        derive_seed(1, "fog", 3),
        derive_seed(0, "fog", 4),
        derive_seed(0, "snow", 3),
        derive_seed(0, "fog", "3"),  # str vs int keys differ
        derive_seed(0, 3, "fog"),  # order matters
        derive_seed(0, "fog"),
        derive_seed(0),
    }
    assert base not in others
    assert len(others) == 7
    with pytest.raises(ValueError, match="seed must be an int"):
        derive_seed(1.5, "x")  # type: ignore[arg-type]


@settings(max_examples=50, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**63 - 1), key=st.text(max_size=8), idx=st.integers(-5, 5))
def test_derive_seed_is_a_valid_seed(seed, key, idx):
    child = derive_seed(seed, key, idx)
    assert check_seed(child) == child
    assert derive_seed(seed, key, idx) == child


# ---------------------------------------------------------------------------- stats


def _clopper_pearson(k: int, n: int, level: float) -> tuple[float, float]:
    alpha = 1 - level
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


_CASES = [
    (k, n)
    for n in (1, 2, 3, 10, 57, 100, 1000, 10000)
    for k in sorted({0, 1, n // 3, n // 2, n - 1, n})
]


@pytest.mark.parametrize(("k", "n"), _CASES)
@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.99])
def test_binomial_ci_matches_scipy_clopper_pearson(k, n, level):
    lo, hi = binomial_ci(k, n, level)
    elo, ehi = _clopper_pearson(k, n, level)
    assert lo == pytest.approx(elo, abs=1e-9)
    assert hi == pytest.approx(ehi, abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_binomial_ci_edges_are_exact():
    assert binomial_ci(0, 50)[0] == 0.0
    assert binomial_ci(50, 50)[1] == 1.0
    # closed forms: k = 0 gives upper = 1 - (alpha/2)^(1/n); k = n gives lower = (alpha/2)^(1/n)
    assert binomial_ci(0, 50)[1] == pytest.approx(1 - 0.025 ** (1 / 50), abs=1e-12)
    assert binomial_ci(50, 50)[0] == pytest.approx(0.025 ** (1 / 50), abs=1e-12)


def test_binomial_ci_docstring_value_and_monotonic_in_level():
    lo, hi = binomial_ci(90, 100)
    assert (round(lo, 3), round(hi, 3)) == (0.824, 0.951)
    lo99, hi99 = binomial_ci(90, 100, level=0.99)
    assert lo99 < lo and hi99 > hi


def test_binomial_ci_symmetry():
    lo, hi = binomial_ci(17, 60)
    lo2, hi2 = binomial_ci(43, 60)
    assert lo == pytest.approx(1 - hi2, abs=1e-12)
    assert hi == pytest.approx(1 - lo2, abs=1e-12)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        ((0, 0), r"0 <= successes <= n and n > 0, got 0/0"),
        ((5, 4), r"got 5/4"),
        ((-1, 4), r"got -1/4"),
        ((1, -3), r"got 1/-3"),
        ((1, 4, 0.0), r"level must be in \(0, 1\), got 0.0"),
        ((1, 4, 1.0), r"level must be in \(0, 1\), got 1.0"),
        ((1, 4, 95), r"level must be in \(0, 1\), got 95"),
    ],
)
def test_binomial_ci_rejects_bad_arguments(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        binomial_ci(*args)


# ---------------------------------------------------------------------------- results


@dataclasses.dataclass
class Inner:
    values: torch.Tensor
    score: float


@dataclasses.dataclass
class Outcome(Result):
    name: str
    accuracy: float
    per_class: np.ndarray
    counts: dict[int, int]
    interval: tuple[float, float]
    inner: Inner
    missing: float = float("nan")


def _outcome() -> Outcome:
    return Outcome(
        name="fog",
        accuracy=np.float32(0.5),  # type: ignore[arg-type]
        per_class=np.array([0.25, np.inf]),
        counts={3: 4, 1: 2},
        interval=(0.1, 0.9),
        inner=Inner(torch.tensor([[1, 2], [3, 4]]), float("-inf")),
    )


def test_to_jsonable_converts_everything():
    assert to_jsonable({"a": torch.tensor([1, 2]), "b": (0.5, float("nan"))}) == {
        "a": [1, 2],
        "b": [0.5, None],
    }
    assert to_jsonable(np.int64(7)) == 7 and type(to_jsonable(np.int64(7))) is int
    assert type(to_jsonable(np.float64(0.25))) is float
    assert to_jsonable(np.float64("nan")) is None
    assert to_jsonable(torch.tensor(float("inf"))) is None
    assert to_jsonable(torch.tensor([1.0, float("nan")], requires_grad=True)) == [1.0, None]
    assert to_jsonable(np.array([[True, False]])) == [[True, False]]
    assert to_jsonable("text") == "text"
    assert to_jsonable(None) is None
    assert to_jsonable(Inner) is Inner  # a dataclass *type* is left alone


def test_result_to_dict_and_strict_json():
    out = _outcome()
    d = out.to_dict()
    assert d == {
        "name": "fog",
        "accuracy": 0.5,
        "per_class": [0.25, None],
        "counts": {"3": 4, "1": 2},
        "interval": [0.1, 0.9],
        "inner": {"values": [[1, 2], [3, 4]], "score": None},
        "missing": None,
    }

    def no_constants(token: str) -> float:
        raise AssertionError(f"non-strict JSON constant {token}")

    parsed = json.loads(out.to_json(sort_keys=True), parse_constant=no_constants)
    assert parsed == d
    assert out.to_json(indent=2).startswith("{\n  ")
    assert math.isnan(out.missing)  # the result itself is not modified
