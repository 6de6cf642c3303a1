"""``robustcv audit --model SPEC --data SPEC --out DIR``: every suite, resumable, one results.json.

Flags override the config file (``--config audit.yaml`` or ``.json``), which overrides the
defaults. Re-running with the same ``--out`` resumes: finished units are skipped.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

NAME = "audit"


def add_parser(
    sub: Any,
    *,
    common: Callable[..., None],
    model_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``audit`` command to the CLI's subparsers."""
    p = sub.add_parser(
        NAME,
        help="audit a model: clean, corruption, adversarial, calibration and OOD suites",
        description="Run every audit suite on a model and a dataset, storing each finished unit "
        "of work in DIR/audit.sqlite (re-running with the same --out resumes) and writing "
        "DIR/results.json and DIR/audit.log. See docs/audit.md.",
    )
    model_args(p)
    from robustcv.cli._common import path_arg, spec_arg

    p.add_argument(
        "--out", type=path_arg, required=True, metavar="DIR", help="audit folder (new or to resume)"
    )
    from robustcv.audit.registry import default_suites, selectable_suites

    p.add_argument(
        "--suites",
        default=None,
        help=f"comma-separated, from {','.join(selectable_suites())} or all "
        f"(default: {','.join(default_suites())}; --strength full adds "
        f"{','.join(s for s in default_suites('full') if s not in default_suites())})",
    )
    p.add_argument(
        "--ood-data",
        type=spec_arg,
        action="append",
        default=None,
        metavar="SPEC",
        help="an OOD set: a dataset spec or derived:NAME (repeatable; default: derived sets "
        "uniform-noise, pixel-permuted, inverted)",
    )
    p.add_argument(
        "--fit-data",
        type=spec_arg,
        default=None,
        metavar="SPEC",
        help="held-out data for temperature scaling and Mahalanobis (default: the train split)",
    )
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument(
        "--strength",
        choices=["fast", "full"],
        default=None,
        help="fast (default): min-norm curve tightened by APGD on a subset; full: default ensemble",
    )
    p.add_argument("--eps", default=None, help="extra eps for the grid, e.g. linf:0.1,l2:0.5")
    p.add_argument(
        "--config",
        type=path_arg,
        default=None,
        metavar="FILE",
        help="audit.yaml (needs PyYAML) or audit.json",
    )
    p.add_argument(
        "--executor",
        choices=["in-process", "processes", "ray"],
        default=None,
        help="how units run: in-process (default), processes (one worker per CPU) or ray (Ray "
        "actors on this machine or a cluster; needs pip install 'robustcv[ray]'); results are "
        "identical",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (--executor processes) or Ray actors (--executor ray)",
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="--executor ray: auto (the running cluster), HOST:PORT or ray://HOST:PORT "
        "(default: start a local Ray instance with one worker per CPU)",
    )
    p.add_argument(
        "--ray-cpus-per-worker",
        type=int,
        default=None,
        metavar="N",
        help="--executor ray: CPUs (and torch threads) per worker (default 1)",
    )
    p.add_argument(
        "--ray-gpus-per-worker",
        type=float,
        default=None,
        metavar="G",
        help="--executor ray: GPUs per worker, fractions share a GPU (default 0)",
    )
    p.add_argument(
        "--no-report", action="store_true", help="do not write DIR/report.html after the audit"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="discard stored results of a different config in DIR instead of refusing",
    )
    common(p)
    # "given" means "not None": a flag left out never overrides the config file
    p.set_defaults(seed=None, batch_size=None, split=None)


