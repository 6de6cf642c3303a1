"""Record and check robustcv's public API surface (``tests/api_surface.json``).

The surface is, for ``robustcv`` and each public subpackage (found with :mod:`pkgutil`; private
``_`` modules and plain modules are skipped), its public names: ``__all__`` when the package
defines it, otherwise its non-underscore attributes except modules imported from elsewhere.

Usage::

    python scripts/api_surface.py --write   # (re)write tests/api_surface.json after an API change
    python scripts/api_surface.py --check   # exit 1 if the recorded and current surfaces differ
    python scripts/api_surface.py --print   # print the current surface as JSON

A recorded name may disappear only when it is listed in
``robustcv.core.deprecation.DEPRECATED`` (see that module for how to deprecate a name); new
names must be recorded. ``tests/test_api_surface.py`` runs the same check. The surface is always
computed by running this file in a fresh interpreter, so imports done by tests cannot change it.

Importing this file has no side effects (it does not import robustcv); the test loads it by path:

>>> problems = check_surface({"robustcv": ["a", "b"]}, {"robustcv": ["a", "c"]}, {})
>>> [p.splitlines()[0] for p in problems]  # doctest: +NORMALIZE_WHITESPACE
['public names disappeared without a deprecation entry: robustcv.b',
 'public names not recorded in tests/api_surface.json: robustcv.c']
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import subprocess
import sys
import types
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "api_surface.json"
PACKAGE = "robustcv"
WRITE_HINT = "run python scripts/api_surface.py --write and commit the change"

Surface = dict[str, list[str]]


def public_names(module: types.ModuleType) -> list[str]:
    """Return a module's public names, sorted.

    Args:
        module: an imported module or package.

    Returns:
        ``__all__`` if defined; otherwise every attribute not starting with ``_`` that is not a
        module from outside this package nor a ``from __future__`` feature.

    Raises:
        RuntimeError: ``__all__`` lists a name the module does not define.
    """
    listed = getattr(module, "__all__", None)
    if listed is not None:
        undefined = [name for name in listed if not hasattr(module, name)]
        if undefined:
            raise RuntimeError(f"{module.__name__}.__all__ lists undefined names: {undefined}")
        return sorted(set(listed))
    names = []
    for name, value in vars(module).items():
        if name.startswith("_"):
            continue
        if isinstance(value, types.ModuleType) and not value.__name__.startswith(
            module.__name__ + "."
        ):
            continue
        if type(value).__name__ == "_Feature":  # from __future__ import annotations
            continue
        names.append(name)
    return sorted(names)


def public_packages(package: str = PACKAGE) -> list[str]:
    """Import ``package`` and its public subpackages (direct children); return their names.

    Args:
        package: the top-level package.

    Returns:
        ``[package, package.sub, ...]``, sorted, each already imported.
    """
    root = importlib.import_module(package)
    names = [package]
    for info in pkgutil.iter_modules(root.__path__, prefix=package + "."):
        short = info.name.rsplit(".", 1)[1]
        if info.ispkg and not short.startswith("_"):
            importlib.import_module(info.name)
            names.append(info.name)
    return sorted(names)


def compute_surface(package: str = PACKAGE) -> Surface:
    """Compute the surface in this interpreter (run it in a fresh one; see module doc).

    All packages are imported first and read afterwards, so the result does not depend on
    the order in which they import each other.
    """
    packages = public_packages(package)
    return {name: public_names(sys.modules[name]) for name in packages}


def surface_in_subprocess(python: str = sys.executable) -> Surface:
    """Compute the surface in a fresh interpreter (``python this_file --print``)."""
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), "--print"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"computing the API surface failed:\n{proc.stderr}")
    surface: Surface = json.loads(proc.stdout)
    return surface


def dumps(surface: Mapping[str, list[str]]) -> str:
    """Serialise a surface stably: sorted keys and names, one name per line."""
    return json.dumps({k: sorted(v) for k, v in surface.items()}, indent=2, sort_keys=True) + "\n"


def load_snapshot(path: Path | None = None) -> Surface:
    """Read a recorded surface (default: ``tests/api_surface.json``)."""
    surface: Surface = json.loads((path or SNAPSHOT).read_text(encoding="utf-8"))
    return surface


def _qualified(surface: Mapping[str, list[str]]) -> set[str]:
    return {f"{module}.{name}" for module, names in surface.items() for name in names}


def check_surface(
    recorded: Mapping[str, list[str]],
    current: Mapping[str, list[str]],
    deprecated: Mapping[str, str],
) -> list[str]:
    """Compare a recorded surface with the current one.

    Args:
        recorded: the snapshot (``module -> names``).
        current: the surface now.
        deprecated: ``robustcv.core.deprecation.DEPRECATED`` (``"module.name"`` or ``"module"``
            -> message).

    Returns:
        One message per kind of problem (empty when all is well): recorded names that are gone
        without a deprecation entry, and current names that are not recorded.
    """
    old, new = _qualified(recorded), _qualified(current)
    gone = sorted(
        f"{module}.{name}"
        for module, names in recorded.items()
        for name in names
        if f"{module}.{name}" not in new
        and f"{module}.{name}" not in deprecated
        and module not in deprecated
    )
    added = sorted(new - old)
    problems = []
    if gone:
        problems.append(
            "public names disappeared without a deprecation entry: "
            + ", ".join(gone)
            + "\nRestore them, or keep them working through a deprecated alias and list them in "
            "robustcv.core.deprecation.DEPRECATED (see that module); when a removal is intended, "
            + WRITE_HINT
            + "."
        )
    if added:
        problems.append(
            "public names not recorded in tests/api_surface.json: "
            + ", ".join(added)
            + "\nIf they are meant to be public, "
            + WRITE_HINT
            + "; otherwise keep them out of __all__."
        )
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--write", action="store_true", help=f"(re)write {SNAPSHOT.relative_to(ROOT)}"
    )
    mode.add_argument("--check", action="store_true", help="compare with the snapshot; 1 if stale")
    mode.add_argument("--print", action="store_true", help="print the current surface as JSON")
    args = parser.parse_args(argv)

    if args.print:
        sys.path.insert(0, str(ROOT))
        sys.stdout.write(dumps(compute_surface()))
        return 0
    current = surface_in_subprocess()
    if args.write:
        if SNAPSHOT.exists():
            recorded = load_snapshot()
            gone = sorted(_qualified(recorded) - _qualified(current))
            added = sorted(_qualified(current) - _qualified(recorded))
            for label, items in (("removed", gone), ("added", added)):
                if items:
                    print(f"{label}: {', '.join(items)}")
        SNAPSHOT.write_text(dumps(current), encoding="utf-8")
        print(f"wrote {SNAPSHOT.relative_to(ROOT)} ({len(_qualified(current))} names)")
        return 0
    sys.path.insert(0, str(ROOT))
    from robustcv.core.deprecation import DEPRECATED

    problems = check_surface(load_snapshot(), current, DEPRECATED)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"{SNAPSHOT.relative_to(ROOT)} is up to date")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
