"""A real tiny audit for tests: 32x32 RGB crops of scikit-image photos and a small random CNN.

Report, compare, check and the platform tests render and read the output of this real audit
(not a hand-written fake), so they break when the writer changes. Every suite runs, with sizes
small enough for a few seconds per suite on 2 cores.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustcv.audit import AuditResults, run_audit
from robustcv.core.model import Model
from robustcv.models.architectures import SmallCNN

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")

TINY: dict[str, Any] = {
    "shard_size": 64,
    "corruption": {
        "n": 24,
        "corruptions": ["mvh-contrast", "mvh-uniform-noise"],
        "severities": [1, 3],
    },
    "adversarial": {
        "n": 12,
        "subset": 8,
        "pilot_steps": 8,
        "apgd_steps": 4,
        "apgd_targets": 2,
        "sanity_subset": 8,
        "gradient_free_n": 6,
        "hsj_queries": 200,
        "square_queries": 50,
    },
    "calibration": {
        "fit_n": 60,
        "shift_n": 16,
        "shift_corruptions": ["mvh-contrast", "mvh-uniform-noise"],
        "shift_severities": [2, 4],
    },
    "ood": {"n": 24, "fit_n": 60},
    "examples": {"n": 2, "corruptions": ["mvh-contrast"], "severity": 2},
}
"""Audit settings small enough for tests (every suite runs)."""


def photos_npz(path: Path, classes: Sequence[str] = PHOTOS, *, seed: int = 0) -> Path:
    """Write 32x32 RGB crops of four sample photos (train 30 / test 18 per photo) to ``path``."""
    import skimage.data

    rng = np.random.default_rng(seed)
    xs: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    ys: dict[str, list[int]] = {"train": [], "test": []}
    for label, name in enumerate(PHOTOS):
        img = getattr(skimage.data, name)()[..., :3]
        for split, count in (("train", 30), ("test", 18)):
            for _ in range(count):
                r = int(rng.integers(0, img.shape[0] - 32))
                c = int(rng.integers(0, img.shape[1] - 32))
                xs[split].append(img[r : r + 32, c : c + 32])
                ys[split].append(label)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        x_train=np.stack(xs["train"]),
        y_train=np.array(ys["train"]),
        x_test=np.stack(xs["test"]),
        y_test=np.array(ys["test"]),
        classes=np.array(list(classes)),
    )
    return path


def tiny_net(num_classes: int = 4, seed: int = 0) -> SmallCNN:
    """A small CNN with seeded random weights."""
    net = SmallCNN(in_channels=3, num_classes=num_classes, width=8, hidden=16, image_size=32)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return net


def tiny_model(num_classes: int = 4, seed: int = 0, name: str | None = None) -> Model:
    """:func:`tiny_net` wrapped, with penultimate features."""
    return Model(tiny_net(num_classes, seed), features="embed", name=name or f"tiny-rgb-{seed}")


def run_tiny_audit(
    folder: Path,
    *,
    classes: Sequence[str] = PHOTOS,
    model_name: str | None = None,
    seed: int = 0,
    suites: str | Sequence[str] | None = None,
    config: dict[str, Any] | None = None,
    **kwargs: Any,
) -> AuditResults:
    """Run a real tiny audit (every default suite unless ``suites``) into ``folder / "audit"``."""
    data = photos_npz(folder / "photos.npz", classes)
    cfg = copy.deepcopy(TINY)
    cfg.update(config or {})
    return run_audit(
        tiny_model(seed=seed, name=model_name),
        f"npz:{data}",
        folder / "audit",
        suites=suites,
        config=cfg,
        progress=False,
        **kwargs,
    )


def results_of(folder: Path) -> dict[str, Any]:
    """The results.json of an audit folder as a dict."""
    return dict(json.loads((folder / "results.json").read_text(encoding="utf-8")))


def tiny_context(folder: Path, out: Path | None = None) -> Any:
    """The prepared context of :func:`run_tiny_audit`'s audit in ``folder`` (nothing runs).

    ``out`` replaces the audit folder in the context (aggregation of the examples suite writes
    images there).
    """
    from robustcv.audit.config import AuditConfig
    from robustcv.audit.engine import prepare

    raw = results_of(folder / "audit")["config"]
    raw = {k: v for k, v in raw.items() if k != "subsample"}
    cfg = AuditConfig.from_dict(raw)
    target = out if out is not None else folder / "audit"
    target.mkdir(parents=True, exist_ok=True)
    return prepare(cfg, tiny_model(name=cfg.model), target, loaded_from_spec=False)
