"""``leaderboard()``: audit every model with the same settings, then write the table.

Each model gets a resumable audit in ``DIR/audits/<slug>/`` (re-running resumes it, or only
re-aggregates a finished one) with settings common to every row: the same suites, seed, image
limit, corruption settings and config, and the same extra eps (:data:`COMMON_EPS`) so that
every audit's grid holds those points. Next to it, ``headline.json`` caches the headline robust
accuracy: :func:`robustcv.attacks.robust_accuracy` with ``attacks="default"`` at L-inf 0.1 on
the first ``robust_n`` test images (:func:`headline_robust_accuracy`), computed in chunks that
are stored as they finish, so an interrupted run loses at most one chunk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from robustcv.audit.config import AuditConfig, parse_eps
from robustcv.audit.executor import Executor
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.leaderboard.render import (
    check_docs,
    render_markdown,
    update_docs,
    write_leaderboard,
)
from robustcv.leaderboard.table import Leaderboard, build_table, find_row

__all__ = [
    "COMMON_EPS",
    "HEADLINE_CHUNK",
    "HEADLINE_EPS",
    "HEADLINE_FILE",
    "HEADLINE_NORM",
    "LeaderboardResult",
    "headline_robust_accuracy",
    "leaderboard",
    "model_slug",
]

COMMON_EPS: dict[str, tuple[float, ...]] = {"linf": (0.05, 0.1), "l2": (1.0,)}
"""Eps added to every audit's grid, so that every row has robust accuracy at these points."""

HEADLINE_NORM = "linf"
HEADLINE_EPS = 0.1
HEADLINE_CHUNK = 250
"""Images per stored chunk of the headline robust accuracy (each chunk is one
``robust_accuracy`` call: smaller chunks lose less to an interruption but repeat the attacks'
per-call work, e.g. Square's 5000 query steps, more often)."""
HEADLINE_FILE = "headline.json"
_HEADLINE_SCHEMA = "robustcv.headline/1"


