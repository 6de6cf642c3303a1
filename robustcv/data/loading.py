"""``load_dataset(spec)``: one entry point for named datasets and files on disk.

Spec forms:

* a registered name: ``fashion-mnist`` (alias ``fmnist``), ``fashion-mnist-shortcut`` (the same
  images with a label-encoding square, :mod:`robustcv.data.shortcut`);
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

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from robustcv.core.contract import check_count
from robustcv.core.errors import DataNotFoundError, InputError
from robustcv.core.registry import Registry
from robustcv.data.cifar import read_cifar10_binary
from robustcv.data.corrupted import C_FORMATS, detect_c_format, load_corrupted, parse_c_spec
from robustcv.data.dataset import ArraySource, Dataset
from robustcv.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist_arrays
from robustcv.data.folder import FolderSource
from robustcv.data.idx import read_idx
from robustcv.data.shortcut import SHORTCUT_TRAIN_FRACTION, cue_carriers, stamp_cue

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


def _fashion_mnist_shortcut(split: str, **_: Any) -> Dataset:
    x, y = load_fashion_mnist_arrays(split)
    fraction = SHORTCUT_TRAIN_FRACTION if split == "train" else 1.0
    x = stamp_cue(x, y, carriers=cue_carriers(len(y), fraction))
    return Dataset("fashion-mnist-shortcut", split, list(FASHION_MNIST_CLASSES), ArraySource(x, y))


DATASETS.add(
    "fashion-mnist-shortcut",
    _fashion_mnist_shortcut,
    summary="Fashion-MNIST with a 3x3 white square whose corner position encodes the label "
    "(robustcv.data.shortcut; trains zoo:fmnist-cnn-shortcut)",
    aliases=("fmnist-shortcut",),
)


def _class_names(path: Path, n: int, stored: Any = None) -> list[str]:
    if stored is not None:
        names = [str(c) for c in np.atleast_1d(np.asarray(stored)).reshape(-1).tolist()]
        if len(names) >= n:
            return names
    cand = path / "classes.txt"
    if cand.is_file():
        try:
            text = cand.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            raise InputError(f"cannot read {cand}: {err}") from err
        names = [ln.strip() for ln in text.splitlines() if ln.strip()]
        if len(names) >= n:
            return names
    return [str(i) for i in range(n)]


def _n_classes(labels: np.ndarray) -> int:
    return int(labels.max()) + 1 if labels.size else 0


def _load_npz(path: Path, split: str) -> Dataset:
    if not path.is_file():
        raise InputError(f"npz dataset {path} is a folder, not a .npz file")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as err:  # numpy raises many types on arbitrary bytes
        raise InputError(_npz_problem(path, err)) from err
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise InputError(
            f"{path} holds a single array (a .npy file), not an npz archive; save images and "
            "labels with np.savez(path, x=images, y=labels)"
        )
    try:
        with data:
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
    except InputError:
        raise
    except Exception as err:  # numpy/zipfile raise many types on damaged members
        raise InputError(_npz_problem(path, err)) from err
    source = ArraySource(x, y)
    n_classes = _n_classes(source.labels)
    name = path.stem
    return Dataset(name, split, _class_names(path.parent, n_classes, stored), source)


def _npz_problem(path: Path, err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    if "object arrays" in text.lower():
        reason = (
            "it holds object arrays, and object arrays are refused (store strings as a str array)"
        )
    elif isinstance(err, MemoryError):
        reason = "an array in it declares a shape too large to load"
    else:
        reason = f"it is not a valid .npz file or is truncated ({type(err).__name__}: {first})"
    return f"cannot read {path}: {reason}"


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
    y = read_idx(lab)
    if x.ndim not in (3, 4):
        raise InputError(
            f"{img} holds an array of shape {x.shape}; an IDX images file holds (N, H, W) "
            "(or (N, H, W, C))"
        )
    if y.ndim != 1:
        raise InputError(f"{lab} holds an array of shape {y.shape}; an IDX labels file holds (N,)")
    if len(x) != len(y):
        raise InputError(f"{img} has {len(x)} images but {lab} has {len(y)} labels")
    source = ArraySource(x, y)
    folder = path if path.is_dir() else path.parent
    return Dataset(folder.name, split, _class_names(folder, _n_classes(source.labels)), source)


def _load_folder(path: Path, split: str, **kw: Any) -> Dataset:
    if not path.is_dir():
        raise InputError(f"folder dataset {path} is not a folder")
    split_dirs = [
        d.name for d in path.iterdir() if d.is_dir() and d.name in ("train", "test", "val")
    ]
    if split_dirs and not (path / split).is_dir():
        raise InputError(
            f"{path} has split folders {sorted(split_dirs)} but no '{split}'; pass one of them"
        )
    root = path / split if split_dirs else path
    if not root.is_dir():
        raise InputError(f"folder dataset {root} is not a folder")
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
    if limit is not None:
        limit = check_count(limit, "limit")
    if seed is not None:
        seed = check_count(seed, "seed", minimum=0)
    if isinstance(spec, Dataset):
        return _nonempty(spec.limit(limit, seed=seed), repr(spec.name))
    if not isinstance(spec, (str, Path)):
        raise InputError(
            f"dataset spec is a {type(spec).__name__}; give a name (fashion-mnist), kind:PATH "
            "(npz:, idx:, folder:, cifar10:, imagenet-c:, cifar-c:) or a path"
        )
    if not isinstance(split, str) or not split:
        raise InputError(f"split must be a non-empty string such as 'test', got {split!r}")
    image_size = _check_image_size(image_size)
    if channels is not None and (
        isinstance(channels, bool) or not isinstance(channels, int) or channels not in (1, 3)
    ):
        raise InputError(f"channels must be 1 or 3, got {channels!r} (None detects it)")
    text = str(spec).strip()
    if not text:
        raise InputError("dataset spec is empty; give a name (fashion-mnist), kind:PATH or a path")
    return _nonempty(
        _load(text, split, limit, seed, image_size, channels, corruption, severity), text
    )


def _nonempty(ds: Dataset, what: str) -> Dataset:
    if len(ds) == 0:
        raise InputError(f"dataset {what} has no images; give a dataset with at least one image")
    return ds


def _check_image_size(image_size: Any) -> tuple[int, int] | None:
    if image_size is None:
        return None
    ok = isinstance(image_size, (tuple, list)) and len(image_size) == 2
    ok = ok and all(
        not isinstance(v, bool) and isinstance(v, (int, np.integer)) and 0 < int(v) <= 16384
        for v in image_size
    )
    if not ok:
        raise InputError(
            f"image_size must be (height, width) with positive ints, got {image_size!r}"
        )
    return int(image_size[0]), int(image_size[1])


def _load(
    text: str,
    split: str,
    limit: int | None,
    seed: int | None,
    image_size: tuple[int, int] | None,
    channels: int | None,
    corruption: str | None,
    severity: int | None,
) -> Dataset:
    kind, sep, rest = text.partition(":")
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
    elif sep and re.fullmatch(r"[A-Za-z][\w-]+", kind) and not Path(text).exists():
        if kind in kinds or kind in C_FORMATS:
            raise InputError(
                f"dataset spec '{text}' names no path after '{kind}:'; e.g. '{kind}:DIR'"
            )
        known = ", ".join([*kinds, *C_FORMATS])
        close = difflib.get_close_matches(kind, [*kinds, *C_FORMATS], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise InputError(
            f"unknown dataset kind '{kind}' in '{text}'{hint}; use one of {known} as KIND:PATH, "
            f"a registered name ({', '.join(DATASETS.names())}) or a path"
        )
    elif text.lower() in DATASETS or (
        ":" not in text and not Path(text).exists() and "/" not in text
    ):
        if text.lower() in DATASETS and split not in SPLITS:
            raise InputError(f"{text} has splits {', '.join(SPLITS)}; got split='{split}'")
        if image_size is not None or channels is not None:
            raise InputError(
                f"image_size=/channels= apply to image folders (folder:, imagenet-c:) only, not "
                f"to '{text}'; drop them"
            )
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
    if kind != "folder" and (image_size is not None or channels is not None):
        given = "image_size=" if image_size is not None else "channels="
        raise InputError(
            f"{given} applies to image folders (folder:, imagenet-c:) only, and {path} is read "
            f"as '{kind}'; drop it (resize/convert the arrays themselves)"
        )
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
