"""``run_audit``: resolve the config, prepare, run what is not stored yet, aggregate, write.

Order of work:

1. :func:`resolve_config`: defaults < config file < explicit arguments (an argument is explicit
   when it is not None);
2. :func:`prepare`: check every input before any work (:mod:`robustcv.audit.prepare`) and
   build the :class:`ContextSpec`, plain data an executor can ship to other processes;
3. open ``DIR/audit.sqlite`` (one writer per folder: a lock); a stored fingerprint that differs
   refuses the folder (or, with ``force``, the stored results are discarded);
4. :func:`execute`: per suite (registry order) and phase, run the units the store does not hold
   yet (each committed as it finishes), then aggregate the suite from its stored rows alone;
5. write ``DIR/results.json`` atomically and log to ``DIR/audit.log``.

The engine names no suite: everything suite-specific comes from the registry.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from torch import nn
from tqdm import tqdm

from robustcv.audit.config import AuditConfig, load_config_file
from robustcv.audit.context import AuditContext, ContextSpec, ModelRef, build_context, ood_specs
from robustcv.audit.context import tensor_dataset as _tensor_dataset
from robustcv.audit.executor import Executor, make_executor
from robustcv.audit.plan import Row, Unit
from robustcv.audit.prepare import (
    LOG_FILE,
    check_compatible,
    differing_keys,
    fingerprint,
    fit_ref,
    ood_ref,
    prepare_dir,
)
from robustcv.audit.registry import SUITES
from robustcv.audit.results import AuditResults
from robustcv.audit.schema import RESULTS_FILE, SCHEMA_VERSION, write_json_atomic
from robustcv.audit.store import FolderLock, Store
from robustcv.audit.suite import Suite
from robustcv.core.errors import InputError
from robustcv.core.model import Model

__all__ = ["THROTTLE_ENV", "execute", "prepare", "resolve_config", "run_audit"]

THROTTLE_ENV = "ROBUSTCV_AUDIT_THROTTLE"
"""Seconds to sleep after each committed unit (a test/debug aid; results do not change)."""


def resolve_config(
    model: str,
    data: str,
    config: str | os.PathLike[str] | Mapping[str, Any] | AuditConfig | None = None,
    **overrides: Any,
) -> AuditConfig:
    """Merge defaults, a config (file path, mapping or :class:`AuditConfig`) and overrides.

    An override is given when it is not None, and then it wins, also when it equals the
    default. ``model``/``data`` override the config's unless they are empty strings. Suite
    sections may be overridden by name with a mapping (merged key by key into the file's).

    Example:
        >>> cfg = resolve_config("zoo:fmnist-cnn", "fashion-mnist", {"seed": 3}, seed=0)
        >>> cfg.seed
        0
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
        if value is None:
            continue
        if key in SUITES and isinstance(value, Mapping) and isinstance(raw.get(key), Mapping):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return AuditConfig.from_dict(raw)


@dataclass
class Prepared:
    """Everything :func:`prepare` checked and built.

    Attributes:
        config: the resolved config.
        spec: the plain description of the context (what workers rebuild from).
        ctx: the context in this process.
        suites: the suites that run, in order.
        fingerprint: hash of work settings, model and data.
        parts: what the fingerprint hashes (to name differences).
    """

    config: AuditConfig
    spec: ContextSpec
    ctx: AuditContext
    suites: list[Suite]
    fingerprint: str
    parts: dict[str, Any]


def prepare(
    cfg: AuditConfig, model: Model | None, out: Path, *, loaded_from_spec: bool = True
) -> Prepared:
    """Check every input and build the context (no unit runs here).

    Args:
        cfg: the resolved config.
        model: a model object, or None to load ``cfg.model``.
        out: the (checked) audit folder.
        loaded_from_spec: whether ``model`` came from ``cfg.model`` (workers reload it) or is
            a user object (workers unpickle it).
    """
    from robustcv.data.loading import load_dataset
    from robustcv.models.loading import load_model

    from_spec = model is None or loaded_from_spec
    net = model if model is not None else load_model(cfg.model, device=cfg.device)
    dataset = load_dataset(cfg.data, split=cfg.split, limit=cfg.limit)
    if len(dataset) == 0:
        raise InputError(f"the dataset {cfg.data} ({cfg.split}) is empty")
    dataset = _tensor_dataset(dataset)  # materialise and validate the evaluated images once
    check_compatible(net, dataset)
    shape = tuple(dataset.x.shape[1:])
    running = [SUITES.get(name) for name in cfg.running()]
    for suite in running:
        suite.validate(cfg, shape)
    needs = [suite.needs(cfg) for suite in running]
    fit = fit_ref(cfg, dataset, net) if any(n.fit_data for n in needs) else None
    ood: dict[str, Any] = {}
    if any(n.ood_data for n in needs):
        for s in ood_specs(cfg):
            ref = ood_ref(s, shape)
            if ref is not None:
                ood[s] = ref
    spec = ContextSpec(
        config=cfg,
        model=ModelRef.of(net, cfg.model, cfg.device, from_spec),
        data=dataset,
        out_dir=str(out),
        fit=fit,
        ood=ood,
        suites={s.name: s for s in running},
    )
    ctx = build_context(spec, model=net)
    fit_ds = ctx.fit_data() if fit is not None else None
    ood_ds = {s: ctx.ood_data(s) for s in ood}
    fp, parts = fingerprint(cfg, net, dataset, fit, fit_ds, ood_ds)
    return Prepared(cfg, spec, ctx, running, fp, parts)


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


@dataclass
class RunState:
    """The state of one run over an audit folder (one object instead of many arguments).

    Attributes:
        prepared: what :func:`prepare` built.
        store: the open store.
        run_id: this run's id in the store.
        executor: runs the units.
        progress: show progress bars on stderr.
        log: the run's logger.
        started: ``time.perf_counter()`` at the start of ``run_audit``.
        sections: results per suite (filled by aggregation).
        timings: seconds per suite.
        notes: ``{"skipped": {...}, "notes": [...]}`` collected from suites.
        sizes: images per suite (the ``subsample`` record).
    """

    prepared: Prepared
    store: Store
    run_id: int
    executor: Executor
    progress: bool
    log: logging.Logger
    started: float
    sections: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=lambda: {"skipped": {}, "notes": []})
    sizes: dict[str, Any] = field(default_factory=dict)


