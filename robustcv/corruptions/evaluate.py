"""Accuracy under corruption: one table per model, with intervals, mean accuracy and mCE.

:func:`corruption_accuracy` corrupts every image at every (corruption, severity), classifies it
and counts. The images stream through once (a :class:`robustcv.data.Dataset` is never loaded
whole); each batch is corrupted on the model's device.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm import tqdm

from robustcv.core.contract import check_batch, check_labels, check_model_fits
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.seeding import check_seed, derive_seed
from robustcv.core.stats import binomial_ci
from robustcv.corruptions import metrics
from robustcv.corruptions.api import check_corruptible, corrupt
from robustcv.corruptions.base import CORRUPTIONS, SPECS
from robustcv.corruptions.selection import select_corruptions
from robustcv.data.dataset import Dataset

# select_corruptions lives in robustcv.corruptions.selection; it stays importable from here
__all__ = ["CorruptionAccuracyResult", "corruption_accuracy", "select_corruptions"]

Table = dict[str, dict[int, float]]


@dataclass
class CorruptionAccuracyResult(Result):
    """Top-1 accuracy of a model under each corruption and severity.

    Attributes:
        model: the model's name.
        n: number of images (every condition uses all of them).
        seed: the global seed; condition (c, s) used ``derive_seed(seed, c, s)``.
        spec: the parameter spec (``auto``, ``imagenet-c``, ``cifar-10-c``).
        corruptions: evaluated corruptions, in order.
        severities: severities evaluated per corruption.
        clean_accuracy: accuracy on the uncorrupted images.
        clean_correct: correctly classified uncorrupted images.
        clean_ci95: exact (Clopper-Pearson) 95% interval of ``clean_accuracy``.
        accuracy: ``{corruption: {severity: accuracy}}``.
        correct: ``{corruption: {severity: correctly classified images}}``.
        ci95: ``{corruption: {severity: (low, high)}}``, exact 95% intervals.
        corruption_mean: mean accuracy over severities, per corruption.
        mean_accuracy: mean over corruptions of ``corruption_mean``.
        baseline: what ``ce`` / ``mce`` are relative to (None when no baseline was given).
        ce: corruption error per corruption in percent of the baseline's (the corruptions
            the baseline covers); None without a baseline.
        mce: mean of ``ce`` over ``mce_corruptions`` (percent); None without a baseline.
        mce_corruptions: the corruptions ``mce`` averages: ImageNet-C's 15 benchmark ones when
            all were evaluated, otherwise every evaluated corruption the baseline covers (then
            ``mce`` is *not* ImageNet-C's mCE; ``notes`` says so).
        relative_ce: relative corruption error per corruption (percent), when the baseline's
            clean error is known.
        relative_mce: mean of ``relative_ce`` over ``mce_corruptions``.
        seconds: wall time.
        notes: remarks on how the numbers were computed.
    """

    model: str
    n: int
    seed: int
    spec: str
    corruptions: list[str]
    severities: dict[str, list[int]]
    clean_accuracy: float
    clean_correct: int
    clean_ci95: tuple[float, float]
    accuracy: dict[str, dict[int, float]]
    correct: dict[str, dict[int, int]]
    ci95: dict[str, dict[int, tuple[float, float]]]
    corruption_mean: dict[str, float]
    mean_accuracy: float
    baseline: str | None = None
    ce: dict[str, float] | None = None
    mce: float | None = None
    mce_corruptions: list[str] = field(default_factory=list)
    relative_ce: dict[str, float] | None = None
    relative_mce: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def __float__(self) -> float:
        return self.mean_accuracy

    @property
    def errors(self) -> Table:
        """``{corruption: {severity: 1 - accuracy}}``, e.g. to serve as a later baseline."""
        return metrics.corruption_errors(self.accuracy)


def _severities(names: Sequence[str], severities: str | Sequence[int]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    if isinstance(severities, str):
        if severities != "all":
            raise InputError(
                f"severities={severities!r}; pass a list such as (1, 2, 3, 4, 5) or 'all'"
            )
        return {n: list(range(1, CORRUPTIONS.get(n).severities + 1)) for n in names}
    if not isinstance(severities, Sequence) or not severities:
        raise InputError("severities must be a non-empty list of ints such as (1, 2, 3, 4, 5)")
    sev = []
    for s in severities:
        if isinstance(s, bool) or not isinstance(s, int):
            raise InputError(f"severities must be ints, got {s!r}")
        sev.append(s)
    if len(set(sev)) != len(sev):
        raise InputError(f"severities lists a value twice: {list(severities)}")
    for n in names:
        top = CORRUPTIONS.get(n).severities
        bad = [s for s in sev if not 1 <= s <= top]
        if bad:
            fix = (
                "; pass severities='all' for model-vs-human degradations"
                if n.startswith("mvh-")
                else ""
            )
            raise InputError(
                f"severity {', '.join(map(str, bad))} is outside 1..{top} for '{n}'{fix}"
            )
        out[n] = sorted(sev)
    return out


def _baseline(
    baseline: str | Mapping[str, Any] | CorruptionAccuracyResult | None,
    baseline_clean_error: float | None,
) -> tuple[str | None, Mapping[str, Any] | None, float | None]:
    """(description, error table, clean error or None)."""
    if baseline is None:
        if baseline_clean_error is not None:
            raise InputError("baseline_clean_error was given without a baseline; pass baseline=")
        return None, None, None
    if isinstance(baseline, str):
        if baseline.strip().lower() != "alexnet":
            raise InputError(
                f"baseline={baseline!r}; use 'alexnet' (ImageNet-C), a dict of baseline errors "
                "or an earlier CorruptionAccuracyResult"
            )
        return "alexnet (ImageNet-C)", metrics.ALEXNET_ERRORS, baseline_clean_error
    if isinstance(baseline, CorruptionAccuracyResult):
        clean = 1.0 - baseline.clean_accuracy
        if baseline_clean_error is not None:
            raise InputError(
                "baseline is a CorruptionAccuracyResult, which has its own clean error; "
                "leave baseline_clean_error out"
            )
        return f"model {baseline.model}", baseline.errors, clean
    if isinstance(baseline, Mapping):
        return "given table", baseline, baseline_clean_error
    raise InputError(
        f"baseline is a {type(baseline).__name__}; pass 'alexnet', a dict of baseline errors "
        "{corruption: {severity: error}} or {corruption: mean error}, or a "
        "CorruptionAccuracyResult"
    )


def _mce_names(names: Sequence[str], table: Mapping[str, Any]) -> list[str]:
    base_names = {metrics.canonical_name(k) for k in table}
    benchmark = set(metrics.BENCHMARK_CORRUPTIONS)
    if benchmark <= set(names) and benchmark <= base_names:
        return list(metrics.BENCHMARK_CORRUPTIONS)
    covered = [n for n in names if n in base_names]
    if not covered:
        raise InputError(
            "the baseline has no value for any evaluated corruption "
            f"({', '.join(names)}); evaluate ImageNet-C corruptions (corruptions='benchmark') or "
            "pass a baseline that covers these"
        )
    return covered


def _scores(
    acc: Table,
    clean_acc: float,
    names: Sequence[str],
    base_table: Mapping[str, Any],
    base_clean: float | None,
) -> dict[str, Any]:
    """CE, mCE and (when possible) relative CE/mCE of an accuracy table against a baseline."""
    base_names = {metrics.canonical_name(k) for k in base_table}
    covered = [n for n in acc if n in base_names]
    mce_names = _mce_names(names, base_table)
    err = metrics.corruption_errors({n: acc[n] for n in covered})
    ce = metrics.ce(err, base_table)
    out: dict[str, Any] = {
        "ce": ce,
        "mce": sum(ce[n] for n in mce_names) / len(mce_names),
        "mce_corruptions": mce_names,
    }
    if base_clean is not None:
        rel = metrics.relative_ce(err, 1.0 - clean_acc, base_table, base_clean)
        out["relative_ce"] = rel
        out["relative_mce"] = sum(rel[n] for n in mce_names) / len(mce_names)
    return out


def corruption_accuracy(
    model: Model,
    x: torch.Tensor | Dataset,
    y: torch.Tensor | None = None,
    *,
    corruptions: str | Sequence[str] = "benchmark",
    severities: str | Sequence[int] = (1, 2, 3, 4, 5),
    seed: int = 0,
    spec: str = "auto",
    baseline: str | Mapping[str, Any] | CorruptionAccuracyResult | None = None,
    baseline_clean_error: float | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> CorruptionAccuracyResult:
    """Accuracy of ``model`` at every (corruption, severity), plus mean accuracy and mCE.

    Args:
        model: a :class:`robustcv.Model`; its train/eval modes are restored afterwards.
        x: images under the image contract, or a :class:`robustcv.data.Dataset` (streamed in
            batches, never loaded whole).
        y: labels (required with a tensor, forbidden with a dataset).
        corruptions: ``"benchmark"`` (ImageNet-C's 15), ``"held-out"`` (its other 4), ``"all"``
            or ``"imagenet-c"`` (19), ``"mvh"`` (the ``mvh-`` degradations), names, or a list of
            names and groups (:func:`~robustcv.corruptions.selection.select_corruptions`); a
            corruption selected twice is refused.
        severities: severities to evaluate for every corruption, or ``"all"`` (each
            corruption's full range: 1..5, or every published level of an ``mvh-``
            degradation; use it for ``"mvh"``).
        seed: same seed, same table. Condition (c, s) corrupts with
            ``robustcv.corrupt(x, c, s, seed=derive_seed(seed, c, s), spec=spec)``, so each image's
            corrupted version does not depend on the batch size or its position. Random
            corruptions on CUDA use CUDA generators, whose numbers differ from the CPU's.
        spec: parameter spec, ``"auto"``, ``"imagenet-c"`` or ``"cifar-10-c"``.
        baseline: None; ``"alexnet"`` (ImageNet-C's AlexNet errors,
            :data:`~robustcv.corruptions.metrics.ALEXNET_ERRORS`); a dict of baseline errors
            ``{corruption: {severity: error}}`` or ``{corruption: mean error}`` (convert
            accuracies with :func:`~robustcv.corruptions.metrics.corruption_errors`); or an
            earlier :class:`CorruptionAccuracyResult` of the baseline model.
        baseline_clean_error: the baseline's clean error, needed for relative mCE with
            ``"alexnet"`` or a dict (no verified AlexNet clean error exists in reference code;
            the paper's is believed to be about 0.435). Not allowed with a result baseline,
            which carries its own.
        batch_size: images corrupted and classified at once.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`CorruptionAccuracyResult` (``float(result)`` is the mean accuracy).

    Raises:
        InputError: unknown corruption, severity out of range, a baseline that does not cover
            the evaluated corruptions or severities, bad images or labels, images that are not
            1- or 3-channel, a model that cannot take the images
            (:func:`robustcv.core.check_model_fits` on the first image). Checked before any
            image is corrupted.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4))
        >>> x, y = torch.rand(8, 3, 16, 16), torch.arange(8) % 4
        >>> res = corruption_accuracy(Model(net), x, y, corruptions=["mvh-contrast"],
        ...                           severities=(1, 8), progress=False)
        >>> sorted(res.accuracy["mvh-contrast"]), res.n
        ([1, 8], 8)
    """
    start = time.perf_counter()
    if not isinstance(model, Model):
        raise InputError(
            f"model is a {type(model).__name__}; wrap it with robustcv.Model(net, ...) or use "
            "robustcv.load_model"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(progress, bool):
        raise InputError(f"progress must be True or False, got {progress!r}")
    seed = check_seed(seed)
    if spec not in SPECS:
        raise InputError(f"unknown spec {spec!r}; use one of {', '.join(SPECS)}")
    names = select_corruptions(corruptions, on_repeat="error")
    sevs = _severities(names, severities)
    description, base_table, base_clean = _baseline(baseline, baseline_clean_error)
    if base_table is not None:  # fail before the expensive part: score a dummy table
        dummy = {n: dict.fromkeys(sevs[n], 0.0) for n in names}
        _scores(dummy, 0.0, names, base_table, base_clean)

    if isinstance(x, Dataset):
        if y is not None:
            raise InputError("pass either a Dataset or (x, y), not a Dataset and y")
        n_total = len(x)
        if n_total == 0:
            raise InputError("the dataset is empty; pass at least one image")
        num_classes: int | None = x.num_classes
        # the model must take the images, and corruptions 1- or 3-channel ones: one image
        check_model_fits(model, x, what=f"dataset '{x.name}'")
        check_corruptible(x.subset([0]).x, name=f"dataset '{x.name}'")
        batches: Any = x.batches(batch_size)
    else:
        if y is None:
            raise InputError("labels y are required when x is a tensor")
        xt = check_corruptible(x)
        check_model_fits(model, xt, what="x")  # one image, not counted as the model's work
        yt = check_labels(y, batch_size=int(xt.shape[0]))
        n_total = len(yt)
        num_classes = None
        batches = (
            (xt[i : i + batch_size], yt[i : i + batch_size]) for i in range(0, n_total, batch_size)
        )

    conditions = [(n, s) for n in names for s in sevs[n]]
    seeds = {(n, s): derive_seed(seed, n, s) for n, s in conditions}
    hits = {cond: 0 for cond in conditions}
    clean_hits = 0
    n_batches = -(-n_total // batch_size)
    bar = tqdm(
        total=n_batches * (1 + len(conditions)),
        desc="corruption accuracy",
        disable=not progress,
        leave=False,
    )

    def count(images: torch.Tensor, labels: torch.Tensor) -> int:
        pred = model.logits(images, validate=False).argmax(1).cpu()
        bar.update(1)
        return int((pred == labels).sum())

    try:
        with model.eval_mode(), torch.no_grad():
            for xb, yb in batches:
                xb, yb = check_batch(xb, yb, num_classes=num_classes)
                xb = xb.to(model.device)
                clean_hits += count(xb, yb)
                if int(yb.max()) >= model.num_classes:
                    raise InputError(
                        f"labels go up to {int(yb.max())} but the model has "
                        f"{model.num_classes} classes; check that model and data match"
                    )
                for cond in conditions:
                    name, s = cond
                    xc = corrupt(xb, name, s, seed=seeds[cond], spec=spec)
                    hits[cond] += count(xc, yb)
    finally:
        bar.close()

    accuracy: Table = {n: {} for n in names}
    correct: dict[str, dict[int, int]] = {n: {} for n in names}
    ci95: dict[str, dict[int, tuple[float, float]]] = {n: {} for n in names}
    for (name, s), k in hits.items():
        accuracy[name][s] = k / n_total
        correct[name][s] = k
        ci95[name][s] = binomial_ci(k, n_total)
    clean_acc = clean_hits / n_total
    corruption_mean = metrics.per_corruption_mean(accuracy)
    notes: list[str] = []
    scores: dict[str, Any] = {}
    if base_table is not None:
        scores = _scores(accuracy, clean_acc, names, base_table, base_clean)
        if scores["mce_corruptions"] != list(metrics.BENCHMARK_CORRUPTIONS):
            notes.append(
                f"mCE averages {len(scores['mce_corruptions'])} corruption(s), not ImageNet-C's "
                "15 benchmark corruptions: it is not comparable with published mCE"
            )
        if base_clean is None:
            notes.append(
                "relative mCE needs the baseline's clean error: pass baseline_clean_error= (no "
                "verified AlexNet value exists in reference code)"
            )
    if spec != "imagenet-c" and description is not None and description.startswith("alexnet"):
        notes.append(
            f"spec={spec!r}: AlexNet's errors were measured on ImageNet-C (224x224, imagenet-c "
            "parameters, JPEG q85); CE against them is only comparable under the same setup"
        )
    return CorruptionAccuracyResult(
        model=model.name,
        n=n_total,
        seed=seed,
        spec=spec,
        corruptions=list(names),
        severities=sevs,
        clean_accuracy=clean_acc,
        clean_correct=clean_hits,
        clean_ci95=binomial_ci(clean_hits, n_total),
        accuracy=accuracy,
        correct=correct,
        ci95=ci95,
        corruption_mean=corruption_mean,
        mean_accuracy=sum(corruption_mean.values()) / len(corruption_mean),
        baseline=description,
        ce=scores.get("ce"),
        mce=scores.get("mce"),
        mce_corruptions=scores.get("mce_corruptions", []),
        relative_ce=scores.get("relative_ce"),
        relative_mce=scores.get("relative_mce"),
        seconds=time.perf_counter() - start,
        notes=notes,
    )
