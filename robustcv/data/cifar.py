"""Reader for the CIFAR-10 binary layout (``data_batch_N.bin``, ``test_batch.bin``); no pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robustcv.core.errors import InputError

__all__ = ["CIFAR10_CLASSES", "read_cifar10_binary"]

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip

_RECORD = 1 + 3 * 32 * 32


def _find_dir(root: Path) -> Path:
    for cand in (root, root / "cifar-10-batches-bin"):
        if (cand / "test_batch.bin").exists() or any(cand.glob("data_batch_*.bin")):
            return cand
    raise InputError(
        f"{root} holds no CIFAR-10 binary files (data_batch_1.bin ... test_batch.bin); "
        "download cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and "
        "extract it"
    )


def read_cifar10_binary(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read the CIFAR-10 binary files of a split.

    Returns:
        ``(images uint8 (N,3,32,32), labels int64 (N,), class names)``.

    Example:
        >>> import tempfile, numpy as np, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> rec = np.zeros((2, 3073), np.uint8); rec[:, 0] = [3, 7]
        >>> _ = (d / "test_batch.bin").write_bytes(rec.tobytes())
        >>> x, y, names = read_cifar10_binary(d, "test")
        >>> x.shape, y.tolist(), names[3]
        ((2, 3, 32, 32), [3, 7], 'cat')
    """
    directory = _find_dir(Path(root))
    if not isinstance(split, str):
        raise InputError(f"split must be 'train' or 'test', got {split!r}")
    if split == "test":
        files = [directory / "test_batch.bin"]
    elif split == "train":
        files = sorted(directory.glob("data_batch_*.bin"))
    else:
        raise InputError(f"CIFAR-10 has splits 'train' and 'test', not '{split}'")
    if not files or not all(f.exists() for f in files):
        raise InputError(f"no CIFAR-10 {split} files in {directory}")
    chunks = []
    for f in files:
        if not f.is_file():
            raise InputError(f"{f} is not a file; a CIFAR-10 batch is a binary file")
        try:
            raw = np.fromfile(f, dtype=np.uint8)
        except (OSError, ValueError) as err:
            raise InputError(f"cannot read {f}: {err}; re-extract it") from err
        if raw.size % _RECORD:
            raise InputError(
                f"{f} has {raw.size} bytes, not a multiple of the {_RECORD}-byte CIFAR-10 "
                "record; the file is truncated - re-extract it"
            )
        chunks.append(raw.reshape(-1, _RECORD))
    records = np.concatenate(chunks)
    if len(records) == 0:
        raise InputError(f"{directory} has CIFAR-10 {split} files with no images (empty files)")
    labels = records[:, 0].astype(np.int64)
    if labels.max(initial=0) > 9:
        raise InputError(f"{directory} has labels above 9; is it CIFAR-100? use its own layout")
    images = records[:, 1:].reshape(-1, 3, 32, 32)
    classes = list(CIFAR10_CLASSES)
    meta = directory / "batches.meta.txt"
    if meta.is_file():
        try:
            text = meta.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            raise InputError(f"cannot read {meta}: {err}") from err
        names = [line.strip() for line in text.splitlines() if line.strip()]
        if len(names) == 10:
            classes = names
    return images, labels, classes
