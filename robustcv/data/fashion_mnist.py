"""Fashion-MNIST: found in ``$ROBUSTCV_DATA``, the Debian package path, or the user cache."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from robustcv.core.errors import DataNotFoundError, InputError
from robustcv.data.fetch import fetch_files, user_cache_dir
from robustcv.data.idx import read_idx

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_URL",
    "fashion_mnist_dirs",
    "fetch_fashion_mnist",
    "find_fashion_mnist",
    "load_fashion_mnist_arrays",
]

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip

FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# SHA-256 of the decompressed IDX content (identical for upstream and Debian's files).
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    ),
    "train-labels-idx1-ubyte.gz": (
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    ),
}

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_PREFIX = {"train": "train", "test": "t10k"}


def fashion_mnist_dirs() -> list[Path]:
    """Folders searched for Fashion-MNIST, in order.

    ``$ROBUSTCV_DATA/fashion-mnist``, ``$ROBUSTCV_DATA``, the Debian package path, then
    ``<user cache>/fashion-mnist``.
    """
    dirs = []
    env = os.environ.get("ROBUSTCV_DATA")
    if env:
        dirs += [Path(env) / "fashion-mnist", Path(env)]
    dirs += [DEBIAN_DIR, user_cache_dir() / "fashion-mnist"]
    return dirs


def _split_files(directory: Path, split: str) -> tuple[Path, Path] | None:
    prefix = _PREFIX[split]
    found = []
    for kind, nd in (("images", 3), ("labels", 1)):
        stem = f"{prefix}-{kind}-idx{nd}-ubyte"
        for cand in (directory / f"{stem}.gz", directory / stem):
            if cand.exists():
                found.append(cand)
                break
        else:
            return None
    return found[0], found[1]


def _missing_message(split: str) -> str:
    searched = ", ".join(str(d) for d in fashion_mnist_dirs())
    return (
        f"Fashion-MNIST ({split} split) not found; searched {searched}. Get it with one of: "
        "'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu), "
        "'robustcv data fetch fashion-mnist' (downloads ~30 MB with checksums), or put the four "
        "*-ubyte.gz files in a folder and set ROBUSTCV_DATA to it"
    )


def find_fashion_mnist(split: str) -> tuple[Path, Path]:
    """Return (images file, labels file) for a split, or raise with instructions."""
    if split not in _PREFIX:
        raise InputError(f"fashion-mnist has splits 'train' and 'test', not '{split}'")
    for directory in fashion_mnist_dirs():
        files = _split_files(directory, split)
        if files is not None:
            return files
    raise DataNotFoundError(_missing_message(split))


@lru_cache(maxsize=4)
def _load_cached(images: str, labels: str, _mtime: float) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(images)
    y = read_idx(labels).astype(np.int64)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise InputError(f"{images} and {labels} do not form an image/label pair")
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_fashion_mnist_arrays(split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N,28,28) and int64 labels (N,) of a split (read-only, cached)."""
    images, labels = find_fashion_mnist(split)
    return _load_cached(str(images), str(labels), images.stat().st_mtime)


def fetch_fashion_mnist(
    dest: str | Path | None = None, *, base_url: str = FASHION_MNIST_URL, quiet: bool = False
) -> Path:
    """Download Fashion-MNIST (with checksums) into ``dest`` (default: the user cache).

    Returns:
        The folder holding the four files.
    """
    folder = Path(dest) if dest is not None else user_cache_dir() / "fashion-mnist"
    fetch_files(FASHION_MNIST_FILES, base_url, folder, quiet=quiet)
    return folder
