"""Threat models: the perturbation sets an attack searches, one small strategy object per norm.

A threat model is the set ``{z : ||z - x||_p <= eps} ∩ [0, 1]^n`` around each clean image ``x``.
Each strategy (:class:`Linf`, :class:`L2`, :class:`L1`, :class:`L0`) knows how to measure a
perturbation (:meth:`~ThreatModel.norm`), project onto the set (:meth:`~ThreatModel.project`),
draw a random starting point in it (:meth:`~ThreatModel.random_start`) and give the
steepest-ascent direction of a gradient for its norm (:meth:`~ThreatModel.steepest`). For
:class:`L0` the "norm" counts changed coordinates and ``eps`` is that count.

Every method is batched over the first axis (any trailing shape, typically ``(C, H, W)``) and
accepts a per-sample radius: ``eps`` is a float or a tensor of shape ``(B,)``. Randomness only
comes from an explicit ``torch.Generator``. Computations run in the input dtype, promoted to at
least ``float32`` (half-precision inputs are computed in ``float32`` and cast back).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from robustcv.core.errors import InputError
from robustcv.core.names import canonical_norm

__all__ = ["L0", "L1", "L2", "Linf", "ThreatModel", "get_threat"]


# ----------------------------------------------------------------------------- validation helpers


def _work_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype computations run in: the promoted input dtype, at least ``float32``."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _check_tensor(t: Any, name: str) -> torch.Tensor:
    """Check ``t`` is a floating tensor with a batch axis and at least one value per sample."""
    if not isinstance(t, torch.Tensor):
        raise InputError(f"{name} is a {type(t).__name__}, not a torch.Tensor; pass a tensor")
    if not t.is_floating_point():
        raise InputError(
            f"{name} has dtype {t.dtype}; pass a floating tensor (e.g. {name}.float())"
        )
    if t.dim() == 0:
        raise InputError(f"{name} is a scalar; pass a batch with the samples on the first axis")
    if t.shape[0] > 0 and t[0].numel() == 0:
        raise InputError(
            f"{name} has shape {tuple(t.shape)}, i.e. no values per sample; pass non-empty samples"
        )
    return t


def _check_pair(a: Any, b: Any, name_a: str, name_b: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two tensors are valid batches of the same shape on the same device."""
    a = _check_tensor(a, name_a)
    b = _check_tensor(b, name_b)
    if a.shape != b.shape:
        raise InputError(
            f"{name_a} has shape {tuple(a.shape)} but {name_b} has shape {tuple(b.shape)}; "
            "they must match (one perturbation per image)"
        )
    if a.device != b.device:
        raise InputError(
            f"{name_a} is on {a.device} but {name_b} is on {b.device}; move them to one device"
        )
    return a, b


def _check_in_box(x: torch.Tensor, lo: float, hi: float, name: str = "x") -> None:
    """Raise if ``x`` has values outside ``[lo, hi]`` (the centre of the ball must be feasible)."""
    if x.numel() == 0:
        return
    flat = x.detach()
    x_min, x_max = float(flat.min()), float(flat.max())
    if not (lo <= x_min and x_max <= hi):  # also catches NaN
        raise InputError(
            f"{name} has values in [{x_min:.4g}, {x_max:.4g}], outside the bounds "
            f"[{lo:g}, {hi:g}]; pass clean images inside the bounds "
            f"(e.g. {name}.clamp({lo:g}, {hi:g}))"
        )


