"""``robustcv corrupt``: write a -C dataset; helpers for ``robustcv list corruptions``.

Usage::

    robustcv corrupt --data SPEC --out DIR [--corruptions benchmark|held-out|all|mvh|NAME,...]
        [--severities all|1-5|1,3,5] [--format imagenet-c|cifar-c]
        [--spec auto|imagenet-c|cifar-10-c] [--limit N] [--seed S] [--force] [--quiet] [--json]
        [--executor in-process|processes|ray] [--workers N] [--ray-address ADDR]
        [--shard-size N]

Re-running the same command resumes an interrupted run (finished units are skipped); a folder
holding something else is refused unless ``--force`` is given. Read the result back with
``--data imagenet-c:DIR#fog/3`` (or ``cifar-c:DIR#fog/3``) in any command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from robustcv.cli._common import (
    EXIT_OK,
    emit,
    output_dir,
    parse_size,
    path_arg,
    size_arg,
    spec_arg,
    table,
)
from robustcv.core.errors import InputError

__all__ = ["NAME", "add_parser", "corruption_rows", "corruption_text", "parse_size", "run"]

NAME = "corrupt"


def add_parser(
    sub: Any,
    *,
    common: Callable[..., None],
    model_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``corrupt`` command to the ``robustcv`` sub-parsers."""
    from robustcv.corruptions.base import SPECS
    from robustcv.data.corrupted import C_FORMATS

    p = sub.add_parser(
        NAME,
        help="write a corrupted copy of a dataset (ImageNet-C or CIFAR-10-C layout), resumable",
        description=(
            "Write every image of --data under each corruption and severity, in the ImageNet-C "
            "layout (DIR/corruption/severity/class/N.png) or the CIFAR-10-C one (DIR/"
            "corruption.npy with severities 1-5 stacked, plus labels.npy). Re-run the same "
            "command to resume; read it back with --data imagenet-c:DIR#fog/3."
        ),
    )
    p.add_argument(
        "--data", type=spec_arg, required=True, help="fashion-mnist, npz:F, folder:DIR, cifar10:DIR"
    )
    p.add_argument("--split", type=spec_arg, default="test")
    p.add_argument("--out", type=path_arg, required=True, help="output folder (created if missing)")
    p.add_argument(
        "--corruptions",
        default="benchmark",
        help="benchmark (15), held-out (4), imagenet-c or all (19), mvh, or comma-separated "
        "names and groups (default benchmark)",
    )
    p.add_argument(
        "--severities",
        default="all",
        help="1-5, 1,3,5 or all (default all: 1-5, or every level of an mvh- degradation; "
        "cifar-c needs 1-5)",
    )
    p.add_argument(
        "--format", dest="fmt", choices=list(C_FORMATS), default="imagenet-c", help="layout"
    )
    p.add_argument(
        "--spec",
        choices=list(SPECS),
        default="auto",
        help="parameter spec (default auto: interpolated by image size)",
    )
    p.add_argument("--limit", type=int, default=None, help="corrupt only the first N images")
    p.add_argument("--image-size", type=size_arg, default=None, help="resize folder images to HxW")
    p.add_argument(
        "--force",
        action="store_true",
        help="discard what --out holds (another configuration, or not a -C dataset)",
    )
    p.add_argument(
        "--executor",
        choices=["in-process", "processes", "ray"],
        default="in-process",
        help="run (corruption, severity, shard) units in parallel on local processes or Ray "
        "(default in-process); the files are identical",
    )
    p.add_argument("--workers", type=int, default=None, help="parallel workers (--executor)")
    p.add_argument(
        "--ray-address",
        default=None,
        help="--executor ray: auto (the running cluster), HOST:PORT or ray://HOST:PORT "
        "(default: a private local instance)",
    )
    p.add_argument("--shard-size", type=int, default=1000, help="images per unit with --executor")
    common(p, batch_size=64)


def _ranges(values: list[int]) -> str:
    vals = sorted(set(values))
    spans: list[list[int]] = []
    for v in vals:
        if spans and v == spans[-1][1] + 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ",".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)


