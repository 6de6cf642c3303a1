"""Everything checked and prepared before an audit does any work, and the folder fingerprint.

Inputs are checked in this order: the output folder, the model and data fit together (one tiny
batch), each running suite's ``validate`` (names, sizes), the fit data (loadable, fits the
model, never the evaluated images) and the OOD sets. The fingerprint hashes the work settings,
the model's weights, the evaluated images and the sizes of the fit/OOD data; a folder holding
another fingerprint is refused (or, with ``force``, cleared).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustcv.audit.config import AuditConfig
from robustcv.audit.context import DataRef
from robustcv.audit.schema import RESULTS_FILE, SCHEMA_MAJOR
from robustcv.audit.store import STORE_FILE
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.data.dataset import Dataset

__all__ = [
    "LOG_FILE",
    "check_compatible",
    "data_hash",
    "fingerprint",
    "fit_ref",
    "model_hash",
    "ood_ref",
    "prepare_dir",
]

LOG_FILE = "audit.log"
_OWN_ENTRIES = {STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", RESULTS_FILE, LOG_FILE}


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()


def model_hash(model: Model) -> str:
    """A hash of the model's weights and preprocessing ("" when not cheaply available)."""
    h = hashlib.sha256()
    h.update(repr((model.input_range, model._mean, model._std)).encode())
    net = model.net
    if isinstance(net, nn.Module):
        state = net.state_dict()
        if sum(t.numel() * t.element_size() for t in state.values()) > 2**31:
            return ""
        for key in sorted(state):
            t = state[key].detach().cpu().contiguous()
            h.update(key.encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()
    path = getattr(net, "path", None)
    if isinstance(path, Path) and path.is_file() and path.stat().st_size < 2**31:
        h.update(path.read_bytes())
        return h.hexdigest()
    return ""


def data_hash(data: Dataset) -> str:
    """A hash of a dataset's images and labels."""
    x = data.x.detach().cpu().contiguous()
    return _sha(x.reshape(-1).view(torch.uint8).numpy().tobytes(), data.y.numpy().tobytes())


def labels_hash(data: Dataset) -> str:
    """A hash of a dataset's labels (and its index), without loading its images."""
    labels = getattr(data.source, "labels", None)
    index = data._index
    if labels is None or index is None:
        return f"n={len(data)}"
    return _sha(labels[index].astype("int64").tobytes(), index.astype("int64").tobytes())


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def prepare_dir(out_dir: str | os.PathLike[str]) -> Path:
    """The audit folder, created and checked: writable, and new, empty or an earlier audit."""
    if not isinstance(out_dir, (str, os.PathLike)) or not str(os.fspath(out_dir)).strip():
        raise InputError(
            f"the output folder is empty ({out_dir!r}); give --out DIR, a new folder for the audit"
        )
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file; give a folder (new or an earlier audit's)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".robustcv-write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise InputError(
            f"cannot write to --out {out} ({err.strerror or err}); choose a writable folder"
        ) from err
    entries = [p.name for p in out.iterdir() if not p.name.startswith(".")]
    if entries and STORE_FILE not in entries:
        shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
        raise InputError(
            f"--out {out} is not empty and holds no audit (found: {shown}); choose a new or "
            "empty folder"
        )
    return out


def check_compatible(model: Model, data: Dataset, what: str = "the data") -> None:
    """Run one tiny batch; class counts must fit the model's outputs."""
    from robustcv.core.contract import check_model_fits

    x = data.x[:2]
    check_model_fits(model, x, what=what)
    try:
        with torch.no_grad():
            out = model.logits(x)
    except InputError as err:
        raise InputError(f"the model cannot classify {what}: {err}") from err
    except (RuntimeError, ValueError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(
            f"the model cannot run on {what} (images of shape {tuple(x.shape[1:])}): {first}; "
            "check the image size and channels, or the model's preprocessing"
        ) from err
    k = int(out.shape[1])
    top = int(data.y.max()) if len(data) else -1
    if top >= k:
        raise InputError(
            f"{what} has labels up to {top} ({data.num_classes} classes) but the model outputs "
            f"{k} classes; use a model trained on this data or a matching dataset"
        )


def ood_ref(spec: str, shape: tuple[int, ...]) -> DataRef | None:
    """A reference to the OOD dataset ``spec`` (None for a derived set), checked to load."""
    from robustcv.data.loading import DATASETS, load_dataset
    from robustcv.diagnostics.ood import DERIVED_OOD_SETS

    head, sep, rest = spec.partition(":")
    if sep and head == "derived":
        if rest not in DERIVED_OOD_SETS:
            close = difflib.get_close_matches(rest, DERIVED_OOD_SETS, n=2, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise InputError(
                f"unknown derived OOD set '{rest}'{hint} (derived sets: "
                f"{', '.join(DERIVED_OOD_SETS)})"
            )
        return None
    try:
        ds = load_dataset(spec, split="test")
    except InputError as err:
        names = [f"derived:{d}" for d in DERIVED_OOD_SETS] + DATASETS.names()
        close = difflib.get_close_matches(spec, names + list(DERIVED_OOD_SETS), n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        raise InputError(
            f"unknown or unreadable OOD set '{spec}'{hint}: {err}. Use a dataset spec "
            f"(npz:F, folder:DIR, ...) or derived:NAME with NAME in {', '.join(DERIVED_OOD_SETS)}"
        ) from err
    first = tuple(ds.subset([0]).x.shape[1:]) if len(ds) else ()
    if first != shape:
        raise InputError(
            f"OOD set '{spec}' has images of shape {first} but the evaluated images are {shape}; "
            "resize the OOD data to the same size and channels"
        )
    return DataRef(spec, "test", None, f"dataset {spec}")


def _zoo_held_out(cfg: AuditConfig) -> Any:
    """Indices of the train images a zoo model never trained on, when auditing it on its data."""
    if not cfg.model.startswith("zoo:"):
        return None
    from robustcv.models.zoo import ZOO, zoo_held_out

    name = cfg.model.split(":", 1)[1]
    if name not in ZOO:
        return None
    data, _split, idx = zoo_held_out(name)
    return idx if data == cfg.data else None


def fit_ref(cfg: AuditConfig, data: Dataset, model: Model) -> DataRef:
    """A reference to the fit data, checked: loadable, fits the model, not the evaluated images."""
    from robustcv.core.seeding import content_keys
    from robustcv.data.loading import load_dataset

    held_out = None
    if cfg.fit_data is not None:
        spec, split, desc = cfg.fit_data, "train", f"{cfg.fit_data} (train split)"
    else:
        spec, split, desc = cfg.data, "train", f"{cfg.data} (train split)"
        held_out = _zoo_held_out(cfg)
        if held_out is not None:
            desc = (
                f"{cfg.data} (the {len(held_out)} train-split images {cfg.model} held out from "
                "training)"
            )
    try:
        fit = load_dataset(spec, split=split)
        if held_out is not None:
            fit = fit.subset(np.asarray(held_out))
    except InputError as err:
        raise InputError(
            f"cannot load the fit data {desc} for temperature scaling / Mahalanobis: {err}; "
            "pass --fit-data SPEC (held-out labelled images, never the evaluated ones) or drop "
            "the calibration and ood suites"
        ) from err
    probe = fit.subset(list(range(min(len(fit), 256))))
    check_compatible(model, probe, f"the fit data {desc}")
    if tuple(probe.x.shape[1:]) != tuple(data.x.shape[1:]):
        raise InputError(
            f"the fit data {desc} has images of shape {tuple(probe.x.shape[1:])}, the evaluated "
            f"images {tuple(data.x.shape[1:])}; pass --fit-data with matching images"
        )
    fit_keys = set(content_keys(probe.x).tolist())
    eval_keys = set(content_keys(data.x).tolist())
    shared = len(fit_keys & eval_keys)
    if shared > max(2, len(fit_keys) // 4):
        raise InputError(
            f"the fit data {desc} contains the evaluated images ({shared} of the first "
            f"{len(fit_keys)} are identical); temperature and Mahalanobis must be fitted on "
            "held-out data: pass --fit-data SPEC (e.g. an npz with x_train/y_train)"
        )
    indices = None if held_out is None else tuple(int(i) for i in np.asarray(held_out))
    return DataRef(spec, split, indices, desc)


def fingerprint(
    cfg: AuditConfig,
    model: Model,
    data: Dataset,
    fit: DataRef | None,
    fit_data: Dataset | None,
    ood: Mapping[str, Dataset],
) -> tuple[str, dict[str, Any]]:
    """``(fingerprint, parts)`` of an audit: work settings, model, data, fit and OOD sizes."""
    fit_part: dict[str, Any] = {}
    if fit is not None and fit_data is not None:
        fit_part = {"spec": fit.description, "n": len(fit_data), "labels": labels_hash(fit_data)}
    parts = {
        "schema": SCHEMA_MAJOR,
        "config": cfg.work_dict(),
        "model": {"hash": model_hash(model), "num_classes": model.num_classes},
        "data": {"n": len(data), "hash": data_hash(data)},
        "fit": fit_part,
        "ood": {s: len(d) for s, d in ood.items()},
    }
    parts = json.loads(json.dumps(parts, sort_keys=True, default=str))
    return "sha256:" + _sha(json.dumps(parts, sort_keys=True).encode()), parts


def differing_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two fingerprint part trees."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
