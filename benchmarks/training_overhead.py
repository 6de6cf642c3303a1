"""Adversarial-training overhead (issue 18): an epoch of ``pgd-at`` / ``trades`` with k attack
steps against (k + 1) / (k + 2) bare forward+backward passes of the same batches.

The unit is one bare pass: forward, cross-entropy and backward to the parameters (no optimiser
step) of a training batch. A ``pgd-at`` step is the whole training step of the recipe (the
engine's PGD with k steps through :func:`robustcv.attacks.perturb`, then forward, backward and
the AdamW step); ``trades`` adds the clean reference pass and trains on clean + adversarial
images. Targets: ``pgd-at`` <= 1.05 (k + 1) bare passes,
``trades`` <= 1.05 (k + 2).

The network starts from a zoo model's weights (default ``fmnist-cnn-pgd-at``, falling back to
``fmnist-cnn-at``): the attack then meets a robust network as in the later epochs of training,
where early stopping saves little. Every configuration is timed ``--repeats`` times,
interleaved, and the best time counts (the machine is shared).

Usage::

    .venv/bin/python benchmarks/training_overhead.py
    .venv/bin/python benchmarks/training_overhead.py --out docs/benchmarks.md --json F.json
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _sections import write_section as write_marked_section
from torch import nn

from robustcv.core.seeding import make_generator
from robustcv.data.loading import load_dataset
from robustcv.models.zoo import ZOO, load_zoo_model
from robustcv.training import RECIPES, TrainStep, build_recipe_config

BEGIN, END = "<!-- training:begin -->", "<!-- training:end -->"


def _time(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(model_name: str, batch: int, batches: int, k: int, repeats: int) -> dict[str, Any]:
    base = load_zoo_model(model_name)
    data = load_dataset("fashion-mnist", split="train", limit=batch * batches)
    xs = data.x.split(batch)
    ys = data.y.split(batch)

    def fresh() -> tuple[Any, nn.Module, torch.optim.Optimizer]:
        model = copy.deepcopy(base)
        net = model.net
        return model, net, torch.optim.AdamW(net.parameters(), lr=1e-4)

    def bare() -> None:
        model, net, _ = fresh()
        net.train()
        for x, y in zip(xs, ys, strict=True):
            net.zero_grad(set_to_none=True)
            F.cross_entropy(net(model.preprocess(x)), y).backward()

    def recipe_epoch(name: str) -> Callable[[], None]:
        recipe = RECIPES.get(name)
        cfg = build_recipe_config(recipe, {"eps": 0.1, "steps": k})

        def run() -> None:
            model, net, opt = fresh()
            gen = make_generator(0)
            for x, y in zip(xs, ys, strict=True):
                out = recipe.step(TrainStep(model, net, nn.ModuleDict(), x, y, gen, 1), cfg)
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()

        return run

    runs = {"bare": bare, "pgd-at": recipe_epoch("pgd-at"), "trades": recipe_epoch("trades")}
    best = {name: float("inf") for name in runs}
    for fn in runs.values():  # warm-up: first calls pay lazy initialisation
        fn()
    for _ in range(repeats):
        for name, fn in runs.items():
            best[name] = min(best[name], _time(fn))
    per_pass = best["bare"]
    return {
        "model": model_name,
        "batch": batch,
        "batches": batches,
        "k": k,
        "bare_s": best["bare"],
        "pgd_at_s": best["pgd-at"],
        "trades_s": best["trades"],
        "pgd_at_ratio": best["pgd-at"] / ((k + 1) * per_pass),
        "trades_ratio": best["trades"] / ((k + 2) * per_pass),
    }


def table(rows: Sequence[dict[str, Any]], threads: int) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M')} on {platform.machine()}, {threads} torch "
        f"thread(s), torch {torch.__version__}; network {rows[0]['model']} (small-cnn), "
        "Fashion-MNIST training images, eps 0.1. Reproduce: "
        "`.venv/bin/python benchmarks/training_overhead.py`.",
        "",
        "| batch | k | bare pass (s / batch) | pgd-at step / (k+1) passes | trades step / "
        "(k+2) passes |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['batch']} | {r['k']} | {r['bare_s'] / r['batches']:.4f} | "
            f"**{r['pgd_at_ratio']:.2f}x** | **{r['trades_ratio']:.2f}x** |"
        )
    lines += [
        "",
        "Targets: pgd-at <= 1.05x, trades <= 1.05x. A bare pass is forward + cross-entropy + "
        "backward of one training batch; a recipe step includes everything (every attack "
        "pass through `robustcv.attacks.perturb`, TRADES' clean reference pass, the training "
        "forward/backward on the adversarial (TRADES: clean + adversarial) batch and the AdamW "
        "step). Early stopping makes pgd-at cheaper than k + 1 passes on the samples PGD breaks.",
    ]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace the text between the training markers of ``path`` (or append the section)."""
    write_marked_section(path, section, BEGIN, END)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="zoo model whose weights start the network")
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--sizes", default="32,128", help="batch sizes")
    p.add_argument("--k", type=int, default=7)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="markdown file to update")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    model = args.model or ("fmnist-cnn-pgd-at" if "fmnist-cnn-pgd-at" in ZOO else "fmnist-cnn-at")
    rows = [
        measure(model, int(b), args.batches, args.k, args.repeats) for b in args.sizes.split(",")
    ]
    text = table(rows, torch.get_num_threads())
    print(text)
    if args.out is not None:
        write_section(args.out, "## Adversarial training overhead\n\n" + text)
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
