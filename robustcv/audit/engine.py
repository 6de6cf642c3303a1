"""``run_audit``: validate, plan units, run what is not stored yet, aggregate, write results.json.

Order of work:

1. resolve the config (defaults < config file < explicit arguments) and check every input
   before any work: suites, OOD specs, corruption and OOD method names, the output folder,
   model/data compatibility (one tiny batch), the fit data (never the evaluated images);
2. open ``DIR/audit.sqlite``; a stored fingerprint that differs refuses the folder (or, with
   ``force``, the stored results are discarded);
3. per suite and phase: run the units the store does not hold yet (each committed as it
   finishes), then aggregate the suite from its stored rows;
4. write ``DIR/results.json`` (atomically) and log to ``DIR/audit.log``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from robustcv.audit.config import SUITES, AuditConfig, load_config_file
from robustcv.audit.executor import Executor, InProcessExecutor
from robustcv.audit.plan import AuditContext, Row, Unit
from robustcv.audit.results import AuditResults
from robustcv.audit.schema import RESULTS_FILE, SCHEMA_MAJOR, SCHEMA_VERSION, write_json_atomic
from robustcv.audit.store import STORE_FILE, Store
from robustcv.audit.suites import SUITE_CLASSES
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.data.dataset import Dataset

__all__ = ["THROTTLE_ENV", "audit", "resolve_config", "run_audit"]

LOG_FILE = "audit.log"
THROTTLE_ENV = "ROBUSTCV_AUDIT_THROTTLE"
"""Seconds to sleep after each committed unit (a test/debug aid; results do not change)."""

_OWN_ENTRIES = {STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", RESULTS_FILE, LOG_FILE}

_DEFAULTS: dict[str, Any] = {
    "suites": SUITES,
    "ood_data": (),
    "fit_data": None,
    "limit": None,
    "strength": "fast",
    "seed": 0,
    "eps": None,
}


# ---------------------------------------------------------------------------- config
def resolve_config(
    model: str,
    data: str,
    config: str | os.PathLike[str] | Mapping[str, Any] | AuditConfig | None = None,
    **overrides: Any,
) -> AuditConfig:
    """Merge defaults, a config (file path, mapping or :class:`AuditConfig`) and overrides.

    ``overrides`` whose value is None are ignored; ``model``/``data`` override the config's
    unless they are empty strings.

    Example:
        >>> cfg = resolve_config("zoo:fmnist-cnn", "fashion-mnist", {"limit": 50}, seed=3)
        >>> cfg.limit, cfg.seed, cfg.model
        (50, 3, 'zoo:fmnist-cnn')
    """
    if isinstance(config, AuditConfig):
        raw: dict[str, Any] = config.to_dict()
    elif isinstance(config, Mapping):
        raw = dict(config)
    elif config is not None:
        raw = load_config_file(config)
    else:
        raw = {}
    if model:
        raw["model"] = model
    if data:
        raw["data"] = data
    for key, value in overrides.items():
        if value is not None:
            raw[key] = value
    return AuditConfig.from_dict(raw)


# ---------------------------------------------------------------------------- hashing
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


def _labels_hash(data: Dataset) -> str:
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


# ---------------------------------------------------------------------------- input checks
def _prepare_dir(out_dir: str | os.PathLike[str]) -> Path:
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


def _load_model(model: Any, device: str | None) -> Model:
    from robustcv.models.loading import load_model

    if isinstance(model, Model):
        return model
    return load_model(model, device=device)


def _check_compatible(model: Model, data: Dataset, what: str = "the data") -> None:
    """Run one tiny batch; class counts must fit the model's outputs."""
    x = data.x[:2]
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


def _ood_loader(spec: str, shape: tuple[int, ...]) -> Any:
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
    return lambda: ds


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


def _fit_loader(cfg: AuditConfig, data: Dataset, model: Model) -> tuple[Any, str]:
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
            fit = fit.subset(held_out.numpy())
    except InputError as err:
        raise InputError(
            f"cannot load the fit data {desc} for temperature scaling / Mahalanobis: {err}; "
            "pass --fit-data SPEC (held-out labelled images, never the evaluated ones) or drop "
            "the calibration and ood suites"
        ) from err
    probe = fit.subset(list(range(min(len(fit), 256))))
    _check_compatible(model, probe, f"the fit data {desc}")
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
    return (lambda: fit), desc


