"""Adaptive attacks on a randomised and two non-differentiable defences (issue 17 item 5).

Three defences around a zoo model (default ``zoo:fmnist-cnn``, Fashion-MNIST test images):

* **random resize + pad** (Xie et al. 2018, scaled to 28 px): each forward pass resizes the
  batch to r x r with r uniform in [22, 28] (bilinear) and pads it back to 28 x 28 at a random
  offset; the randomness comes from torch's global generator, as in most published defences.
* **JPEG** (quality 75) through Pillow: the forward pass leaves autograd, so plain gradient
  attacks have no gradient at all (robustcv refuses them and names ``bpda``).
* **bit depth** (3 bits) in torch: ``round`` passes zero gradients, so plain PGD only sees its
  random start.

For each: robust accuracy at L-inf ``--eps`` under plain PGD, PGD with EOT or BPDA (for the
randomised defence also robustcv's PGD + EOT at the reference's budget), and the in-house
reference (``reference_attack``: EOT or BPDA PGD with more samples, steps and restarts, written
here without robustcv's attack code). On the
randomised defence every row decides success by the majority of ``--eval`` forward passes
(``eot_eval``), so the rows differ only in the attack.

Usage::

    .venv/bin/python benchmarks/adaptive_defences.py --n 500
"""

from __future__ import annotations

import argparse
import io
import platform
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _sections import write_section
from PIL import Image
from torch import nn

import robustcv
from robustcv.attacks import attack
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.stats import binomial_ci

BEGIN, END = "<!-- adaptive:begin -->", "<!-- adaptive:end -->"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


class RandomResizePad(nn.Module):
    """Resize to r x r (r uniform in [low, size]) and zero-pad back at a random offset."""

    def __init__(self, low: int = 22, size: int = 28) -> None:
        super().__init__()
        self.low, self.size = low, size

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        r = int(torch.randint(self.low, self.size + 1, ()))
        small = F.interpolate(z, size=(r, r), mode="bilinear", align_corners=False)
        pad = self.size - r
        left, top = (int(v) for v in torch.randint(0, pad + 1, (2,)))
        return F.pad(small, (left, pad - left, top, pad - top))


class PillowJPEG(nn.Module):
    """JPEG compression through Pillow (outside autograd, as deployed defences are)."""

    def __init__(self, quality: int = 75) -> None:
        super().__init__()
        self.quality = quality

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = []
        for img in (z.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy():
            buf = io.BytesIO()
            Image.fromarray(img[0]).save(buf, format="JPEG", quality=self.quality)
            back = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32)
            out.append(torch.from_numpy(back / 255.0)[None])
        return torch.stack(out).to(z.device)


class BitDepth(nn.Module):
    """Quantise to ``bits`` bits per channel (zero gradient almost everywhere)."""

    def __init__(self, bits: int = 3) -> None:
        super().__init__()
        self.levels = 2**bits - 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.round(z * self.levels) / self.levels


class Classifier(nn.Module):
    """The wrapped zoo model (its normalisation included) as a module taking [0, 1] images."""

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.net = model.net
        self.model = model

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.logits(z, validate=False)


def reference_attack(
    defence: nn.Module,
    base: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    steps: int,
    samples: int,
    restarts: int,
    evals: int,
    straight_through: bool,
    seed: int,
) -> torch.Tensor:
    """The in-house reference, written here without robustcv's attack code.

    L-inf PGD on the cross-entropy summed over ``samples`` passes of the randomised forward (EOT
    of the loss), or through a straight-through defence (BPDA: the forward pass is the
    defence's, the backward pass the identity's). Sign steps of eps / 4, halved at 50% and 75%
    of the steps; no early stopping (a point that just crossed the boundary of a randomised
    model is pushed further in); ``restarts`` uniform random starts, and per sample the final
    iterate that the most of ``evals`` fresh passes misclassify. Returns the chosen points;
    the caller decides success with fresh passes again (choosing on the same passes would
    favour lucky draws).
    """
    g = torch.Generator().manual_seed(seed)
    classifier = Classifier(base)

    def forward(z: torch.Tensor) -> torch.Tensor:
        d = defence(z)
        if straight_through:
            d = z + (d - z).detach()
        return classifier(d)

    best = x.clone()
    best_wrong = torch.full((len(y),), -1)
    for _ in range(restarts):
        xa = (x + (torch.rand(x.shape, generator=g) * 2 - 1) * eps).clamp(0, 1)
        for t in range(steps):
            step = eps / 4 / (1 + (2 * t >= steps) + 2 * (4 * t >= 3 * steps))
            xa.requires_grad_(True)
            loss = sum(F.cross_entropy(forward(xa), y, reduction="sum") for _ in range(samples))
            (grad,) = torch.autograd.grad(loss, xa)
            xa = xa.detach() + step * grad.sign()
            xa = torch.minimum(torch.maximum(xa, x - eps), x + eps).clamp(0, 1)
        with torch.no_grad():
            wrong = sum((forward(xa).argmax(1) != y).long() for _ in range(evals))
        take = wrong > best_wrong
        best[take], best_wrong[take] = xa[take], wrong[take]
    return best


