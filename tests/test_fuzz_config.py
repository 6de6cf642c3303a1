"""Property-based fuzzing of what a user writes: audit configs, check thresholds, eps, results.

Random JSON-like structures, random bytes and random strings go to the parsers; the only
exception allowed out is :class:`robustcv.core.errors.InputError`, and nothing may hang (each
example runs under an alarm and hypothesis's deadline). Bounded so the file stays well under a
minute on 2 cores.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustcv.audit.checks import all_checks, parse_threshold
from robustcv.audit.config import _TOP_LEVEL, AuditConfig, load_config_file, parse_eps
from robustcv.audit.registry import SUITES
from robustcv.audit.schema import load_results
from robustcv.core.errors import InputError

FUZZ = settings(
    max_examples=100,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)
"""~100 examples per property, each under 2 s; derandomized so CI runs are reproducible."""

HANG_SECONDS = 10


@contextmanager
def no_hang(seconds: int = HANG_SECONDS) -> Iterator[None]:
    """Fail (instead of hanging CI) when the body runs longer than ``seconds``."""

    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def only_input_errors(call: Callable[[], Any]) -> None:
    """Run ``call``: success or :class:`InputError` (with a message) are the only outcomes."""
    with no_hang():
        try:
            call()
        except InputError as err:
            assert str(err).strip(), "an InputError without a message"


# ----------------------------------------------------------------------------- strategies

WORDS = st.sampled_from(
    ["linf", "l2", "inf", "fast", "full", "clean", "ood", "all", "processes", "in-process",
     "fog", "benchmark", "odin", "msp", "auto", "0.1", "1-3", "zoo:fmnist-cnn", "npz:x.npz",
     "derived:inverted", "0.5@linf:0.1", "", " ", "nan", "-1", "1e309"]
)  # fmt: skip
"""Strings a config really holds, so random structures reach past the first type check."""

LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    WORDS,
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(st.text(max_size=8), WORDS), inner, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON-like value (plus non-finite floats and big ints, which YAML can hold)."""

SECTION_FIELDS = {
    entry.name: sorted(f.name for f in dataclasses.fields(entry.obj.config_class))
    for entry in SUITES
}
TOP_KEYS = sorted(set(_TOP_LEVEL) - {"model", "data"})


def _section(name: str) -> st.SearchStrategy[Any]:
    keys = st.sampled_from([*SECTION_FIELDS[name], "bogus", "n-"])
    return st.dictionaries(keys, VALUES, max_size=4) | VALUES


CONFIGS = st.fixed_dictionaries(
    {"model": st.just("zoo:fmnist-cnn"), "data": st.just("fashion-mnist")},
    optional={
        **{key: VALUES for key in TOP_KEYS},
        **{name: _section(name) for name in SECTION_FIELDS},
    },
)
"""Configs with the real keys (so values reach every field's validation) and random values."""

YAML_TOKENS = st.sampled_from(
    ["limit", "seed", "adversarial", "corruption", "check", "eps", "suites", ":", ": ", "\n",
     "  ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!!python/name:os.system", "!!binary ",
     "'", '"', "#", "---", "...", "? ", "|", ">", "<<: ", "1", "2.5", "-3", ".inf", ".nan",
     "~", "yes", "9" * 40, "\t", "%YAML 1.1\n", "\\u0000", "é"]
)  # fmt: skip


def _text() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=40), st.lists(YAML_TOKENS, max_size=30).map("".join))


THRESHOLD_TOKENS = st.sampled_from(
    [*"0123456789.@:/*,-+eE _#", "linf", "l2", "inf", "nan", "after", "before", "noise",
     "odin", "msp", "fog", "uniform-noise", "1e309", "0.5"]
)  # fmt: skip
THRESHOLD_TEXT = st.one_of(
    st.text(max_size=30), st.lists(THRESHOLD_TOKENS, max_size=12).map("".join)
)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="robustcv-fuzz-") as name:
        yield Path(name)


