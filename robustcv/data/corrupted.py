"""Read -C datasets: corrupted copies of a dataset in the ImageNet-C or CIFAR-10-C layouts.

Two layouts, the published ones:

* ``imagenet-c``: ``DIR/<corruption>/<severity>/<class folder>/<file>``. Ours are lossless PNGs
  named by the image's position in the source dataset (``00042.png``); the published ImageNet-C
  holds JPEGs in WordNet-id folders (``n01440764/ILSVRC2012_val_00000293.JPEG``).
* ``cifar-c``: ``DIR/<corruption>.npy``, uint8 ``(5N, H, W, C)`` with the severities stacked in
  order (rows ``(s-1)*N .. s*N-1`` hold severity ``s``), and ``DIR/labels.npy`` ``(5N,)``.
  Published CIFAR-10-C/CIFAR-100-C files are ``(50000, 32, 32, 3)``; ours keep the channel axis
  for greyscale too (``C = 1``).

Reading: ``load_dataset("imagenet-c:DIR#fog/3")`` or ``load_dataset("cifar-c:DIR#fog/3")`` (the
``#corruption/severity`` fragment also works on the command line), or equivalently
``load_dataset("cifar-c:DIR", corruption="fog", severity=3)``. ``-`` and ``_`` in corruption names
are interchangeable. ``imagenet-c:`` orders images by file name across classes, which is the
source order for our files and the validation order for the published ones; a plain
``folder:DIR/fog/3`` also works and orders them class by class.

Writing lives a layer up, in :mod:`robustcv.corruptions.dataset` (:func:`write_corrupted
<robustcv.corruptions.dataset.write_corrupted>`, ``robustcv corrupt``), because it needs the
corruptions; this module knows corruption names only from :mod:`robustcv.core.names`. A -C
dataset written by robustcv carries a manifest (:data:`MANIFEST_NAME`) with its configuration;
the reader takes the class names from it.
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from robustcv.core.deprecation import deprecated_getattr
from robustcv.core.errors import DataNotFoundError, InputError
from robustcv.core.names import IMAGENET_C_CORRUPTIONS
from robustcv.data.cifar import CIFAR10_CLASSES
from robustcv.data.dataset import ArraySource, Dataset, check_label_array
from robustcv.data.folder import FolderSource

__all__ = [
    "CIFAR_C_SEVERITIES",
    "C_FORMATS",
    "IMAGENET_C_CORRUPTIONS",
    "MANIFEST_NAME",
    "available_corruptions",
    "detect_c_format",
    "load_corrupted",
    "parse_c_spec",
    "read_manifest",
]

C_FORMATS: tuple[str, ...] = ("imagenet-c", "cifar-c")
"""The two -C layouts (also the ``load_dataset`` spec prefixes)."""

MANIFEST_NAME = "robustcv_manifest.json"
"""File name of the manifest a -C dataset written by robustcv carries."""

CIFAR_C_SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
"""The severities a ``cifar-c`` file stacks, in order."""

# names that moved to robustcv.corruptions (the writer needs the corruptions themselves)
__getattr__ = deprecated_getattr(
    __name__,
    {
        "CorruptedWriteResult": "robustcv.corruptions.dataset:CorruptedWriteResult",
        "class_folder_names": "robustcv.corruptions.dataset:class_folder_names",
        "parse_severities": "robustcv.corruptions.selection:parse_severities",
        "select_corruptions": "robustcv.corruptions.selection:select_corruptions",
        "to_uint8": "robustcv.corruptions.dataset:to_uint8",
        "write_corrupted": "robustcv.corruptions.dataset:write_corrupted",
    },
)


# ----------------------------------------------------------------------------- small helpers


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def _is_number(text: str) -> bool:
    """A short run of ASCII digits (``int()`` takes it; no '²', no 5000-digit strings)."""
    return text.isascii() and text.isdigit() and len(text) <= 9


def _natural_key(name: str) -> tuple[tuple[int, int, str], ...]:
    parts = re.split(r"([0-9]+)", name)
    return tuple((0, int(p), "") if _is_number(p) else (1, 0, p) for p in parts if p)


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest of a -C dataset written by robustcv, or None when ``root`` holds none.

    Raises:
        InputError: the manifest exists but is damaged or not a robustcv -C manifest.

    Example:
        >>> import tempfile, pathlib
        >>> read_manifest(pathlib.Path(tempfile.mkdtemp())) is None
        True
    """
    path = root / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(
            f"cannot read {path}: {err}; the manifest is damaged - write the -C dataset again "
            "into a new folder (or with --force)"
        ) from err
    config = data.get("config") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("format"), str)
        or data.get("format") not in C_FORMATS
        or not isinstance(config, dict)
        or not isinstance(data.get("done"), list)
    ):
        raise InputError(
            f"{path} is not a robustcv -C manifest; write the -C dataset into a new folder "
            "(or with --force)"
        )
    return data


