"""``robustcv explain --model SPEC --data SPEC --method NAME --out DIR``: attribution maps.

Writes, for the first ``--limit`` images, ``DIR/NNNN.png`` (image, map, overlay; one colour
scale per figure, stated in its title: see :mod:`robustcv.explanations.plots`),
``DIR/maps.npz`` (the maps, images, targets, labels, predictions and target logits) and
``DIR/explanation.json`` (the method, parameters, notes and cost).

Method parameters are given as ``--param KEY=VALUE`` (repeatable): ``steps=64``,
``rule=riemann-trapezoid``, ``window=4,2``, ``upsample=none``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from robustcv.cli._common import (
    EXIT_OK,
    emit,
    load_model_and_data,
    output_dir,
    path_arg,
    spec_arg,
    table,
)
from robustcv.core.errors import InputError

__all__ = ["NAME", "add_parser", "parse_param", "run"]

NAME = "explain"


def parse_param(item: str) -> tuple[str, Any]:
    """Parse one ``--param KEY=VALUE``: ints, floats, true/false, none, ``a,b`` pairs, text.

    Example:
        >>> parse_param("steps=64"), parse_param("window=4,2"), parse_param("upsample=none")
        (('steps', 64), ('window', (4, 2)), ('upsample', None))
    """
    key, sep, text = item.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key or not text.strip():
        raise InputError(f"--param '{item}' is not KEY=VALUE; e.g. --param steps=64")
    parts = [p.strip() for p in text.split(",")]
    values = [_scalar(p) for p in parts]
    return key, values[0] if len(values) == 1 else tuple(values)


def _scalar(text: str) -> Any:
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def add_parser(
    sub: Any,
    *,
    common: Callable[..., None],
    model_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``explain`` command to the ``robustcv`` sub-parsers."""
    p = sub.add_parser(
        NAME,
        help="attribution maps (saliency, integrated gradients, grad-cam, lime, ...) as PNGs",
        description="Explain the model's decision on the first --limit images with one method "
        "('robustcv list methods'): DIR/NNNN.png per image (image, map, overlay), DIR/maps.npz "
        "and DIR/explanation.json. See docs/explanations.md.",
    )
    model_args(p)
    p.add_argument(
        "--method",
        type=spec_arg,
        default="integrated-gradients",
        help="an explanation method (default integrated-gradients)",
    )
    p.add_argument("--limit", type=int, default=8, help="explain the first N images (default 8)")
    p.add_argument(
        "--out", type=path_arg, required=True, metavar="DIR", help="output folder (created)"
    )
    p.add_argument(
        "--target",
        default="predicted",
        help="predicted (default), label, or a class index for every image",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method parameter, e.g. steps=64 or window=4,2 (repeatable)",
    )
    p.add_argument(
        "--normalize",
        choices=["max-abs", "percentile"],
        default=None,
        help="per-image normalisation of the stored maps (default: raw attributions)",
    )
    common(p, batch_size=64)


def _target(text: str, labels: Any) -> Any:
    if text == "predicted":
        return None
    if text == "label":
        return labels
    try:
        return int(text)
    except ValueError as err:
        raise InputError(
            f"--target must be predicted, label or a class index, got '{text}'"
        ) from err


def run(args: argparse.Namespace) -> int:
    """Run ``robustcv explain``; returns the exit code."""
    import numpy as np
    import torch

    from robustcv.explanations.base import METHODS, explain
    from robustcv.explanations.plots import explanation_figure, save_figure

    spec = METHODS.entry(args.method)  # unknown names fail before any loading
    params = dict(parse_param(item) for item in args.param)
    out = output_dir(args.out, "--out")
    model, data = load_model_and_data(args)
    x, y = data.x, data.y
    target = _target(args.target, y)
    parts = []
    for start in range(0, len(x), args.batch_size):
        sl = slice(start, start + args.batch_size)
        t = target[sl] if isinstance(target, torch.Tensor) else target
        parts.append(
            explain(
                model,
                x[sl],
                t,
                method=spec.name,
                seed=args.seed,
                normalize=args.normalize,
                **params,
            )
        )
    first = parts[0]
    maps = torch.cat([p.maps for p in parts])
    targets = torch.cat([p.targets for p in parts])
    scores = torch.cat([p.scores for p in parts])
    predicted = model.predict(x)
    out.mkdir(parents=True, exist_ok=True)
    names = list(data.classes)

    def class_name(k: int) -> str:
        return names[k] if 0 <= k < len(names) else str(k)

    rows = []
    for i in range(len(x)):
        tname = class_name(int(targets[i]))
        title = (
            f"{spec.name} - image {i}, label {class_name(int(y[i]))}, explained class {tname} "
            f"(logit {float(scores[i]):.2f})"
        )
        fig = explanation_figure(x[i], maps[i], title)
        save_figure(fig, out / f"{i:04d}.png")
        rows.append([f"{i:04d}.png", str(int(y[i])), str(int(predicted[i])), tname])
    np.savez_compressed(
        out / "maps.npz",
        maps=maps.numpy(),
        images=x.numpy(),
        targets=targets.numpy(),
        labels=y.numpy(),
        predicted=predicted.numpy(),
        scores=scores.numpy(),
    )
    delta = None
    if first.delta is not None:
        delta = torch.cat([p.delta for p in parts if p.delta is not None])
    summary = {
        "model": args.model,
        "data": args.data,
        "split": args.split,
        "n": len(x),
        "method": spec.name,
        "params": first.params,
        "notes": first.notes,
        "color_scale": "per figure: magma 0..max for maps without negative values, else RdBu_r "
        "symmetric -max|a|..+max|a|; multi-channel maps summed over channels",
        "forward_passes": sum(p.forward_passes for p in parts),
        "backward_passes": sum(p.backward_passes for p in parts),
        "seconds": sum(p.seconds for p in parts),
        "delta_abs_max": None if delta is None else float(delta.abs().max()),
        "files": {"maps": "maps.npz", "figures": [r[0] for r in rows]},
    }
    (out / "explanation.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    text = (
        f"{spec.name} on {len(x)} images of {data.name}/{args.split} for {args.model}: "
        f"{summary['seconds']:.1f} s, {summary['forward_passes']} forward and "
        f"{summary['backward_passes']} backward passes\n"
        + table(rows, ["figure", "label", "predicted", "explained"])
        + f"\nwrote {out}/maps.npz, {out}/explanation.json and {len(rows)} PNGs"
    )
    emit(args, summary, text)
    return EXIT_OK
