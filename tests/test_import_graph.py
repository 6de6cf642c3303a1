"""The import graph of ``robustcv/``: no cycles, and each layer imports only the layers below it.

Every module is parsed with :mod:`ast` (nothing is imported). An import anywhere in a module
counts, at any nesting level: inside functions, ``if TYPE_CHECKING:`` blocks and ``try``.
Edges are what Python resolves:

* ``import robustcv.a.b`` and ``from robustcv.a.b import name`` import the module
  ``robustcv.a.b`` (a package means its ``__init__``);
* ``from robustcv.a import b`` imports the module ``robustcv.a.b`` when ``b`` is one, else
  ``robustcv.a`` (its ``__init__``), which defines ``b``;
* relative imports are resolved against the importing module's package.

Importing ``robustcv.a.b`` also runs ``robustcv/a/__init__.py`` first, but that is not counted:
a package's ``__init__`` importing its own submodules is normal, and counting the implicit
parent import would make every such package a cycle. See ``docs/architecture.md`` for the
layers.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "robustcv"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("core",),
    ("data",),
    ("attacks", "corruptions", "diagnostics", "explanations", "models", "probes"),
    ("training",),
    ("audit",),
    ("report",),
    ("leaderboard",),
    ("cli",),
)
"""The layers, lowest first; a module may import its own package and lower layers (not the
other packages of its own layer).