def _rows_of(store: Store, names: Sequence[str]) -> dict[str, Row]:
    out: dict[str, Row] = {}
    for name in names:
        out.update({s.key: s.row for s in store.units(name)})
    return out


def _run_suite(state: RunState, suite: Suite, units: list[Unit], overall: tqdm) -> None:
    ctx, store, log = state.prepared.ctx, state.store, state.log
    suite_start = time.perf_counter()
    rows: dict[str, Row] = _rows_of(store, [suite.name])
    bar = tqdm(
        total=len(units),
        initial=sum(1 for u in units if u.key in rows),
        desc=f"  {suite.name}",
        disable=not state.progress,
        leave=False,
        position=1,
    )
    extra = _rows_of(store, suite.requires(ctx.config))
    throttle = _throttle()

    def on_done(unit: Unit, row: Row, seconds: float) -> None:
        store.put(unit.key, unit.suite, unit.condition, unit.shard, row, seconds, state.run_id)
        rows[unit.key] = row
        log.info("done %s in %.2f s", unit.key, seconds)
        overall.update(unit.cost)
        bar.update(1)
        if throttle:
            time.sleep(throttle)

    try:
        for phase in sorted({u.phase for u in units}):
            todo = [u for u in units if u.phase == phase and u.key not in rows]
            for u in units:
                if u.phase == phase and u.key in rows:
                    log.info("skip %s (finished earlier)", u.key)
            state.executor.run(suite, todo, {**extra, **rows}, on_done)
    finally:
        bar.close()
    agg_start = time.perf_counter()
    planned = {u.key for u in units}
    mine = {k: v for k, v in sorted(rows.items()) if k in planned}
    section = suite.aggregate(ctx, mine, state.notes)
    agg = time.perf_counter() - agg_start
    unit_seconds = sum(s.seconds for s in store.units(suite.name) if s.key in planned)
    state.timings[suite.name] = round(unit_seconds + agg, 3)
    log.info(
        "suite %s: units %.1f s (all runs), aggregation %.2f s, this run %.1f s",
        suite.name,
        unit_seconds,
        agg,
        time.perf_counter() - suite_start,
    )
    state.sections[suite.name] = section