def _batch_eps(
    eps: Any,
    batch: int,
    dtype: torch.dtype,
    device: torch.device,
    *,
    allow_inf: bool = True,
    name: str = "eps",
) -> torch.Tensor:
    """Turn a float or ``(B,)`` tensor radius into a validated ``(B,)`` tensor."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float, torch.Tensor)):
        raise InputError(
            f"{name} is a {type(eps).__name__}; pass a float or a tensor of shape ({batch},)"
        )
    if isinstance(eps, torch.Tensor):
        if eps.is_complex() or eps.dtype == torch.bool:
            raise InputError(f"{name} has dtype {eps.dtype}; pass real, non-negative radii")
        if eps.dim() == 0:
            out = eps.to(device=device, dtype=dtype).expand(batch)
        elif eps.shape == (batch,):
            out = eps.to(device=device, dtype=dtype)
        else:
            raise InputError(
                f"{name} has shape {tuple(eps.shape)}; pass a float or one radius per sample, "
                f"shape ({batch},)"
            )
        values = eps.detach()
        bad_neg = bool((values < 0).any()) if values.numel() else False
        bad_nan = bool(torch.isnan(values).any()) if values.numel() else False
        bad_inf = bool(torch.isinf(values).any()) if values.numel() else False
        shown = f"a tensor with min {float(values.min()):g}" if values.numel() else "empty"
    else:
        out = torch.full((batch,), float(eps), dtype=dtype, device=device)
        bad_neg = eps < 0
        bad_nan = math.isnan(eps)
        bad_inf = math.isinf(eps)
        shown = repr(eps)
    if bad_nan or bad_neg:
        raise InputError(f"{name} must be non-negative and not NaN (got {shown}); pass radii >= 0")
    if bad_inf and not allow_inf:
        raise InputError(f"{name} must be finite here (got {shown}); pass a finite radius")
    return out


def _check_generator(generator: Any, device: torch.device) -> torch.Generator:
    """Check ``generator`` is a ``torch.Generator`` on the device of the data."""
    if not isinstance(generator, torch.Generator):
        raise InputError(
            f"generator is a {type(generator).__name__}; pass a torch.Generator, e.g. "
            "robustcv.core.seeding.make_generator(seed, device=x.device)"
        )
    gen_dev = generator.device
    same = gen_dev.type == device.type and (
        gen_dev.index is None or device.index is None or gen_dev.index == device.index
    )
    if not same:
        raise InputError(
            f"generator is on {gen_dev} but x is on {device}; create it with "
            "robustcv.core.seeding.make_generator(seed, device=x.device)"
        )
    return generator


def _bisection_steps(dtype: torch.dtype) -> int:
    """Number of bisection halvings: enough to reach the resolution of ``dtype``."""
    return 60 if dtype == torch.float64 else 50


def _col(v: torch.Tensor) -> torch.Tensor:
    """Turn a ``(B,)`` vector into a ``(B, 1)`` column for broadcasting over flat samples."""
    return v.unsqueeze(1)


# ----------------------------------------------------------------------------- threat models


@dataclass(frozen=True)
class ThreatModel(ABC):
    """Interface of a threat model: the ``||.||_p`` ball of radius ``eps`` intersected with [0,1].

    Attributes:
        name: the canonical name ("linf", "l2", "l1", "l0").
        p: the norm order (``float('inf')``, ``2.0``, ``1.0``, ``0.0``).

    Example:
        >>> import torch
        >>> threat = get_threat("l2")
        >>> x = torch.full((2, 1, 2, 2), 0.5)
        >>> x_adv = threat.project(x, x + 1.0, eps=0.5)
        >>> threat.norm(x_adv - x)
        tensor([0.5000, 0.5000])
    """

    name: ClassVar[str]
    p: ClassVar[float]

    def norm(self, delta: torch.Tensor) -> torch.Tensor:
        """Per-sample ``p``-norm of a batch of perturbations.

        Args:
            delta: perturbations of shape ``(B, ...)``.

        Returns:
            A ``(B,)`` tensor of norms.

        Example:
            >>> import torch
            >>> Linf().norm(torch.tensor([[0.1, -0.3], [0.0, 0.0]]))
            tensor([0.3000, 0.0000])
        """
        delta = _check_tensor(delta, "delta")
        flat = delta.reshape(delta.shape[0], -1)
        return torch.linalg.vector_norm(flat, ord=self.p, dim=1)

    @abstractmethod
    def project(
        self,
        x: torch.Tensor,
        x_adv: torch.Tensor,
        eps: float | torch.Tensor,
        *,
        check: bool = True,
    ) -> torch.Tensor:
        """Euclidean projection of ``x_adv`` onto ``{z : ||z - x||_p <= eps} ∩ [0, 1]^n``.

        Args:
            x: clean images ``(B, ...)`` with values in ``[0, 1]``.
            x_adv: the points to project, same shape as ``x``.
            eps: the radius, a float or a ``(B,)`` tensor (``inf`` means only the box).
            check: validate the inputs (default). Attacks pass ``False`` in inner loops, where
                the runner has already validated ``x`` and ``eps``.

        Returns:
            The closest feasible point to ``x_adv``, same shape and dtype as ``x_adv``.

        Example:
            >>> import torch
            >>> x = torch.zeros(1, 2)
            >>> Linf().project(x, torch.tensor([[0.5, -0.5]]), eps=0.1)
            tensor([[0.1000, 0.0000]])
        """

    @abstractmethod
    def random_start(
        self, x: torch.Tensor, eps: float | torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Draw a random point of the ball of radius ``eps`` around ``x``, inside ``[0, 1]``.

        Args:
            x: clean images ``(B, ...)`` with values in ``[0, 1]``.
            eps: the radius, a finite float or a ``(B,)`` tensor.
            generator: the only source of randomness, on the device of ``x``.

        Returns:
            A feasible starting point, same shape and dtype as ``x``.

        Example:
            >>> import torch
            >>> x = torch.full((2, 3), 0.5)
            >>> x0 = L2().random_start(x, 0.1, torch.Generator().manual_seed(0))
            >>> bool((L2().norm(x0 - x) <= 0.1 + 1e-6).all())
            True
        """

    def _uniform_radius_point(
        self,
        x: torch.Tensor,
        xf: torch.Tensor,
        e: torch.Tensor,
        direction: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """``x + eps * U**(1/n) * direction``, projected onto ball and box.

        Uniform in the ball when ``direction`` is uniform on the unit sphere.
        """
        u = torch.rand(xf.shape[0], generator=generator, device=x.device, dtype=xf.dtype)
        radius = e * u.pow(1.0 / xf.shape[1])
        x0 = (xf + _col(radius) * direction).reshape(x.shape)
        return self.project(x.to(xf.dtype), x0, e).to(x.dtype)

    @abstractmethod
    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        """Steepest-ascent direction of ``grad``: a unit-norm ``d`` maximising ``<grad, d>``.

        (:class:`L1` maximises over a sparser set, see its docstring.) A sample with an all-zero
        gradient gets an all-zero direction (never NaN).

        Args:
            grad: gradients of shape ``(B, ...)``.

        Returns:
            Directions with the same shape and dtype as ``grad``.

        Example:
            >>> import torch
            >>> L2().steepest(torch.tensor([[3.0, -4.0], [0.0, 0.0]]))
            tensor([[ 0.6000, -0.8000],
                    [ 0.0000,  0.0000]])
        """


def _prepare(
    x: torch.Tensor, x_adv: torch.Tensor, eps: Any, check: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.dtype]:
    """Validate a projection call; return flat ``x``, ``x_adv`` and ``eps`` in the work dtype.

    ``check=False`` is the inner-loop fast path for attacks whose inputs the runner already
    validated: no shape, box or radius checks (and no device synchronisation).
    """
    if check:
        x, x_adv = _check_pair(x, x_adv, "x", "x_adv")
        _check_in_box(x, 0.0, 1.0, "x")
    dtype = _work_dtype(x, x_adv)
    batch = x.shape[0]
    xf = x.reshape(batch, -1).to(dtype)
    af = x_adv.reshape(batch, -1).to(dtype)
    if check or not isinstance(eps, torch.Tensor):
        e = _batch_eps(eps, batch, dtype, x.device)
    else:
        e = eps.to(device=x.device, dtype=dtype)
        e = e.expand(batch) if e.dim() == 0 else e
    return xf, af, e, dtype


def _start_setup(
    x: Any, eps: Any, generator: Any
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Generator]:
    """Validate a random-start call; return ``x``, flat ``x`` and ``eps`` in the work dtype."""
    x = _check_tensor(x, "x")
    _check_in_box(x, 0.0, 1.0, "x")
    generator = _check_generator(generator, x.device)
    dtype = _work_dtype(x)
    batch = x.shape[0]
    xf = x.reshape(batch, -1).to(dtype)
    e = _batch_eps(eps, batch, dtype, x.device, allow_inf=False)
    return x, xf, e, generator


def _finish(
    x_adv: torch.Tensor, xf: torch.Tensor, d: torch.Tensor, inside: torch.Tensor
) -> torch.Tensor:
    """Assemble ``x + d``, clamped into the box against rounding.

    Samples that were already inside the ball get exactly the box-clipped ``x_adv``.
    """
    projected = (xf + d).clamp(0.0, 1.0)
    clipped = x_adv.reshape(xf.shape).to(xf.dtype).clamp(0.0, 1.0)
    out = torch.where(_col(inside), clipped, projected)
    return out.reshape(x_adv.shape).to(x_adv.dtype)


@dataclass(frozen=True)
class Linf(ThreatModel):
    """The L-infinity threat model: every pixel moves by at most ``eps``.

    Projection is per-coordinate clamping (the set is a box), random starts are uniform in the
    cube then clipped to ``[0, 1]``, and the steepest direction is ``sign(grad)``.

    Example:
        >>> import torch
        >>> threat = Linf()
        >>> threat.name, threat.p
        ('linf', inf)
        >>> x = torch.tensor([[0.0, 0.5, 1.0]])
        >>> threat.project(x, x + torch.tensor([[0.3, -0.3, 0.05]]), eps=0.1)
        tensor([[0.1000, 0.4000, 1.0000]])
        >>> threat.steepest(torch.tensor([[2.0, -0.1, 0.0]]))
        tensor([[ 1., -1.,  0.]])
    """

    name: ClassVar[str] = "linf"
    p: ClassVar[float] = math.inf

    def project(
        self,
        x: torch.Tensor,
        x_adv: torch.Tensor,
        eps: float | torch.Tensor,
        *,
        check: bool = True,
    ) -> torch.Tensor:
        """Clamp ``x_adv`` to ``[x - eps, x + eps] ∩ [0, 1]`` (the exact projection).

        Example:
            >>> import torch
            >>> Linf().project(torch.zeros(1, 1), torch.ones(1, 1), eps=0.25)
            tensor([[0.2500]])
        """
        xf, af, e, _ = _prepare(x, x_adv, eps, check)
        ec = _col(e)
        out = torch.minimum(torch.maximum(af, xf - ec), xf + ec).clamp(0.0, 1.0)
        return out.reshape(x_adv.shape).to(x_adv.dtype)

    def random_start(
        self, x: torch.Tensor, eps: float | torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Uniform in the cube ``[x - eps, x + eps]``, then clipped to ``[0, 1]``.

        Example:
            >>> import torch
            >>> x = torch.full((1, 4), 0.5)
            >>> x0 = Linf().random_start(x, 0.1, torch.Generator().manual_seed(0))
            >>> bool(((x0 - x).abs() <= 0.1).all())
            True
        """
        x, xf, e, generator = _start_setup(x, eps, generator)
        dtype = xf.dtype
        u = torch.rand(xf.shape, generator=generator, device=x.device, dtype=dtype)
        out = (xf + (2.0 * u - 1.0) * _col(e)).clamp(0.0, 1.0)
        return out.reshape(x.shape).to(x.dtype)

    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        """``sign(grad)``: maximises ``<grad, d>`` over ``||d||_inf <= 1``.

        Example:
            >>> import torch
            >>> Linf().steepest(torch.tensor([[0.0, -3.0]]))
            tensor([[ 0., -1.]])
        """
        grad = _check_tensor(grad, "grad")
        return torch.sign(grad)


@dataclass(frozen=True)
class L2(ThreatModel):
    """The L2 threat model.

    Projection onto the ball ∩ box solves the KKT conditions: the minimiser is
    ``d = clip(v / (1 + lam), -x, 1 - x)`` for the multiplier ``lam >= 0`` making ``||d||_2 = eps``
    (``v = x_adv - x``), found by a batched bisection. Random starts are uniform in the ball
    (Gaussian direction, radius ``eps * U**(1/n)``) and then projected onto the box.

    Example:
        >>> import torch
        >>> threat = L2()
        >>> threat.name, threat.p
        ('l2', 2.0)
        >>> x = torch.tensor([[0.5, 0.5]])
        >>> threat.project(x, torch.tensor([[1.1, 0.5]]), eps=0.3)
        tensor([[0.8000, 0.5000]])
    """

    name: ClassVar[str] = "l2"
    p: ClassVar[float] = 2.0

    def project(
        self,
        x: torch.Tensor,
        x_adv: torch.Tensor,
        eps: float | torch.Tensor,
        *,
        check: bool = True,
    ) -> torch.Tensor:
        """Exact Euclidean projection onto the L2 ball ∩ ``[0, 1]^n`` (up to bisection tolerance).

        The bisection runs on ``t = 1 / (1 + lam)`` in ``[0, 1]`` (``||clip(t v)||_2`` increases
        with ``t``) for 60 halvings in ``float64`` and 50 otherwise, and keeps the feasible end of
        the bracket, so the result never leaves the ball (up to rounding). Samples whose box-clipped
        point is already inside the ball get exactly ``x_adv.clamp(0, 1)``.

        Example:
            >>> import torch
            >>> x = torch.zeros(1, 2)
            >>> L2().project(x, torch.tensor([[3.0, 4.0]]), eps=0.5)
            tensor([[0.3000, 0.4000]])
        """
        xf, af, e, dtype = _prepare(x, x_adv, eps, check)
        v = af - xf
        # clip(t v, -x, 1 - x) = sign(v) * min(t |v|, room) for t >= 0, room = box room along v
        mag = v.abs()
        room = torch.where(v > 0, 1.0 - xf, xf)
        e2 = e * e
        inside = mag.minimum(room).square().sum(1) <= e2
        if bool(inside.all()):
            return x_adv.clamp(0.0, 1.0)
        t_lo = torch.zeros_like(e)
        t_hi = torch.ones_like(e)
        for _ in range(_bisection_steps(dtype)):
            mid = 0.5 * (t_lo + t_hi)
            too_far = (_col(mid) * mag).minimum(room).square().sum(1) > e2
            t_hi = torch.where(too_far, mid, t_hi)
            t_lo = torch.where(too_far, t_lo, mid)
        d = torch.sign(v) * (_col(t_lo) * mag).minimum(room)
        return _finish(x_adv, xf, d, inside)

    def random_start(
        self, x: torch.Tensor, eps: float | torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Uniform in the L2 ball (Gaussian direction, radius ``eps * U**(1/n)``), then projected.

        Example:
            >>> import torch
            >>> x = torch.full((2, 4), 0.5)
            >>> x0 = L2().random_start(x, 0.2, torch.Generator().manual_seed(1))
            >>> bool((L2().norm(x0 - x) <= 0.2 + 1e-6).all())
            True
        """
        x, xf, e, generator = _start_setup(x, eps, generator)
        dtype = xf.dtype
        g = torch.randn(xf.shape, generator=generator, device=x.device, dtype=dtype)
        length = torch.linalg.vector_norm(g, dim=1)
        direction = g / _col(torch.where(length > 0, length, torch.ones_like(length)))
        return self._uniform_radius_point(x, xf, e, direction, generator)

    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        """``grad / ||grad||_2`` per sample (zero stays zero; computed without overflow).

        Example:
            >>> import torch
            >>> L2().steepest(torch.tensor([[0.0, -2.0]]))
            tensor([[ 0., -1.]])
        """
        grad = _check_tensor(grad, "grad")
        dtype = _work_dtype(grad)
        flat = grad.reshape(grad.shape[0], -1).to(dtype)
        peak = flat.abs().amax(1)
        scaled = flat / _col(torch.where(peak > 0, peak, torch.ones_like(peak)))
        length = torch.linalg.vector_norm(scaled, dim=1)
        out = scaled / _col(torch.where(length > 0, length, torch.ones_like(length)))
        return out.reshape(grad.shape).to(grad.dtype)


@dataclass(frozen=True)
class L1(ThreatModel):
    """The L1 threat model.

    Projection onto the ball ∩ box solves the KKT conditions: the minimiser is
    ``d_i = sign(v_i) * clip(|v_i| - lam, 0, u_i)`` with ``u_i`` the room left in the box in the
    direction of ``v_i`` and ``lam >= 0`` making ``||d||_1 = eps``, found by a batched bisection.

    Random starts are uniform in the L1 ball: a Laplace vector normalised to unit L1 norm is
    uniform on the L1 sphere, and the radius ``eps * U**(1/n)`` makes the point uniform in the
    ball; the point is then projected onto the box.

    The steepest direction is sparse: the ``k`` largest ``|grad|`` coordinates get
    ``sign(grad) / k`` (fewer if some of them are zero), the rest zero. It maximises ``<grad, d>``
    over ``{||d||_1 <= 1, ||d||_inf <= 1/k}``; ``k = 1`` gives the exact L1 steepest ascent.

    Args:
        k: number of coordinates the steepest direction keeps; ``None`` uses ``k_fraction``.
        k_fraction: fraction of the coordinates kept when ``k`` is ``None`` (at least one).

    Example:
        >>> import torch
        >>> threat = L1(k=2)
        >>> threat.name, threat.p
        ('l1', 1.0)
        >>> threat.steepest(torch.tensor([[0.1, -3.0, 2.0, 0.0]]))
        tensor([[ 0.0000, -0.5000,  0.5000,  0.0000]])
        >>> x = torch.full((1, 2), 0.5)
        >>> threat.project(x, torch.tensor([[0.9, 0.7]]), eps=0.2)
        tensor([[0.7000, 0.5000]])
    """

    name: ClassVar[str] = "l1"
    p: ClassVar[float] = 1.0

    k: int | None = None
    k_fraction: float = 0.01

    def __post_init__(self) -> None:
        if self.k is not None and (
            isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1
        ):
            raise InputError(f"L1 k must be a positive int or None, got {self.k!r}; e.g. k=10")
        if isinstance(self.k_fraction, bool) or not isinstance(self.k_fraction, (int, float)):
            raise InputError(f"L1 k_fraction must be a float in (0, 1], got {self.k_fraction!r}")
        if not 0.0 < self.k_fraction <= 1.0:
            raise InputError(
                f"L1 k_fraction must be in (0, 1], got {self.k_fraction!r}; e.g. k_fraction=0.01"
            )

    def sparsity_k(self, n: int) -> int:
        """Number of coordinates :meth:`steepest` keeps for samples with ``n`` values.

        Example:
            >>> L1().sparsity_k(3 * 32 * 32), L1().sparsity_k(10), L1(k=5).sparsity_k(3)
            (30, 1, 3)
        """
        if self.k is not None:
            return max(1, min(n, self.k))
        return max(1, min(n, int(self.k_fraction * n)))

    def project(
        self,
        x: torch.Tensor,
        x_adv: torch.Tensor,
        eps: float | torch.Tensor,
        *,
        check: bool = True,
    ) -> torch.Tensor:
        """Exact Euclidean projection onto the L1 ball ∩ ``[0, 1]^n`` (up to bisection tolerance).

        The bisection runs on the multiplier ``lam`` in ``[0, max |v|]`` (``||d(lam)||_1``
        decreases with ``lam``) for 60 halvings in ``float64`` and 50 otherwise, and keeps the
        feasible end of the bracket, so the result never leaves the ball (up to rounding). Samples
        whose box-clipped point is already inside the ball get exactly ``x_adv.clamp(0, 1)``.

        Example:
            >>> import torch
            >>> L1().project(torch.zeros(1, 2), torch.tensor([[0.5, 0.3]]), eps=0.4)
            tensor([[0.3000, 0.1000]])
        """
        xf, af, e, dtype = _prepare(x, x_adv, eps, check)
        v = af - xf
        mag = v.abs()
        sign = torch.sign(v)
        room = torch.where(v > 0, 1.0 - xf, xf)
        inside = mag.minimum(room).sum(1) <= e
        if bool(inside.all()):
            return x_adv.clamp(0.0, 1.0)
        lam_lo = torch.zeros_like(e)
        lam_hi = mag.amax(1)
        for _ in range(_bisection_steps(dtype)):
            mid = 0.5 * (lam_lo + lam_hi)
            too_far = (mag - _col(mid)).clamp(min=0.0).minimum(room).sum(1) > e
            lam_lo = torch.where(too_far, mid, lam_lo)
            lam_hi = torch.where(too_far, lam_hi, mid)
        d = sign * (mag - _col(lam_hi)).clamp(min=0.0).minimum(room)
        return _finish(x_adv, xf, d, inside)

    def random_start(
        self, x: torch.Tensor, eps: float | torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """Uniform in the L1 ball (Laplace direction, radius ``eps * U**(1/n)``), then projected.

        Example:
            >>> import torch
            >>> x = torch.full((2, 4), 0.5)
            >>> x0 = L1().random_start(x, 0.2, torch.Generator().manual_seed(1))
            >>> bool((L1().norm(x0 - x) <= 0.2 + 1e-6).all())
            True
        """
        x, xf, e, generator = _start_setup(x, eps, generator)
        dtype = xf.dtype
        u = torch.rand(xf.shape, generator=generator, device=x.device, dtype=dtype)
        magnitude = -torch.log1p(-u)  # Exponential(1), finite since u < 1
        coin = torch.rand(xf.shape, generator=generator, device=x.device, dtype=dtype)
        laplace = torch.where(coin < 0.5, -magnitude, magnitude)
        total = laplace.abs().sum(1)
        direction = laplace / _col(torch.where(total > 0, total, torch.ones_like(total)))
        return self._uniform_radius_point(x, xf, e, direction, generator)

    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        """Sparse unit-L1 direction: ``sign(grad)`` on the top-``k`` ``|grad|`` coordinates.

        Example:
            >>> import torch
            >>> L1(k=1).steepest(torch.tensor([[0.5, -2.0], [0.0, 0.0]]))
            tensor([[ 0., -1.],
                    [ 0.,  0.]])
        """
        grad = _check_tensor(grad, "grad")
        flat = grad.reshape(grad.shape[0], -1)
        k = self.sparsity_k(flat.shape[1])
        idx = flat.abs().topk(k, dim=1).indices
        signs = torch.sign(flat.gather(1, idx))
        count = signs.abs().sum(1, keepdim=True).clamp(min=1.0)
        out = torch.zeros_like(flat).scatter(1, idx, signs / count)
        return out.reshape(grad.shape)


@dataclass(frozen=True)
class L0(ThreatModel):
    """The L0 threat model: at most ``eps`` coordinates (pixel values, per channel) change.

    ``eps`` counts coordinates; a fractional radius is rounded down. The norm counts the nonzero
    entries of the perturbation.

    Projection onto ``{||d||_0 <= k} ∩ box`` is exact and separable: each coordinate's best kept
    value is its box-clipped one, which lowers the squared distance by
    ``v_i**2 - (v_i - d_i)**2`` compared with leaving it unchanged; the ``k`` coordinates with the
    largest gain are kept (ties broken by position), all others return to ``x``.

    Random starts pick ``k`` coordinates uniformly at random and give them uniform values in
    ``[0, 1]``. The steepest direction is the L2-normalised gradient: L0 has no useful dual norm,
    so attacks step in L2 and let the projection choose the coordinates (as FMN does).

    Example:
        >>> import torch
        >>> threat = L0()
        >>> threat.name, threat.p
        ('l0', 0.0)
        >>> x = torch.full((1, 4), 0.5)
        >>> threat.project(x, torch.tensor([[0.9, 0.4, 1.7, 0.5]]), eps=2)
        tensor([[0.9000, 0.5000, 1.0000, 0.5000]])
        >>> threat.norm(torch.tensor([[0.0, 0.2, -0.1, 0.0]]))
        tensor([2.])
    """

    name: ClassVar[str] = "l0"
    p: ClassVar[float] = 0.0

    def project(
        self,
        x: torch.Tensor,
        x_adv: torch.Tensor,
        eps: float | torch.Tensor,
        *,
        check: bool = True,
    ) -> torch.Tensor:
        """Keep the ``floor(eps)`` box-clipped changes that reduce the distance most.

        Example:
            >>> import torch
            >>> L0().project(torch.zeros(1, 3), torch.tensor([[0.2, -0.9, 0.5]]), eps=1)
            tensor([[0.0000, 0.0000, 0.5000]])
        """
        xf, af, e, _ = _prepare(x, x_adv, eps, check)
        clipped = af.clamp(0.0, 1.0)
        v, d = af - xf, clipped - xf
        gain = v * v - (v - d) * (v - d)
        out = torch.where(self.keep_largest(gain, e), clipped, xf)
        return out.reshape(x_adv.shape).to(x_adv.dtype)

    def random_start(
        self, x: torch.Tensor, eps: float | torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """``floor(eps)`` random coordinates set to uniform values in ``[0, 1]``.

        Example:
            >>> import torch
            >>> x = torch.full((2, 10), 0.5)
            >>> x0 = L0().random_start(x, 3, torch.Generator().manual_seed(0))
            >>> bool((L0().norm(x0 - x) <= 3).all())
            True
        """
        x, xf, e, generator = _start_setup(x, eps, generator)
        dtype = xf.dtype
        scores = torch.rand(xf.shape, generator=generator, device=x.device, dtype=dtype)
        values = torch.rand(xf.shape, generator=generator, device=x.device, dtype=dtype)
        pick = self.keep_largest(scores, e)
        return torch.where(pick, values, xf).reshape(x.shape).to(x.dtype)

    @staticmethod
    def keep_largest(scores: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Mask of the ``floor(eps)`` largest scores per row (ties broken by position).

        Args:
            scores: ``(B, n)`` scores.
            eps: ``(B,)`` budgets; ``inf`` (or anything >= n) keeps every coordinate.

        Returns:
            A ``(B, n)`` bool mask with ``min(floor(eps), n)`` True entries per row.

        Example:
            >>> import torch
            >>> L0.keep_largest(torch.tensor([[0.1, 0.9, 0.5]]), torch.tensor([2.0]))
            tensor([[False,  True,  True]])
        """
        n = scores.shape[1]
        k = torch.floor(eps.to(scores.dtype).clamp(max=float(n)))
        order = scores.argsort(dim=1, descending=True, stable=True)
        rank_kept = torch.arange(n, device=scores.device).unsqueeze(0) < _col(k)
        return torch.zeros_like(rank_kept).scatter(1, order, rank_kept)

    def steepest(self, grad: torch.Tensor) -> torch.Tensor:
        """The L2-normalised gradient (all-zero for an all-zero gradient).

        Example:
            >>> import torch
            >>> L0().steepest(torch.tensor([[3.0, -4.0]]))
            tensor([[ 0.6000, -0.8000]])
        """
        return L2().steepest(grad)


# ----------------------------------------------------------------------------- lookup

_THREATS: dict[str, type[ThreatModel]] = {"linf": Linf, "l2": L2, "l1": L1, "l0": L0}
"""The threat model of each canonical norm name (:data:`robustcv.core.names.NORMS`)."""


def get_threat(norm: str) -> ThreatModel:
    """Return the default threat model for a norm name.

    Args:
        norm: "linf" (or "inf"), "l2" (or "2"), "l1" (or "1"), "l0" (or "0"); case, spaces,
            "_" and "-" are ignored, so "L_inf" and "L-2" work too (the aliases of
            :func:`robustcv.core.names.canonical_norm`).

    Returns:
        A :class:`Linf`, :class:`L2`, :class:`L1` or :class:`L0` instance with default settings.

    Raises:
        InputError: the name is unknown (the message suggests close matches).

    Example:
        >>> get_threat("Linf")
        Linf()
        >>> get_threat("2").p
        2.0
        >>> get_threat("l3")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: unknown threat model 'l3'; did you mean ...
    """
    return _THREATS[canonical_norm(norm, tuple(_THREATS), what="threat model")]()