# ----------------------------------------------------------------------------- reader


def parse_c_spec(text: str) -> tuple[str, str | None, int | None]:
    """Split ``DIR#corruption/severity`` (the part after ``imagenet-c:`` or ``cifar-c:``).

    Example:
        >>> parse_c_spec("data/cifar-10-c#fog/3"), parse_c_spec("data/in-c")
        (('data/cifar-10-c', 'fog', 3), ('data/in-c', None, None))
    """
    path, sep, frag = str(text).rpartition("#")
    if not sep:
        return str(text), None, None
    name, _, sev = frag.partition("/")
    severity: int | None = None
    if sev.strip():
        if not _is_number(sev.strip()):
            raise InputError(
                f"cannot parse the severity in '#{frag}'; write DIR#<corruption>/<severity>, "
                "e.g. DIR#fog/3"
            )
        severity = int(sev.strip())
    return path, (name.strip() or None), severity


def detect_c_format(path: str | Path) -> str | None:
    """The -C layout of a folder (``"imagenet-c"``, ``"cifar-c"``), or None if it is neither.

    A robustcv manifest decides; otherwise ``labels.npy`` next to other ``.npy`` files means
    ``cifar-c``, and a subfolder named like an ImageNet-C corruption holding numbered severity
    folders means ``imagenet-c``.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> (d / "fog" / "3").mkdir(parents=True)
        >>> detect_c_format(d)
        'imagenet-c'
    """
    root = Path(path)
    if not root.is_dir():
        return None
    manifest = read_manifest(root)
    if manifest is not None:
        return str(manifest["format"])
    if (root / "labels.npy").is_file() and any(
        p.name != "labels.npy" and not p.name.startswith(".") for p in root.glob("*.npy")
    ):
        return "cifar-c"
    known = {_norm(n) for n in IMAGENET_C_CORRUPTIONS}
    for d in root.iterdir():
        if d.is_dir() and _norm(d.name) in known:
            if any(s.is_dir() and _is_number(s.name) for s in d.iterdir()):
                return "imagenet-c"
    return None


def available_corruptions(root: str | Path, fmt: str) -> dict[str, tuple[int, ...]]:
    """Corruptions present in a -C folder and their severities (from the files on disk).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for s in ("1", "3"):
        ...     (d / "fog" / s).mkdir(parents=True)
        >>> available_corruptions(d, "imagenet-c")
        {'fog': (1, 3)}
    """
    base = Path(root)
    if fmt not in C_FORMATS:
        raise InputError(f"unknown -C format '{fmt}'; use one of {', '.join(C_FORMATS)}")
    out: dict[str, tuple[int, ...]] = {}
    if fmt == "cifar-c":
        for p in sorted(base.glob("*.npy")):
            if p.name != "labels.npy" and not p.name.startswith("."):
                out[p.stem] = CIFAR_C_SEVERITIES
        return out
    for d in sorted(base.iterdir()):
        if d.is_dir() and not d.name.startswith("."):
            sevs = sorted({int(s.name) for s in d.iterdir() if s.is_dir() and _is_number(s.name)})
            if sevs:
                out[d.name] = tuple(sevs)
    return out


def _describe(avail: dict[str, tuple[int, ...]]) -> str:
    if not avail:
        return "none"

    def sevs(v: tuple[int, ...]) -> str:
        if len(v) > 1 and v == tuple(range(v[0], v[-1] + 1)):
            return f"{v[0]}-{v[-1]}"
        return ",".join(map(str, v))

    return ", ".join(f"{k} {sevs(v)}" for k, v in avail.items())


