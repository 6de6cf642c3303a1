"""Image folders: ``ROOT/<class>/<image>``, optionally with ``ROOT/<split>/<class>/<image>``.

Images are read lazily (one batch at a time) with Pillow. Class folders whose names are all
integers sort numerically ("2" before "10"); otherwise alphabetically. Label i is the i-th class.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from robustcv.core.errors import InputError

__all__ = ["IMAGE_SUFFIXES", "FolderSource", "sorted_class_names"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm"}
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def sorted_class_names(names: list[str]) -> list[str]:
    """Sort class names numerically when all are integers, else alphabetically.

    Example:
        >>> sorted_class_names(["10", "2", "1"])
        ['1', '2', '10']
        >>> sorted_class_names(["cat", "ant"])
        ['ant', 'cat']
    """
    if names and all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


class FolderSource:
    """A lazy source over an image folder.

    Args:
        root: the folder holding one subfolder per class.
        image_size: (H, W) to resize every image to; None requires all images to share a size.
        channels: 1 or 3; None picks 3 if any sampled image is colour, else 1.

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for c in ("0", "1"):
        ...     (root / c).mkdir()
        ...     Image.new("L", (5, 4), 255).save(root / c / "a.png")
        >>> src = FolderSource(root)
        >>> src.classes, len(src), tuple(src.load(np.array([1]))[0].shape)
        (['0', '1'], 2, (1, 1, 4, 5))
    """

    def __init__(
        self,
        root: str | Path,
        *,
        image_size: tuple[int, int] | None = None,
        channels: int | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"{self.root} is not a folder")
        if channels is not None and (
            isinstance(channels, bool) or not isinstance(channels, int) or channels not in (1, 3)
        ):
            raise InputError(f"channels must be 1 or 3, got {channels!r} (None detects it)")
        if image_size is not None and not (
            isinstance(image_size, (tuple, list))
            and len(image_size) == 2
            and all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) and int(v) > 0
                for v in image_size
            )
        ):
            raise InputError(
                f"image_size must be (height, width) with positive ints, got {image_size!r}"
            )
        dirs = [d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")]
        self.classes = sorted_class_names([d.name for d in dirs])
        files: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(self.classes):
            found = sorted(
                p
                for p in (self.root / name).rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(self.root).parts)
                and p.is_file()
            )
            files.extend(found)
            labels.extend([label] * len(found))
        if not files:
            raise InputError(
                f"{self.root} holds no images in class subfolders (image files end in "
                f"{', '.join(sorted(IMAGE_SUFFIXES))}); lay it out as ROOT/<class name>/<image>.png"
            )
        self.files = files
        self.labels = np.asarray(labels, dtype=np.int64)
        first_per_class = [
            files[int(np.argmax(self.labels == i))]
            for i in range(len(self.classes))
            if (self.labels == i).any()
        ]
        probes = [self._open(p) for p in first_per_class[:32]]
        if channels is None:
            channels = 1 if all(im.mode in _GREY_MODES for im in probes) else 3
        if channels not in (1, 3):
            raise InputError(f"channels must be 1 or 3, got {channels}")
        self.channels = channels
        self._resize = image_size is not None
        if image_size is None:
            sizes = {im.size for im in probes}
            if len(sizes) > 1:
                raise InputError(
                    f"images in {self.root} have different sizes {sorted(sizes)[:4]}; pass "
                    "image_size=(H, W) to resize them"
                )
            w, h = probes[0].size
            image_size = (h, w)
        self.image_size = (int(image_size[0]), int(image_size[1]))

    def __len__(self) -> int:
        return len(self.files)

    @staticmethod
    def _open(path: Path) -> Image.Image:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                im = Image.open(path)
                im.load()
        except (OSError, UnidentifiedImageError) as err:
            raise InputError(f"cannot read image {path}: {err}") from err
        except (Exception, Image.DecompressionBombWarning) as err:  # Pillow raises many types
            raise InputError(
                f"cannot read image {path}: {type(err).__name__}: {err}; the file is damaged or "
                "not an image"
            ) from err
        if im.width < 1 or im.height < 1:
            raise InputError(f"image {path} has no pixels ({im.width}x{im.height})")
        return im

    def _read(self, path: Path) -> np.ndarray:
        im = self._open(path)
        try:
            im = im.convert("L" if self.channels == 1 else "RGB")
        except (ValueError, OSError, TypeError) as err:
            raise InputError(
                f"cannot convert image {path} (mode {im.mode}) to "
                f"{'greyscale' if self.channels == 1 else 'RGB'}: {err}"
            ) from err
        h, w = self.image_size
        if im.size != (w, h):
            if not self._resize:
                raise InputError(
                    f"{path} is {im.size[1]}x{im.size[0]} but other images are {h}x{w}; pass "
                    "image_size=(H, W) to resize them"
                )
            im = im.resize((w, h), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
        return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)

    def load(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Read the images at ``index`` from disk."""
        arrs = [self._read(self.files[int(i)]) for i in index]
        if not arrs:
            h, w = self.image_size
            return torch.zeros(0, self.channels, h, w), torch.zeros(0, dtype=torch.int64)
        x = torch.from_numpy(np.stack(arrs)).float().div_(255.0)
        return x, torch.from_numpy(self.labels[index].copy())
