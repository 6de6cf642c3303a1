"""Property-based fuzzing of the dataset loaders (issue 12).

Random bytes and random structures go into the npz, IDX, image-folder, CIFAR-10 binary and -C
layout readers, and into the dataset spec and count arguments. The property, for every input:
``load_dataset`` either returns a dataset whose images and labels obey the image contract, or
raises :class:`InputError` (or a subclass); never another exception, never a hang (each example
runs under a wall-clock alarm). Budgets (``max_examples``, ``deadline``) keep the file under a
minute on two cores.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import signal
import string
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from robustcv.core.contract import check_images, check_labels
from robustcv.core.errors import InputError
from robustcv.data import load_dataset
from robustcv.data.dataset import Dataset
from robustcv.data.idx import write_idx

FUZZ = settings(
    max_examples=int(os.environ.get("RCV_FUZZ_EXAMPLES", "100")),  # raise it for a deep local run
    deadline=3000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HANG_SECONDS = 20

# damaged images that Pillow still opens make it warn; the property is about exceptions
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL")


@contextmanager
def _no_hang(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Fail (TimeoutError) if the block runs longer than ``seconds``."""

    def _alarm(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"loader ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextmanager
def _tmpdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="rcv-fuzz-") as d:
        yield Path(d)


def _load_clean(spec: str, **kwargs: Any) -> Dataset | None:
    """Load and materialise ``spec``: a dataset under the contract, or None after an InputError."""
    with _no_hang():
        try:
            ds = load_dataset(spec, **kwargs)
            x, y = ds.x, ds.y
        except InputError:
            return None
    assert len(ds) > 0, "an empty dataset was accepted"
    check_images(x, name="x")
    assert x.shape[1] in (1, 3), f"a loader produced {x.shape[1]}-channel images"
    check_labels(y, batch_size=x.shape[0], num_classes=ds.num_classes)
    for xb, yb in ds.batches(7):
        check_images(xb)
        assert yb.dtype == torch.int64
    return ds


# ----------------------------------------------------------------------------- strategies

_DTYPES = [
    np.uint8,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint16,
    np.float16,
    np.float32,
    np.float64,
    np.bool_,
    np.complex64,
]


