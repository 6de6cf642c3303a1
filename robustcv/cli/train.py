"""``robustcv train --recipe R --out DIR``: train a model, write its weights and model card."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from typing import Any

from robustcv.cli._common import EXIT_OK, emit, output_dir, path_arg, spec_arg
from robustcv.core.errors import InputError

__all__ = ["NAME", "add_parser", "run"]

NAME = "train"


def add_parser(
    sub: Any,
    *,
    common: Callable[..., None],
    model_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``train`` command to the ``robustcv`` sub-parsers."""
    from robustcv.training.recipes import RECIPES

    p = sub.add_parser(NAME, help="train a model with a recipe (writes weights + model card)")
    p.add_argument("--recipe", default="standard", choices=RECIPES.names())
    p.add_argument("--data", type=spec_arg, default="fashion-mnist")
    p.add_argument("--out", type=path_arg, required=True, help="output folder")
    p.add_argument("--arch", type=spec_arg, default="small-cnn")
    p.add_argument("--epochs", type=int, default=None, help="default: the recipe's")
    p.add_argument("--eps", type=float, default=0.1, help="L-inf radius (adversarial recipes)")
    p.add_argument("--steps", type=int, default=7, help="PGD steps for pgd-at")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--limit", type=int, default=None, help="train on only N images")
    p.add_argument(
        "--no-augment",
        action="store_true",
        help="train without random shifts and horizontal flips",
    )
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on only N test images")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a recipe hyperparameter, e.g. beta=6 (trades), sigma=0.1 (gaussian), "
        "corruption=fog (distortion); repeatable; see docs/training.md",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="ignore a checkpoint in --out and train from scratch (default: continue it)",
    )
    common(p, batch_size=128)


def run(args: argparse.Namespace) -> int:
    """Run ``robustcv train``; returns the exit code."""
    from robustcv.cli.explain import parse_param
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
        augment=not args.no_augment,
        params=dict(parse_param(item) for item in args.param),
    )
    cfg.validate()
    from robustcv.models.architectures import ARCHITECTURES

    try:
        ARCHITECTURES.canonical(args.arch)
    except InputError as err:
        raise InputError(f"--arch: {err}") from err
    output_dir(args.out, "--out")
    argv = getattr(args, "cli_argv", sys.argv[1:])
    command = "robustcv " + shlex.join(argv) if argv[:1] == ["train"] else None
    _, res = train(
        cfg,
        out=args.out,
        progress=not args.quiet,
        device=args.device,
        command=command,
        resume=not args.restart,
    )
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
    emit(args, res.to_dict(), text)
    return EXIT_OK
