"""Clean accuracy with its sample size and an exact 95% interval."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from robustcv.core.contract import check_batch, check_count, check_model_fits
from robustcv.core.errors import InputError, ModelDataMismatchError
from robustcv.core.model import Model
from robustcv.core.results import Result
from robustcv.core.stats import binomial_ci
from robustcv.data.dataset import Dataset

__all__ = ["AccuracyResult", "accuracy"]


@dataclass
class AccuracyResult(Result):
    """Top-1 accuracy of a model on a set of images.

    Attributes:
        accuracy: correct / n.
        correct: number of correctly classified images.
        n: number of images.
        ci95: exact (Clopper-Pearson) 95% interval of the accuracy.
        per_class: accuracy per class index (NaN-free: classes absent from the data are
            omitted, keys are class indices as strings in JSON).
        seconds: wall time.
        nonfinite: images whose logits held NaN or inf (only with
            ``Model(..., nonfinite="warn")``; otherwise such logits raise). They count as wrong.
    """

    accuracy: float
    correct: int
    n: int
    ci95: tuple[float, float]
    per_class: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0
    nonfinite: int = 0

    def __float__(self) -> float:
        return self.accuracy


def accuracy(
    model: Model,
    x: torch.Tensor | Dataset,
    y: torch.Tensor | None = None,
    *,
    batch_size: int = 256,
    progress: bool | None = None,
) -> AccuracyResult:
    """Top-1 accuracy of ``model`` on images ``x`` with labels ``y``, or on a dataset.

    Args:
        model: a :class:`robustcv.Model`.
        x: images under the image contract, or a :class:`robustcv.data.Dataset`.
        y: labels (required with a tensor, forbidden with a dataset).
        batch_size: images per forward pass.
        progress: show a progress bar (default: when there are more than 20 batches).

    Returns:
        An :class:`AccuracyResult` (``float(result)`` is the accuracy).

    Raises:
        InputError: bad arguments, labels outside the model's classes, an empty dataset,
            non-finite logits (unless the model was built with ``nonfinite="warn"``, in which
            case those images count as wrong and :attr:`AccuracyResult.nonfinite` counts them).
        ModelDataMismatchError: the model cannot take the images (channels, size, mean/std).

    Example:
        >>> import torch
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
        >>> res = accuracy(Model(net), torch.rand(8, 1, 2, 2), torch.zeros(8, dtype=torch.long))
        >>> res.n, 0.0 <= res.accuracy <= 1.0
        (8, True)
    """
    import time

    if not isinstance(model, Model):
        raise InputError(
            f"model is a {type(model).__name__}; wrap it with robustcv.Model(net, ...) or use "
            "robustcv.load_model"
        )
    batch_size = check_count(batch_size, "batch_size")
    if progress is not None and not isinstance(progress, bool):
        raise InputError(f"progress must be True, False or None, got {progress!r}")
    what = "x"
    if isinstance(x, Dataset):
        if y is not None:
            raise InputError("pass either a Dataset or (x, y), not a Dataset and y")
        if len(x) == 0:
            raise InputError(
                f"the dataset '{x.name}' has no images; give a dataset with at least one image"
            )
        batches = x.batches(batch_size)
        n_total = len(x)
        num_classes = x.num_classes
        what = f"the dataset '{x.name}'"
    else:
        if y is None:
            raise InputError("labels y are required when x is a tensor")
        x, y = check_batch(x, y)
        xt, yt = x, y
        batches = (
            (xt[i : i + batch_size], yt[i : i + batch_size]) for i in range(0, len(yt), batch_size)
        )
        n_total = len(yt)
        num_classes = None
    n_batches = (n_total + batch_size - 1) // batch_size
    show = progress if progress is not None else n_batches > 20
    start = time.perf_counter()
    hits: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    nonfinite = 0
    with torch.no_grad():
        for xb, yb in tqdm(
            batches, total=n_batches, desc="accuracy", disable=not show, leave=False
        ):
            xb, yb = check_batch(xb, yb, num_classes=num_classes)
            try:
                logits = model.logits(xb, validate=False)
            except ModelDataMismatchError:
                if not hits:  # the first batch: say what the model takes, then re-raise
                    check_model_fits(model, xb, what=what)
                raise
            finite = torch.isfinite(logits).all(1).cpu()
            pred = logits.argmax(1).cpu()
            if not bool(finite.all()):
                nonfinite += int((~finite).sum())
                pred = torch.where(finite, pred, torch.full_like(pred, -1))
            if int(yb.max()) >= model.num_classes:
                raise InputError(
                    f"labels go up to {int(yb.max())} but the model has {model.num_classes} "
                    "classes; check that model and data match"
                )
            hits.append(pred == yb)
            labels.append(yb)
    correct_mask = torch.cat(hits)
    all_labels = torch.cat(labels)
    correct = int(correct_mask.sum())
    per_class = {
        int(c): float(correct_mask[all_labels == c].float().mean())
        for c in torch.unique(all_labels)
    }
    return AccuracyResult(
        accuracy=correct / n_total,
        correct=correct,
        n=n_total,
        ci95=binomial_ci(correct, n_total),
        per_class=per_class,
        seconds=time.perf_counter() - start,
        nonfinite=nonfinite,
    )
