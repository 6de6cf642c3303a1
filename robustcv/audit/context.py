"""The context units run against, and the plain data it is rebuilt from in any process.

:class:`ContextSpec` is everything a worker needs: the resolved config, the model (a spec to
load, or a picklable model object), the evaluated images, references to the fit and OOD data,
and the suite instances. It holds no closures, loggers or caches, so an executor can pickle it
and call :func:`build_context` once per worker. :class:`AuditContext` adds the per-process
parts: the loaded model, a logger, and a memo of things units share (fitted detectors, loaded
data), every one of them a pure function of the spec.

Shared helpers live here rather than in a sibling suite: seeded image subsets
(:meth:`AuditContext.subset`), the fit-data sample (:meth:`AuditContext.fit_subset`), usable
corruptions for the image size (:meth:`AuditContext.usable_corruptions`) and the OOD set specs
(:func:`ood_specs`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustcv.core.model import Model
from robustcv.core.seeding import derive_seed
from robustcv.data.dataset import Dataset

__all__ = [
    "AuditContext",
    "ContextSpec",
    "DataRef",
    "ModelRef",
    "TensorSource",
    "build_context",
    "derived_ood_name",
    "ood_specs",
]


class TensorSource:
    """A dataset source over tensors already under the image contract (shipped to workers).

    Example:
        >>> src = TensorSource(torch.zeros(2, 1, 4, 4), torch.tensor([0, 1]))
        >>> len(src), src.load(np.array([1]))[1].tolist()
        (2, [1])
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x = x
        self.y = y
        self.labels = y.numpy()

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def load(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels at ``index``."""
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        return self.x[idx], self.y[idx]


def tensor_dataset(data: Dataset) -> Dataset:
    """The same images as an in-memory dataset (materialised once; cheap to pickle)."""
    x, y = data.x, data.y
    return Dataset(data.name, data.split, list(data.classes), TensorSource(x, y), None, (x, y))


@dataclass(frozen=True)
class DataRef:
    """Where a dataset comes from: a spec, a split and optional positions, plus a description.

    Example:
        >>> DataRef("npz:toy.npz", "train", (0, 2), "toy (2 images)").description
        'toy (2 images)'
    """

    spec: str
    split: str = "test"
    indices: tuple[int, ...] | None = None
    description: str = ""

    def load(self) -> Dataset:
        """Load the dataset (and take the positions, when given)."""
        from robustcv.data.loading import load_dataset

        data = load_dataset(self.spec, split=self.split)
        if self.indices is not None:
            data = data.subset(np.asarray(self.indices, dtype=np.int64))
        return data


@dataclass(frozen=True)
class ModelRef:
    """How a worker gets the model: a spec to load, or the model object itself (pickled).

    Attributes:
        spec: a ``load_model`` spec (used when ``obj`` is None).
        device: where to load it.
        obj: a :class:`robustcv.Model` passed as an object (pickled when shipped).
    """

    spec: str
    device: str | None = None
    obj: Model | None = None

    @classmethod
    def of(cls, model: Model, spec: str, device: str | None, loaded_from_spec: bool) -> ModelRef:
        """A reference to ``model``: its spec when it was loaded from one, else the object."""
        return cls(spec, device) if loaded_from_spec else cls(spec, device, model)

    def load(self) -> Model:
        """The model."""
        if self.obj is not None:
            return self.obj
        from robustcv.models.loading import load_model

        return load_model(self.spec, device=self.device)


def derived_ood_name(spec: str) -> str | None:
    """The derived-set name of an OOD spec (``derived:NAME`` or a bare derived name), else None.

    Example:
        >>> derived_ood_name("derived:inverted"), derived_ood_name("npz:f.npz")
        ('inverted', None)
    """
    from robustcv.diagnostics.ood import DERIVED_OOD_SETS

    head, sep, rest = spec.partition(":")
    if sep and head == "derived":
        return rest
    return spec if spec in DERIVED_OOD_SETS else None


def ood_specs(config: Any) -> list[str]:
    """The OOD set specs of an audit (``derived:NAME`` for derived sets).

    Example:
        >>> class C:
        ...     ood_data = ("inverted", "npz:f.npz")
        >>> ood_specs(C())
        ['derived:inverted', 'npz:f.npz']
    """
    from robustcv.diagnostics.ood import DEFAULT_DERIVED_OOD

    if not config.ood_data:
        return [f"derived:{k}" for k in DEFAULT_DERIVED_OOD]
    out = []
    for spec in config.ood_data:
        d = derived_ood_name(spec)
        out.append(f"derived:{d}" if d is not None else spec)
    return out


@dataclass(frozen=True)
class ContextSpec:
    """Plain, picklable description of an audit's context (what a worker rebuilds from).

    Attributes:
        config: the resolved :class:`robustcv.audit.config.AuditConfig`.
        model: how to get the model.
        data: the evaluated images (an in-memory dataset).
        out_dir: the audit folder.
        fit: the fit data, when a suite needs it.
        ood: OOD dataset spec -> reference (derived sets are built from the evaluated images).
        suites: suite name -> instance (:class:`robustcv.audit.suite.Suite`) of every suite this
            audit runs.
    """

    config: Any
    model: ModelRef
    data: Dataset
    out_dir: str
    fit: DataRef | None = None
    ood: Mapping[str, DataRef] = field(default_factory=dict)
    suites: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class AuditContext:
    """What units run against: the model, the evaluated images and lazily loaded extra data.

    Attributes:
        config: the resolved :class:`robustcv.audit.config.AuditConfig`.
        model: the wrapped model.
        data: the evaluated images (already limited).
        out_dir: the audit folder.
        fit: the fit data reference (None when no suite needs it).
        ood: OOD dataset spec -> reference.
        log: the audit's logger.
        memo: per-process cache (fit data, fitted detectors, OOD subsets); anything in it is a
            pure function of the spec, so a unit's row never depends on it.
    """

    config: Any
    model: Model
    data: Dataset
    out_dir: Path
    fit: DataRef | None = None
    ood: Mapping[str, DataRef] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("robustcv.audit"))
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        """The global seed."""
        return int(self.config.seed)

    @property
    def fit_spec(self) -> str:
        """What the fit data is, in words ("" when there is none)."""
        return self.fit.description if self.fit is not None else ""

    def cached(self, key: str, make: Callable[[], Any]) -> Any:
        """``memo[key]``, computed with ``make()`` the first time."""
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def subset(self, name: str, n: int | None, total: int | None = None) -> np.ndarray:
        """Sorted positions of a seeded random subset of ``n`` of the evaluated images.

        The same (seed, name, n, total) always gives the same positions, so two models audited
        with the same seed see the same images. ``n`` None or >= total: every image.
        """
        size = len(self.data) if total is None else total
        if n is None or n >= size:
            return np.arange(size)
        rng = np.random.default_rng(derive_seed(self.seed, "audit-subset", name))
        return np.sort(rng.choice(size, size=n, replace=False))

    def images(self, positions: np.ndarray | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Evaluated images and labels at ``positions``."""
        idx = torch.as_tensor(np.asarray(positions, dtype=np.int64))
        return self.data.x[idx], self.data.y[idx]

    def fit_data(self) -> Dataset:
        """The fit data (loaded once per process)."""
        if self.fit is None:
            raise RuntimeError("this audit has no fit data (a bug: the plan should not need it)")
        ref = self.fit
        out: Dataset = self.cached("fit-data", ref.load)
        return out

    def fit_subset(self, n: int) -> Dataset:
        """A seeded sample of ``n`` fit-data images (the same for every suite that fits)."""

        def make() -> Dataset:
            return self.fit_data().limit(n, seed=derive_seed(self.seed, "audit-fit"))

        out: Dataset = self.cached(f"fit-subset-{n}", make)
        return out

    def ood_data(self, spec: str) -> Dataset:
        """An OOD dataset named by ``--ood-data`` (loaded once per process)."""
        ref = self.ood[spec]
        out: Dataset = self.cached(f"ood-data-{spec}", ref.load)
        return out

    def usable_corruptions(self, names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """(usable canonical corruption names, {name: why not}) for the evaluated image size."""
        from robustcv.corruptions import CORRUPTIONS

        shape = tuple(self.data.x.shape[1:])
        ok, why = [], {}
        for name in names:
            spellings = (name, name.replace("_", "-"), name.replace("-", "_"))
            key = next((k for k in spellings if k in CORRUPTIONS), None)
            if key is None:
                why[name] = "not a registered corruption"
                continue
            defn = CORRUPTIONS.get(key)
            if min(shape[1], shape[2]) < defn.min_size:
                why[name] = f"needs images of at least {defn.min_size}x{defn.min_size} pixels"
                continue
            ok.append(CORRUPTIONS.canonical(key))
        return ok, why

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` in batches, no gradients (CPU)."""
        return self.model.predict_logits(x, batch_size=int(self.config.batch_size))


def build_context(spec: ContextSpec, *, model: Model | None = None) -> AuditContext:
    """An :class:`AuditContext` from its plain description (``model`` skips loading it).

    Example:
        >>> from robustcv.audit.config import AuditConfig
        >>> x, y = torch.zeros(2, 1, 4, 4), torch.tensor([0, 1])
        >>> data = Dataset("toy", "test", ["a", "b"], TensorSource(x, y))
        >>> net = Model(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)))
        >>> cfg = AuditConfig.from_dict({"model": "toy", "data": "toy"})
        >>> ctx = build_context(ContextSpec(cfg, ModelRef("toy"), data, "."), model=net)
        >>> len(ctx.data), ctx.seed
        (2, 0)
    """
    return AuditContext(
        config=spec.config,
        model=model if model is not None else spec.model.load(),
        data=spec.data,
        out_dir=Path(spec.out_dir),
        fit=spec.fit,
        ood=dict(spec.ood),
    )
