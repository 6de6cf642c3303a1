"""The ``robustcv`` command line: thin commands over the Python API.

Exit codes, the same for every command: 0 ok, 1 a check or threshold failed, 2 bad usage or
input (a one-line message, no traceback), 3 internal error.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from robustcv.core.errors import InputError, RobustcvError
from robustcv.core.results import to_jsonable

__all__ = ["EXIT_CHECK_FAILED", "EXIT_INTERNAL", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and a one-line message."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"robustcv: error: {message} (see '{self.prog} --help')\n")


def _common(p: argparse.ArgumentParser, *, batch_size: int = 256) -> None:
    g = p.add_argument_group("common options")
    g.add_argument("--seed", type=int, default=0, help="seed for every random choice (default 0)")
    g.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cpu)")
    g.add_argument(
        "--batch-size",
        type=int,
        default=batch_size,
        help=f"images per batch (default {batch_size})",
    )
    g.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    g.add_argument("--quiet", action="store_true", help="no progress bars or chatter")


_PRE_KEYS = ("mean", "std", "range")


def parse_preprocess(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``--preprocess`` values such as ``mean=0.5,0.4,std=0.2,0.2`` or ``range=0,255``.

    Example:
        >>> parse_preprocess(["mean=0.5,0.4,std=0.2,0.25", "range=0,255"])
        {'mean': [0.5, 0.4], 'std': [0.2, 0.25], 'input_range': (0.0, 255.0)}
    """
    out: dict[str, Any] = {}
    pattern = re.compile(r"(mean|std|range)=([^=]*?)(?=,(?:mean|std|range)=|$)")
    for item in items:
        matches = list(pattern.finditer(item))
        if not matches or "".join(m.group(0) for m in matches).replace(",", "") != item.replace(
            ",", ""
        ):
            raise InputError(
                f"cannot parse --preprocess '{item}'; use e.g. mean=0.485,0.456,0.406,"
                "std=0.229,0.224,0.225 or range=0,255"
            )
        for m in matches:
            try:
                values = [float(v) for v in m.group(2).split(",") if v.strip()]
            except ValueError as err:
                raise InputError(
                    f"--preprocess {m.group(1)} needs numbers, got '{m.group(2)}'"
                ) from err
            if not values:
                raise InputError(f"--preprocess {m.group(1)}= has no values")
            if m.group(1) == "range":
                if len(values) != 2:
                    raise InputError("--preprocess range needs two numbers, e.g. range=0,255")
                out["input_range"] = (values[0], values[1])
            else:
                out[m.group(1)] = values
    return out


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="zoo:NAME, model.onnx, model.pt, file.py:factory")
    p.add_argument(
        "--weights", default=None, help="weights for a factory (.safetensors or state_dict)"
    )
    p.add_argument(
        "--preprocess",
        action="append",
        default=[],
        metavar="KEY=V,...",
        help="preprocessing inside the model: mean=..,std=.. and/or range=0,255",
    )
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument(
        "--data",
        required=True,
        help="fashion-mnist, npz:F, idx:DIR, folder:DIR, cifar10:DIR, imagenet-c:DIR#fog/3, "
        "cifar-c:DIR#fog/3",
    )
    p.add_argument("--split", default="test")


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    from robustcv.data.loading import load_dataset
    from robustcv.models.loading import load_model

    pre = parse_preprocess(args.preprocess)
    model = load_model(
        args.model, weights=args.weights, num_classes=args.num_classes, device=args.device, **pre
    )
    data = load_dataset(args.data, split=args.split, limit=args.limit)
    return model, data


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``robustcv`` command."""
    parser = _Parser(
        prog="robustcv",
        description="Find how and where a computer-vision model breaks.",
        epilog="exit codes: 0 ok, 1 a check failed, 2 bad usage or input, 3 internal error",
    )
    from robustcv import __version__

    parser.add_argument("--version", action="version", version=f"robustcv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="list models, datasets, recipes, architectures")
    p.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=["all", "models", "datasets", "attacks", "recipes", "architectures", "corruptions"],
    )
    from robustcv.cli.corrupt import _size_arg
    from robustcv.corruptions.base import SPECS

    p.add_argument(
        "--spec",
        choices=list(SPECS),
        default=None,
        help="corruptions: print each one's parameters per severity under this spec",
    )
    p.add_argument(
        "--size",
        type=_size_arg,
        default=(224, 224),
        help="corruptions: image size HxW for --spec auto (default 224x224)",
    )
    _common(p)

    p = sub.add_parser("eval", help="clean accuracy of a model on a dataset")
    _model_args(p)
    p.add_argument("--limit", type=int, default=None, help="evaluate only N images")
    _common(p)

    p = sub.add_parser("attack", help="robust accuracy per eps under an attack ensemble")
    _model_args(p)
    p.add_argument("--limit", type=int, default=1000, help="attack the first N images (1000)")
    p.add_argument(
        "--norm", default="linf", help="linf, l2, l1 or l0 (l0: eps counts changed pixel values)"
    )
    p.add_argument("--eps", required=True, help="comma-separated budgets, e.g. 0.05,0.1,0.2")
    p.add_argument("--no-sanity", action="store_true", help="skip the gradient-masking checks")
    p.add_argument(
        "--attacks",
        default="default",
        help="'default' (APGD-CE + APGD-T) or a comma-separated list of attack names",
    )
    _common(p)

    from robustcv.training.recipes import RECIPES

    p = sub.add_parser("train", help="train a model with a recipe (writes weights + model card)")
    p.add_argument("--recipe", default="standard", choices=RECIPES.names())
    p.add_argument("--data", default="fashion-mnist")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--arch", default="small-cnn")
    p.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    p.add_argument("--eps", type=float, default=0.1, help="L-inf radius (adversarial recipes)")
    p.add_argument("--steps", type=int, default=7, help="PGD steps for pgd-at")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--limit", type=int, default=None, help="train on only N images")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on only N test images")
    _common(p, batch_size=128)

    p = sub.add_parser("data", help="dataset tools")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser)
    f = dsub.add_parser("fetch", help="download a dataset with checksums")
    f.add_argument("name", choices=["fashion-mnist"])
    f.add_argument("--dest", default=None, help="folder (default: ~/.cache/robustcv/NAME)")
    f.add_argument("--url", default=None, help="mirror base URL")
    _common(f)

    for module in _plugin_modules():
        module.add_parser(sub, common=_common, model_args=_model_args)
    return parser


_PLUGINS: tuple[str, ...] = ("corrupt", "audit", "compare", "check", "report")
"""Command modules in robustcv.cli; each has ``NAME``, ``add_parser(sub, *, common, model_args)``
and ``run(args) -> int``. Add a module name here to add a command."""


def _plugin_modules() -> list[Any]:
    import importlib

    return [importlib.import_module(f"robustcv.cli.{name}") for name in _PLUGINS]


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    if args.json:
        print(json.dumps(to_jsonable(payload), indent=2))
    else:
        print(text)


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _cmd_list(args: argparse.Namespace) -> int:
    from robustcv.data.loading import DATASETS
    from robustcv.models.architectures import ARCHITECTURES
    from robustcv.models.zoo import ZOO, zoo_card
    from robustcv.training.recipes import RECIPES

    payload: dict[str, list[dict[str, Any]]] = {}
    if args.what in ("all", "models"):
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
        payload["models"] = rows
    if args.what in ("all", "datasets"):
        payload["datasets"] = [
            {"name": e.name, "aliases": list(e.aliases), "summary": e.summary} for e in DATASETS
        ]
    if args.what in ("all", "attacks"):
        from robustcv.attacks import ATTACKS

        payload["attacks"] = [
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
    if args.what in ("all", "recipes"):
        payload["recipes"] = [{"name": e.name, "summary": e.summary} for e in RECIPES]
    if args.what in ("all", "architectures"):
        payload["architectures"] = [{"name": e.name, "summary": e.summary} for e in ARCHITECTURES]
    if args.what in ("all", "corruptions"):
        from robustcv.cli.corrupt import corruption_rows

        payload["corruptions"] = corruption_rows(args.spec, args.size)
    parts = []
    for section, rows in payload.items():
        if section == "models":
            body = _table(
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
            from robustcv.cli.corrupt import corruption_text

            body = corruption_text(rows)
        else:
            body = _table([[r["name"], r["summary"]] for r in rows], [section[:-1], "summary"])
        parts.append(f"{section}:\n{body}")
    _emit(args, payload, "\n\n".join(parts))
    return EXIT_OK


def _cmd_eval(args: argparse.Namespace) -> int:
    from robustcv.diagnostics.accuracy import accuracy

    model, data = _load(args)
    res = accuracy(model, data, batch_size=args.batch_size, progress=False if args.quiet else None)
    payload = {
        "model": args.model,
        "data": args.data,
        "split": args.split,
        **res.to_dict(),
        "classes": data.classes,
    }
    per_class = _table(
        [
            [str(c), data.classes[c] if c < len(data.classes) else str(c), f"{a:.4f}"]
            for c, a in sorted(res.per_class.items())
        ],
        ["class", "name", "accuracy"],
    )
    text = (
        f"{args.model} on {data.name}/{args.split} (N={res.n}): accuracy {res.accuracy:.4f} "
        f"(95% CI {res.ci95[0]:.4f}-{res.ci95[1]:.4f}), {res.seconds:.1f} s\n{per_class}"
    )
    _emit(args, payload, text)
    return EXIT_OK


def _cmd_attack(args: argparse.Namespace) -> int:
    from robustcv.attacks.ensemble import robust_accuracy

    try:
        budgets = [float(e) for e in args.eps.split(",") if e.strip()]
    except ValueError as err:
        raise InputError(f"--eps needs comma-separated numbers, got '{args.eps}'") from err
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1, got {args.limit}")
    model, data = _load(args)
    res = robust_accuracy(
        model,
        data.x,
        data.y,
        eps=budgets,
        norm=args.norm,
        attacks=args.attacks,
        seed=args.seed,
        sanity=not args.no_sanity,
    )
    rows = [
        [f"{e:g}", f"{a:.4f}", f"{lo:.4f}-{hi:.4f}"]
        for e, a, (lo, hi) in zip(res.eps, res.accuracy, res.ci95, strict=True)
    ]
    shares = ", ".join(f"{k} {v:.3f}" for k, v in res.share_broken_by.items())
    members = ", ".join(
        m["name"] + "(" + ", ".join(f"{k}={v}" for k, v in m.items() if k != "name") + ")"
        for m in res.attacks
    )
    text = (
        f"{args.model} on {data.name}/{args.split}, N={res.n}, {res.norm}, clean accuracy "
        f"{res.clean_accuracy:.4f}\nensemble: {members}\n"
        + _table(rows, ["eps", "robust acc", "95% CI"])
        + f"\nshare of samples broken first by: {shares}"
        + "\nmedian minimal perturbation: "
        + (
            "not measured (no minimum-norm attack in the ensemble, or none found)"
            if res.median_min_norm is None
            else f"{res.median_min_norm:.4g} ({res.norm})"
        )
        + f"\ncost: {res.forward_passes / res.n:.0f} forward and "
        f"{res.backward_passes / res.n:.0f} backward passes per sample, {res.seconds:.1f} s"
        + "\nsanity checks: "
        + (
            "all quiet"
            if not res.warnings
            else "".join(f"\n  ! {f.check}: {f.explanation}; {f.action}" for f in res.warnings)
        )
    )
    _emit(args, {"model": args.model, "data": args.data, **res.to_dict()}, text)
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from robustcv.training.loop import TrainConfig, train

    cfg = TrainConfig(
        recipe=args.recipe,
        arch=args.arch,
        data=args.data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        eps=args.eps,
        steps=args.steps,
        limit=args.limit,
        eval_limit=args.eval_limit,
    )
    argv = getattr(args, "cli_argv", sys.argv[1:])
    command = "robustcv " + shlex.join(argv) if argv[:1] == ["train"] else None
    _, res = train(cfg, out=args.out, progress=not args.quiet, device=args.device, command=command)
    rob = (
        ""
        if res.test_robust_accuracy is None
        else f", PGD-40 accuracy {res.test_robust_accuracy:.4f} at eps {cfg.eps}"
    )
    text = (
        f"trained {cfg.arch} with {cfg.recipe} in {res.train_seconds:.0f} s: test accuracy "
        f"{res.test_accuracy:.4f} (N={res.test_n}){rob}"
        f"{'; catastrophic overfitting detected' if res.catastrophic_overfitting else ''}\n"
        f"wrote {args.out}/model.safetensors and {args.out}/card.json"
    )
    _emit(args, res.to_dict(), text)
    return EXIT_OK


def _cmd_data(args: argparse.Namespace) -> int:
    from robustcv.data.fashion_mnist import FASHION_MNIST_URL, fetch_fashion_mnist

    if args.data_command != "fetch":
        raise InputError("use 'robustcv data fetch NAME'")
    folder = fetch_fashion_mnist(
        args.dest, base_url=args.url or FASHION_MNIST_URL, quiet=args.quiet
    )
    hint = "" if args.dest is None else f"; set ROBUSTCV_DATA={folder} to use it"
    _emit(args, {"name": args.name, "folder": str(folder)}, f"{args.name} is in {folder}{hint}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if args.command == "data" and getattr(args, "data_command", None) is None:
        print(
            "robustcv: error: 'data' needs an action, e.g. 'robustcv data fetch fashion-mnist'"
            " (see 'robustcv data --help')",
            file=sys.stderr,
        )
        return EXIT_USAGE
    args.cli_argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "list": _cmd_list,
        "eval": _cmd_eval,
        "attack": _cmd_attack,
        "train": _cmd_train,
        "data": _cmd_data,
    }
    commands.update({m.NAME: m.run for m in _plugin_modules()})
    try:
        if getattr(args, "batch_size", 1) < 1:
            raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
        return commands[args.command](args)
    except (RobustcvError, InputError) as err:
        print(f"robustcv: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("robustcv: interrupted", file=sys.stderr)
        return EXIT_INTERNAL
    except Exception:
        traceback.print_exc()
        print(
            "robustcv: internal error (a bug in robustcv - please report it with the "
            "traceback above)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