def _validate_names(cfg: AuditConfig, shape: tuple[int, ...]) -> None:
    if "corruption" in cfg.suites:
        from robustcv.audit.suites.corruption import load_baseline, resolve_corruptions
        from robustcv.corruptions import CORRUPTIONS, SPECS

        if cfg.corruption.spec not in SPECS:
            raise InputError(
                f"unknown corruption spec '{cfg.corruption.spec}'; use one of {', '.join(SPECS)}"
            )
        names = resolve_corruptions(cfg.corruption.corruptions)
        for n in names:
            top = CORRUPTIONS.get(n).severities
            bad = [s for s in cfg.corruption.severities if not 1 <= s <= top]
            if bad:
                raise InputError(f"severity {bad} is outside 1..{top} for corruption '{n}'")
            size = CORRUPTIONS.get(n).min_size
            if min(shape[1:]) < size:
                raise InputError(
                    f"corruption '{n}' needs images of at least {size}x{size} pixels; the "
                    f"images are {shape[1]}x{shape[2]}: leave it out (corruption.corruptions)"
                )
        if cfg.corruption.baseline:
            load_baseline(cfg.corruption.baseline)
    if "ood" in cfg.suites:
        from robustcv.diagnostics.ood import OOD_SCORES

        for m in cfg.ood.methods:
            OOD_SCORES.get(m)
    if "adversarial" in cfg.suites and cfg.adversarial.factors and cfg.adversarial.norms:
        from robustcv.attacks.threat import get_threat

        for norm in cfg.adversarial.norms:
            get_threat(norm)


# ---------------------------------------------------------------------------- the engine
def _throttle() -> float:
    try:
        return max(0.0, float(os.environ.get(THROTTLE_ENV, "0") or 0))
    except ValueError:
        return 0.0