@st.composite
def arrays(draw: st.DrawFn, *, max_dims: int = 5) -> np.ndarray:
    """A small random array: random dtype (numbers, bools, strings), rank and values."""
    kind = draw(st.sampled_from(["num", "num", "num", "str"]))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=0, max_size=max_dims)))
    n = math.prod(shape)
    if kind == "str":
        words = draw(st.lists(st.text(max_size=3), min_size=n, max_size=n))
        return np.array(words, dtype=str).reshape(shape) if n else np.zeros(shape, dtype="<U1")
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    special = draw(st.sampled_from(["unit", "byte", "wild"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if special == "unit":
        values = rng.random(n)
    elif special == "byte":
        values = rng.integers(0, 256, n).astype(np.float64)
    else:
        pool = np.array([np.nan, np.inf, -np.inf, -1.0, 0.0, 1.0, 2.5, 255.0, 1e30, -7.0])
        values = rng.choice(pool, n)
    with np.errstate(all="ignore"):
        return values.astype(dtype).reshape(shape)


def _image_like(draw: st.DrawFn) -> np.ndarray:
    """Arrays that are often nearly valid images: (N,H,W[,C]) with plausible dtypes."""
    n = draw(st.integers(0, 5))
    h, w = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    c = draw(st.sampled_from([None, 1, 2, 3, 4, 5]))
    first = draw(st.booleans())
    shape = (n, h, w) if c is None else ((n, c, h, w) if first else (n, h, w, c))
    dtype = draw(st.sampled_from([np.uint8, np.float32, np.float64, np.int64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.random(shape)
    scale = draw(st.sampled_from([1.0, 1.0, 255.0, -1.0]))
    if dtype in (np.uint8, np.int64):
        values = values * 255
    arr = (values * scale).astype(dtype)
    if draw(st.booleans()) and arr.size and dtype in (np.float32, np.float64):
        arr.reshape(-1)[0] = draw(st.sampled_from([np.nan, np.inf, 0.5]))
    return arr


@st.composite
def npz_members(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """Keys and arrays for an npz: sometimes the right names, often plausible images."""
    out: dict[str, np.ndarray] = {}
    pairs = [("x", "y"), ("x", "y"), ("images", "labels"), ("x_test", "y_test")]
    kx, ky = draw(st.sampled_from([*pairs, ("data", "y"), ("x", "target")]))
    x = _image_like(draw) if draw(st.booleans()) else draw(arrays())
    n = len(x) if x.ndim else 0
    if draw(st.booleans()):
        y = np.asarray(draw(st.lists(st.integers(-2, 12), min_size=n, max_size=n)), dtype=np.int64)
        if draw(st.booleans()):
            y = y.astype(draw(st.sampled_from([np.float32, np.uint8, np.int16])))
    else:
        y = draw(arrays(max_dims=2))
    out[kx] = x
    out[ky] = y
    if draw(st.booleans()):
        out["classes"] = draw(arrays(max_dims=2))
    return out


# ----------------------------------------------------------------------------- npz


@FUZZ
@given(data=st.binary(max_size=2048))
def test_npz_random_bytes(data: bytes) -> None:
    with _tmpdir() as d:
        path = d / "f.npz"
        path.write_bytes(data)
        _load_clean(f"npz:{path}")
        _load_clean(str(path))


@FUZZ
@given(members=npz_members(), compressed=st.booleans())
def test_npz_random_arrays(members: dict[str, np.ndarray], compressed: bool) -> None:
    with _tmpdir() as d:
        path = d / "f.npz"
        save: Any = np.savez_compressed if compressed else np.savez
        save(path, **members)
        _load_clean(f"npz:{path}")


@FUZZ
@given(
    cut=st.one_of(st.just(1.0), st.floats(0.0, 1.0)),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=4),
    compressed=st.booleans(),
)
def test_npz_damaged_archive(cut: float, flips: list[tuple[float, int]], compressed: bool) -> None:
    buf = io.BytesIO()
    x = np.random.default_rng(0).integers(0, 256, (6, 5, 5), dtype=np.uint8)
    (np.savez_compressed if compressed else np.savez)(buf, x=x, y=np.arange(6) % 3)
    raw = bytearray(buf.getvalue())
    for where, value in flips:
        raw[int(where * (len(raw) - 1))] = value
    raw = raw[: max(1, int(cut * len(raw)))] if cut < 0.98 else raw
    with _tmpdir() as d:
        path = d / "f.npz"
        path.write_bytes(bytes(raw))
        _load_clean(f"npz:{path}")


# ----------------------------------------------------------------------------- IDX


@st.composite
def idx_bytes(draw: st.DrawFn) -> bytes:
    """IDX files: a random or plausible header followed by a random payload."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return draw(st.binary(max_size=512))
    if choice == 1:  # a well-formed file of a random array (images or labels)
        arr = _image_like(draw) if draw(st.booleans()) else draw(arrays(max_dims=3))
        buf = tempfile.NamedTemporaryFile(delete=False)
        buf.close()
        try:
            write_idx(buf.name, arr)
            return Path(buf.name).read_bytes()
        except InputError:
            return b"\0\0\x08\x01\0\0\0\0"
        finally:
            os.unlink(buf.name)
    code = draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x01, 0xFF]))
    dims = draw(st.lists(st.integers(0, 9), min_size=0, max_size=5))
    if draw(st.integers(0, 9)) == 0:
        dims = [*dims, 2**31 - 1]
    header = bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    itemsize = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(code, 1)
    exact = math.prod(dims) * itemsize if math.prod(dims) < 10_000 else 0
    size = draw(st.sampled_from([exact, exact, max(exact - 1, 0), exact + 3]))
    payload = draw(st.binary(min_size=min(size, 64), max_size=min(size, 64)))
    payload = (payload * (size // max(len(payload), 1) + 1))[:size] if payload else b"\0" * size
    return header + payload


@FUZZ
@given(
    images=idx_bytes(),
    labels=st.one_of(idx_bytes(), st.lists(st.integers(0, 255), max_size=6)),
    zipped=st.booleans(),
)
def test_idx_random(images: bytes, labels: bytes | list[int], zipped: bool) -> None:
    if isinstance(labels, list):
        labels = bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, "big") + bytes(labels)
    with _tmpdir() as d:
        suffix = ".gz" if zipped else ""
        pack = gzip.compress if zipped else (lambda b: b)
        (d / f"t10k-images-idx3-ubyte{suffix}").write_bytes(pack(images))
        (d / f"t10k-labels-idx1-ubyte{suffix}").write_bytes(pack(labels))
        _load_clean(f"idx:{d}")
        _load_clean(str(d / f"t10k-images-idx3-ubyte{suffix}"))


@st.composite
def idx_arrays(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """An images array and a labels array for an IDX pair, often consistent."""
    images = _image_like(draw) if draw(st.integers(0, 3)) else draw(arrays(max_dims=4))
    n = len(images) if images.ndim else 0
    if draw(st.integers(0, 3)):
        labels = np.asarray(draw(st.lists(st.integers(0, 255), min_size=n, max_size=n)))
        labels = labels.astype(draw(st.sampled_from([np.uint8, np.int32, np.float32])))
    else:
        labels = draw(arrays(max_dims=2))
    return images, labels


@FUZZ
@given(pair=idx_arrays())
def test_idx_random_arrays(pair: tuple[np.ndarray, np.ndarray]) -> None:
    images, labels = pair
    with _tmpdir() as d:
        for name, arr in (("images-idx3", images), ("labels-idx1", labels)):
            try:
                write_idx(d / f"t10k-{name}-ubyte", arr)
            except InputError:
                (d / f"t10k-{name}-ubyte").write_bytes(b"\0\0\x08\x01\0\0\0\0")
        _load_clean(f"idx:{d}")


@FUZZ
@given(data=st.binary(min_size=2, max_size=400))
def test_idx_random_gzip_stream(data: bytes) -> None:
    with _tmpdir() as d:
        (d / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b" + data)
        (d / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b" + data[::-1])
        _load_clean(f"idx:{d}")


# ----------------------------------------------------------------------------- folders

_MODES = ["1", "L", "LA", "P", "RGB", "RGBA", "I", "F", "CMYK", "I;16", "YCbCr", "HSV"]
_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".bmp": "BMP", ".gif": "GIF", ".tif": "TIFF"}
_FORMATS.update({".webp": "WEBP", ".ppm": "PPM"})
_NAME = st.text(alphabet=string.ascii_letters + string.digits + "._- ", min_size=1, max_size=8)


@st.composite
def image_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """An image file name and its bytes: a real image of a random mode, damaged or garbage."""
    suffix = draw(st.sampled_from([*_FORMATS, ".txt", ".JPG", ".jpeg", ".tiff"]))
    name = draw(_NAME).strip(".") or "f"
    kind = draw(st.sampled_from(["image", "image", "damaged", "garbage", "empty"]))
    if kind == "garbage":
        return name + suffix, draw(st.binary(max_size=300))
    if kind == "empty":
        return name + suffix, b""
    mode = draw(st.sampled_from(_MODES))
    w, h = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    fmt = _FORMATS.get(suffix.lower(), "PNG")
    buf = io.BytesIO()
    try:
        Image.new(mode, (w, h), color=None).save(buf, format=fmt)
    except (OSError, ValueError, KeyError, TypeError):
        Image.new("L", (w, h)).save(buf, format="PNG")
    raw = bytearray(buf.getvalue())
    if kind == "damaged" and raw:
        for _ in range(draw(st.integers(1, 6))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        raw = raw[: draw(st.integers(1, len(raw)))]
    return name + suffix, bytes(raw)


@st.composite
def folder_tree(draw: st.DrawFn) -> list[tuple[str, str, bytes]]:
    """(class folder, file name, bytes) triples; class names random, sometimes split folders."""
    classes = draw(st.lists(_NAME, min_size=0, max_size=3, unique=True))
    files = []
    for c in classes:
        for name, data in draw(st.lists(image_file(), min_size=0, max_size=3)):
            files.append((c, name, data))
    if draw(st.integers(0, 4)) == 0:
        files.append(("", "stray.png", draw(st.binary(max_size=50))))
    return files


@FUZZ
@given(
    tree=folder_tree(),
    size=st.sampled_from([None, (4, 4), (3, 7)]),
    channels=st.sampled_from([None, 1, 3]),
)
def test_folder_random_files(
    tree: list[tuple[str, str, bytes]], size: tuple[int, int] | None, channels: int | None
) -> None:
    with _tmpdir() as d:
        root = d / "data"
        root.mkdir()
        for c, name, data in tree:
            folder = root / c if c else root
            folder.mkdir(exist_ok=True)
            (folder / name).write_bytes(data)
        _load_clean(f"folder:{root}", image_size=size, channels=channels)


# ----------------------------------------------------------------------------- CIFAR-10 binary


@FUZZ
@given(
    records=st.integers(0, 3),
    extra=st.integers(-3, 3),
    labels=st.lists(st.integers(0, 255), min_size=3, max_size=3),
    meta=st.one_of(st.none(), st.binary(max_size=200)),
    split=st.sampled_from(["test", "train", "val"]),
)
def test_cifar_binary_random(
    records: int, extra: int, labels: list[int], meta: bytes | None, split: str
) -> None:
    rec = np.random.default_rng(records).integers(0, 256, (records, 3073), dtype=np.uint8)
    rec[:, 0] = labels[:records]
    raw = rec.tobytes()
    raw = raw[: len(raw) + extra] if extra < 0 else raw + b"\x07" * extra
    with _tmpdir() as d:
        name = "test_batch.bin" if split != "train" else "data_batch_1.bin"
        (d / name).write_bytes(raw)
        if meta is not None:
            (d / "batches.meta.txt").write_bytes(meta)
        _load_clean(f"cifar10:{d}", split=split)
        _load_clean(str(d), split=split)


@FUZZ
@given(data=st.binary(max_size=7000))
def test_cifar_binary_random_bytes(data: bytes) -> None:
    with _tmpdir() as d:
        (d / "test_batch.bin").write_bytes(data)
        _load_clean(f"cifar10:{d}")


# ----------------------------------------------------------------------------- -C layouts

_SEVERITY = st.one_of(
    st.integers(1, 5).map(str),
    st.integers(-2, 8).map(str),
    st.text(alphabet="0123456789\u00b2\u0663x/ ", max_size=6),
)
_CORRUPTION = st.sampled_from(
    ["fog", "fog", "fog", "gaussian_noise", "gaussian-noise", "Fog", "", "fgo"]
)


@FUZZ
@given(
    arr=st.one_of(
        st.builds(lambda: np.zeros((10, 4, 4, 3), np.uint8)),
        st.builds(lambda: np.zeros((5, 4, 4), np.uint8)),
        arrays(max_dims=4),
    ),
    labels=st.one_of(
        st.builds(lambda: np.arange(10) % 3),
        st.builds(lambda: np.arange(2)),
        arrays(max_dims=2),
    ),
    raw=st.one_of(st.none(), st.binary(max_size=200)),
    name=_CORRUPTION,
    severity=_SEVERITY,
)
def test_cifar_c_random(
    arr: np.ndarray, labels: np.ndarray, raw: bytes | None, name: str, severity: str
) -> None:
    with _tmpdir() as d:
        root = d / "cc"
        root.mkdir()
        if raw is not None:
            (root / "fog.npy").write_bytes(raw)
        else:
            np.save(root / "fog.npy", arr)
        np.save(root / "labels.npy", labels)
        _load_clean(f"cifar-c:{root}#{name}/{severity}")
        if severity.isascii() and severity.isdigit() and len(severity) < 4:
            _load_clean(f"cifar-c:{root}", corruption=name or None, severity=int(severity))


@st.composite
def c_tree(draw: st.DrawFn) -> list[tuple[str, ...]]:
    """imagenet-c style paths: corruption/severity/class/file, names partly random."""
    out: list[tuple[str, ...]] = []
    for _ in range(draw(st.integers(0, 4))):
        corruption = draw(st.one_of(_CORRUPTION.filter(bool), _NAME))
        sev = draw(_SEVERITY).replace("/", "") or "1"
        cls = draw(_NAME)
        out.append((corruption, sev.strip() or "1", cls))
    return out


@FUZZ
@given(
    tree=c_tree(),
    image=image_file(),
    manifest=st.one_of(
        st.none(),
        st.binary(max_size=60),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(
                    st.sampled_from(["format", "config", "done", "dataset", "classes"]),
                    inner,
                    max_size=4,
                )
            ),
            max_leaves=8,
        ),
    ),
    name=_CORRUPTION,
    severity=_SEVERITY,
)
def test_imagenet_c_random(
    tree: list[tuple[str, ...]],
    image: tuple[str, bytes],
    manifest: Any,
    name: str,
    severity: str,
) -> None:
    with _tmpdir() as d:
        root = d / "inc"
        root.mkdir()
        for corruption, sev, cls in tree:
            folder = root / corruption / sev / cls
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError:
                continue
            (folder / image[0]).write_bytes(image[1])
        if isinstance(manifest, bytes):
            (root / "robustcv_manifest.json").write_bytes(manifest)
        elif manifest is not None:
            (root / "robustcv_manifest.json").write_text(json.dumps(manifest))
        _load_clean(f"imagenet-c:{root}#{name}/{severity}")
        _load_clean(str(root))


# ----------------------------------------------------------------------------- specs and counts

_COUNT = st.one_of(
    st.none(),
    st.integers(-3, 40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=3),
    st.sampled_from([np.int64(3), np.float32(2.0), [1], (2,)]),
)


@FUZZ
@given(
    kind=st.sampled_from(["npz", "idx", "folder", "cifar10", "imagenet-c", "cifar-c", "nzp", ""]),
    rest=st.text(alphabet=string.ascii_letters + string.digits + ":#/._-\u00b2 ", max_size=12),
    limit=_COUNT,
    seed=_COUNT,
    split=st.one_of(st.sampled_from(["test", "train", "", "val"]), st.integers(0, 2)),
)
def test_specs_and_counts(kind: str, rest: str, limit: Any, seed: Any, split: Any) -> None:
    with _tmpdir() as d:
        x = np.random.default_rng(0).integers(0, 256, (5, 4, 4), dtype=np.uint8)
        np.savez(d / "ok.npz", x=x, y=np.arange(5) % 2)
        (d / "sub").mkdir()
        here = os.getcwd()
        os.chdir(d)  # relative specs resolve inside the sandbox, never in the repository
        try:
            spec = f"{kind}:{d}/{rest}" if kind else f"{d}/{rest}"
            _load_clean(spec, limit=limit, seed=seed, split=split)
            _load_clean(f"npz:{d / 'ok.npz'}", limit=limit, seed=seed, split=split)
        finally:
            os.chdir(here)


def test_fuzz_budget_is_bounded() -> None:
    """Keep the fuzzing affordable: each property runs a bounded number of examples."""
    if "RCV_FUZZ_EXAMPLES" not in os.environ:
        assert FUZZ.max_examples <= 100
    assert FUZZ.deadline is not None


@pytest.mark.parametrize("suffix", [".npz", ""])
def test_zip_bomb_like_member_is_refused(suffix: str) -> None:
    """An npz member whose header declares a huge array is refused, not allocated."""
    with _tmpdir() as d:
        path = d / f"bomb{suffix or '.npz'}"
        header = "{'descr': '|u1', 'fortran_order': False, 'shape': (100000000000, 28, 28), }"
        header += " " * (118 - len(header)) + "\n"
        member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("x.npy", member)
            zf.writestr("y.npy", member)
        assert _load_clean(f"npz:{path}") is None