def majority_robust(
    model: Model, x: torch.Tensor, adv: torch.Tensor, y: torch.Tensor, r: int
) -> torch.Tensor:
    """Clean-correct and not broken, each by the majority of ``r`` fresh passes (ties: not)."""
    with torch.no_grad():
        right = sum((model.logits(x, validate=False).argmax(1) == y).long() for _ in range(r))
        wrong = sum((model.logits(adv, validate=False).argmax(1) != y).long() for _ in range(r))
    return (2 * right > r) & ~(2 * wrong > r)


def reference_row(
    defence: nn.Module,
    base: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    args: Any,
    *,
    evals: int,
    straight_through: bool = False,
) -> torch.Tensor:
    """Per sample, robust under the reference (clean-correct and not broken, by ``evals``)."""
    adv = reference_attack(
        defence,
        base,
        x,
        y,
        args.eps,
        steps=args.ref_steps,
        samples=1 if straight_through else args.ref_eot,
        restarts=args.ref_restarts,
        evals=evals,
        straight_through=straight_through,
        seed=1,
    )
    return majority_robust(defended(defence, base), x, adv, y, evals)


def defended(defence: nn.Module, base: Model) -> Model:
    net = nn.Sequential(OrderedDict(defence=defence, classifier=Classifier(base))).eval()
    return Model(net, num_classes=10, name=f"{type(defence).__name__}+{base.name}")