def _logger(out: Path) -> logging.Logger:
    log = logging.getLogger(f"robustcv.audit.run.{out.resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    handler = logging.FileHandler(out / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    return log


def _subsample_text(ctx: AuditContext, plans: Mapping[str, list[Unit]]) -> tuple[str, dict]:
    cfg = ctx.config
    n = len(ctx.data)
    parts: list[str] = []
    sizes: dict[str, Any] = {"evaluated": n}
    if "clean" in plans:
        k = len(ctx.subset("clean", cfg.clean.n))
        sizes["clean"] = k
        parts.append(f"clean {k} of {n} images")
    if "corruption" in plans:
        k = len(ctx.subset("corruption", cfg.corruption.n))
        conds = {u.condition for u in plans["corruption"]} - {"clean/0"}
        sizes["corruption"] = k
        parts.append(f"corruption {k} of {n} images x {len(conds)} conditions")
    if "adversarial" in plans:
        suite = SUITE_CLASSES["adversarial"]()
        pilot = len(suite._pilot_positions(ctx))
        ens = len(suite._ensemble_positions(ctx))
        sizes["adversarial_pilot"] = pilot
        sizes["adversarial"] = ens
        names = "+".join(m[0] for m in suite.ensemble(ctx))
        parts.append(
            f"adversarial {'/'.join(cfg.adversarial.norms)}: pilot {suite.pilot_attack(ctx)[0]} on "
            f"{pilot}, ensemble {names} on {ens} images ({cfg.strength})"
        )
    if "calibration" in plans:
        k = len(ctx.subset("calibration", cfg.calibration.n))
        fit = min(cfg.calibration.fit_n, len(ctx.fit_data()))
        shift = len(ctx.subset("calibration-shift", cfg.calibration.shift_n))
        sizes.update(calibration=k, calibration_fit=fit, calibration_shift=shift)
        parts.append(
            f"calibration {k} images, temperature fitted on {fit} of {len(ctx.fit_data())} "
            f"fit images ({ctx.fit_spec}), shift {shift} images per corruption and severity"
        )
    if "ood" in plans:
        k = len(ctx.subset("ood", cfg.ood.n))
        sizes["ood"] = k
        parts.append(f"ood {k} in-distribution images and up to {k} per OOD set")
    return "subsampled: " + "; ".join(parts), sizes


def run_audit(
    model: str | os.PathLike[str] | Model | nn.Module,
    data: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    suites: str | Sequence[str] = SUITES,
    ood_data: Sequence[str] = (),
    fit_data: str | None = None,
    limit: int | None = None,
    strength: str = "fast",
    seed: int = 0,
    eps: str | Mapping[str, Any] | None = None,
    config: str | os.PathLike[str] | Mapping[str, Any] | AuditConfig | None = None,
    force: bool = False,
    progress: bool = True,
    executor: Executor | None = None,
) -> AuditResults:
    """Audit a model on a dataset: clean, corruption, adversarial, calibration and OOD suites.

    Results are stored unit by unit in ``out_dir/audit.sqlite``; running again with the same
    folder resumes (finished units are skipped) and rewrites ``out_dir/results.json``. See
    ``docs/audit.md`` for what each suite measures and its default sizes.

    Args:
        model: a model spec (``zoo:NAME``, ``.onnx``, ``.pt``, ``file.py:factory``), a
            :class:`robustcv.Model` or an ``nn.Module``.
        data: a dataset spec (``fashion-mnist``, ``npz:F``, ``folder:DIR``, ...).
        out_dir: the audit folder (new, empty, or an earlier audit of the same config).
        suites: suites to run (a list or ``"clean,ood"``).
        ood_data: OOD set specs (dataset specs or ``derived:NAME``); default: derived sets.
        fit_data: data to fit temperature / Mahalanobis on (default: the train split).
        limit: evaluate only the first ``limit`` images.
        strength: ``"fast"`` or ``"full"`` (adversarial ensemble; see docs/audit.md).
        seed: global seed; every unit derives its own from it and the unit's key.
        eps: extra eps, ``"linf:0.1,l2:0.5"`` or ``{"linf": [0.1]}``.
        config: a config file (YAML/JSON), a mapping or an :class:`AuditConfig`. Keyword
            arguments that differ from their defaults override it.
        force: discard stored results made with a different config instead of refusing.
        progress: show progress bars and the plan on stderr.
        executor: how units run (default: :class:`InProcessExecutor`).

    Returns:
        The :class:`AuditResults` (also written to ``out_dir/results.json``).

    Raises:
        InputError: any bad input, before work starts: unknown suite / OOD set / corruption /
            method, model and data that do not fit together, fit data that overlaps the
            evaluated images, an unwritable or foreign folder, or a folder holding an audit
            of a different model/data/config (without ``force``).

    Example:
        >>> import tempfile, numpy as np
        >>> d = tempfile.mkdtemp()
        >>> x = np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8)
        >>> np.savez(f"{d}/toy.npz", x=x, y=np.arange(40) % 2)
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
        >>> res = run_audit(net, f"npz:{d}/toy.npz", f"{d}/audit", suites="clean", progress=False)
        >>> res.suites["clean"]["accuracy"]["n"], res.run["units_run"]
        (40, 2)
    """
    started = time.perf_counter()
    given = {
        "suites": suites,
        "ood_data": tuple(ood_data),
        "fit_data": fit_data,
        "limit": limit,
        "strength": strength,
        "seed": seed,
        "eps": eps,
    }
    overrides = {}
    for key, value in given.items():
        default = _DEFAULTS[key]
        same = (
            tuple(value) == tuple(default)  # type: ignore[arg-type]
            if key in ("suites", "ood_data")
            else value == default
        )
        if isinstance(value, str) and key == "suites":
            same = False
        if not same:
            overrides[key] = value
    if isinstance(model, (Model, nn.Module)):
        spec = getattr(model, "name", None) or type(model).__name__
        model_obj: Any = model if isinstance(model, Model) else Model(model, name=spec)
    else:
        spec, model_obj = str(model), None
    cfg = resolve_config(spec, str(data), config, **overrides)

    # ---------------------------------------------------------------- checks before work
    out = _prepare_dir(out_dir)
    from robustcv.data.loading import load_dataset

    net = model_obj if model_obj is not None else _load_model(cfg.model, cfg.device)
    dataset = load_dataset(cfg.data, split=cfg.split, limit=cfg.limit)
    if len(dataset) == 0:
        raise InputError(f"the dataset {cfg.data} ({cfg.split}) is empty")
    _ = dataset.x  # materialise (and validate) the evaluated images once
    _check_compatible(net, dataset)
    shape = tuple(dataset.x.shape[1:])
    _validate_names(cfg, shape)
    from robustcv.audit.suites.ood import ood_sets

    needs_fit = "calibration" in cfg.suites or (
        "ood" in cfg.suites and any(m.lower() in ("mahalanobis", "mds") for m in cfg.ood.methods)
    )
    fit_loader, fit_spec = _fit_loader(cfg, dataset, net) if needs_fit else (None, "")
    ood_loaders: dict[str, Any] = {}
    if "ood" in cfg.suites:
        for s in ood_sets(cfg):
            loader = _ood_loader(s, shape)
            if loader is not None:
                ood_loaders[s] = loader

    # ---------------------------------------------------------------- fingerprint and store
    fit_part: dict[str, Any] = {}
    if fit_loader is not None:
        fit_ds = fit_loader()
        fit_part = {"spec": fit_spec, "n": len(fit_ds), "labels": _labels_hash(fit_ds)}
    parts = {
        "schema": SCHEMA_MAJOR,
        "config": cfg.work_dict(),
        "model": {"hash": model_hash(net), "num_classes": net.num_classes},
        "data": {"n": len(dataset), "hash": data_hash(dataset)},
        "fit": fit_part,
        "ood": {s: len(f()) for s, f in ood_loaders.items()},
    }
    fingerprint = "sha256:" + _sha(json.dumps(parts, sort_keys=True, default=str).encode())
    store = Store(out)
    try:
        stored = store.get_meta("fingerprint")
        if stored is not None and stored != fingerprint:
            old = _flatten(store.get_meta("fingerprint_parts") or {})
            new = _flatten(json.loads(json.dumps(parts, default=str)))
            diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            shown = ", ".join(diff[:6]) + (", ..." if len(diff) > 6 else "")
            if not force:
                raise InputError(
                    f"{out} holds an audit of a different model, data or config (differs in: "
                    f"{shown or 'the fingerprint'}); use a new --out folder, or --force to "
                    "discard the stored results"
                )
            store.clear()
            for name in (RESULTS_FILE, "report.html"):
                (out / name).unlink(missing_ok=True)
            for png in (out / "examples").glob("[0-9][0-9][0-9][0-9].png"):
                png.unlink()
        store.set_meta("fingerprint", fingerprint)
        store.set_meta("fingerprint_parts", json.loads(json.dumps(parts, default=str)))
        store.set_meta("config", cfg.to_dict())
        return _execute(
            cfg,
            net,
            dataset,
            out,
            store,
            fingerprint,
            fit_loader,
            fit_spec,
            ood_loaders,
            progress,
            executor or InProcessExecutor(),
            started,
            forced=force and stored is not None and stored != fingerprint,
        )
    finally:
        store.close()


audit = run_audit


def _execute(
    cfg: AuditConfig,
    model: Model,
    data: Dataset,
    out: Path,
    store: Store,
    fingerprint: str,
    fit_loader: Any,
    fit_spec: str,
    ood_loaders: dict[str, Any],
    progress: bool,
    executor: Executor,
    started: float,
    forced: bool,
) -> AuditResults:
    log = _logger(out)
    run_id = store.begin_run()
    ctx = AuditContext(
        cfg,
        model,
        data,
        out,
        fit_loader=fit_loader,
        fit_spec=fit_spec,
        ood_loaders=ood_loaders,
        log=log,
    )
    names = [s for s in SUITE_CLASSES if s in cfg.suites or s == "examples"]
    suites = {name: SUITE_CLASSES[name]() for name in names}
    plans = {name: suite.plan(ctx) for name, suite in suites.items()}
    plans = {k: v for k, v in plans.items() if v}
    done = store.keys()
    total = sum(u.cost for units in plans.values() for u in units)
    skipped_cost = sum(u.cost for units in plans.values() for u in units if u.key in done)
    n_units = sum(len(v) for v in plans.values())
    n_skip = sum(1 for v in plans.values() for u in v if u.key in done)
    text, sizes = _subsample_text(ctx, plans)
    if forced:
        log.warning("--force: discarded stored results made with a different config")
    log.info(
        "run %d: %s on %s/%s -> %s; fingerprint %s",
        run_id,
        cfg.model,
        cfg.data,
        cfg.split,
        out,
        fingerprint,
    )
    log.info("%s", text)
    log.info("%d units planned, %d finished earlier (skipped)", n_units, n_skip)
    if progress:
        print(f"robustcv audit: {text}", file=sys.stderr)
        if n_skip:
            print(
                f"robustcv audit: resuming {out}: {n_skip} of {n_units} units finished earlier",
                file=sys.stderr,
            )
    store.count_skipped(run_id, n_skip)
    throttle = _throttle()
    overall = tqdm(
        total=total,
        initial=skipped_cost,
        desc="audit",
        disable=not progress,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
        position=0,
    )
    sections: dict[str, Any] = {}
    timings: dict[str, float] = {}
    notes: dict[str, Any] = {"skipped": {}, "notes": []}
    examples: list[dict[str, Any]] = []
    status = "failed"
    try:
        for name, units in plans.items():
            suite = suites[name]
            suite_start = time.perf_counter()
            bar = tqdm(
                total=len(units),
                initial=sum(1 for u in units if u.key in done),
                desc=f"  {name}",
                disable=not progress,
                leave=False,
                position=1,
            )
            rows: dict[str, Row] = {}
            for stored in store.units(name):
                rows[stored.key] = stored.row
            requires = getattr(suite, "requires", lambda _c: ())(ctx)
            extra: dict[str, Row] = {}
            for other in requires:
                extra.update({s.key: s.row for s in store.units(other)})
            for phase in sorted({u.phase for u in units}):
                todo = [u for u in units if u.phase == phase and u.key not in rows]
                for u in units:
                    if u.phase == phase and u.key in rows:
                        log.info("skip %s (finished earlier)", u.key)

                def on_done(
                    unit: Unit,
                    row: Row,
                    seconds: float,
                    rows: dict[str, Row] = rows,
                    bar: tqdm = bar,
                ) -> None:
                    store.put(
                        unit.key, unit.suite, unit.condition, unit.shard, row, seconds, run_id
                    )
                    rows[unit.key] = row
                    log.info("done %s in %.2f s", unit.key, seconds)
                    overall.update(unit.cost)
                    bar.update(1)
                    if throttle:
                        time.sleep(throttle)

                deps = {**extra, **rows}
                executor.run(ctx, suite, todo, deps, on_done)
            bar.close()
            agg_start = time.perf_counter()
            planned = {u.key for u in units}
            mine = {k: v for k, v in rows.items() if k in planned}
            section = suite.aggregate(ctx, mine, notes)
            agg = time.perf_counter() - agg_start
            unit_seconds = sum(s.seconds for s in store.units(name) if s.key in planned)
            timings[name] = round(unit_seconds + agg, 3)
            log.info(
                "suite %s: units %.1f s (all runs), aggregation %.2f s, this run %.1f s",
                name,
                unit_seconds,
                agg,
                time.perf_counter() - suite_start,
            )
            if name == "examples":
                examples = list(section)
            else:
                sections[name] = section
        status = "finished"
    finally:
        overall.close()
        store.end_run(run_id, status)
        if status != "finished":
            log.error("run %d stopped before the end; finished units are kept", run_id)
        for h in list(log.handlers):
            h.close()
            log.removeHandler(h)
    from robustcv import __version__

    record = next(r for r in store.runs() if r.id == run_id)
    skipped = dict(notes.get("skipped", {}))
    results = AuditResults(
        schema=SCHEMA_VERSION,
        robustcv_version=__version__,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        fingerprint=fingerprint,
        config={**cfg.to_dict(), "subsample": sizes},
        model={
            "spec": cfg.model,
            "name": model.name,
            "num_classes": model.num_classes,
            "differentiable": model.differentiable,
            "has_features": model.has_features,
            "input_shape": list(data.x.shape[1:]),
        },
        data={
            "spec": cfg.data,
            "name": data.name,
            "split": cfg.split,
            "limit": cfg.limit,
            "n": len(data),
            "class_names": list(data.classes),
        },
        timings=timings,
        skipped=skipped,
        notes=list(notes.get("notes", [])),
        suites=sections,
        examples=examples,
        run={
            "id": run_id,
            "units_total": n_units,
            "units_run": record.units_run,
            "units_skipped": record.units_skipped,
            "runs_on_folder": len(store.runs()),
            "executor": getattr(executor, "name", type(executor).__name__),
            "wall_seconds": round(time.perf_counter() - started, 3),
        },
        path=out,
    )
    write_json_atomic(out / RESULTS_FILE, results.to_dict())
    with open(out / LOG_FILE, "a", encoding="utf-8") as fh:
        fh.write(
            f"{datetime.now().isoformat(timespec='seconds')} INFO run {run_id}: "
            f"{record.units_run} units run, {record.units_skipped} skipped; wrote "
            f"{out / RESULTS_FILE}\n"
        )
    return results
