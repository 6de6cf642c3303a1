"""``robustcv attack --model M --data D --eps E``: robust accuracy per eps under an ensemble."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from robustcv.cli._common import EXIT_OK, emit, load_model_and_data, table
from robustcv.core.errors import InputError

__all__ = ["NAME", "add_parser", "default_ensemble_help", "run"]

NAME = "attack"


def default_ensemble_help() -> str:
    """Which attacks ``--attacks default`` runs for each norm, from ``DEFAULT_ENSEMBLE``.

    Norms with the same members share an entry.

    Example:
        >>> default_ensemble_help().startswith("linf and l2: fmn, apgd-ce, apgd-t, square; ")
        True
    """
    from robustcv.attacks.ensemble import default_ensemble
    from robustcv.core.names import NORMS

    by_members: dict[tuple[str, ...], list[str]] = {}
    for norm in NORMS:
        members = tuple(name for name, _ in default_ensemble(norm))
        by_members.setdefault(members, []).append(norm)
    return "; ".join(
        f"{' and '.join(norms)}: {', '.join(members)}" for members, norms in by_members.items()
    )


def add_parser(
    sub: Any,
    *,
    common: Callable[..., None],
    model_args: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the ``attack`` command to the ``robustcv`` sub-parsers."""
    from robustcv.core.names import NORMS

    p = sub.add_parser(NAME, help="robust accuracy per eps under an attack ensemble")
    model_args(p)
    p.add_argument("--limit", type=int, default=1000, help="attack the first N images (1000)")
    p.add_argument(
        "--norm",
        default="linf",
        help=f"{', '.join(NORMS[:-1])} or {NORMS[-1]} (default linf; l0: eps counts changed "
        "pixel values)",
    )
    p.add_argument("--eps", required=True, help="comma-separated budgets, e.g. 0.05,0.1,0.2")
    p.add_argument("--no-sanity", action="store_true", help="skip the gradient-masking checks")
    p.add_argument(
        "--attacks",
        default="default",
        help=f"'default' (per --norm, {default_ensemble_help()}) or a comma-separated list of "
        "attack names (see 'robustcv list attacks')",
    )
    common(p)


def run(args: argparse.Namespace) -> int:
    """Run ``robustcv attack``; returns the exit code."""
    from robustcv.attacks.ensemble import robust_accuracy

    try:
        budgets = [float(e) for e in args.eps.split(",") if e.strip()]
    except ValueError as err:
        raise InputError(f"--eps needs comma-separated numbers, got '{args.eps}'") from err
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1, got {args.limit}")
    model, data = load_model_and_data(args)
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
        + table(rows, ["eps", "robust acc", "95% CI"])
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
    emit(args, {"model": args.model, "data": args.data, **res.to_dict()}, text)
    return EXIT_OK
