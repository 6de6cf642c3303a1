"""Shared fixtures. Tests that need the real Fashion-MNIST use the ``fmnist_test`` fixture (or the
``fmnist`` marker): they are skipped locally when the data is missing, but FAIL when CI=true.
Tests marked ``browser`` need headless Chromium and follow the same rule."""

from __future__ import annotations

import os

import pytest

from robustcv.core.errors import DataNotFoundError


def _require_fmnist() -> None:
    from robustcv.data.fashion_mnist import find_fashion_mnist

    try:
        find_fashion_mnist("test")
        find_fashion_mnist("train")
    except DataNotFoundError as err:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but Fashion-MNIST is missing: {err}")
        pytest.skip(f"Fashion-MNIST not installed: {err}")


@pytest.fixture(autouse=True)
def _fmnist_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("fmnist") is not None:
        _require_fmnist()


def find_chromium() -> str | None:
    """Path of a headless-capable Chromium (Debian's /usr/bin/chromium), or None."""
    import shutil

    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _require_browser() -> None:
    if find_chromium() is None:
        msg = "Chromium not installed (run scripts/get-browser.sh)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but {msg}")
        pytest.skip(msg)


@pytest.fixture(autouse=True)
def _browser_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("browser") is not None:
        _require_browser()


@pytest.fixture(scope="session")
def fmnist_test():  # type: ignore[no-untyped-def]
    """The real Fashion-MNIST test split (10k images)."""
    _require_fmnist()
    from robustcv.data import load_dataset

    return load_dataset("fashion-mnist", split="test")


@pytest.fixture(scope="session")
def tiny_audit(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A real tiny audit with every default suite (tests/tiny_audit.py): its folder.

    Tests must not modify the folder; copy it (``shutil.copytree``) to change results.
    """
    from tiny_audit import run_tiny_audit

    base = tmp_path_factory.mktemp("tiny-audit")
    res = run_tiny_audit(base)
    assert res.path is not None
    return res.path
