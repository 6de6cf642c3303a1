"""A synthetic but realistic audit result, for tests, docs and trying the report without a model.

The numbers are made up (drawn from a seeded generator) and follow the results.json layout that
the report reads; nothing here runs a model.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from robustcv.core.names import BENCHMARK_CORRUPTIONS
from robustcv.core.stats import binomial_ci

__all__ = ["sample_results", "write_sample_audit"]

FMNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
CORRUPTIONS = list(BENCHMARK_CORRUPTIONS)


def _acc(p: float, n: int) -> dict[str, Any]:
    k = round(min(max(p, 0.0), 1.0) * n)
    lo, hi = binomial_ci(k, n)
    return {
        "value": k / n,
        "low": lo,
        "high": hi,
        "n": n,
        "method": "clopper-pearson",
        "level": 0.95,
    }


def _boot(v: float, half: float, n: int) -> dict[str, Any]:
    return {
        "value": v,
        "low": max(0.0, v - half),
        "high": min(1.0, v + half),
        "n": n,
        "method": "percentile bootstrap",
        "level": 0.95,
    }


def sample_results(
    *,
    class_names: list[str] | None = None,
    seed: int = 0,
    clean_accuracy: float = 0.91,
    robustness: float = 0.05,
    model: str = "zoo:fmnist-cnn",
    n: int = 1000,
    suites: tuple[str, ...] = ("clean", "corruption", "adversarial", "calibration", "ood"),
    fired: bool = True,
) -> dict[str, Any]:
    """A made-up audit result in the results.json layout.

    Args:
        class_names: class names (default: Fashion-MNIST's ten).
        seed: seed of the generator behind the made-up numbers.
        clean_accuracy: the clean accuracy to pretend.
        robustness: scale of the L-inf eps at which accuracy halves.
        model: the model spec to write.
        n: images per evaluation.
        suites: which suites to include.
        fired: include one fired sanity check.

    Example:
        >>> res = sample_results(suites=("clean",))
        >>> sorted(res["suites"]), res["suites"]["clean"]["accuracy"]["n"]
        (['clean'], 1000)
    """
    rng = np.random.default_rng(seed)
    names = list(class_names) if class_names is not None else list(FMNIST_CLASSES)
    k = len(names)
    out_suites: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    if "clean" in suites:
        per_class_p = np.clip(clean_accuracy + rng.normal(0, 0.06, k), 0.3, 1.0)
        conf = np.zeros((k, k), dtype=int)
        per = n // k
        for i in range(k):
            right = round(float(per_class_p[i]) * per)
            conf[i, i] = right
            wrong = rng.multinomial(per - right, np.ones(k - 1) / (k - 1))
            conf[i, [j for j in range(k) if j != i]] = wrong
        out_suites["clean"] = {
            "n": int(conf.sum()),
            "accuracy": _acc(float(np.trace(conf) / conf.sum()), int(conf.sum())),
            "per_class": {names[i]: _acc(conf[i, i] / per, per) for i in range(k)},
            "confusion": conf.tolist(),
            "confusion_axes": "rows: true class, columns: predicted class (data class order)",
        }
    if "corruption" in suites:
        table = {}
        means = {}
        for c in CORRUPTIONS:
            hardness = rng.uniform(0.01, 0.12)
            row = {
                str(s): _acc(clean_accuracy - hardness * s + rng.normal(0, 0.01), n)
                for s in range(1, 6)
            }
            table[c] = row
            means[c] = _acc(float(np.mean([v["value"] for v in row.values()])), 5 * n)
        out_suites["corruption"] = {
            "spec": "mnist-c-like",
            "n": n,
            "corruptions": list(CORRUPTIONS),
            "severities": [1, 2, 3, 4, 5],
            "clean_accuracy": _acc(clean_accuracy, n),
            "table": table,
            "mean_accuracy": _acc(float(np.mean([m["value"] for m in means.values()])), 75 * n),
            "per_corruption_mean": means,
            "worst": sorted(CORRUPTIONS, key=lambda c: means[c]["value"])[:3],
            "mce": None,
            "baseline": None,
            "notes": ["made-up numbers from robustcv.report._sample"],
        }
    if "adversarial" in suites:
        norms = {}
        for norm, scale in (("linf", robustness), ("l2", robustness * 15)):
            eps = [round(scale * f, 6) for f in (0.25, 0.5, 1.0, 1.5, 2.0)]
            min_norms = [
                None if rng.random() < 0.02 else float(v)
                for v in rng.gamma(3.0, scale / 3.0, size=300)
            ]
            acc = [_acc(clean_accuracy * math.exp(-math.log(2) * e / scale), 300) for e in eps]
            norms[norm] = {
                "n": 300,
                "eps": eps,
                "grid_source": "pilot median x (0.25, 0.5, 1, 1.5, 2)",
                "clean_accuracy": _acc(clean_accuracy, 300),
                "accuracy": acc,
                "min_norm_accuracy": [_acc(min(1.0, a["value"] + 0.03), 300) for a in acc],
                "pilot": {"attack": "fmn", "params": {"steps": 100}, "n": 300},
                "min_norms": min_norms,
                "median_min_norm": float(np.median([m for m in min_norms if m is not None])),
                "ensemble": ["fmn", "apgd-ce", "apgd-t"],
                "budgets": {
                    "fmn": {"steps": 100},
                    "apgd-ce": {"steps": 50, "restarts": 1},
                    "apgd-t": {"steps": 50, "targets": 3},
                },
                "broken_by": {"clean": 0.09, "fmn": 0.6, "apgd-ce": 0.05, "apgd-t": 0.01},
                "sanity": [
                    {
                        "check": "zero-gradients",
                        "fired": False,
                        "message": "input gradients are non-zero",
                        "action": "",
                    },
                    {
                        "check": "black-box-beats-white-box",
                        "fired": fired and norm == "linf",
                        "message": "noise broke 3 samples the ensemble missed",
                        "action": "run --strength full and inspect the gradients",
                    },
                ],
            }
        out_suites["adversarial"] = {"strength": "fast", "n": 300, "norms": norms}
    if "calibration" in suites:
        edges = np.linspace(0, 1, 16)

        def rel(over: float) -> dict[str, Any]:
            centers = (edges[:-1] + edges[1:]) / 2
            count = rng.multinomial(
                n, np.linspace(0.01, 1.0, 15) ** 3 / (np.linspace(0.01, 1.0, 15) ** 3).sum()
            )
            return {
                "edges": edges.tolist(),
                "confidence": centers.tolist(),
                "accuracy": np.clip(centers - over * centers * (1 - centers), 0, 1).tolist(),
                "count": count.tolist(),
            }

        out_suites["calibration"] = {
            "n": n,
            "n_bins": 15,
            "fit_n": 5000,
            "temperature": 1.37,
            "before": {
                "accuracy": _acc(clean_accuracy, n),
                "ece": _boot(0.045, 0.01, n),
                "ece_equal_mass": _boot(0.041, 0.01, n),
                "mce": 0.21,
                "brier": 0.14,
                "nll": 0.31,
                "reliability": rel(0.4),
            },
            "after": {
                "accuracy": _acc(clean_accuracy, n),
                "ece": _boot(0.012, 0.006, n),
                "ece_equal_mass": _boot(0.014, 0.006, n),
                "mce": 0.08,
                "brier": 0.13,
                "nll": 0.26,
                "reliability": rel(0.05),
            },
            "under_shift": [
                {
                    "severity": s,
                    "accuracy": _acc(clean_accuracy - 0.07 * s, n),
                    "ece": _boot(0.045 + 0.03 * s, 0.015, n),
                }
                for s in range(6)
            ],
        }
    if "ood" in suites:
        sets = {}
        for set_name, base in (
            ("uniform-noise", 0.97),
            ("pixel-permuted", 0.85),
            ("inverted", 0.7),
        ):
            methods = {}
            for m in ("msp", "max-logit", "energy", "odin", "mahalanobis"):
                auroc = float(np.clip(base + rng.normal(0, 0.04), 0.5, 0.999))
                fpr = np.linspace(0, 1, 21)
                tpr = fpr ** (1 - auroc) if auroc < 1 else np.ones_like(fpr)
                methods[m] = {
                    "auroc": _boot(auroc, 0.01, 2 * n),
                    "aupr_in": auroc - 0.02,
                    "aupr_out": auroc - 0.01,
                    "fpr95": float(1 - auroc) * 3,
                    "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
                    "hist": {
                        "edges": np.linspace(0, 1, 21).tolist(),
                        "in": np.histogram(rng.beta(5, 1.5, n), np.linspace(0, 1, 21))[0].tolist(),
                        "out": np.histogram(
                            rng.beta(2 + 3 * (1 - auroc), 2, n), np.linspace(0, 1, 21)
                        )[0].tolist(),
                    },
                }
            sets[set_name] = {
                "derived": True,
                "spec": f"derived:{set_name}",
                "description": f"derived from the {n} in-distribution images ({set_name})",
                "n": n,
                "methods": methods,
            }
        out_suites["ood"] = {
            "convention": "in-distribution is the positive class; higher scores mean more "
            "in-distribution; FPR@95%TPR is the fraction of OOD accepted when 95% of ID is "
            "accepted",
            "n_in": n,
            "methods": ["msp", "max-logit", "energy", "odin", "mahalanobis"],
            "method_params": {"odin": {"temperature": 1000, "epsilon": 0.0014}, "msp": {}},
            "fit_n": 5000,
            "sets": sets,
        }
    else:
        skipped["ood"] = "not requested"
    examples = []
    if "clean" in suites:
        for i in range(6):
            examples.append(
                {
                    "kind": "clean",
                    "condition": "clean",
                    "file": f"examples/{i:04d}.png",
                    "label": names[i % k],
                    "prediction": names[i % k] if i != 3 else names[(i + 1) % k],
                }
            )
            examples.append(
                {
                    "kind": "corrupted",
                    "condition": f"{CORRUPTIONS[i]}/3",
                    "file": f"examples/{i + 10:04d}.png",
                    "label": names[i % k],
                    "prediction": names[(i + i % 2) % k],
                }
            )
            examples.append(
                {
                    "kind": "adversarial",
                    "condition": f"linf/{robustness:g}",
                    "file": f"examples/{i + 20:04d}.png",
                    "label": names[i % k],
                    "prediction": names[(i + 1) % k],
                }
            )
    _finish_examples(examples, rng)
    return {
        "schema": "robustcv.audit/1",
        "robustcv_version": "0.1.0",
        "created": "2025-01-01T00:00:00Z",
        "fingerprint": "sha256:" + "0" * 16,
        "config": {
            "model": model,
            "data": "fashion-mnist",
            "split": "test",
            "suites": list(suites),
            "limit": None,
            "strength": "fast",
            "seed": seed,
            "eps": {
                "linf": out_suites.get("adversarial", {})
                .get("norms", {})
                .get("linf", {})
                .get("eps", [])
            },
            "subsample": {"adversarial": 300, "corruption": n},
        },
        "model": {
            "spec": model,
            "num_classes": k,
            "differentiable": True,
            "input_shape": [1, 28, 28],
        },
        "data": {"spec": "fashion-mnist", "n": n, "class_names": names},
        "timings": {s: 1.0 + i for i, s in enumerate(suites)},
        "skipped": skipped,
        "notes": ["a synthetic result: every number is made up"],
        "suites": out_suites,
        "examples": examples,
    }


def _finish_examples(examples: list[dict[str, Any]], rng: np.random.Generator) -> None:
    for ex in examples:
        ex["correct"] = ex["label"] == ex["prediction"]
        ex["confidence"] = round(float(rng.uniform(0.4, 1.0)), 3)


def write_sample_audit(folder: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write :func:`sample_results` as ``folder/results.json`` plus 28x28 example PNGs.

    Example:
        >>> import tempfile
        >>> d = write_sample_audit(tempfile.mkdtemp(), suites=("clean",))
        >>> (d / "results.json").is_file(), len(list((d / "examples").glob("*.png")))
        (True, 18)
    """
    from PIL import Image

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    results = sample_results(**kwargs)
    rng = np.random.default_rng(kwargs.get("seed", 0))
    for ex in results["examples"]:
        path = out / ex["file"]
        path.parent.mkdir(parents=True, exist_ok=True)
        yy, xx = np.mgrid[0:28, 0:28]
        img = (np.hypot(yy - 14, xx - 14) < rng.uniform(6, 12)) * 200 + rng.integers(
            0, 50, (28, 28)
        )
        Image.fromarray(img.astype(np.uint8), mode="L").save(path)
    (out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return out
