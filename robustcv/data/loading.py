"""``load_dataset(spec)``: one entry point for named datasets and files on disk.

Spec forms:

* a registered name: ``fashion-mnist`` (alias ``fmnist``);
* ``npz:PATH`` - arrays ``x`` and ``y`` (or ``x_<split>``/``y_<split>``), optional ``classes``;
* ``idx:DIR`` - IDX files named ``<train|t10k|test>-images-idx3-ubyte[.gz]`` / ``-labels-idx1-``;
* ``folder:DIR`` - one subfolder per class (``DIR/<split>/<class>/`` is used when it exists);
* ``cifar10:DIR`` - the CIFAR-10 binary layout;
* ``imagenet-c:DIR#fog/3`` and ``cifar-c:DIR#fog/3`` - one corruption and severity of a -C
  dataset (ours or the published ImageNet-C / CIFAR-10-C files); the fragment can also be given
  as ``corruption="fog", severity=3`` (see :mod:`robustcv.data.corrupted`);
* a bare path - the kind is detected from the file or folder contents.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from robustcv.core.errors import DataNotFoundError, InputError
from robustcv.core.registry import Registry
from robustcv.data.cifar import read_cifar10_binary
from robustcv.data.corrupted import C_FORMATS, detect_c_format, load_corrupted, parse_c_spec
from robustcv.data.dataset import ArraySource, Dataset
from robustcv.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist_arrays
from robustcv.data.folder import FolderSource
from robustcv.data.idx import read_idx

__all__ = ["DATASETS", "SPLITS", "load_dataset"]

SPLITS = ("train", "test")

Loader = Callable[..., Dataset]

DATASETS: Registry[Loader] = Registry("dataset")


def _fashion_mnist(split: str, **_: Any) -> Dataset:
    x, y = load_fashion_mnist_arrays(split)
    return Dataset("fashion-mnist", split, list(FASHION_MNIST_CLASSES), ArraySource(x, y))


DATASETS.add(
    "fashion-mnist",
    _fashion_mnist,
    summary="Zalando Fashion-MNIST, 28x28 greyscale, 10 classes (60k train / 10k test)",
    aliases=("fmnist", "fashion_mnist"),
)


def _class_names(path: Path, n: int, stored: Any = None) -> list[str]:
    if stored is not None:
        names = [str(c) for c in np.asarray(stored).tolist()]
        if len(names) >= n:
            return names
    for cand in (path / "classes.txt",):
        if cand.is_file():
            names = [ln.strip() for ln in cand.read_text().splitlines() if ln.strip()]
            if len(names) >= n:
                return names
    return [str(i) for i in range(n)]


def _load_npz(path: Path, split: str) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            pairs = [(f"x_{split}", f"y_{split}"), ("x", "y"), ("images", "labels")]
            for kx, ky in pairs:
                if kx in keys and ky in keys:
                    x, y = data[kx], data[ky]
                    break
            else:
                raise InputError(
                    f"{path} has arrays {sorted(keys)}; store images as 'x' and labels as 'y' "
                    f"(or 'x_{split}'/'y_{split}')"
                )
            stored = data["classes"] if "classes" in keys else None
    except ValueError as err:
        if isinstance(err, InputError):
            raise
        reason = (
            "it holds object arrays, and object arrays are refused (store strings as a str array)"
            if "object arrays" in str(err).lower()
            else "it is not a valid .npz file"
        )
        raise InputError(f"cannot read {path}: {reason}") from err
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(f"cannot read {path}: {err}; the file may be truncated") from err
    y = np.asarray(y)
    n_classes = int(y.max()) + 1 if y.size else 0
    name = path.stem
    return Dataset(name, split, _class_names(path.parent, n_classes, stored), ArraySource(x, y))


def _idx_pair(directory: Path, split: str) -> tuple[Path, Path]:
    prefixes = {"train": ("train",), "test": ("t10k", "test")}.get(split, (split,))
    for prefix in prefixes:
        img = sorted(directory.glob(f"{prefix}-images-idx3-ubyte*"))
        lab = sorted(directory.glob(f"{prefix}-labels-idx1-ubyte*"))
        if img and lab:
            return img[0], lab[0]
    raise InputError(
        f"{directory} has no IDX files for split '{split}'; expected "
        f"{prefixes[0]}-images-idx3-ubyte[.gz] and {prefixes[0]}-labels-idx1-ubyte[.gz]"
    )


def _load_idx(path: Path, split: str) -> Dataset:
    if path.is_file():
        img = path
        lab = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
        if lab == img or not lab.exists():
            raise InputError(f"cannot find the labels file next to {img} (expected {lab.name})")
    else:
        img, lab = _idx_pair(path, split)
    x = read_idx(img)
    y = read_idx(lab).astype(np.int64)
    if len(x) != len(y):
        raise InputError(f"{img} has {len(x)} images but {lab} has {len(y)} labels")
    n_classes = int(y.max()) + 1 if y.size else 0
    folder = path if path.is_dir() else path.parent
    return Dataset(folder.name, split, _class_names(folder, n_classes), ArraySource(x, y))


def _load_folder(path: Path, split: str, **kw: Any) -> Dataset:
    split_dirs = [
        d.name for d in path.iterdir() if d.is_dir() and d.name in ("train", "test", "val")
    ]
    if split_dirs and not (path / split).is_dir():
        raise InputError(
            f"{path} has split folders {sorted(split_dirs)} but no '{split}'; pass one of them"
        )
    root = path / split if split_dirs else path
    src = FolderSource(root, image_size=kw.get("image_size"), channels=kw.get("channels"))
    return Dataset(path.name, split, src.classes, src)


def _load_cifar(path: Path, split: str) -> Dataset:
    x, y, classes = read_cifar10_binary(path, split)
    return Dataset("cifar-10", split, classes, ArraySource(x, y, layout="nchw"))


def _detect(path: Path) -> str:
    if path.is_file():
        if path.suffix == ".npz":
            return "npz"
        if "idx" in path.name and "ubyte" in path.name:
            return "idx"
        raise InputError(f"cannot tell what kind of dataset {path} is; use npz:, idx: or folder:")
    for cand in (path, path / "cifar-10-batches-bin"):
        if (cand / "test_batch.bin").exists() or any(cand.glob("data_batch_*.bin")):
            return "cifar10"
    if any(path.glob("*-idx3-ubyte*")):
        return "idx"
    return detect_c_format(path) or "folder"


def load_dataset(
    spec: str | Path | Dataset,
    *,
    split: str = "test",
    limit: int | None = None,
    seed: int | None = None,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    corruption: str | None = None,
    severity: int | None = None,
) -> Dataset:
    """Load a dataset by name or path; see the module docstring for the spec forms.

    Args:
        spec: a registered name, ``kind:PATH``, a path, or a :class:`Dataset` (returned, limited).
        split: ``"train"`` or ``"test"`` (files holding a single split ignore it).
        limit: keep only this many images: the first ones, or a random sample when ``seed`` is
            given.
        seed: seed for the random subsample.
        image_size: (H, W) to resize folder images to.
        channels: 1 or 3 for folder images (default: detected).
        corruption: for a -C dataset (``imagenet-c:DIR``, ``cifar-c:DIR``), the corruption to
            read; same as the ``#fog/3`` fragment.
        severity: for a -C dataset, the severity (1-5) to read.

    Returns:
        A :class:`Dataset`; ``.x``/``.y`` load everything, ``.batches(n)`` streams.

    Raises:
        DataNotFoundError: the data is missing; the message says how to get it.
        InputError: unknown name, unreadable or inconsistent files.

    Example:
        >>> import numpy as np, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "toy.npz")
        >>> np.savez(p, x=np.zeros((5, 8, 8), np.uint8), y=np.array([0, 1, 2, 1, 0]))
        >>> ds = load_dataset(p, limit=3)
        >>> len(ds), ds.classes, tuple(ds.x.shape)
        (3, ['0', '1', '2'], (3, 1, 8, 8))
    """
    if isinstance(spec, Dataset):
        return spec.limit(limit, seed=seed)
    if not isinstance(split, str) or not split:
        raise InputError(f"split must be a non-empty string such as 'test', got {split!r}")
    text = str(spec)
    kind, _, rest = text.partition(":")
    if rest and kind in C_FORMATS:
        root, frag_name, frag_sev = parse_c_spec(rest)
        for what, frag, kw in (
            ("corruption", frag_name, corruption),
            ("severity", frag_sev, severity),
        ):
            if frag is not None and kw is not None and frag != kw:
                raise InputError(
                    f"the spec says {what} {frag!r} but {what}={kw!r} was passed; give it once"
                )
        ds = load_corrupted(
            kind,
            Path(root).expanduser(),
            corruption if corruption is not None else frag_name,
            severity if severity is not None else frag_sev,
            split=split,
            image_size=image_size,
            channels=channels,
        )
        return ds.limit(limit, seed=seed)
    kinds: dict[str, Callable[..., Dataset]] = {
        "npz": _load_npz,
        "idx": _load_idx,
        "folder": _load_folder,
        "cifar10": _load_cifar,
    }
    if rest and kind in kinds:
        path = Path(rest).expanduser()
    elif text.lower() in DATASETS or (
        ":" not in text and not Path(text).exists() and "/" not in text
    ):
        if text.lower() in DATASETS and split not in SPLITS:
            raise InputError(f"{text} has splits {', '.join(SPLITS)}; got '{split}'")
        ds = DATASETS.get(text)(split=split)
        return ds.limit(limit, seed=seed)
    else:
        path = Path(text).expanduser()
        kind = ""
    if not path.exists():
        raise DataNotFoundError(f"dataset path {path} does not exist")
    kind = kind or _detect(path)
    if kind in C_FORMATS:
        ds = load_corrupted(
            kind, path, corruption, severity, split=split, image_size=image_size, channels=channels
        )
        return ds.limit(limit, seed=seed)
    if corruption is not None or severity is not None:
        raise InputError(
            f"corruption=/severity= apply to -C datasets only, and {path} is read as '{kind}'; "
            f"use 'imagenet-c:{path}' or 'cifar-c:{path}'"
        )
    if kind == "folder":
        ds = _load_folder(path, split, image_size=image_size, channels=channels)
    else:
        ds = kinds[kind](path, split)
    return ds.limit(limit, seed=seed)