def _pick(
    root: Path, fmt: str, corruption: str | None, severity: int | None, manifest: Any
) -> tuple[str, int]:
    avail = available_corruptions(root, fmt)
    example = next(iter(avail), "fog")
    if corruption is not None and not isinstance(corruption, str):
        raise InputError(
            f"corruption must be a name such as '{example}', got {type(corruption).__name__} "
            f"{corruption!r}"
        )
    if corruption is None or severity is None:
        raise InputError(
            f"{root} is a {fmt} dataset; pick one corruption and severity, e.g. "
            f"'{fmt}:{root}#{example}/3' or load_dataset('{fmt}:{root}', corruption="
            f"'{example}', severity=3) (it holds: {_describe(avail)})"
        )
    matches = [k for k in avail if _norm(k) == _norm(corruption)]
    if not matches:
        close = difflib.get_close_matches(_norm(corruption), [_norm(k) for k in avail], n=3)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        unfinished = ""
        if manifest is not None:
            unfinished = (
                "; if it was being written, re-run the same 'robustcv corrupt' command to finish it"
            )
        raise InputError(
            f"{root} has no corruption '{corruption}'{hint} (it holds: {_describe(avail)})"
            f"{unfinished}"
        )
    key = matches[0]
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)):
        raise InputError(f"severity must be an int, got {severity!r}; e.g. severity=3")
    if int(severity) not in avail[key]:
        raise InputError(
            f"{root} has no severity {severity} of '{key}'; it holds severities "
            f"{_describe({key: avail[key]}).split(' ', 1)[1]}"
        )
    return key, int(severity)


def load_corrupted(
    fmt: str,
    root: str | Path,
    corruption: str | None,
    severity: int | None,
    *,
    split: str = "test",
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
) -> Dataset:
    """Read one (corruption, severity) of a -C dataset, ours or the published files.

    ``load_dataset("imagenet-c:DIR#fog/3")`` and ``load_dataset("cifar-c:DIR#fog/3")`` call this.

    Args:
        fmt: ``"imagenet-c"`` or ``"cifar-c"``.
        root: the -C folder.
        corruption: corruption name (``-`` and ``_`` interchangeable).
        severity: 1-based severity.
        split: recorded on the dataset (a -C folder holds one split).
        image_size: (H, W) to resize ``imagenet-c`` images to.
        channels: 1 or 3 for ``imagenet-c`` images (default: detected).

    Raises:
        DataNotFoundError: the folder or ``labels.npy`` is missing.
        InputError: no such corruption or severity (the message lists what the folder holds),
            or malformed files.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> np.save(d / "fog.npy", np.zeros((10, 32, 32, 3), np.uint8))
        >>> np.save(d / "labels.npy", np.arange(10, dtype=np.uint8) % 2)
        >>> ds = load_corrupted("cifar-c", d, "fog", 2)
        >>> len(ds), ds.y.tolist(), ds.classes[:2]
        (2, [0, 1], ['airplane', 'automobile'])
    """
    base = Path(root).expanduser()
    if fmt not in C_FORMATS:
        raise InputError(f"unknown -C format '{fmt}'; use one of {', '.join(C_FORMATS)}")
    if not base.is_dir():
        raise DataNotFoundError(
            f"-C dataset folder {base} does not exist; write one with 'robustcv corrupt' or "
            "download and extract the published files"
        )
    if fmt == "cifar-c" and (image_size is not None or channels is not None):
        raise InputError(
            "image_size=/channels= apply to image folders (imagenet-c:, folder:) only, not to "
            f"the cifar-c arrays in {base}; drop them"
        )
    manifest = read_manifest(base)
    if manifest is not None and manifest["format"] != fmt:
        raise InputError(
            f"{base} holds a {manifest['format']} dataset; load it as "
            f"'{manifest['format']}:{base}#<corruption>/<severity>'"
        )
    key, sev = _pick(base, fmt, corruption, severity, manifest)
    cfg = manifest["config"] if manifest is not None else None
    if cfg is not None and not (
        isinstance(cfg.get("dataset"), str)
        and isinstance(cfg.get("classes"), list)
        and isinstance(cfg.get("class_folders", []), list)
    ):
        raise InputError(
            f"the manifest of {base} lacks the dataset name or class names; the folder was not "
            "written by this robustcv version or was edited - write it again"
        )
    base_name = f"{cfg['dataset']}-c" if cfg is not None else base.name
    name = f"{base_name}#{key}/{sev}"
    if fmt == "imagenet-c":
        return _load_imagenet_c(base / key / str(sev), name, split, cfg, image_size, channels)
    return _load_cifar_c(base, key, sev, name, split, cfg)