def execute(state: RunState) -> AuditResults:
    """Run every suite's missing units, aggregate, and write results.json."""
    prep, store, log = state.prepared, state.store, state.log
    ctx, cfg = prep.ctx, prep.config
    plans = {s.name: s.plan(ctx) for s in prep.suites}
    plans = {k: v for k, v in plans.items() if v}
    done = store.keys()
    total = sum(u.cost for units in plans.values() for u in units)
    skipped_cost = sum(u.cost for units in plans.values() for u in units if u.key in done)
    n_units = sum(len(v) for v in plans.values())
    n_skip = sum(1 for v in plans.values() for u in v if u.key in done)
    parts: list[str] = []
    state.sizes["evaluated"] = len(ctx.data)
    for suite in prep.suites:
        if suite.name in plans:
            text, sizes = suite.subsample(ctx, plans[suite.name])
            state.sizes.update(sizes)
            if text:
                parts.append(text)
    text = "subsampled: " + "; ".join(parts)
    log.info("run %d: %s on %s/%s -> %s; fingerprint %s", state.run_id, cfg.model, cfg.data,
             cfg.split, ctx.out_dir, prep.fingerprint)  # fmt: skip
    log.info("%s", text)
    log.info("%d units planned, %d finished earlier (skipped)", n_units, n_skip)
    if state.progress:
        print(f"robustcv audit: {text}", file=sys.stderr)
        if n_skip:
            print(
                f"robustcv audit: resuming {ctx.out_dir}: {n_skip} of {n_units} units finished "
                "earlier",
                file=sys.stderr,
            )
    store.count_skipped(state.run_id, n_skip)
    overall = tqdm(
        total=total,
        initial=skipped_cost,
        desc="audit",
        disable=not state.progress,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
        position=0,
    )
    status = "failed"
    try:
        state.executor.start(prep.spec, ctx)
        for suite in prep.suites:
            if suite.name in plans:
                _run_suite(state, suite, plans[suite.name], overall)
        status = "finished"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        state.executor.close()
        overall.close()
        store.end_run(state.run_id, status)
        if status != "finished":
            log.error("run %d stopped before the end; finished units are kept", state.run_id)
        for h in list(log.handlers):
            h.close()
            log.removeHandler(h)
    return _write_results(state, n_units)