def robust(res: Any) -> tuple[float, int]:
    ok = res.clean_correct & ~res.success
    return float(ok.float().mean()), int(ok.sum())


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--model", default="zoo:fmnist-cnn")
    parser.add_argument("--eps", type=float, default=0.03)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--eot", type=int, default=10)
    parser.add_argument("--eval", type=int, default=5, help="eot_eval of every randomised row")
    parser.add_argument("--ref-eot", type=int, default=20)
    parser.add_argument("--ref-steps", type=int, default=100)
    parser.add_argument("--ref-restarts", type=int, default=3)
    parser.add_argument("--only", default="resize,jpeg,bits")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--no-write", action="store_true", help="do not update docs")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    only = {s.strip() for s in args.only.split(",")}

    base = robustcv.load_model(args.model)
    data = robustcv.load_dataset("fashion-mnist", split="test", limit=args.n)
    x, y = data.x, data.y
    eps, steps = args.eps, args.steps
    rows: list[tuple[str, str, str, str, str]] = []

    def add(defence: str, what: str, res: Any, seconds: float) -> None:
        acc, k = robust(res)
        lo, hi = binomial_ci(k, len(y))
        rows.append((defence, what, f"{acc:.3f}", f"[{lo:.3f}, {hi:.3f}]", f"{seconds:.0f} s"))
        print(rows[-1], flush=True)

    def add_mask(defence: str, what: str, ok: torch.Tensor, seconds: float | None) -> None:
        k = int(ok.sum())
        lo, hi = binomial_ci(k, len(y))
        took = "-" if seconds is None else f"{seconds:.0f} s"
        rows.append((defence, what, f"{k / len(y):.3f}", f"[{lo:.3f}, {hi:.3f}]", took))
        print(rows[-1], flush=True)

    if "resize" in only:
        model = defended(RandomResizePad(), base)
        ev = {"eot_eval": args.eval}
        torch.manual_seed(0)
        res, t = timed(lambda: attack(model, x, y, "pgd", eps=eps, steps=steps, seed=0, **ev))
        add("random resize + pad", f"PGD-{steps} (plain)", res, t)
        torch.manual_seed(0)
        res, t = timed(
            lambda: attack(model, x, y, "pgd", eps=eps, steps=steps, seed=0, eot=args.eot, **ev)
        )
        add("random resize + pad", f"PGD-{steps} + EOT {args.eot}", res, t)
        eot_ok = res.clean_correct & ~res.success
        torch.manual_seed(0)
        res, t = timed(
            lambda: attack(
                model,
                x,
                y,
                "pgd",
                eps=eps,
                steps=args.ref_steps,
                restarts=args.ref_restarts,
                eot=args.ref_eot,
                seed=0,
                **ev,
            )
        )
        add(
            "random resize + pad",
            f"PGD-{args.ref_steps} x {args.ref_restarts} restarts + EOT {args.ref_eot} "
            "(robustcv at the reference's budget)",
            res,
            t,
        )
        torch.manual_seed(0)
        ref_ok, t = timed(
            lambda: reference_row(RandomResizePad(), base, x, y, args, evals=args.eval)
        )
        add_mask(
            "random resize + pad",
            f"reference: EOT-PGD-{args.ref_steps} x {args.ref_restarts} restarts, "
            f"{args.ref_eot} samples",
            ref_ok,
            t,
        )
        add_mask("random resize + pad", "worst case of EOT and reference, per sample",
                 eot_ok & ref_ok, None)  # fmt: skip

    for key, label, defence in (
        ("jpeg", "JPEG q75 (Pillow)", PillowJPEG()),
        ("bits", "bit depth 3 (torch round)", BitDepth()),
    ):
        if key not in only:
            continue
        model = defended(defence, base)
        try:
            res, t = timed(lambda m=model: attack(m, x, y, "pgd", eps=eps, steps=steps, seed=0))
            add(label, f"PGD-{steps} (plain)", res, t)
        except InputError as err:
            assert "bpda" in str(err)
            rows.append(
                (label, f"PGD-{steps} (plain)", "refused: no gradient, names bpda", "-", "-")
            )
        bp: dict[str, Any] = {"bpda": {"defence": "identity"}}
        res, t = timed(
            lambda m=model, bp=bp: attack(m, x, y, "pgd", eps=eps, steps=steps, seed=0, **bp)
        )
        add(label, f"PGD-{steps} + BPDA (identity)", res, t)
        bpda_ok = res.clean_correct & ~res.success
        ref_ok, t = timed(
            lambda d=defence: reference_row(d, base, x, y, args, evals=1, straight_through=True)
        )
        what = f"reference: BPDA-PGD-{args.ref_steps} x {args.ref_restarts} restarts"
        add_mask(label, what, ref_ok, t)
        add_mask(label, "worst case of BPDA and reference, per sample", bpda_ok & ref_ok, None)

    clean = {}
    for key, defence in (
        ("resize", RandomResizePad()),
        ("jpeg", PillowJPEG()),
        ("bits", BitDepth()),
    ):
        if key in only:
            torch.manual_seed(0)
            clean[key] = float((defended(defence, base).predict(x) == y).float().mean())
    section = render(args, rows, clean, len(y))
    print(section)
    if not args.no_write:
        write_section(DOCS, section, BEGIN, END)


def render(args: Any, rows: list[tuple[str, ...]], clean: dict[str, float], n: int) -> str:
    lines = [
        f"## Adaptive attacks on randomised and non-differentiable defences ({args.model}, "
        f"{n} Fashion-MNIST test images, L-inf eps {args.eps:g})",
        "",
        f"Reproduce: `python benchmarks/adaptive_defences.py --n {n} --eps {args.eps:g}`  ",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}",
        "",
        "Clean accuracy of the defended model: "
        + ", ".join(f"{k} {v:.3f}" for k, v in clean.items())
        + f". Randomised rows decide success by the majority of {args.eval} passes.",
        "",
        "| defence | attack | robust accuracy | 95% CI | time |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {' | '.join(r)} |" for r in rows),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
