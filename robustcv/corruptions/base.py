"""The corruption contract: named parameter tables, a registry, seeded per-sample randomness.

A corruption is a pure function ``fn(x, p, rng) -> y`` over a float32 ``(B, C, H, W)`` batch in
[0, 1]. ``p`` is a :class:`Params` mapping parameter names to floats for one severity, already
resolved for the image size (see :func:`resolve_params`); ``rng`` is a :class:`SampleRNG` that
hands out per-sample randomness. The function must not modify ``x``; the public entry point
:func:`robustcv.corrupt` validates the input, clamps the output to [0, 1] and checks it.

Parameter tables are data, not code: each :class:`CorruptionDef` carries one table per *spec*
(``"imagenet-c"``: the values ImageNet-C used at 224x224; ``"cifar-10-c"``: CIFAR-10-C's at
32x32). The ``"auto"`` spec interpolates every parameter linearly between the two by image size,
``alpha = clamp((sqrt(H*W) - 32) / 192, 0, 1)`` (0 at 32x32, 1 at 224x224 and above).

Randomness: each sample gets its own ``torch.Generator`` seeded from (seed, corruption,
severity, a hash of that image's bytes), so the output for an image does not depend on the batch
it came in, nor on its position. Scalar random choices (an angle, a crop offset) go through
:meth:`SampleRNG.uniform` / :meth:`SampleRNG.randint` under a name; they are logged and can be
replayed exactly (``corrupt(..., replay=draws)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from robustcv.core.errors import InputError
from robustcv.core.registry import Registry

__all__ = [
    "CORRUPTIONS",
    "SPECS",
    "CorruptionDef",
    "CorruptionFn",
    "Family",
    "Params",
    "SampleRNG",
    "register_corruption",
    "resolve_params",
    "size_alpha",
]

Family = Literal["noise", "blur", "weather", "digital", "mvh"]
SPECS: tuple[str, ...] = ("auto", "imagenet-c", "cifar-10-c")
"""Specs accepted by ``spec=``: interpolated by size, the 224-pixel values, the 32-pixel ones."""

Params = dict[str, float]


class SampleRNG:
    """Per-sample random streams for one corruption call, with logged scalar draws.

    Args:
        generators: one seeded ``torch.Generator`` per sample (on the images' device or CPU).
        device: where returned tensors live.
        replay: scalar draws from an earlier call (``{name: tensor (B,)}``) to reuse exactly.

    Example:
        >>> rng = SampleRNG([torch.Generator().manual_seed(s) for s in (1, 2)], "cpu")
        >>> angle = rng.uniform("angle", -45.0, 45.0)
        >>> angle.shape, sorted(rng.draws)
        (torch.Size([2]), ['angle'])
        >>> again = SampleRNG([torch.Generator().manual_seed(9)] * 2, "cpu", replay=rng.draws)
        >>> torch.equal(again.uniform("angle", -45.0, 45.0), angle)
        True
    """

    def __init__(
        self,
        generators: Sequence[torch.Generator] | Callable[[], Sequence[torch.Generator]],
        device: torch.device | str,
        replay: Mapping[str, torch.Tensor] | None = None,
        *,
        batch_size: int | None = None,
    ) -> None:
        if callable(generators):
            if batch_size is None:
                raise InputError("SampleRNG with a generator factory needs batch_size")
            self._factory: Callable[[], Sequence[torch.Generator]] | None = generators
            self._generators: list[torch.Generator] | None = None
            self._batch = batch_size
        else:
            self._factory = None
            self._generators = list(generators)
            self._batch = len(self._generators)
        self.device = torch.device(device)
        self.replay = dict(replay or {})
        self.draws: dict[str, torch.Tensor] = {}

    @property
    def generators(self) -> list[torch.Generator]:
        """One seeded generator per sample, built on first use.

        Deterministic corruptions never ask for them, so they never pay for hashing the images.
        """
        if self._generators is None:
            assert self._factory is not None  # set in __init__
            self._generators = list(self._factory())
        return self._generators

    @property
    def batch_size(self) -> int:
        """Number of samples (one generator each)."""
        return self._batch

    def _scalar(self, name: str, make: Callable[[torch.Generator], float]) -> torch.Tensor:
        if name in self.draws:
            raise InputError(f"scalar draw '{name}' requested twice in one call (a bug)")
        if name in self.replay:
            value = torch.as_tensor(self.replay[name]).to("cpu", torch.float64).reshape(-1)
            if value.numel() != self.batch_size:
                raise InputError(
                    f"replayed draw '{name}' has {value.numel()} values for "
                    f"{self.batch_size} images; replay draws from a call on the same batch"
                )
        else:
            value = torch.tensor([make(g) for g in self.generators], dtype=torch.float64)
        self.draws[name] = value
        return value

    def uniform(self, name: str, low: float, high: float) -> torch.Tensor:
        """One float per sample, uniform in [low, high), logged under ``name`` (CPU float64)."""
        return self._scalar(
            name,
            lambda g: (
                low
                + (high - low)
                * float(torch.rand((), generator=g, device=g.device, dtype=torch.float64))
            ),
        )

    def randint(self, name: str, low: int, high: int) -> torch.Tensor:
        """One int per sample in [low, high), logged under ``name`` (CPU float64 holding ints)."""
        return self._scalar(
            name,
            lambda g: float(torch.randint(low, high, (), generator=g, device=g.device)),
        )

    def _per_sample(
        self, shape: Sequence[int], draw: Callable[[torch.Generator], torch.Tensor]
    ) -> torch.Tensor:
        out = [draw(g).to(self.device) for g in self.generators]
        return torch.stack(out).reshape(self.batch_size, *shape)

    def rand(self, *shape: int) -> torch.Tensor:
        """Uniform [0, 1) noise of shape ``(B, *shape)``, each row from its sample's stream."""
        return self._per_sample(
            shape, lambda g: torch.rand(tuple(shape), generator=g, device=g.device)
        )

    def randn(self, *shape: int) -> torch.Tensor:
        """Standard normal noise of shape ``(B, *shape)``, each row from its sample's stream."""
        return self._per_sample(
            shape, lambda g: torch.randn(tuple(shape), generator=g, device=g.device)
        )

    def poisson(self, rate: torch.Tensor) -> torch.Tensor:
        """Poisson samples with per-element ``rate`` of shape ``(B, ...)``."""
        if rate.shape[0] != self.batch_size:
            raise InputError(f"rate has {rate.shape[0]} rows for {self.batch_size} samples")
        rows = []
        for i, g in enumerate(self.generators):
            rows.append(torch.poisson(rate[i].to(g.device), generator=g).to(self.device))
        return torch.stack(rows)


CorruptionFn = Callable[[torch.Tensor, Params, SampleRNG], torch.Tensor]


@dataclass(frozen=True)
class CorruptionDef:
    """A registered corruption: its function, parameter tables and documentation.

    Attributes:
        name: registry name (``"gaussian_noise"``, ``"mvh-contrast"``).
        fn: the pure function ``fn(x, p, rng) -> y``.
        family: ``noise``, ``blur``, ``weather``, ``digital`` or ``mvh``.
        benchmark: one of ImageNet-C's 15 benchmark corruptions (the others are held out).
        param_names: names of the parameters, in table order.
        tables: spec name -> one tuple of values per severity (``"imagenet-c"`` and
            ``"cifar-10-c"``; a model-vs-human degradation has one ``"levels"`` table and its
            severity indexes the published level list).
        integer_params: parameters rounded to the nearest integer after interpolation.
        random: whether the output depends on the seed.
        min_size: smallest height and width accepted.
        summary: one line for ``robustcv list corruptions``.
        greyscale: what the corruption does on single-channel images.
    """

    name: str
    fn: CorruptionFn
    family: Family
    benchmark: bool
    param_names: tuple[str, ...]
    tables: Mapping[str, tuple[tuple[float, ...], ...]]
    integer_params: tuple[str, ...] = ()
    random: bool = False
    min_size: int = 8
    summary: str = ""
    greyscale: str = "applied to the single channel as it is to each RGB channel"
    notes: tuple[str, ...] = field(default=())

    @property
    def severities(self) -> int:
        """Number of severities (5 for ImageNet-C corruptions; level count for ``mvh-``)."""
        return len(next(iter(self.tables.values())))


CORRUPTIONS: Registry[CorruptionDef] = Registry("corruption")


def register_corruption(defn: CorruptionDef) -> CorruptionDef:
    """Validate the tables of ``defn`` and add it to :data:`CORRUPTIONS`.

    Raises:
        InputError: a table has the wrong number of rows or values (a bug in robustcv).
    """
    if defn.family == "mvh":
        if set(defn.tables) != {"levels"}:
            raise InputError(f"{defn.name}: a model-vs-human degradation has one 'levels' table")
    elif set(defn.tables) != {"imagenet-c", "cifar-10-c"}:
        raise InputError(f"{defn.name}: needs 'imagenet-c' and 'cifar-10-c' tables")
    counts = {len(t) for t in defn.tables.values()}
    if len(counts) != 1 or (defn.family != "mvh" and counts != {5}):
        raise InputError(f"{defn.name}: tables need the same number of rows (5 for ImageNet-C)")
    for table in defn.tables.values():
        for row in table:
            if len(row) != len(defn.param_names):
                raise InputError(f"{defn.name}: row {row} does not match {defn.param_names}")
    unknown = set(defn.integer_params) - set(defn.param_names)
    if unknown:
        raise InputError(f"{defn.name}: integer_params {sorted(unknown)} are not parameters")
    alias = defn.name.replace("_", "-")
    aliases = (alias,) if alias != defn.name else ()
    CORRUPTIONS.add(defn.name, defn, summary=defn.summary, aliases=aliases)
    return defn


def size_alpha(height: int, width: int) -> float:
    """Interpolation weight of the ``auto`` spec: 0 at 32x32 (CIFAR), 1 at 224x224 and above.

    Example:
        >>> size_alpha(32, 32), size_alpha(128, 128), size_alpha(512, 512)
        (0.0, 0.5, 1.0)
    """
    return min(max((math.sqrt(height * width) - 32.0) / 192.0, 0.0), 1.0)


def resolve_params(
    defn: CorruptionDef, severity: int, spec: str, height: int, width: int
) -> Params:
    """The parameters of ``defn`` at ``severity`` under ``spec`` for an image of this size.

    Args:
        defn: the corruption.
        severity: 1-based severity (or level index for ``mvh-`` degradations).
        spec: ``"auto"``, ``"imagenet-c"`` or ``"cifar-10-c"`` (ignored for ``mvh-``).
        height: image height.
        width: image width.

    Example:
        >>> d = CorruptionDef("demo", lambda x, p, r: x, "noise", True, ("sigma",),
        ...                   {"imagenet-c": ((0.08,),) * 5, "cifar-10-c": ((0.04,),) * 5})
        >>> resolve_params(d, 1, "auto", 128, 128)
        {'sigma': 0.06}
    """
    if isinstance(severity, bool) or not isinstance(severity, int):
        raise InputError(f"severity must be an int, got {severity!r}; use 1..{defn.severities}")
    if not 1 <= severity <= defn.severities:
        what = "level index" if defn.family == "mvh" else "severity"
        raise InputError(
            f"{what} {severity} is outside 1..{defn.severities} for '{defn.name}'; "
            f"pick one of {', '.join(str(s) for s in range(1, defn.severities + 1))}"
        )
    if defn.family == "mvh":
        row = defn.tables["levels"][severity - 1]
    else:
        if spec not in SPECS:
            raise InputError(f"unknown spec '{spec}'; use one of {', '.join(SPECS)}")
        big = defn.tables["imagenet-c"][severity - 1]
        small = defn.tables["cifar-10-c"][severity - 1]
        a = {"imagenet-c": 1.0, "cifar-10-c": 0.0}.get(spec, size_alpha(height, width))
        row = tuple(s + a * (b - s) for s, b in zip(small, big, strict=True))
    params = {k: float(v) for k, v in zip(defn.param_names, row, strict=True)}
    for k in defn.integer_params:
        params[k] = float(round(params[k]))
    return {k: round(v, 12) for k, v in params.items()}