# ----------------------------------------------------------------------------- properties


@FUZZ
@given(raw=VALUES)
def test_any_structure_as_config(raw: Any) -> None:
    """A config that is any JSON-like value (often not even a mapping)."""
    only_input_errors(lambda: AuditConfig.from_dict(raw))


@FUZZ
@given(raw=CONFIGS)
def test_configs_with_random_values(raw: dict[str, Any]) -> None:
    """Every top-level setting and every suite section's field with random values."""
    only_input_errors(lambda: AuditConfig.from_dict(raw))


@FUZZ
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".yaml", ".json", ".yml", ".cfg"]))
def test_random_bytes_as_config_file(folder: Path, data: bytes, suffix: str) -> None:
    path = folder / f"bytes{suffix}"
    path.write_bytes(data)
    only_input_errors(lambda: _load_and_build(path))


@FUZZ
@given(text=_text(), suffix=st.sampled_from([".yaml", ".json"]))
def test_random_text_as_config_file(folder: Path, text: str, suffix: str) -> None:
    """YAML-ish token soup (anchors, aliases, tags, merges, huge numbers) and random text."""
    path = folder / f"text{suffix}"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    only_input_errors(lambda: _load_and_build(path))


@FUZZ
@given(raw=CONFIGS)
def test_config_files_round_trip_or_refuse(folder: Path, raw: dict[str, Any]) -> None:
    """The same random configs written as JSON files (what --config reads)."""
    path = folder / "config.json"
    try:
        path.write_text(json.dumps(raw, allow_nan=True), encoding="utf-8")
    except ValueError:  # an int too long to write as text
        return
    only_input_errors(lambda: _load_and_build(path))


OVERRIDES = st.dictionaries(
    st.sampled_from(
        ["suites", "limit", "seed", "config", "ood_data", "fit_data", "strength", "eps", "split",
         "batch_size", "device", *SECTION_FIELDS]
    ),
    VALUES,
    max_size=4,
)  # fmt: skip


@FUZZ
@given(config=st.one_of(st.none(), CONFIGS, VALUES), overrides=OVERRIDES)
def test_resolve_config_with_random_overrides(config: Any, overrides: dict[str, Any]) -> None:
    """What run_audit(...) keywords and --config feed the engine's merge."""
    from robustcv.audit.engine import resolve_config

    overrides.pop("config", None)
    only_input_errors(
        lambda: resolve_config("zoo:fmnist-cnn", "fashion-mnist", config, **overrides)
    )


def _load_and_build(path: Path) -> None:
    data = load_config_file(path)
    assert isinstance(data, dict)
    AuditConfig.from_dict({"model": "zoo:fmnist-cnn", "data": "fashion-mnist", **data})


@FUZZ
@given(name=st.sampled_from(sorted(all_checks())), text=THRESHOLD_TEXT)
def test_random_threshold_text(name: str, text: str) -> None:
    """Every check name from every registered suite, with random text as its value."""
    only_input_errors(lambda: parse_threshold(name, text))


@FUZZ
@given(name=st.text(max_size=20), text=THRESHOLD_TEXT)
def test_random_threshold_names(name: str, text: str) -> None:
    only_input_errors(lambda: parse_threshold(name, text))


@FUZZ
@given(text=THRESHOLD_TEXT)
def test_random_eps_strings(text: str) -> None:
    only_input_errors(lambda: parse_eps(text))


@FUZZ
@given(value=VALUES)
def test_random_eps_values(value: Any) -> None:
    """parse_eps takes a string or a mapping; anything else is refused cleanly."""
    only_input_errors(lambda: parse_eps(value))


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), VALUES.map(lambda v: json.dumps(v).encode())))
def test_random_results_files(folder: Path, data: bytes) -> None:
    """What report, compare and check read first: a results.json holding anything."""
    (folder / "results.json").write_bytes(data)
    only_input_errors(lambda: load_results(folder))