def run(args: argparse.Namespace) -> int:
    """Run ``robustcv corrupt``; returns the exit code."""
    from robustcv.corruptions.dataset import write_corrupted
    from robustcv.data.loading import load_dataset

    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1, got {args.limit}")
    for flag, value in (("--workers", args.workers), ("--shard-size", args.shard_size)):
        if value is not None and value < 1:
            raise InputError(f"{flag} must be >= 1, got {value}")
    if args.executor != "ray" and args.ray_address is not None:
        raise InputError("--ray-address needs --executor ray")
    if args.executor == "in-process" and args.workers is not None:
        raise InputError("--workers needs --executor processes or ray")
    if args.executor == "ray":
        from robustcv.core.rayutil import import_ray

        import_ray()  # a missing extra is a one-line message before any work
    output_dir(args.out, "--out")
    data = load_dataset(args.data, split=args.split, limit=args.limit, image_size=args.image_size)
    if len(data) == 0:
        raise InputError(
            f"--data {args.data} holds no images (split '{args.split}'); give a dataset with at "
            "least one image"
        )
    try:
        res = write_corrupted(
            data,
            args.out,
            corruptions=args.corruptions,
            severities=args.severities,
            fmt=args.fmt,
            seed=args.seed,
            spec=args.spec,
            batch_size=args.batch_size,
            device=args.device,
            force=args.force,
            progress=not args.quiet,
            executor=None if args.executor == "in-process" else args.executor,
            workers=args.workers,
            ray_address=args.ray_address,
            shard_size=args.shard_size,
        )
    except KeyboardInterrupt:
        print(
            f"robustcv: interrupted; finished units are kept in {args.out} - run the same "
            "command again to resume",
            file=sys.stderr,
        )
        raise
    lines = []
    for verb, units in (("wrote", res.written), ("skipped (already done)", res.skipped)):
        per: dict[str, list[int]] = {}
        for name, sev in units:
            per.setdefault(name, []).append(sev)
        for name, sevs in per.items():
            lines.append(f"  {verb} {name} severities {_ranges(sevs)}")
    c, h, w = res.image_shape
    text = (
        f"{args.fmt} dataset in {res.out_dir}: {len(res.written)} units written, "
        f"{len(res.skipped)} skipped, {res.n} images of {c}x{h}x{w} each, {res.seconds:.1f} s\n"
        + "\n".join(lines)
        + f"\nread with: --data {args.fmt}:{res.out_dir}#<corruption>/<severity>"
    )
    emit(args, {"data": args.data, **res.to_dict()}, text)
    return EXIT_OK


def corruption_rows(spec: str | None, size: tuple[int, int] = (224, 224)) -> list[dict[str, Any]]:
    """One row per registered corruption for ``robustcv list corruptions``.

    Args:
        spec: None for no parameters, else ``"auto"`` (resolved at ``size``), ``"imagenet-c"`` or
            ``"cifar-10-c"``; ``mvh-`` degradations always show their level list.
        size: (H, W) for the ``auto`` spec.

    Example:
        >>> rows = corruption_rows(None)
        >>> all({"name", "family", "group", "summary"} <= set(r) for r in rows)
        True
    """
    from robustcv.corruptions.base import CORRUPTIONS, SPECS, resolve_params, size_alpha

    if spec is not None and spec not in SPECS:
        raise InputError(f"unknown spec '{spec}'; use one of {', '.join(SPECS)}")
    h, w = size
    rows = []
    for e in CORRUPTIONS:
        d = e.obj
        group = "mvh" if d.family == "mvh" else ("benchmark" if d.benchmark else "held-out")
        row: dict[str, Any] = {
            "name": d.name,
            "family": d.family,
            "group": group,
            "summary": d.summary or e.summary,
            "random": d.random,
            "min_size": d.min_size,
            "severities": d.severities,
            "greyscale": d.greyscale,
        }
        if spec is not None:
            used = "levels" if d.family == "mvh" else spec
            params: dict[str, Any] = {
                "spec": used,
                "param_names": list(d.param_names),
                "values": [
                    [resolve_params(d, s, spec, h, w)[k] for k in d.param_names]
                    for s in range(1, d.severities + 1)
                ],
            }
            if used == "auto":
                params["size"] = [h, w]
                params["alpha"] = round(size_alpha(h, w), 6)
            row["params"] = params
        rows.append(row)
    return rows


def corruption_text(rows: list[dict[str, Any]]) -> str:
    """Render :func:`corruption_rows` as text (a summary table, plus parameter tables if any).

    Example:
        >>> print(corruption_text([{"name": "fog", "family": "weather", "group": "benchmark",
        ...                         "summary": "fog"}]))
        corruption  family   group      summary
        ----------  -------  ---------  -------
        fog         weather  benchmark  fog
    """
    summary = table(
        [[r["name"], r["family"], r["group"], r["summary"]] for r in rows],
        ["corruption", "family", "group", "summary"],
    )
    blocks = [summary]
    for r in rows:
        params = r.get("params")
        if params is None:
            continue
        where = (
            f"spec auto at {params['size'][0]}x{params['size'][1]} (alpha {params['alpha']:g})"
            if params["spec"] == "auto"
            else (
                "published level list" if params["spec"] == "levels" else f"spec {params['spec']}"
            )
        )
        label = "level" if params["spec"] == "levels" else "severity"
        body = table(
            [[str(i + 1)] + [f"{v:.6g}" for v in vals] for i, vals in enumerate(params["values"])],
            [label, *params["param_names"]],
        )
        tags = r["family"] if r["family"] == r["group"] else f"{r['family']}, {r['group']}"
        blocks.append(f"{r['name']} [{tags}], {where}:\n{body}")
    return "\n\n".join(blocks)