The top-level package (``robustcv/__init__.py``, the public facade) and ``__main__`` are above
them all, and nothing inside ``robustcv`` may import the facade except the CLI."""

RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}
TOP = len(LAYERS)

"""Subpackages being rewritten: their violations are expected failures for now."""

DATA_MUST_NOT_IMPORT = (
    "corruptions",
    "attacks",
    "diagnostics",
    "training",
    "audit",
    "report",
    "cli",
)
REPORT_MUST_NOT_IMPORT = (
    "robustcv.attacks",
    "robustcv.corruptions",
    "robustcv.models",
    "robustcv.training",
    "robustcv.data",
    "robustcv.diagnostics",
    "robustcv.audit.engine",
    "robustcv.audit.executor",
)

KNOWN_UPWARD: Mapping[tuple[str, str], str] = {
    ("robustcv.models.zoo", "robustcv.training.loop"): (
        "zoo_held_out needs training's split_indices; it moves to core with the training rewrite"
    ),
}
"""Layer-order exceptions outside audit/report, each with the reason and the plan."""


@dataclass(frozen=True)
class Module:
    """One module of the package: its dotted name, file and whether it is a package."""

    name: str
    path: Path
    is_package: bool


def discover(root: Path = PACKAGE) -> dict[str, Module]:
    """Every module under ``root``, by dotted name (``robustcv.data`` is its ``__init__``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        out[".".join(parts)] = Module(".".join(parts), path, is_package)
    return out


def _nearest(name: str, modules: Mapping[str, Module]) -> str | None:
    """``name`` if it is a module, else its closest enclosing package that is one."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: Module, modules: Mapping[str, Module]) -> set[str]:
    """The ``robustcv`` modules that ``module`` imports, anywhere in its source."""
    top = module.name.split(".")[0]
    tree = ast.parse(module.path.read_text(encoding="utf-8"), str(module.path))
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(
                _nearest(alias.name, modules)
                for alias in node.names
                if alias.name.split(".")[0] == top
            )
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.name.split(".")
                if not module.is_package:
                    package = package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            if base.split(".")[0] != top:
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else _nearest(base, modules))
    return {m for m in found if m is not None and m != module.name}


@cache
def _modules() -> dict[str, Module]:
    return discover()


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """``module -> modules it imports`` for the whole package."""
    modules = discover()
    return {name: frozenset(imports_of(mod, modules)) for name, mod in modules.items()}


def strongly_connected(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def shortest_cycle(graph: Mapping[str, Iterable[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the first module of a component, as a closed path."""
    members = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(set(graph.get(v, ())) & members):
                if w == start:
                    chain = [v]
                    while chain[-1] != start:
                        chain.append(parents[chain[-1]])
                    return [*reversed(chain), start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{component} is not a cycle")  # pragma: no cover


def count_cycles(graph: Mapping[str, Iterable[str]], limit: int = 100_000) -> int:
    """The number of elementary cycles (each counted once), up to ``limit``."""
    order = sorted(graph)
    rank = {v: i for i, v in enumerate(order)}
    total = 0
    for s in order:
        # cycles whose smallest module is s: DFS over modules ranked above s
        stack = [(s, iter(sorted(w for w in graph[s] if rank.get(w, -1) >= rank[s])))]
        on_path = {s}
        while stack and total < limit:
            v, it = stack[-1]
            w = next(it, None)
            if w is None:
                stack.pop()
                on_path.discard(v)
            elif w == s:
                total += 1
            elif w not in on_path:
                on_path.add(w)
                stack.append((w, iter(sorted(u for u in graph[w] if rank.get(u, -1) >= rank[s]))))
    return total


def as_path(name: str) -> str:
    """``robustcv.data.loading`` -> ``robustcv/data/loading.py`` (packages: ``__init__.py``)."""
    mod = _modules().get(name)
    return mod.path.relative_to(ROOT).as_posix() if mod else name.replace(".", "/") + ".py"


def describe(graph: Mapping[str, Iterable[str]], components: list[list[str]]) -> str:
    lines = []
    for comp in components:
        cycle = shortest_cycle(graph, comp)
        lines.append(
            f"- {len(comp)} modules tangled, e.g. " + " -> ".join(as_path(m) for m in cycle)
        )
    return "\n".join(lines)


def _in(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def layer_rank(name: str) -> int:
    """The layer of a module (``TOP`` for the facade and ``__main__``)."""
    parts = name.split(".")
    return RANK.get(parts[1], TOP) if len(parts) > 1 else TOP


# ----------------------------------------------------------------------------- the helpers work


def test_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    pkg = tmp_path / "robustcv"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from .b import f\n")
    (pkg / "a" / "b.py").write_text("def f():\n    from robustcv.a import c\n")
    (pkg / "a" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import robustcv.a.b\n"
        "from .. import a\nfrom robustcv.a import f\n"
    )
    modules = discover(pkg)
    assert set(modules) == {"robustcv", "robustcv.a", "robustcv.a.b", "robustcv.a.c"}
    graph = {name: imports_of(mod, modules) for name, mod in modules.items()}
    assert graph["robustcv.a"] == {"robustcv.a.b"}  # relative import from a package
    assert graph["robustcv.a.b"] == {"robustcv.a.c"}  # inside a function; c is a module
    assert graph["robustcv.a.c"] == {"robustcv.a.b", "robustcv.a"}  # TYPE_CHECKING; a name
    assert strongly_connected(graph) == [["robustcv.a", "robustcv.a.b", "robustcv.a.c"]]
    assert count_cycles(graph) == 2  # b -> c -> b and a -> b -> c -> a
    assert shortest_cycle(graph, ["robustcv.a.b", "robustcv.a.c"]) == [
        "robustcv.a.b",
        "robustcv.a.c",
        "robustcv.a.b",
    ]


def test_cycle_report_names_files() -> None:
    graph = {"robustcv.data.loading": {"robustcv.data.corrupted"},
             "robustcv.data.corrupted": {"robustcv.data.loading"}}  # fmt: skip
    text = describe(graph, strongly_connected(graph))
    expected = (
        "robustcv/data/corrupted.py -> robustcv/data/loading.py -> robustcv/data/corrupted.py"
    )
    assert expected in text


def test_layer_rules_catch_violations() -> None:
    graph = {
        "robustcv.data.x": {"robustcv.corruptions.y", "robustcv.core.z"},
        "robustcv.corruptions.y": {"robustcv.diagnostics.w", "robustcv.data.x"},
        "robustcv.models.zoo": {"robustcv.training.loop"},  # a listed exception
        "robustcv.training.t": {"robustcv"},
        "robustcv.cli.c": {"robustcv", "robustcv.report.r"},
    }
    assert _upward(graph) == [
        "robustcv/corruptions/y.py imports robustcv.diagnostics.w",  # same layer, other package
        "robustcv/data/x.py imports robustcv.corruptions.y",  # a higher layer
        "robustcv/training/t.py imports robustcv",  # the facade
    ]


# ----------------------------------------------------------------------------- the rules


def test_print_cycle_count() -> None:
    graph = import_graph()
    components = strongly_connected(graph)
    print(
        f"\nimport graph: {len(graph)} modules, {count_cycles(graph)} elementary cycles in "
        f"{len(components)} tangle(s)\n{describe(graph, components)}"
    )


def test_no_cycles_at_all() -> None:
    graph = import_graph()
    components = strongly_connected(graph)
    assert not components, "import cycles:\n" + describe(graph, components)


def test_data_imports_no_higher_layer() -> None:
    graph = import_graph()
    banned = tuple(f"robustcv.{name}" for name in DATA_MUST_NOT_IMPORT)
    bad = sorted(
        f"{as_path(v)} imports {w}"
        for v, ws in graph.items()
        if _in(v, ("robustcv.data",))
        for w in ws
        if _in(w, banned) or w == "robustcv"
    )
    assert not bad, "robustcv/data/ may import only core and itself:\n" + "\n".join(bad)


def test_report_reads_results_only() -> None:
    graph = import_graph()
    bad = sorted(
        f"{as_path(v)} imports {w}"
        for v, ws in graph.items()
        if _in(v, ("robustcv.report",))
        for w in ws
        if _in(w, REPORT_MUST_NOT_IMPORT) or w == "robustcv"
    )
    assert not bad, "robustcv/report/ renders results, it runs nothing:\n" + "\n".join(bad)


def _upward(graph: Mapping[str, Iterable[str]]) -> list[str]:
    out = []
    for v, ws in graph.items():
        for w in ws:
            if w == "robustcv":  # the facade: only the command line may import it
                bad = not _in(v, ("robustcv.cli", "robustcv.__main__"))
            else:  # a higher layer, or another package of the same layer
                bad = layer_rank(w) > layer_rank(v) or (
                    layer_rank(w) == layer_rank(v) and w.split(".")[:2] != v.split(".")[:2]
                )
            if bad and (v, w) not in KNOWN_UPWARD:
                out.append(f"{as_path(v)} imports {w}")
    return sorted(out)


def test_layers_import_downwards_everywhere() -> None:
    bad = _upward(import_graph())
    assert not bad, "imports against the layer order (docs/architecture.md):\n" + "\n".join(bad)


def test_known_exceptions_are_still_needed() -> None:
    graph = import_graph()
    stale = [f"{v} -> {w}" for v, w in KNOWN_UPWARD if w not in graph.get(v, ())]
    assert not stale, f"remove these from KNOWN_UPWARD, the imports are gone: {stale}"


def test_every_subpackage_has_a_layer() -> None:
    packages = sorted(
        p.parent.name for p in PACKAGE.glob("*/__init__.py") if not p.parent.name.startswith("_")
    )
    missing = [p for p in packages if p not in RANK]
    assert not missing, f"add {missing} to LAYERS here and to docs/architecture.md"
