"""``robustcv list [models|datasets|attacks|recipes|architectures|corruptions]``: what is there."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from robustcv.cli._common import EXIT_OK, emit, size_arg, table

__all__ = ["NAME", "SECTIONS", "add_parser", "run"]

NAME = "list"

SECTIONS: tuple[str, ...] = (
    "models",
    "datasets",
    "attacks",
    "recipes",
    "architectures",
    "corruptions",
    "methods",
)
"""What ``robustcv list`` can list (``all``, the default, lists every section)."""


def add_parser(
    sub: Any,
    *,
    common: Callable[..., None],
    model_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``list`` command to the ``robustcv`` sub-parsers."""
    from robustcv.corruptions.base import SPECS

    p = sub.add_parser(NAME, help="list models, datasets, recipes, architectures")
    p.add_argument("what", nargs="?", default="all", choices=["all", *SECTIONS])
    p.add_argument(
        "--spec",
        choices=list(SPECS),
        default=None,
        help="corruptions: print each one's parameters per severity under this spec",
    )
    p.add_argument(
        "--size",
        type=size_arg,
        default=(224, 224),
        help="corruptions: image size HxW for --spec auto (default 224x224)",
    )
    common(p)


def _models() -> list[dict[str, Any]]:
    from robustcv.models.zoo import ZOO, zoo_card

    rows = []
    for e in ZOO:
        card = zoo_card(e.name)
        rob = card.get("robust_accuracy") or {}
        rows.append(
            {
                "name": f"zoo:{e.name}",
                "summary": e.summary,
                "clean_accuracy": card["clean_accuracy"]["value"],
                "robust_accuracy": rob.get("value"),
                "eps": rob.get("eps"),
            }
        )
    return rows


def _attacks() -> list[dict[str, Any]]:
    from robustcv.attacks import ATTACKS

    return [
        {
            "name": e.name,
            "summary": f"[{e.obj.kind}; {', '.join(e.obj.norms)}] {e.summary}",
            "kind": e.obj.kind,
            "norms": list(e.obj.norms),
            "minimum_norm": e.obj.minimum_norm,
            "targeted": e.obj.targeted,
            "params": e.obj.params,
        }
        for e in ATTACKS
    ]


def _recipe_row(name: str, recipe: Any) -> dict[str, Any]:
    """A recipe's name, summary and hyperparameters with their defaults."""
    import dataclasses

    params = {f.name: f.default for f in dataclasses.fields(recipe.config_class)}
    text = ", ".join(
        f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in params.items()
    )
    return {
        "name": name,
        "summary": recipe.summary,
        "parameters": params,
        "parameters_text": text or "-",
        "default_epochs": recipe.default_epochs,
        "adversarial": recipe.adversarial,
    }


def run(args: argparse.Namespace) -> int:
    """Run ``robustcv list``; returns the exit code."""
    from robustcv.cli.corrupt import corruption_rows, corruption_text
    from robustcv.data.loading import DATASETS
    from robustcv.models.architectures import ARCHITECTURES
    from robustcv.training.recipes import RECIPES

    wanted = SECTIONS if args.what == "all" else (args.what,)
    payload: dict[str, list[dict[str, Any]]] = {}
    for section in wanted:
        if section == "models":
            payload[section] = _models()
        elif section == "datasets":
            payload[section] = [
                {"name": e.name, "aliases": list(e.aliases), "summary": e.summary} for e in DATASETS
            ]
        elif section == "attacks":
            payload[section] = _attacks()
        elif section == "recipes":
            payload[section] = [_recipe_row(e.name, e.obj) for e in RECIPES]
        elif section == "architectures":
            payload[section] = [{"name": e.name, "summary": e.summary} for e in ARCHITECTURES]
        elif section == "methods":
            from robustcv.explanations import method_rows

            payload[section] = method_rows()
        else:
            payload[section] = corruption_rows(args.spec, args.size)
    parts = []
    for section, rows in payload.items():
        if section == "models":
            body = table(
                [
                    [
                        r["name"],
                        f"{r['clean_accuracy']:.4f}",
                        "-"
                        if r["robust_accuracy"] is None
                        else f"{r['robust_accuracy']:.4f} @ eps {r['eps']}",
                        r["summary"],
                    ]
                    for r in rows
                ],
                ["model", "clean acc", "PGD-40 acc", "summary"],
            )
        elif section == "corruptions":
            body = corruption_text(rows)
        elif section == "recipes":
            body = table(
                [[r["name"], r["parameters_text"], r["summary"]] for r in rows],
                ["recipe", "parameters (defaults)", "summary"],
            )
        else:
            body = table([[r["name"], r["summary"]] for r in rows], [section[:-1], "summary"])
        parts.append(f"{section}:\n{body}")
    emit(args, payload, "\n\n".join(parts))
    return EXIT_OK