def _version() -> str:
    """Robustcv's version (from the installed metadata: the package root imports this module)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("robustcv")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _write_results(state: RunState, n_units: int) -> AuditResults:
    prep, store = state.prepared, state.store
    cfg, ctx = prep.config, prep.ctx
    record = next(r for r in store.runs() if r.id == state.run_id)
    suites: dict[str, Any] = {}
    top: dict[str, Any] = {}
    for suite in prep.suites:
        if suite.name not in state.sections:
            continue
        if suite.results_key:
            top[suite.results_key] = state.sections[suite.name]
        else:
            suites[suite.name] = state.sections[suite.name]
    config = {**cfg.to_dict(), "executor": state.executor.settings(), "subsample": state.sizes}
    results = AuditResults(
        schema=SCHEMA_VERSION,
        robustcv_version=_version(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        fingerprint=prep.fingerprint,
        config=config,
        model={
            "spec": cfg.model,
            "name": ctx.model.name,
            "num_classes": ctx.model.num_classes,
            "differentiable": ctx.model.differentiable,
            "has_features": ctx.model.has_features,
            "input_shape": list(ctx.data.x.shape[1:]),
        },
        data={
            "spec": cfg.data,
            "name": ctx.data.name,
            "split": cfg.split,
            "limit": cfg.limit,
            "n": len(ctx.data),
            "class_names": list(ctx.data.classes),
        },
        timings=state.timings,
        skipped=dict(state.notes.get("skipped", {})),
        notes=list(state.notes.get("notes", [])),
        suites=suites,
        extra=top,
        run={
            "id": state.run_id,
            "units_total": n_units,
            "units_run": record.units_run,
            "units_skipped": record.units_skipped,
            "runs_on_folder": len(store.runs()),
            "executor": state.executor.settings(),
            "wall_seconds": round(time.perf_counter() - state.started, 3),
        },
        path=ctx.out_dir,
    )
    write_json_atomic(ctx.out_dir / RESULTS_FILE, results.to_dict())
    with open(ctx.out_dir / LOG_FILE, "a", encoding="utf-8") as fh:
        fh.write(
            f"{datetime.now().isoformat(timespec='seconds')} INFO run {state.run_id}: "
            f"{record.units_run} units run, {record.units_skipped} skipped; wrote "
            f"{ctx.out_dir / RESULTS_FILE}\n"
        )
    return results


def run_audit(
    model: str | os.PathLike[str] | Model | nn.Module,
    data: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    suites: str | Sequence[str] | None = None,
    limit: int | None = None,
    seed: int | None = None,
    config: str | os.PathLike[str] | Mapping[str, Any] | AuditConfig | None = None,
    progress: bool = True,
    executor: Executor | str | None = None,
    ood_data: Sequence[str] | None = None,
    fit_data: str | None = None,
    strength: str | None = None,
    eps: str | Mapping[str, Any] | None = None,
    split: str | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    workers: int | None = None,
    force: bool = False,
    **sections: Mapping[str, Any],
) -> AuditResults:
    """Audit a model on a dataset with every selected suite; resumable; writes results.json.

    Results are stored unit by unit in ``out_dir/audit.sqlite``; running again with the same
    folder resumes (finished units are skipped) and rewrites ``out_dir/results.json``. See
    ``docs/audit.md`` for what each suite measures and its default sizes.

    Every keyword left at None takes its value from ``config`` (else the default); a keyword
    that is given always wins, also when it equals the default.

    Args:
        model: a model spec (``zoo:NAME``, ``.onnx``, ``.pt``, ``file.py:factory``), a
            :class:`robustcv.Model` or an ``nn.Module``.
        data: a dataset spec (``fashion-mnist``, ``npz:F``, ``folder:DIR``, ...).
        out_dir: the audit folder (new, empty, or an earlier audit of the same config).
        suites: suites to run (a list or ``"clean,ood"``; default: the default suites, see
            ``robustcv.audit.SUITES``).
        limit: evaluate only the first ``limit`` images.
        seed: global seed (default 0).
        config: a config file (YAML/JSON), a mapping or an :class:`AuditConfig`.
        progress: show progress bars and the plan on stderr.
        executor: an executor object, or ``"in-process"`` / ``"processes"`` (default: the
            config's, else in-process).
        ood_data: OOD set specs (dataset specs or ``derived:NAME``); default: derived sets.
        fit_data: data to fit temperature / Mahalanobis on (default: the train split).
        strength: ``"fast"`` or ``"full"`` (adversarial ensemble; see docs/audit.md).
        eps: extra eps, ``"linf:0.1,l2:0.5"`` or ``{"linf": [0.1]}``.
        split: the evaluated split (default ``test``).
        batch_size: images per forward pass.
        device: where the model runs.
        workers: worker processes of the ``processes`` executor.
        force: discard stored results made with a different config instead of refusing.
        **sections: suite config sections by name, e.g. ``corruption={"n": 100}``.

    Returns:
        The :class:`AuditResults` (also written to ``out_dir/results.json``).

    Raises:
        InputError: any bad input, before work starts: unknown suite / OOD set / corruption /
            method, model and data that do not fit together, fit data that overlaps the
            evaluated images, an unwritable or foreign folder, a folder another audit is
            writing, or a folder holding an audit of a different model/data/config (without
            ``force``).

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
    for name in sections:
        if name not in SUITES:
            raise InputError(
                f"run_audit got an unexpected keyword '{name}'; suite sections are "
                f"{', '.join(SUITES.names())}"
            )
    exec_setting: Any = None
    if isinstance(executor, str) or workers is not None:
        exec_setting = {"name": executor if isinstance(executor, str) else "processes"}
        if workers is not None:
            exec_setting["workers"] = workers
    if isinstance(model, (Model, nn.Module)):
        spec = getattr(model, "name", None) or type(model).__name__
        model_obj: Model | None = model if isinstance(model, Model) else Model(model, name=spec)
    else:
        spec, model_obj = str(model), None
    cfg = resolve_config(
        spec,
        str(data),
        config,
        suites=suites,
        ood_data=None if ood_data is None else tuple(ood_data),
        fit_data=fit_data,
        limit=limit,
        strength=strength,
        seed=seed,
        eps=eps,
        split=split,
        batch_size=batch_size,
        device=device,
        executor=exec_setting,
        **sections,
    )
    out = prepare_dir(out_dir)
    with FolderLock(out):
        return _run_locked(cfg, model_obj, out, executor, progress, force, started)


def _run_locked(
    cfg: AuditConfig,
    model_obj: Model | None,
    out: Path,
    executor: Executor | str | None,
    progress: bool,
    force: bool,
    started: float,
) -> AuditResults:
    store = Store(out)
    try:
        interrupted = store.mark_interrupted()
        prep = prepare(cfg, model_obj, out, loaded_from_spec=model_obj is None)
        stored = store.get_meta("fingerprint")
        forced = False
        if stored is not None and stored != prep.fingerprint:
            diff = differing_keys(store.get_meta("fingerprint_parts") or {}, prep.parts)
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
            for suite in prep.suites:
                suite.clear_outputs(out)
            forced = True
        store.set_meta("fingerprint", prep.fingerprint)
        store.set_meta("fingerprint_parts", prep.parts)
        store.set_meta("config", cfg.to_dict())
        runner = executor if executor is not None and not isinstance(executor, str) else None
        state = RunState(
            prepared=prep,
            store=store,
            run_id=store.begin_run(),
            executor=runner or make_executor(cfg.executor),
            progress=progress,
            log=_logger(out),
            started=started,
        )
        prep.ctx.log = state.log
        if interrupted:
            state.log.warning("%d earlier run(s) did not finish (killed); marked interrupted",
                              interrupted)  # fmt: skip
        if forced:
            state.log.warning("--force: discarded stored results made with a different config")
        return execute(state)
    finally:
        store.close()
