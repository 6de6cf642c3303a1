"""docs/explanations-fmnist.png: every explanation method on four Fashion-MNIST test images.

The first four test images with different labels, ``zoo:fmnist-cnn``, each method at its
defaults (seed 0), explaining the predicted class; plus Grad-CAM on ``features.3`` (the last
conv's output before its ReLU), whose maps come out mostly blank: why the default layer is the
ReLU after it (``features.4``). Each
panel has its own colour scale (magma 0..max for maps without negative values, RdBu_r symmetric
around 0 otherwise).

Usage::

    .venv/bin/python benchmarks/explanations_figure.py [--out docs/explanations-fmnist.png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import robustcv
from robustcv.explanations import METHODS, explain
from robustcv.explanations.plots import method_grid, save_figure

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "explanations-fmnist.png"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    model = robustcv.load_model("zoo:fmnist-cnn")
    data = robustcv.load_dataset("fashion-mnist", split="test", limit=50)
    picked: list[int] = []
    for i, label in enumerate(data.y.tolist()):
        if label not in [int(data.y[j]) for j in picked]:
            picked.append(i)
        if len(picked) == 4:
            break
    x, y = data.x[picked], data.y[picked]
    pred = model.predict(x)
    rows = []
    for entry in METHODS:
        start = time.perf_counter()
        res = explain(model, x, method=entry.name, seed=0)
        rows.append((entry.name, res.maps))
        print(f"{entry.name:22s} {time.perf_counter() - start:5.1f} s  {res.notes.get('maps', '')}")
        if "warning" in res.notes:
            print(f"  {res.notes['warning']}")
        if entry.name == "grad-cam":  # the conv output before its ReLU: mostly blank maps
            pre = explain(model, x, method="grad-cam", layer="features.3")
            rows.append(("grad-cam\nlayer=features.3", pre.maps))
    titles = [
        f"{data.classes[int(a)]}\n(pred. {data.classes[int(b)]})"
        for a, b in zip(y, pred, strict=True)
    ]
    fig = method_grid(x, rows, column_titles=titles)
    fig.suptitle(
        "zoo:fmnist-cnn, predicted class explained; each panel on its own scale\n"
        "(magma 0..max, or RdBu_r symmetric around 0 where the map has negative values)",
        fontsize=8,
        y=0.995,
    )
    print(f"wrote {save_figure(fig, args.out)}")


if __name__ == "__main__":
    main()