def _load_imagenet_c(
    folder: Path,
    name: str,
    split: str,
    cfg: dict[str, Any] | None,
    image_size: tuple[int, int] | None,
    channels: int | None,
) -> Dataset:
    src = FolderSource(folder, image_size=image_size, channels=channels)
    classes = list(src.classes)
    if cfg is not None:
        if src.classes != list(cfg.get("class_folders", [])):
            raise InputError(
                f"{folder} has class folders {src.classes[:5]}... but its manifest lists "
                f"{list(cfg.get('class_folders', []))[:5]}...; the folder was changed after "
                "writing - write it again (robustcv corrupt --force)"
            )
        classes = [str(c) for c in cfg["classes"]]
        if len(classes) < len(src.classes):
            raise InputError(
                f"the manifest of {folder.parent.parent} lists {len(classes)} class names for "
                f"{len(src.classes)} class folders; write the -C dataset again"
            )
    order = sorted(range(len(src.files)), key=lambda i: (_natural_key(src.files[i].name), i))
    return Dataset(name, split, classes, src).subset(order)


def _load_cifar_c(
    base: Path, key: str, severity: int, name: str, split: str, cfg: dict[str, Any] | None
) -> Dataset:
    path = base / f"{key}.npy"
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as err:  # numpy raises many types on arbitrary bytes
        raise InputError(
            f"cannot read {path}: {err}; the file is damaged or not a .npy array - "
            "re-download or re-write it"
        ) from err
    expected = "uint8 (5N, H, W, C) with C = 1 or 3, or (5N, H, W), severities 1-5 stacked"
    if not isinstance(arr, np.ndarray):
        raise InputError(
            f"{path} is an npz archive, not a .npy array; a cifar-c file is {expected}"
        )
    ok_shape = arr.ndim == 3 or (arr.ndim == 4 and arr.shape[3] in (1, 3))
    if arr.dtype != np.uint8 or not ok_shape or arr.shape[0] == 0 or arr.shape[0] % 5:
        raise InputError(
            f"{path} holds {arr.dtype} {tuple(arr.shape)}; a cifar-c file is {expected}"
        )
    n = arr.shape[0] // 5
    lpath = base / "labels.npy"
    if not lpath.is_file():
        raise DataNotFoundError(
            f"{base} has no labels.npy; a cifar-c folder holds labels.npy (5N,) next to the "
            "corruption files (the CIFAR-10-C download ships it)"
        )
    try:
        labels = np.load(lpath, allow_pickle=False)
    except Exception as err:  # numpy raises many types on arbitrary bytes
        raise InputError(f"cannot read {lpath}: {err}; re-download or re-write it") from err
    if not isinstance(labels, np.ndarray):
        raise InputError(f"{lpath} is an npz archive, not a .npy array of (5N,) labels")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"{lpath} holds {labels.dtype} {labels.shape}; expected integer (5N,)")
    if len(labels) == n:
        labels = np.tile(labels, 5)
    if len(labels) != 5 * n:
        raise InputError(
            f"{lpath} has {len(labels)} labels but {path.name} has {5 * n} images "
            f"(5 severities x {n}); they must match (or labels.npy holds the {n} labels once)"
        )
    rows = slice((severity - 1) * n, severity * n)
    y = check_label_array(np.asarray(labels[rows]), n, name=f"labels in {lpath}")
    check_label_array(labels, len(labels), name=f"labels in {lpath}")
    n_classes = int(labels.max()) + 1 if labels.size else 0
    if cfg is not None:
        classes = [str(c) for c in cfg["classes"]]
    elif (base / "classes.txt").is_file():
        text = (base / "classes.txt").read_text(encoding="utf-8", errors="replace")
        classes = [ln.strip() for ln in text.splitlines()]
        classes = [c for c in classes if c]
    elif n_classes <= 10:
        classes = list(CIFAR10_CLASSES)
    else:
        classes = [str(i) for i in range(n_classes)]
    if len(classes) < n_classes:
        classes += [str(i) for i in range(len(classes), n_classes)]
    return Dataset(name, split, classes, ArraySource(arr[rows], y, layout="nhwc"))