def run(args: argparse.Namespace) -> int:
    """Run ``robustcv audit``; returns the exit code."""
    from robustcv.audit import run_audit
    from robustcv.cli._common import EXIT_OK, emit, output_dir, parse_preprocess
    from robustcv.core.errors import InputError

    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1, got {args.limit}")
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")
    if args.workers is not None and args.executor == "in-process":
        raise InputError("--workers needs --executor processes or ray")
    executor, workers, config = _executor_args(args)
    output_dir(args.out, "--out")
    custom = args.weights is not None or args.preprocess or args.num_classes is not None
    model: Any = args.model
    if custom:
        from robustcv.models.loading import load_model

        model = load_model(
            args.model,
            weights=args.weights,
            num_classes=args.num_classes,
            device=args.device,
            **parse_preprocess(args.preprocess),
        )
        model.name = args.model
    res = run_audit(
        model,
        args.data,
        args.out,
        suites=args.suites,
        ood_data=None if args.ood_data is None else tuple(args.ood_data),
        fit_data=args.fit_data,
        limit=args.limit,
        strength=args.strength,
        seed=args.seed,
        eps=args.eps,
        config=config,
        split=args.split,
        batch_size=args.batch_size,
        device=args.device,
        executor=executor,
        workers=workers,
        force=args.force,
        progress=not args.quiet,
    )
    text = res.summary()
    if not args.no_report:
        text += _write_report(res)
    emit(args, res.to_dict(), text)
    return EXIT_OK


_RAY_FLAGS = {
    "address": "--ray-address",
    "cpus_per_worker": "--ray-cpus-per-worker",
    "gpus_per_worker": "--ray-gpus-per-worker",
}


def _executor_args(args: argparse.Namespace) -> tuple[str | None, int | None, Any]:
    """(executor, workers, config) for ``run_audit``, with the Ray flags merged in.

    Without Ray in play (no ``--executor ray``, no ``--ray-*`` flag, no ``executor.name: ray``
    in the config file) the flags pass through unchanged. Otherwise the config file is read here
    and its ``executor`` section updated key by key with the flags (``--executor`` naming
    another executor replaces the section), so ``run_audit`` gets the merged mapping.

    Raises:
        InputError: a ``--ray-*`` flag without the ray executor, a value out of range, or Ray
            not installed (the message says how to install it).
    """
    from robustcv.audit.config import load_config_file
    from robustcv.core.errors import InputError

    flags = {
        key: getattr(args, flag[2:].replace("-", "_"))
        for key, flag in _RAY_FLAGS.items()
        if getattr(args, flag[2:].replace("-", "_")) is not None
    }
    if args.ray_cpus_per_worker is not None and args.ray_cpus_per_worker < 1:
        raise InputError(f"--ray-cpus-per-worker must be >= 1, got {args.ray_cpus_per_worker}")
    if args.ray_gpus_per_worker is not None and not 0 <= args.ray_gpus_per_worker <= 64:
        raise InputError(
            f"--ray-gpus-per-worker must be in [0, 64] (a fraction shares a GPU), got "
            f"{args.ray_gpus_per_worker}"
        )
    raw: dict[str, Any] = load_config_file(args.config) if args.config is not None else {}
    section = raw.get("executor")
    in_file = section if isinstance(section, dict) else {"name": section} if section else {}
    file_name = str(in_file.get("name", "")).strip().lower()
    name = args.executor or file_name or None
    if name != "ray":
        if flags:
            flag = _RAY_FLAGS[next(iter(flags))]
            raise InputError(f"{flag} needs --executor ray")
        return args.executor, args.workers, args.config
    from robustcv.audit.ray_executor import import_ray

    import_ray()  # fail now, before loading the model, when Ray is missing
    merged = dict(in_file) if args.executor in (None, file_name) else {}
    merged.update({"name": "ray", **flags})
    if args.workers is not None:
        merged["workers"] = args.workers
    raw["executor"] = merged
    return None, None, raw


def _write_report(res: Any) -> str:
    """Write DIR/report.html from the in-memory results; a line for the summary."""
    import sys

    from robustcv.core.errors import RobustcvError

    try:
        from robustcv.report.html import write_report
    except ImportError:
        return ""
    try:
        path = write_report(res.to_dict(), res.path / "report.html")
    except (RobustcvError, OSError, ValueError) as err:
        print(f"robustcv: warning: could not write the HTML report: {err}", file=sys.stderr)
        return ""
    return f"\n  report       {path}"