@dataclass
class LeaderboardResult(Leaderboard):
    """What :func:`leaderboard` returns: the table (leaderboard.json) plus where things are.

    Attributes:
        files: ``json``, ``md``, ``html`` (and ``docs`` when updated) -> path written.
        audits: row name -> its audit folder.
        seconds: wall time of the whole call.
    """

    files: dict[str, str] = field(default_factory=dict)
    audits: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def model_slug(spec: str) -> str:
    """The audit folder name of a model spec (a hash is added when the name is not kept).

    Example:
        >>> model_slug("zoo:fmnist-cnn")
        'zoo-fmnist-cnn'
        >>> model_slug("models/net.onnx")[:14]
        'models-net.onn'
    """
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", spec).strip("-.") or "model"
    if len(text) > 60 or text != spec.replace(":", "-"):
        digest = hashlib.sha256(spec.encode("utf-8")).hexdigest()[:8]
        text = f"{text[:50]}-{digest}"
    return text


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def headline_robust_accuracy(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    seed: int = 0,
    eps: float = HEADLINE_EPS,
    norm: str = HEADLINE_NORM,
    chunk: int = HEADLINE_CHUNK,
    sanity: bool = True,
    cache: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Robust accuracy under the default attack ensemble, in resumable chunks.

    Runs :func:`robustcv.attacks.robust_accuracy` (``attacks="default"``) on ``chunk`` images
    at a time and adds up the per-image outcomes. The outcome of an image does not depend on
    the batch it is in (attacks seed per image from its content), so the total equals one call
    on all images. The gradient-masking sanity checks run with the first chunk only.

    With ``cache``, the result (and every finished chunk) is stored there under a key of the
    model's weights, the images and labels, and the settings; a call with the same key reuses
    it, finishing the missing chunks of an interrupted run.

    Args:
        model: the model.
        x: the images (the first ``robust_n`` test images for the leaderboard).
        y: their labels.
        seed: the attacks' seed.
        eps: the budget.
        norm: the threat model.
        chunk: images per stored chunk.
        sanity: run the sanity checks (on the first chunk).
        cache: a JSON file to store and reuse the result.
        progress: a progress bar over chunks.

    Returns:
        A JSON-serialisable dict: ``robust_accuracy`` and ``clean_accuracy`` (estimates with
        exact intervals), ``n``, ``norm``, ``eps``, ``attacks`` (``"default"``), ``members``
        (the ensemble with its budgets), ``broken_by`` (image counts), ``warnings`` (sanity
        checks that fired), ``sanity``, ``seconds``, ``key``, ``complete``.

    Example:
        >>> from torch import nn
        >>> m = Model(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)))
        >>> x, y = torch.rand(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2])
        >>> h = headline_robust_accuracy(m, x, y, chunk=4, sanity=False)
        >>> h["n"], h["robust_accuracy"]["n"], h["attacks"]
        (6, 6, 'default')
    """
    from robustcv.attacks import robust_accuracy
    from robustcv.audit.plan import shards
    from robustcv.audit.prepare import model_hash
    from robustcv.audit.schema import write_json_atomic
    from robustcv.core.stats import Estimate

    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise InputError(f"chunk must be a positive int, got {chunk!r}")
    n = int(y.shape[0])
    if n < 1:
        raise InputError("the headline robust accuracy needs at least one image")
    key = {
        "schema": _HEADLINE_SCHEMA,
        "model": model_hash(model),
        "images": _sha(x),
        "labels": _sha(y),
        "n": n,
        "norm": norm,
        "eps": float(eps),
        "attacks": "default",
        "seed": int(seed),
        "sanity": bool(sanity),
        "chunk": chunk,
    }
    path = None if cache is None else Path(cache).expanduser()
    state: dict[str, Any] = {"key": key, "chunks": {}}
    if path is not None:
        stored = _read_json(path)
        if stored is not None and stored.get("key") == key and key["model"]:
            if stored.get("complete"):
                return stored
            if isinstance(stored.get("chunks"), dict):
                state = stored
    parts = shards(n, chunk)
    bar = tqdm(parts, desc="headline robust accuracy", unit="chunk", disable=not progress,
               leave=False)  # fmt: skip
    for i, (a, b) in enumerate(bar):
        if str(i) in state["chunks"]:
            continue
        res = robust_accuracy(
            model,
            x[a:b],
            y[a:b],
            eps=float(eps),
            norm=norm,
            attacks="default",
            seed=seed,
            sanity=sanity and i == 0,
            sanity_subset=100,
        )
        counts: dict[str, int] = {}
        for who in res.broken_by:
            label = "robust" if who is None else who
            counts[label] = counts.get(label, 0) + 1
        state["chunks"][str(i)] = {
            "start": a,
            "stop": b,
            "robust": counts.get("robust", 0),
            "clean_correct": (b - a) - counts.get("clean", 0),
            "broken_by": counts,
            "seconds": res.seconds,
            "forward_passes": res.forward_passes,
            "backward_passes": res.backward_passes,
        }
        if i == 0:
            state["members"] = res.attacks
            state["sanity"] = [f.to_dict() for f in res.sanity]
        if path is not None:
            write_json_atomic(path, state)
    chunks = [state["chunks"][str(i)] for i in range(len(parts))]
    robust = sum(int(c["robust"]) for c in chunks)
    clean = sum(int(c["clean_correct"]) for c in chunks)
    broken: dict[str, int] = {}
    for c in chunks:
        for who, k in c["broken_by"].items():
            broken[who] = broken.get(who, 0) + int(k)
    sanity_found = state.get("sanity") or []
    out = {
        "schema": _HEADLINE_SCHEMA,
        "key": key,
        "complete": True,
        "norm": norm,
        "eps": float(eps),
        "attacks": "default",
        "members": state.get("members", []),
        "n": n,
        "seed": int(seed),
        "robust_accuracy": Estimate.binomial(robust, n).to_dict(),
        "clean_accuracy": Estimate.binomial(clean, n).to_dict(),
        "broken_by": broken,
        "warnings": [str(f.get("check")) for f in sanity_found if f.get("fired")],
        "sanity": sanity_found,
        "seconds": round(sum(float(c["seconds"]) for c in chunks), 3),
        "chunks": state["chunks"],
    }
    if path is not None:
        write_json_atomic(path, out)
    return out


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("robustcv")
    except PackageNotFoundError:
        return "unknown"


def _out_dir(out: str | os.PathLike[str]) -> Path:
    text = os.fspath(out)
    if not str(text).strip():
        raise InputError("out is empty; give the leaderboard folder, e.g. --out leaderboard")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(
            f"out {path} is a file, not a folder; give a folder path (new or existing)"
        )
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"out {path}: {probe} is a file, so the folder cannot be created under it")
    return path


def _positive(value: Any, name: str, *, allow_zero: bool = False, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InputError(f"{name} must be an int >= {low}, got {value!r}")


def _merged_eps(
    eps: str | Mapping[str, Any] | None, config: AuditConfig | None
) -> dict[str, list[float]]:
    common = COMMON_EPS if eps is None else parse_eps(eps)
    found = dict(config.eps) if config is not None else {}
    out: dict[str, list[float]] = {}
    for norm in dict.fromkeys([*common, *found]):
        out[norm] = sorted({float(e) for e in (*common.get(norm, ()), *found.get(norm, ()))})
    return out


def _command(
    names: Sequence[str],
    data: str,
    out: Path,
    *,
    objects: bool,
    limit: int | None,
    robust_n: int,
    suites: str | Sequence[str] | None,
    seed: int,
    baseline: str | None,
    eps: str | Mapping[str, Any] | None,
) -> str:
    parts = ["robustcv", "leaderboard", *names, "--data", data, "--out", str(out)]
    if limit is not None:
        parts += ["--limit", str(limit)]
    if robust_n != 1000:
        parts += ["--robust-n", str(robust_n)]
    if suites is not None:
        parts += ["--suites", suites if isinstance(suites, str) else ",".join(suites)]
    if seed != 0:
        parts += ["--seed", str(seed)]
    if baseline is not None:
        parts += ["--baseline", baseline]
    if isinstance(eps, str):
        parts += ["--eps", eps]
    text = shlex.join(parts)
    return text + (" (models given as Python objects)" if objects else "")


def leaderboard(
    models: Sequence[str | Model] | None = None,
    data: str = "fashion-mnist",
    *,
    out: str | os.PathLike[str],
    limit: int | None = None,
    robust_n: int = 1000,
    suites: str | Sequence[str] | None = None,
    seed: int = 0,
    executor: Executor | str | None = None,
    workers: int | None = None,
    progress: bool = True,
    baseline: str | None = None,
    eps: str | Mapping[str, Any] | None = None,
    config: str | os.PathLike[str] | Mapping[str, Any] | AuditConfig | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    command: str | None = None,
    docs: str | os.PathLike[str] | None = None,
) -> LeaderboardResult:
    """Audit each model with common settings and write leaderboard.json, .md and .html.

    Every model gets a resumable audit in ``out/audits/<slug>/`` (an earlier run's folder is
    reused: finished units are not run again) with the same suites, seed, limit, config and
    extra eps, plus the headline robust accuracy (default ensemble at L-inf 0.1 on the first
    ``robust_n`` test images, cached in ``headline.json`` next to the audit). The table is
    built by :func:`robustcv.leaderboard.build_table`.

    Args:
        models: model specs (``zoo:NAME``, files, ...) or :class:`robustcv.Model` objects;
            default: every zoo model.
        data: the dataset spec every model is audited on.
        out: the leaderboard folder (new or an earlier leaderboard's).
        limit: evaluate only the first ``limit`` images (also caps the headline's N).
        robust_n: images of the headline robust accuracy (0: no headline column).
        suites: audit suites (default: the default ones).
        seed: the global seed of every audit and of the headline attacks.
        executor: how audit units run (``"processes"``, an executor object, ...); the
            headline runs in this process.
        workers: worker processes (``processes``) or Ray actors (``ray``).
        progress: progress bars (over models, and each audit's).
        baseline: the row mCE is relative to (default ``fmnist-cnn`` when it is a row, else
            the first row).
        eps: the eps every audit's grid gets (default :data:`COMMON_EPS`), merged with the
            config's.
        config: an audit config (file, mapping or :class:`AuditConfig`) shared by every audit.
        device: where the models run.
        batch_size: images per forward pass in the audits.
        command: the command line stated in the outputs (default: built from the arguments).
        docs: a markdown file whose ``<!-- table:begin -->`` / ``<!-- table:end -->`` section
            is replaced by the new table; leaderboard.json is copied next to it (same name,
            ``.json``), which is what zoo cards are checked against.

    Returns:
        A :class:`LeaderboardResult` (the table, the files written, the audit folders).

    Raises:
        InputError: an unknown or duplicate model, a bad setting, an ``out`` that is a file, a
            baseline that is not a row, or an audit folder holding another config.

    Example:
        >>> import tempfile, numpy as np
        >>> from torch import nn
        >>> d = tempfile.mkdtemp()
        >>> x = np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8)
        >>> np.savez(f"{d}/toy.npz", x=x, y=np.arange(40) % 2)
        >>> nets = [Model(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), name=f"net{i}")
        ...         for i in range(2)]
        >>> res = leaderboard(nets, f"npz:{d}/toy.npz", out=f"{d}/lb", suites="clean",
        ...                   robust_n=0, progress=False)
        >>> [c.key for c in res.columns], sorted(res.files)
        (['clean/accuracy'], ['html', 'json', 'md'])
    """
    from robustcv.audit.engine import resolve_config, run_audit
    from robustcv.audit.schema import write_json_atomic
    from robustcv.data.loading import load_dataset
    from robustcv.models.loading import load_model
    from robustcv.models.zoo import ZOO

    started = time.perf_counter()
    out_dir = _out_dir(out)
    _positive(limit, "limit", allow_none=True)
    _positive(robust_n, "robust_n", allow_zero=True)
    _positive(seed, "seed", allow_zero=True)
    given = list(models) if models is not None else [f"zoo:{n}" for n in ZOO.names()]
    if not given:
        raise InputError("no models given; name at least one (default: every zoo model)")
    names: list[str] = []
    for i, m in enumerate(given):
        if isinstance(m, Model):
            names.append(str(getattr(m, "name", None) or f"model-{i}"))
        elif isinstance(m, str) and m.strip():
            names.append(m.strip())
        else:
            raise InputError(f"models[{i}] must be a model spec or a robustcv.Model, got {m!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"model(s) {', '.join(dup)} given more than once")
    slugs = [model_slug(n) for n in names]
    if len(set(slugs)) != len(slugs):
        raise InputError(f"two models map to the same audit folder name: {slugs}")
    cfg = resolve_config(names[0], data, config, suites=suites)  # validates config and suites
    common_eps = _merged_eps(eps, cfg if config is not None else None)
    # load every model now, so an unknown one fails before any work
    loaded: list[Model] = [
        m if isinstance(m, Model) else load_model(n, device=device)
        for m, n in zip(given, names, strict=True)
    ]
    if docs is not None:
        check_docs(docs)
    if baseline is not None:
        from robustcv.leaderboard.table import LeaderboardRow

        find_row([LeaderboardRow(n, n) for n in names], baseline)
    headline_n = 0 if robust_n == 0 else min(robust_n, limit) if limit else robust_n
    entries: list[tuple[str, Mapping[str, Any], Mapping[str, Any] | None]] = []
    audits: dict[str, str] = {}
    no_headline: list[str] = []
    bar = tqdm(
        list(zip(names, given, loaded, slugs, strict=True)),
        desc="leaderboard",
        unit="model",
        disable=not progress,
    )
    for name, spec, model, slug in bar:
        bar.set_postfix_str(name)
        folder = out_dir / "audits" / slug
        res = run_audit(
            spec if isinstance(spec, str) else model,
            data,
            folder,
            suites=suites,
            limit=limit,
            seed=seed,
            eps=common_eps,
            config=config,
            executor=executor,
            workers=workers,
            progress=progress,
            device=device,
            batch_size=batch_size,
        )
        audits[name] = str(folder)
        headline = None
        if headline_n and not model.differentiable:
            no_headline.append(name)
        elif headline_n:
            ds = load_dataset(data, split="test", limit=headline_n)
            headline = headline_robust_accuracy(
                model, ds.x, ds.y, seed=seed, cache=folder / HEADLINE_FILE, progress=progress
            )
        entries.append((name, res.to_dict(), headline))
    board = build_table(entries, baseline=baseline)
    for row in board.rows:
        row.audit = audits.get(row.name)
    first = entries[0][1].get("config") or {}
    corr = first.get("corruption") if isinstance(first.get("corruption"), Mapping) else None
    board.settings = {
        "data": data,
        "split": first.get("split", "test"),
        "limit": limit,
        "seed": seed,
        "suites": first.get("suites"),
        "strength": first.get("strength"),
        "eps": common_eps,
        "corruption": None
        if corr is None
        else {k: corr.get(k) for k in ("corruptions", "severities", "n", "spec")},
        "headline": {
            "attacks": "default",
            "norm": HEADLINE_NORM,
            "eps": HEADLINE_EPS,
            "n": headline_n,
            "split": "test",
        }
        if headline_n
        else None,
    }
    for name, _, found in entries:
        fired = list((found or {}).get("warnings") or [])
        if fired:
            board.notes.append(
                f"{name}: gradient-masking sanity check(s) fired on the headline attacks "
                f"({', '.join(fired)}); its robust accuracy may be too high"
            )
    if no_headline:
        board.notes.append(
            f"{', '.join(no_headline)}: gradient-free, so no headline robust accuracy (the "
            "default ensemble needs input gradients)"
        )
    if headline_n:
        board.notes.append(
            f"headline robust accuracy: robustcv.robust_accuracy(attacks='default') at "
            f"{HEADLINE_NORM} eps {HEADLINE_EPS:g} on the first {headline_n} test images"
        )
    board.command = command or _command(
        names,
        data,
        out_dir,
        objects=any(isinstance(m, Model) for m in given),
        limit=limit,
        robust_n=robust_n,
        suites=suites,
        seed=seed,
        baseline=baseline,
        eps=eps,
    )
    board.created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    board.robustcv_version = _version()
    paths = write_leaderboard(board, out_dir)
    files = {k: str(v) for k, v in paths.items()}
    if docs is not None:
        doc = update_docs(docs, render_markdown(board))
        files["docs"] = str(doc)
        files["docs_json"] = str(write_json_atomic(doc.with_suffix(".json"), board.to_dict()))
    result = LeaderboardResult(
        **{f: getattr(board, f) for f in Leaderboard.__dataclass_fields__},
        files=files,
        audits=audits,
        seconds=round(time.perf_counter() - started, 3),
    )
    return result
