"""The public API snapshot (tests/api_surface.json) and the deprecation registry.

Regenerate the snapshot after an intended API change with
``python scripts/api_surface.py --write`` and commit it.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import sys
import types
import warnings
from pathlib import Path

import pytest

from robustcv.core import deprecation
from robustcv.core.deprecation import DEPRECATED, deprecated_getattr

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "api_surface.py"


def _load_script() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("_api_surface_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclass/typing lookups need it registered
    spec.loader.exec_module(module)
    return module


api = _load_script()


@pytest.fixture(scope="module")
def current() -> dict[str, list[str]]:
    """The surface as a fresh interpreter sees it (test imports cannot change it)."""
    return api.surface_in_subprocess(sys.executable)


def test_snapshot_is_current(current: dict[str, list[str]]) -> None:
    problems = api.check_surface(api.load_snapshot(), current, DEPRECATED)
    assert not problems, "\n\n".join(problems)


def test_snapshot_file_is_in_canonical_form() -> None:
    text = api.SNAPSHOT.read_text(encoding="utf-8")
    assert text == api.dumps(json.loads(text)), (
        "tests/api_surface.json is not in canonical form; " + api.WRITE_HINT
    )


def test_surface_covers_every_public_subpackage(current: dict[str, list[str]]) -> None:
    packages = sorted(
        p.parent.name
        for p in (ROOT / "robustcv").glob("*/__init__.py")
        if not p.parent.name.startswith("_")
    )
    assert sorted(current) == ["robustcv", *(f"robustcv.{name}" for name in packages)]
    assert "__version__" in current["robustcv"]
    assert "Model" in current["robustcv.core"]
    assert all(names == sorted(names) for names in current.values())


def test_check_flags_a_missing_name() -> None:
    recorded = {"robustcv": ["accuracy", "gone"], "robustcv.core": ["Model"]}
    current = {"robustcv": ["accuracy"], "robustcv.core": ["Model"]}
    problems = api.check_surface(recorded, current, {})
    assert len(problems) == 1
    assert "disappeared without a deprecation entry: robustcv.gone" in problems[0]
    assert "robustcv.core.deprecation.DEPRECATED" in problems[0]


def test_check_accepts_a_deprecated_name() -> None:
    recorded = {"robustcv": ["accuracy", "gone"], "robustcv.old": ["a", "b"]}
    current = {"robustcv": ["accuracy"]}
    registry = {"robustcv.gone": "use robustcv.accuracy, removed in 0.7", "robustcv.old": "x"}
    assert api.check_surface(recorded, current, registry) == []
    # a whole-module entry covers that module only
    assert api.check_surface(recorded, current, {"robustcv.old": "x"})


def test_check_flags_a_new_name_with_the_write_hint() -> None:
    recorded = {"robustcv": ["accuracy"]}
    current = {"robustcv": ["accuracy", "run_audit"], "robustcv.audit": ["AuditConfig"]}
    problems = api.check_surface(recorded, current, {})
    assert len(problems) == 1
    assert "robustcv.audit.AuditConfig, robustcv.run_audit" in problems[0]
    assert "run python scripts/api_surface.py --write and commit the change" in problems[0]


def test_check_passes_on_equal_surfaces() -> None:
    surface = {"robustcv": ["a", "b"], "robustcv.core": ["c"]}
    assert api.check_surface(surface, surface, {}) == []


def test_cli_check_fails_on_a_stale_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = {"robustcv": ["accuracy", "no_such_name"]}
    snapshot = tmp_path / "api_surface.json"
    snapshot.write_text(api.dumps(fake), encoding="utf-8")
    monkeypatch.setattr(api, "SNAPSHOT", snapshot)
    monkeypatch.setattr(api, "surface_in_subprocess", lambda: {"robustcv": ["accuracy", "new"]})
    monkeypatch.setattr(api, "ROOT", tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() prepends ROOT
    assert api.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "robustcv.no_such_name" in err and "robustcv.new" in err
    assert api.main(["--write"]) == 0
    assert json.loads(snapshot.read_text()) == {"robustcv": ["accuracy", "new"]}
    assert api.main(["--check"]) == 0


def test_public_names_fallback_without_all() -> None:
    import __future__

    mod = types.ModuleType("robustcv.fake")
    mod.__dict__.update(
        annotations=__future__.annotations,  # from __future__ import annotations: not public
        json=json,  # a module from elsewhere: not public here
        sub=types.ModuleType("robustcv.fake.sub"),  # its own submodule: public
        VALUE=1,
        _private=2,
        func=lambda: None,
    )
    assert api.public_names(mod) == ["VALUE", "func", "sub"]
    mod.__dict__["__all__"] = ["VALUE", "missing"]
    with pytest.raises(RuntimeError, match="missing"):
        api.public_names(mod)


def test_script_doctest() -> None:
    result = doctest.testmod(api, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_deprecated_getattr_warns_and_returns_replacement() -> None:
    registry = {"robustcv.fake.old_sqrt": "use math.sqrt, removed in 0.7"}
    getattr_ = deprecated_getattr("robustcv.fake", {"old_sqrt": "math:sqrt"}, registry=registry)
    with pytest.warns(
        DeprecationWarning, match=r"robustcv\.fake\.old_sqrt is deprecated: use math"
    ):
        replacement = getattr_("old_sqrt")
    import math

    assert replacement is math.sqrt
    with pytest.raises(AttributeError, match="no attribute 'other'"):
        getattr_("other")


def test_deprecated_getattr_as_module_getattr_points_at_the_caller() -> None:
    registry = {"demo_mod.old": "use demo_mod.new, removed in 9.9"}
    mod = types.ModuleType("demo_mod")
    mod.__dict__["__getattr__"] = deprecated_getattr(
        "demo_mod", {"old": "os.path:join"}, registry=registry
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = mod.old
    assert value.__name__ == "join"
    assert len(caught) == 1 and caught[0].filename == __file__
    assert "old" not in dir(mod)  # not cached: it stays out of dir() and the snapshot


def test_deprecated_getattr_requires_a_registry_entry() -> None:
    with pytest.raises(ValueError, match=r"DEPRECATED: robustcv\.fake\.old;"):
        deprecated_getattr("robustcv.fake", {"old": "math:sqrt"}, registry={})


def test_registry_entries_are_well_formed() -> None:
    for key, message in DEPRECATED.items():
        assert key.startswith("robustcv"), key
        assert "removed in" in message, f"{key}: say when it is removed ({message!r})"
    assert deprecation.DEPRECATED is DEPRECATED
