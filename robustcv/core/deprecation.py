"""Deprecated public names: the registry and the module ``__getattr__`` that keeps them working.

A public name (one recorded in ``tests/api_surface.json``) may only disappear after a release
in which it still works and warns. To retire ``robustcv.foo.old`` in favour of
``robustcv.foo.new``:

1. add ``"robustcv.foo.old": "use robustcv.foo.new, removed in 0.7"`` to :data:`DEPRECATED`;
2. drop ``old`` from the module and its ``__all__``, and keep it reachable with a module-level
   ``__getattr__ = deprecated_getattr(__name__, {"old": "robustcv.foo:new"})``;
3. run ``python scripts/api_surface.py --write`` and commit the change.

``tests/test_api_surface.py`` fails when a recorded name vanishes without an entry here. Once
the removal release comes, delete the alias and the entry together.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["DEPRECATED", "deprecated_getattr", "resolve"]

#: ``"module.name"`` -> what to use instead and when the old name goes, e.g.
#: ``"robustcv.foo.old": "use robustcv.foo.new, removed in 0.7"``. A bare module name as the key
#: (``"robustcv.foo"``) covers every name that module had.
DEPRECATED: dict[str, str] = {
    # robustcv.audit is the subpackage; the function is robustcv.run_audit
    "robustcv.audit.audit": "use robustcv.run_audit, removed in 0.6",
    # the -C writer moved up a layer: robustcv.data does not import robustcv.corruptions
    "robustcv.data.CorruptedWriteResult": (
        "use robustcv.corruptions.CorruptedWriteResult, removed in 0.6"
    ),
    "robustcv.data.write_corrupted": "use robustcv.corruptions.write_corrupted, removed in 0.6",
    "robustcv.data.corrupted.CorruptedWriteResult": (
        "use robustcv.corruptions.CorruptedWriteResult, removed in 0.6"
    ),
    "robustcv.data.corrupted.class_folder_names": (
        "use robustcv.corruptions.dataset.class_folder_names, removed in 0.6"
    ),
    "robustcv.data.corrupted.parse_severities": (
        "use robustcv.corruptions.selection.parse_severities, removed in 0.6"
    ),
    "robustcv.data.corrupted.select_corruptions": (
        "use robustcv.corruptions.select_corruptions, removed in 0.6"
    ),
    "robustcv.data.corrupted.to_uint8": "use robustcv.corruptions.dataset.to_uint8, removed in 0.6",
    "robustcv.data.corrupted.write_corrupted": (
        "use robustcv.corruptions.write_corrupted, removed in 0.6"
    ),
}


def resolve(target: str) -> Any:
    """Import and return the object an import path names.

    Args:
        target: ``"package.module:attribute"`` (the attribute may be dotted, ``"mod:Class.meth"``)
            or ``"package.module"`` for the module itself.

    Returns:
        The object.

    Raises:
        ImportError: the module cannot be imported.
        AttributeError: the module has no such attribute.

    Example:
        >>> resolve("math:sqrt")(16.0)
        4.0
        >>> resolve("os.path").__name__ in ("posixpath", "ntpath")
        True
    """
    module_name, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split(".") if attribute else ():
        obj = getattr(obj, part)
    return obj


def deprecated_getattr(
    module_name: str,
    mapping: Mapping[str, str],
    *,
    registry: Mapping[str, str] = DEPRECATED,
) -> Callable[[str], Any]:
    """Build a module-level ``__getattr__`` that serves deprecated names with a warning.

    Each access to an old name imports its replacement (lazily, so the alias cannot create an
    import cycle), emits a :class:`DeprecationWarning` that names the replacement and the
    removal release, and returns the replacement object. The result is not cached in the
    module, so every access warns and the name stays out of ``dir()`` and the API snapshot.

    Args:
        module_name: the module the ``__getattr__`` belongs to (pass ``__name__``).
        mapping: old name -> import path of the replacement, ``"package.module:attribute"``.
        registry: where each ``"module_name.old"`` must be listed with its message; the
            default is :data:`DEPRECATED` (tests pass their own).

    Returns:
        A function to assign to the module's ``__getattr__``. For names not in ``mapping`` it
        raises :class:`AttributeError` as a module normally does.

    Raises:
        ValueError: an old name is not listed in ``registry`` (so every alias is documented).

    Example:
        >>> import types, warnings
        >>> registry = {"demo.old_sqrt": "use math.sqrt, removed in 0.7"}
        >>> demo = types.ModuleType("demo")
        >>> demo.__getattr__ = deprecated_getattr(
        ...     "demo", {"old_sqrt": "math:sqrt"}, registry=registry
        ... )
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     demo.old_sqrt(9.0)
        3.0
        >>> caught[0].category.__name__, str(caught[0].message)
        ('DeprecationWarning', 'demo.old_sqrt is deprecated: use math.sqrt, removed in 0.7')
        >>> demo.missing
        Traceback (most recent call last):
        ...
        AttributeError: module 'demo' has no attribute 'missing'
    """
    unlisted = sorted(
        f"{module_name}.{old}" for old in mapping if f"{module_name}.{old}" not in registry
    )
    if unlisted:
        raise ValueError(
            f"deprecated aliases not listed in robustcv.core.deprecation.DEPRECATED: "
            f"{', '.join(unlisted)}; add each with what to use instead and the removal release"
        )
    targets = dict(mapping)

    def __getattr__(name: str) -> Any:
        if name not in targets:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        key = f"{module_name}.{name}"
        warnings.warn(f"{key} is deprecated: {registry[key]}", DeprecationWarning, stacklevel=2)
        return resolve(targets[name])

    return __getattr__
