"""Exact minimal L-inf adversarial distances of a small ReLU network, by mixed-integer LP.

Trains a 49-24-24-10 ReLU MLP on Fashion-MNIST downsampled to 7x7 (2x2... average pooling of
the 28x28 images), then, for the first ``--n`` correctly classified test images, solves

    min t  s.t.  |x_i - x0_i| <= t,  0 <= x_i <= 1,  network(x) has logit_j >= logit_y

for every other class j (one MILP each; the minimum over j is the sample's exact minimal
L-inf distance). ReLUs are encoded exactly with one binary per hidden unit and big-M bounds
from interval arithmetic over the box of radius r around x0 (within [0, 1]), where r is a
distance at which FMN already found an adversarial example (so the optimum lies inside it).
Solved with scipy's ``milp`` (HiGHS) to optimality (the solver's status is checked; the
relative gap is 0 up to HiGHS' tolerances).

Writes ``tests/fixtures/milp/mlp7x7.npz``: the weights, the 7x7 images, labels, the exact
distances and the optimal adversarial points (re-evaluated: misclassified up to 1e-6 in the
logit margin). The attack tests and ``benchmarks/minimum_norm_vs_milp.py`` compare minimum-norm
attacks against these optima.

Usage::

    .venv/bin/python benchmarks/make_milp_fixture.py --n 40     # about 1-3 min
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import lil_matrix
from torch import nn

from robustcv.data.loading import load_dataset

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "milp" / "mlp7x7.npz"


def downsample(x: torch.Tensor) -> torch.Tensor:
    """28x28 -> 7x7 by 4x4 average pooling."""
    return F.avg_pool2d(x, 4)


def build_mlp(widths: tuple[int, ...] = (49, 24, 24, 10)) -> nn.Sequential:
    """The fixture's network: Flatten, then Linear+ReLU layers, a final Linear."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def train(seed: int = 0, epochs: int = 8) -> nn.Sequential:
    ds = load_dataset("fashion-mnist", split="train", limit=20000)
    x, y = downsample(ds.x), ds.y
    torch.manual_seed(seed)
    net = build_mlp()
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=g)
        for i in range(0, len(y), 128):
            idx = perm[i : i + 128]
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    return net.eval()


def _layers(net: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (m.weight.detach().double().numpy(), m.bias.detach().double().numpy())
        for m in net
        if isinstance(m, nn.Linear)
    ]


def min_linf(
    net: nn.Sequential, x0: np.ndarray, label: int, upper: float = 1.0
) -> tuple[float, np.ndarray]:
    """Exact minimal L-inf distance to misclassification of ``x0`` (flat, in [0, 1]).

    ``upper`` is any distance known to reach misclassification (an attack's): the big-M bounds
    are computed over the box of that radius, which keeps the MILPs small and exact.
    """
    layers = _layers(net)
    best, best_x = np.inf, x0
    for j in range(layers[-1][0].shape[0]):
        if j == label:
            continue
        t, xa = _solve(layers, x0, label, j, min(best, upper))
        if t < best:
            best, best_x = t, xa
    return best, best_x


