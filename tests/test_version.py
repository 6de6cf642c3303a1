"""One version everywhere: robustcv.__version__ is the single source (issue 11, item 7)."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import pytest

import robustcv

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="Python 3.10 needs tomli to read pyproject.toml")

ROOT = Path(__file__).resolve().parents[1]


def changelog_version(text: str) -> str:
    """The first token after ``## `` in the first second-level heading."""
    for line in text.splitlines():
        if line.startswith("## "):
            return line[3:].split()[0]
    raise AssertionError("CHANGELOG.md has no '## ' heading")


def pyproject_version_ok(pyproject: dict, version: str) -> str | None:
    """None if pyproject agrees with ``version``, else why not."""
    project = pyproject["project"]
    if "version" in project:
        if project["version"] != version:
            return f"pyproject version {project['version']!r} != robustcv.__version__ {version!r}"
        return None
    if "version" not in project.get("dynamic", []):
        return "pyproject has neither a static version nor dynamic = ['version']"
    attr = pyproject.get("tool", {}).get("setuptools", {}).get("dynamic", {}).get("version", {})
    if attr != {"attr": "robustcv.__version__"}:
        return f"[tool.setuptools.dynamic] version is {attr!r}, not attr robustcv.__version__"
    return None


def test_version_is_pep440_release() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", robustcv.__version__), robustcv.__version__


def test_pyproject_takes_version_from_package() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject_version_ok(pyproject, robustcv.__version__) is None, pyproject_version_ok(
        pyproject, robustcv.__version__
    )


def test_pyproject_check_can_fail() -> None:
    version = "1.2.3"
    assert pyproject_version_ok({"project": {"version": "1.2.3"}}, version) is None
    assert "!=" in str(pyproject_version_ok({"project": {"version": "0.1.0"}}, version))
    assert pyproject_version_ok({"project": {}}, version) is not None
    wrong_attr = {
        "project": {"dynamic": ["version"]},
        "tool": {"setuptools": {"dynamic": {"version": {"attr": "robustcv.VERSION"}}}},
    }
    assert pyproject_version_ok(wrong_attr, version) is not None


def test_changelog_newest_heading_is_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert changelog_version(text) == robustcv.__version__


def test_changelog_parser_reads_first_heading() -> None:
    text = "# Changelog\n\nintro\n\n## 9.9.9 (x): y\n\n### sub\n\n## 0.1.0 old\n"
    assert changelog_version(text) == "9.9.9"
    with pytest.raises(AssertionError):
        changelog_version("# Changelog\n")


def test_installed_metadata_matches() -> None:
    try:
        installed = importlib.metadata.version("robustcv")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            "robustcv is not installed (pip install -e .), so it has no distribution metadata"
        )
    assert installed == robustcv.__version__, (
        f"installed metadata says {installed}, robustcv.__version__ is {robustcv.__version__}: "
        "reinstall with pip install -e ."
    )


def test_audit_stamps_the_version(tmp_path: Path) -> None:
    import numpy as np
    from torch import nn

    x = np.random.default_rng(0).integers(0, 256, (8, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "toy.npz", x=x, y=np.arange(8) % 2)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    res = robustcv.run_audit(
        net, f"npz:{tmp_path}/toy.npz", tmp_path / "a", suites="clean", progress=False
    )
    written = json.loads((tmp_path / "a" / "results.json").read_text(encoding="utf-8"))
    assert res.robustcv_version == written["robustcv_version"] == robustcv.__version__