def _solve(
    layers: list[tuple[np.ndarray, np.ndarray]], x0: np.ndarray, y: int, j: int, cutoff: float
) -> tuple[float, np.ndarray]:
    d = x0.size
    # variables: t, x (d), then per hidden layer: z (pre), a (post), b (binary)
    radius = cutoff if np.isfinite(cutoff) else 1.0
    lo_a, hi_a = np.clip(x0 - radius, 0, 1), np.clip(x0 + radius, 0, 1)
    n_vars = 1 + d
    hidden = layers[:-1]
    spans = []
    for w, _b in hidden:
        k = w.shape[0]
        spans.append((n_vars, n_vars + k, n_vars + 2 * k))  # z, a, binary starts
        n_vars += 3 * k
    rows: list[tuple[dict[int, float], float, float]] = []
    lb = np.full(n_vars, -np.inf)
    ub = np.full(n_vars, np.inf)
    integrality = np.zeros(n_vars)
    lb[0], ub[0] = 0.0, 1.0
    lb[1 : 1 + d], ub[1 : 1 + d] = lo_a, hi_a
    for i in range(d):  # |x_i - x0_i| <= t
        rows.append(({1 + i: 1.0, 0: -1.0}, -np.inf, x0[i]))
        rows.append(({1 + i: -1.0, 0: -1.0}, -np.inf, -x0[i]))
    prev = list(range(1, 1 + d))
    for (w, b), (zs, as_, bs) in zip(hidden, spans, strict=True):
        k = w.shape[0]
        wp, wn = np.clip(w, 0, None), np.clip(w, None, 0)
        z_lo = wp @ lo_a + wn @ hi_a + b
        z_hi = wp @ hi_a + wn @ lo_a + b
        for u in range(k):
            zu, au, bu = zs + u, as_ + u, bs + u
            coeffs = {p: -float(w[u, q]) for q, p in enumerate(prev)}
            coeffs[zu] = 1.0
            rows.append((coeffs, float(b[u]), float(b[u])))  # z = W a_prev + b
            lb[zu], ub[zu] = z_lo[u], z_hi[u]
            lb[au], ub[au] = 0.0, max(0.0, z_hi[u])
            lb[bu], ub[bu] = 0.0, 1.0
            integrality[bu] = 1
            if z_hi[u] <= 0:  # always off
                rows.append(({au: 1.0}, 0.0, 0.0))
                continue
            if z_lo[u] >= 0:  # always on
                rows.append(({au: 1.0, zu: -1.0}, 0.0, 0.0))
                continue
            rows.append(({au: 1.0, zu: -1.0}, 0.0, np.inf))  # a >= z
            rows.append(({au: 1.0, zu: -1.0, bu: -z_lo[u]}, -np.inf, -z_lo[u]))  # a <= z - l(1-b)
            rows.append(({au: 1.0, bu: -z_hi[u]}, -np.inf, 0.0))  # a <= u b
        lo_a, hi_a = np.clip(z_lo, 0, None), np.clip(z_hi, 0, None)
        prev = list(range(as_, as_ + k))
    w, b = layers[-1]
    # logit_j - logit_y >= 0
    diff = w[j] - w[y]
    coeffs = {p: float(diff[q]) for q, p in enumerate(prev)}
    rows.append((coeffs, float(b[y] - b[j]), np.inf))
    if np.isfinite(cutoff):
        ub[0] = min(ub[0], cutoff)
    a = lil_matrix((len(rows), n_vars))
    lo_r, hi_r = np.empty(len(rows)), np.empty(len(rows))
    for r, (co, lo, hi) in enumerate(rows):
        for col, v in co.items():
            a[r, col] = v
        lo_r[r], hi_r[r] = lo, hi
    c = np.zeros(n_vars)
    c[0] = 1.0
    res = milp(
        c,
        constraints=LinearConstraint(a.tocsr(), lo_r, hi_r),
        integrality=integrality,
        bounds=Bounds(lb, ub),
        options={"mip_rel_gap": 0.0, "time_limit": 600},
    )
    if res.status == 2 or res.x is None:  # infeasible under the cutoff
        return np.inf, x0
    if res.status != 0:
        raise RuntimeError(f"MILP not solved to optimality: {res.message}")
    return float(res.x[0]), np.clip(res.x[1 : 1 + d], 0, 1)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=40)
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    torch.set_num_threads(1)
    net = train()
    test = load_dataset("fashion-mnist", split="test", limit=400)
    x7, y = downsample(test.x), test.y
    with torch.no_grad():
        pred = net(x7).argmax(1)
    acc = float((pred == y).float().mean())
    keep = torch.nonzero(pred == y).flatten()[: args.n]
    from robustcv.attacks import attack
    from robustcv.core.model import Model

    found = attack(Model(net, num_classes=10), x7[keep], y[keep], "fmn", norm="linf", steps=300)
    dists, points = [], []
    t0 = time.perf_counter()
    for k, i in enumerate(keep.tolist()):
        x0 = x7[i].flatten().double().numpy()
        upper = float(found.norms[k]) * 1.001 + 1e-6 if bool(found.success[k]) else 1.0
        t, xa = min_linf(net, x0, int(y[i]), upper)
        with torch.no_grad():
            z = net(torch.tensor(xa, dtype=torch.float32).view(1, 1, 7, 7))[0]
        margin = float(z[int(y[i])] - z.scatter(0, y[i : i + 1], -1e9).max())
        dists.append(t)
        points.append(xa)
        print(f"image {i}: exact min L-inf {t:.5f} (margin at the optimum {margin:+.2e})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        **{f"w{k}": w.astype(np.float32) for k, (w, _) in enumerate(_layers(net))},
        **{f"b{k}": b.astype(np.float32) for k, (_, b) in enumerate(_layers(net))},
        x=x7[keep].numpy().astype(np.float32),
        y=y[keep].numpy(),
        dist=np.array(dists),
        x_opt=np.stack(points).reshape(-1, 1, 7, 7),
        test_accuracy=np.array(acc),
    )
    print(f"test accuracy (400 images) {acc:.3f}; {len(keep)} MILPs x 9 in "
          f"{time.perf_counter() - t0:.0f} s; wrote {args.out}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
