"""Dataset loaders on small files written by the tests (IDX, npz, folders, CIFAR-10 binary),
checksummed fetching over file:// URLs, and Fashion-MNIST discovery."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import robustcv.data.fashion_mnist as fm
from robustcv.core.contract import check_batch
from robustcv.core.errors import DataNotFoundError, InputError, RobustcvError
from robustcv.data import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    ArraySource,
    Dataset,
    FolderSource,
    content_sha256,
    fetch_files,
    find_fashion_mnist,
    images_to_tensor,
    load_dataset,
    read_cifar10_binary,
    read_idx,
    user_cache_dir,
    write_idx,
)
from robustcv.data.fashion_mnist import fetch_fashion_mnist, load_fashion_mnist_arrays

# ---------------------------------------------------------------------------- helpers


def _toy_images(n: int = 6, h: int = 5, w: int = 4) -> np.ndarray:
    """uint8 (n, h, w) images whose pixel [0, 0] is the image index."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, h, w), dtype=np.uint8)
    x[:, 0, 0] = np.arange(n, dtype=np.uint8)
    return x


def _gzip(path: Path) -> Path:
    gz = path.with_name(path.name + ".gz")
    gz.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return gz


def _write_idx_pair(folder: Path, prefix: str, x: np.ndarray, y: np.ndarray, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    img = folder / f"{prefix}-images-idx3-ubyte"
    lab = folder / f"{prefix}-labels-idx1-ubyte"
    write_idx(img, x)
    write_idx(lab, y.astype(np.uint8))
    if gz:
        _gzip(img)
        _gzip(lab)


def _assert_contract(ds: Dataset) -> None:
    x, y = ds.x, ds.y
    check_batch(x, y, num_classes=ds.num_classes)
    assert len(ds) == len(y) == x.shape[0]


def _assert_batches_equal_full(make: object, batch_size: int) -> None:
    """``make()`` gives a fresh dataset; streaming it must equal materialising it."""
    streamed = list(make().batches(batch_size))  # type: ignore[operator]
    ds = make()  # type: ignore[operator]
    assert all(len(yb) <= batch_size for _, yb in streamed)
    assert torch.equal(torch.cat([xb for xb, _ in streamed]), ds.x)
    assert torch.equal(torch.cat([yb for _, yb in streamed]), ds.y)
    # and the cached path gives the same batches
    cached = list(ds.batches(batch_size))
    assert len(cached) == len(streamed)
    for (xa, ya), (xb, yb) in zip(cached, streamed, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


# ---------------------------------------------------------------------------- IDX


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-3, 0, 5], dtype=np.int8),
        np.array([[-300, 7], [1, 32000]], dtype=np.int16),
        np.array([2**30, -5], dtype=np.int32),
        np.array([0.5, -1.25], dtype=np.float32),
        np.array([[1e-300]], dtype=np.float64),
        np.array([1, 2], dtype=">i4"),
    ],
)
def test_idx_round_trip(tmp_path, arr):
    p = tmp_path / "a-idx"
    write_idx(p, arr)
    got = read_idx(p)
    assert got.shape == arr.shape
    assert got.dtype == arr.dtype.newbyteorder("=")
    assert np.array_equal(got, arr)


def test_idx_header_layout(tmp_path):
    p = tmp_path / "x-idx3-ubyte"
    write_idx(p, np.zeros((2, 3, 4), np.uint8))
    raw = p.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x08, 3])
    assert raw[4:16] == b"\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04"
    assert len(raw) == 16 + 24


def test_idx_gzip_equals_plain(tmp_path):
    arr = _toy_images()
    plain = tmp_path / "plain-idx3-ubyte"
    write_idx(plain, arr)
    gz = tmp_path / "gz-idx3-ubyte"
    write_idx(gz, arr)
    gz = _gzip(gz)
    assert np.array_equal(read_idx(plain), arr)
    assert np.array_equal(read_idx(gz), arr)


def test_idx_truncated_file(tmp_path):
    p = tmp_path / "t-idx3-ubyte"
    write_idx(p, _toy_images())
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(
        ValueError,
        match=r"holds 113 bytes of data but its header promises 120 "
        r"for shape \(6, 5, 4\); the file is truncated or corrupt",
    ):
        read_idx(p)


def test_idx_truncated_gzip(tmp_path):
    p = tmp_path / "t-idx3-ubyte"
    write_idx(p, _toy_images(n=50, h=20, w=20))
    gz = _gzip(p)
    gz.write_bytes(gz.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"cannot read IDX file .*t-idx3-ubyte\.gz.*re-download"):
        read_idx(gz)


def test_idx_bad_headers(tmp_path):
    p = tmp_path / "bad"
    p.write_bytes(b"\x01\x02\x08\x01")
    with pytest.raises(ValueError, match=r"not an IDX file \(bad magic number\)"):
        read_idx(p)
    p.write_bytes(b"\x00")
    with pytest.raises(ValueError, match=r"bad magic number"):
        read_idx(p)
    p.write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match=r"unknown IDX type code 0x07"):
        read_idx(p)
    p.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x01")
    with pytest.raises(ValueError, match=r"truncated \(header incomplete\)"):
        read_idx(p)


def test_idx_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"cannot read IDX file"):
        read_idx(tmp_path / "nope")


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(ValueError, match=r"IDX cannot store dtype int64"):
        write_idx(tmp_path / "a", np.arange(3, dtype=np.int64))


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_dir_plain_and_gzip(tmp_path, gz):
    x_tr, y_tr = _toy_images(6), np.array([0, 1, 2, 1, 0, 2])
    x_te, y_te = _toy_images(3, 5, 4)[::-1].copy(), np.array([2, 0, 1])
    _write_idx_pair(tmp_path / "mnistish", "train", x_tr, y_tr, gz)
    _write_idx_pair(tmp_path / "mnistish", "t10k", x_te, y_te, gz)

    train = load_dataset(f"idx:{tmp_path / 'mnistish'}", split="train")
    assert (train.name, train.split, train.classes) == ("mnistish", "train", ["0", "1", "2"])
    assert train.x.shape == (6, 1, 5, 4)
    assert torch.equal(train.x, torch.from_numpy(x_tr).float().unsqueeze(1) / 255)
    assert train.y.tolist() == y_tr.tolist()
    _assert_contract(train)

    test = load_dataset(tmp_path / "mnistish")  # detected, default split "test"
    assert test.split == "test"
    assert torch.equal(test.x, torch.from_numpy(x_te).float().unsqueeze(1) / 255)
    assert test.y.tolist() == [2, 0, 1]


def test_load_idx_test_prefix_and_single_file(tmp_path):
    x, y = _toy_images(4), np.array([1, 0, 1, 3])
    _write_idx_pair(tmp_path, "test", x, y, gz=True)
    ds = load_dataset(f"idx:{tmp_path}", split="test")
    assert ds.y.tolist() == [1, 0, 1, 3]
    assert ds.classes == ["0", "1", "2", "3"]
    single = load_dataset(tmp_path / "test-images-idx3-ubyte.gz")  # bare file path
    assert torch.equal(single.x, ds.x)
    (tmp_path / "classes.txt").write_text("zero\none\ntwo\nthree\n")
    assert load_dataset(f"idx:{tmp_path}").classes == ["zero", "one", "two", "three"]


def test_load_idx_errors(tmp_path):
    _write_idx_pair(tmp_path, "train", _toy_images(4), np.array([0, 1, 0, 1]), gz=False)
    with pytest.raises(
        ValueError,
        match=r"no IDX files for split 'test'; expected "
        r"t10k-images-idx3-ubyte\[\.gz\]",
    ):
        load_dataset(f"idx:{tmp_path}", split="test")
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(
        ValueError,
        match=r"cannot find the labels file .*"
        r"expected train-labels-idx1-ubyte",
    ):
        load_dataset(f"idx:{tmp_path / 'train-images-idx3-ubyte'}")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.array([0, 1, 0], np.uint8))
    with pytest.raises(ValueError, match=r"has 4 images but .* has 3 labels"):
        load_dataset(f"idx:{tmp_path}", split="train")


# ---------------------------------------------------------------------------- npz


def test_npz_x_y_keys(tmp_path):
    x, y = _toy_images(5), np.array([0, 2, 1, 2, 0])
    p = tmp_path / "toy.npz"
    np.savez(p, x=x, y=y)
    ds = load_dataset(f"npz:{p}")
    assert (ds.name, ds.split, ds.classes) == ("toy", "test", ["0", "1", "2"])
    assert torch.equal(ds.x, torch.from_numpy(x).float().unsqueeze(1) / 255)
    assert ds.y.dtype == torch.int64 and ds.y.tolist() == y.tolist()
    _assert_contract(ds)
    assert torch.equal(load_dataset(p).x, ds.x)  # bare path detection
    assert torch.equal(load_dataset(str(p)).y, ds.y)


def test_npz_split_keys(tmp_path):
    p = tmp_path / "split.npz"
    np.savez(
        p,
        x_train=np.full((4, 3, 3), 10, np.uint8),
        y_train=np.array([0, 1, 0, 1]),
        x_test=np.full((2, 3, 3), 200, np.uint8),
        y_test=np.array([1, 1]),
    )
    train = load_dataset(f"npz:{p}", split="train")
    test = load_dataset(f"npz:{p}", split="test")
    assert len(train) == 4 and len(test) == 2
    assert float(train.x.max()) == pytest.approx(10 / 255)
    assert float(test.x.min()) == pytest.approx(200 / 255)
    assert train.y.tolist() == [0, 1, 0, 1] and test.y.tolist() == [1, 1]


def test_npz_nhwc_and_nchw(tmp_path):
    rng = np.random.default_rng(1)
    nhwc = rng.integers(0, 256, size=(3, 5, 6, 3), dtype=np.uint8)
    nchw = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))
    y = np.array([0, 1, 1])
    np.savez(tmp_path / "nhwc.npz", x=nhwc, y=y)
    np.savez(tmp_path / "nchw.npz", x=nchw, y=y)
    a = load_dataset(tmp_path / "nhwc.npz").x
    b = load_dataset(tmp_path / "nchw.npz").x
    assert a.shape == b.shape == (3, 3, 5, 6)
    assert torch.equal(a, b)
    # element check: x[n, c, h, w] == arr[n, h, w, c] / 255
    assert float(a[2, 1, 4, 5]) == pytest.approx(nhwc[2, 4, 5, 1] / 255)
    assert float(a[0, 2, 0, 3]) == pytest.approx(nhwc[0, 0, 3, 2] / 255)


def test_npz_nhwc_greyscale(tmp_path):
    x = _toy_images(4, 7, 8)[..., None]
    np.savez(tmp_path / "g.npz", x=x, y=np.array([0, 1, 0, 1]))
    ds = load_dataset(tmp_path / "g.npz")
    assert ds.x.shape == (4, 1, 7, 8)
    assert ds.x[:, 0, 0, 0].mul(255).round().tolist() == [0, 1, 2, 3]


def test_npz_float_in_unit_range(tmp_path):
    x = np.linspace(0, 1, 2 * 3 * 3, dtype=np.float64).reshape(2, 3, 3)
    np.savez(tmp_path / "f.npz", x=x, y=np.array([0, 1]))
    ds = load_dataset(tmp_path / "f.npz")
    assert ds.x.dtype == torch.float32
    assert torch.allclose(ds.x[:, 0], torch.from_numpy(x).float())
    _assert_contract(ds)


def test_npz_float_out_of_range_is_an_error(tmp_path):
    x = np.linspace(0, 255, 2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    np.savez(tmp_path / "f255.npz", x=x, y=np.array([0, 1]))
    with pytest.raises(
        ValueError,
        match=r"float images have values in \[0, 255\]; store uint8 "
        r"0-255 or floats in \[0, 1\]",
    ):
        _ = load_dataset(tmp_path / "f255.npz").x


def test_npz_float_nan_is_an_error(tmp_path):
    x = np.full((2, 3, 3), 0.5, np.float32)
    x[1, 2, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"NaN or infinite"):
        _ = load_dataset(tmp_path / "nan.npz").x


def test_npz_missing_keys(tmp_path):
    np.savez(tmp_path / "bad.npz", a=np.zeros((2, 3, 3), np.uint8), b=np.array([0, 1]))
    with pytest.raises(
        ValueError,
        match=r"has arrays \['a', 'b'\]; store images as 'x' and "
        r"labels as 'y' \(or 'x_test'/'y_test'\)",
    ):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")
    with pytest.raises(ValueError, match=r"'x_train'/'y_train'"):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}", split="train")


def test_npz_images_labels_keys(tmp_path):
    np.savez(tmp_path / "il.npz", images=np.zeros((2, 3, 3), np.uint8), labels=np.array([1, 0]))
    assert load_dataset(tmp_path / "il.npz").y.tolist() == [1, 0]


def test_npz_classes_array(tmp_path):
    names = np.array(["cat", "dog", "eel", "fox"])
    np.savez(tmp_path / "c.npz", x=_toy_images(3), y=np.array([0, 1, 1]), classes=names)
    ds = load_dataset(tmp_path / "c.npz")
    assert ds.classes == ["cat", "dog", "eel", "fox"]
    assert ds.num_classes == 4


def test_npz_classes_txt_next_to_file(tmp_path):
    np.savez(tmp_path / "c.npz", x=_toy_images(3), y=np.array([0, 1, 1]))
    (tmp_path / "classes.txt").write_text("left\n\nright\n")
    assert load_dataset(tmp_path / "c.npz").classes == ["left", "right"]


def test_npz_too_few_stored_classes_fall_back_to_numbers(tmp_path):
    np.savez(tmp_path / "c.npz", x=_toy_images(3), y=np.array([0, 2, 1]), classes=np.array(["a"]))
    assert load_dataset(tmp_path / "c.npz").classes == ["0", "1", "2"]


def test_npz_object_array_refused(tmp_path):
    np.savez(tmp_path / "o.npz", x=np.array([None, 1], dtype=object), y=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"object arrays are refused"):
        load_dataset(tmp_path / "o.npz")


def test_npz_truncated_file(tmp_path):
    p = tmp_path / "t.npz"
    np.savez(p, x=_toy_images(20, 10, 10), y=np.arange(20) % 3)
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cannot read .*t\.npz.*truncated"):
        load_dataset(p)


def test_npz_bad_labels(tmp_path):
    np.savez(tmp_path / "n.npz", x=_toy_images(2), y=np.array([0, -1]))
    with pytest.raises(ValueError, match=r"labels contain the negative value -1"):
        load_dataset(tmp_path / "n.npz")
    np.savez(tmp_path / "l.npz", x=_toy_images(3), y=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"got 3 images but labels of shape \(2,\)"):
        load_dataset(tmp_path / "l.npz")
    np.savez(tmp_path / "f.npz", x=_toy_images(2), y=np.array([0.0, 1.5]))
    with pytest.raises(ValueError, match=r"labels must be integer class indices"):
        load_dataset(tmp_path / "f.npz")


# ---------------------------------------------------------------------------- images_to_tensor


def test_images_to_tensor_layouts_and_errors():
    assert images_to_tensor(np.zeros((2, 4, 4, 3), np.uint8)).shape == (2, 3, 4, 4)
    assert images_to_tensor(np.zeros((2, 3, 4, 5), np.uint8)).shape == (2, 3, 4, 5)
    forced = images_to_tensor(np.zeros((2, 3, 4, 3), np.uint8), layout="nhwc")
    assert forced.shape == (2, 3, 3, 4)
    assert float(images_to_tensor(np.full((1, 2, 2), 255, np.uint8)).min()) == 1.0
    with pytest.raises(ValueError, match=r"cannot tell the channel axis"):
        images_to_tensor(np.zeros((2, 5, 6, 7), np.uint8))
    with pytest.raises(ValueError, match=r"expected \(N,H,W\), \(N,H,W,C\) or \(N,C,H,W\)"):
        images_to_tensor(np.zeros((2, 5), np.uint8))
    with pytest.raises(ValueError, match=r"dtype int32; store uint8"):
        images_to_tensor(np.zeros((2, 5, 5), np.int32))
    with pytest.raises(ValueError, match=r"float images have values in \[-0\.5"):
        images_to_tensor(np.full((1, 2, 2), -0.5))


# ---------------------------------------------------------------------------- Dataset


def _index_dataset(n: int = 50) -> Dataset:
    x = np.zeros((n, 2, 2), np.uint8)
    x[:, 0, 0] = np.arange(n)
    return Dataset("idxs", "test", [str(i) for i in range(5)], ArraySource(x, np.arange(n) % 5))


def _ids(ds: Dataset) -> list[int]:
    return ds.x[:, 0, 0, 0].mul(255).round().long().tolist()


@pytest.mark.parametrize("batch_size", [1, 7, 50, 1000])
def test_batches_equal_x_y(batch_size):
    _assert_batches_equal_full(_index_dataset, batch_size)


def test_batches_rejects_bad_size():
    with pytest.raises(ValueError, match=r"batch_size must be >= 1, got 0"):
        next(_index_dataset().batches(0))


def test_limit_without_seed_takes_first():
    ds = _index_dataset()
    lim = ds.limit(7)
    assert len(lim) == 7 and _ids(lim) == list(range(7))
    assert lim.y.tolist() == [0, 1, 2, 3, 4, 0, 1]
    assert ds.limit(50) is ds and ds.limit(500) is ds and ds.limit(None) is ds
    with pytest.raises(ValueError, match=r"limit must be >= 1, got 0"):
        ds.limit(0)


def test_limit_with_seed_is_deterministic_sorted_sample():
    ds = _index_dataset()
    a, b = ds.limit(10, seed=3), _index_dataset().limit(10, seed=3)
    ids = _ids(a)
    assert ids == _ids(b)
    assert ids == sorted(set(ids)) and len(ids) == 10
    assert ids != list(range(10))
    assert ids != _ids(ds.limit(10, seed=4))
    assert a.y.tolist() == [i % 5 for i in ids]
    assert torch.equal(a.x, ds.x[ids])
    _assert_batches_equal_full(lambda: _index_dataset().limit(10, seed=3), 3)


def test_load_dataset_limit_and_seed(tmp_path):
    x = np.zeros((30, 2, 2), np.uint8)
    x[:, 0, 0] = np.arange(30)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(30) % 3)
    assert _ids(load_dataset(tmp_path / "d.npz", limit=4)) == [0, 1, 2, 3]
    s1 = _ids(load_dataset(tmp_path / "d.npz", limit=6, seed=11))
    s2 = _ids(load_dataset(tmp_path / "d.npz", limit=6, seed=11))
    assert s1 == s2 and len(set(s1)) == 6
    ds = _index_dataset()
    assert _ids(load_dataset(ds, limit=5, seed=11)) == _ids(ds.limit(5, seed=11))
    assert load_dataset(ds) is ds


def test_subset():
    ds = _index_dataset()
    sub = ds.subset([5, 1, 49])
    assert _ids(sub) == [5, 1, 49]
    assert sub.y.tolist() == [0, 1, 4]
    assert sub.classes == ds.classes and sub.classes is not ds.classes
    subsub = sub.subset(np.array([2, 0]))
    assert _ids(subsub) == [49, 5]
    assert len(ds.subset([])) == 0
    with pytest.raises(ValueError, match=r"subset indices must be in \[0, 3\)"):
        sub.subset([3])
    with pytest.raises(ValueError, match=r"subset indices must be in \[0, 50\)"):
        ds.subset([-1])


def test_dataset_label_beyond_class_names():
    ds = Dataset(
        "bad", "test", ["a", "b"], ArraySource(np.zeros((2, 2, 2), np.uint8), np.array([0, 2]))
    )
    with pytest.raises(ValueError, match=r"dataset 'bad' has label 2 but only 2 class names"):
        _ = ds.y


def test_dataset_repr():
    assert repr(_index_dataset()) == "Dataset(name='idxs', split='test', n=50, classes=5)"


# ---------------------------------------------------------------------------- image folders


def _grey(path: Path, value: int, size: tuple[int, int] = (5, 4)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, value).save(path)


def test_folder_numeric_class_names_sort_numerically(tmp_path):
    values = {"2": 20, "10": 100, "1": 10}
    for name, v in values.items():
        _grey(tmp_path / name / "a.png", v)
        _grey(tmp_path / name / "b.png", v + 1)
    (tmp_path / "1" / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden").mkdir()
    _grey(tmp_path / ".hidden" / "x.png", 255)

    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.classes == ["1", "2", "10"]
    assert ds.y.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.x.shape == (6, 1, 4, 5)  # (W, H) = (5, 4) -> (H, W) = (4, 5)
    got = ds.x.mul(255).round()[:, 0, 0, 0].tolist()
    assert got == [10, 11, 20, 21, 100, 101]
    _assert_contract(ds)
    _assert_batches_equal_full(lambda: load_dataset(tmp_path), 4)


def test_folder_alphabetical_class_names(tmp_path):
    for name in ("dog", "cat", "10"):
        _grey(tmp_path / name / "a.png", 1)
    assert FolderSource(tmp_path).classes == ["10", "cat", "dog"]


def test_folder_rgb_detection_and_pixel_layout(tmp_path):
    root = tmp_path / "mixed"
    _grey(root / "a" / "g.png", 128, size=(3, 2))
    rgb = Image.new("RGB", (3, 2), (0, 0, 0))
    rgb.putpixel((2, 1), (255, 64, 0))  # (x, y) = column 2, row 1
    (root / "b").mkdir()
    rgb.save(root / "b" / "c.png")

    src = FolderSource(root)
    assert src.channels == 3
    ds = load_dataset(root)
    x = ds.x.mul(255).round()
    assert x.shape == (2, 3, 2, 3)
    assert x[0].unique().tolist() == [128.0]  # grey image replicated to RGB
    assert x[1, :, 1, 2].tolist() == [255, 64, 0]
    assert x[1].sum().item() == 255 + 64
    assert FolderSource(root, channels=1).load(np.array([1]))[0].shape == (1, 1, 2, 3)

    grey_only = tmp_path / "grey"
    _grey(grey_only / "a" / "g.png", 3)
    assert FolderSource(grey_only).channels == 1
    with pytest.raises(ValueError, match=r"channels must be 1 or 3, got 2"):
        FolderSource(grey_only, channels=2)


def test_folder_mixed_sizes_need_image_size(tmp_path):
    _grey(tmp_path / "a" / "1.png", 10, size=(4, 4))
    _grey(tmp_path / "b" / "1.png", 20, size=(6, 5))
    with pytest.raises(ValueError, match=r"different sizes .*pass image_size=\(H, W\)"):
        load_dataset(tmp_path)
    ds = load_dataset(tmp_path, image_size=(3, 7))
    assert ds.x.shape == (2, 1, 3, 7)
    assert ds.x.mul(255).round()[1].unique().tolist() == [20.0]


def test_folder_mixed_sizes_within_a_class(tmp_path):
    _grey(tmp_path / "a" / "1.png", 10, size=(4, 4))
    _grey(tmp_path / "a" / "2.png", 10, size=(6, 5))
    ds = load_dataset(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"2\.png is 5x6 but other images are 4x4; pass "
        r"image_size",
    ):
        _ = ds.x
    assert load_dataset(tmp_path, image_size=(4, 4)).x.shape == (2, 1, 4, 4)


def test_folder_train_test_split_subfolders(tmp_path):
    root = tmp_path / "pets"
    for split, n in (("train", 3), ("test", 2)):
        for k, cls in enumerate(("cat", "dog")):
            for i in range(n):
                _grey(root / split / cls / f"{i}.png", 50 * k + i)
    train = load_dataset(f"folder:{root}", split="train")
    test = load_dataset(root)
    assert (train.name, train.split, len(train)) == ("pets", "train", 6)
    assert (test.split, len(test)) == ("test", 4)
    assert train.classes == test.classes == ["cat", "dog"]
    assert test.y.tolist() == [0, 0, 1, 1]
    assert test.x.mul(255).round()[:, 0, 0, 0].tolist() == [0, 1, 50, 51]


def test_folder_errors(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"holds no images in class subfolders"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(ValueError, match=r"is not a folder"):
        FolderSource(tmp_path / "missing")
    bad = tmp_path / "bad" / "cls" / "x.png"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*x\.png"):
        load_dataset(tmp_path / "bad")


# ---------------------------------------------------------------------------- CIFAR-10 binary


def _cifar_records(labels: list[int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rec = rng.integers(0, 256, size=(len(labels), 3073), dtype=np.uint8)
    rec[:, 0] = labels
    return rec


def test_cifar_pixel_layout(tmp_path):
    rec = _cifar_records([3, 7, 0])
    rec[0, 1:] = np.arange(3072) % 251  # a recognisable pattern for image 0
    (tmp_path / "test_batch.bin").write_bytes(rec.tobytes())
    x, y, names = read_cifar10_binary(tmp_path, "test")
    assert x.dtype == np.uint8 and x.shape == (3, 3, 32, 32)
    assert y.dtype == np.int64 and y.tolist() == [3, 7, 0]
    assert names == CIFAR10_CLASSES
    pixels = rec[0, 1:]
    assert x[0, 0].ravel().tolist() == pixels[:1024].tolist()  # red plane, row-major
    assert x[0, 0, 0, 5] == pixels[5]
    assert x[0, 0, 1, 0] == pixels[32]
    assert x[0, 1, 0, 0] == pixels[1024]  # green plane starts after 1024 bytes
    assert x[0, 2, 31, 31] == pixels[3071]
    assert np.array_equal(x[2].ravel(), rec[2, 1:])

    ds = load_dataset(f"cifar10:{tmp_path}")
    assert (ds.name, ds.classes[3]) == ("cifar-10", "cat")
    assert ds.x.shape == (3, 3, 32, 32)
    assert torch.equal(ds.x, torch.from_numpy(x).float() / 255)
    _assert_contract(ds)


def test_cifar_train_batches_and_nested_dir(tmp_path):
    inner = tmp_path / "cifar-10-batches-bin"
    inner.mkdir()
    r1, r2 = _cifar_records([1, 2], seed=1), _cifar_records([9], seed=2)
    (inner / "data_batch_2.bin").write_bytes(r2.tobytes())
    (inner / "data_batch_1.bin").write_bytes(r1.tobytes())
    ds = load_dataset(tmp_path, split="train")  # detected, nested folder
    assert ds.y.tolist() == [1, 2, 9]
    assert torch.equal(ds.x[2], torch.from_numpy(r2[0, 1:].reshape(3, 32, 32)).float() / 255)
    with pytest.raises(ValueError, match=r"no CIFAR-10 test files"):
        load_dataset(f"cifar10:{tmp_path}", split="test")
    with pytest.raises(ValueError, match=r"CIFAR-10 has splits 'train' and 'test', not 'val'"):
        read_cifar10_binary(tmp_path, "val")


def test_cifar_truncated_file(tmp_path):
    (tmp_path / "test_batch.bin").write_bytes(_cifar_records([1, 2]).tobytes()[:-10])
    with pytest.raises(
        ValueError,
        match=r"has 6136 bytes, not a multiple of the 3073-byte "
        r"CIFAR-10 record; the file is truncated",
    ):
        read_cifar10_binary(tmp_path, "test")


def test_cifar_meta_names(tmp_path):
    (tmp_path / "test_batch.bin").write_bytes(_cifar_records([4]).tobytes())
    names = [f"class{i}" for i in range(10)]
    (tmp_path / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    assert load_dataset(f"cifar10:{tmp_path}").classes == names
    (tmp_path / "batches.meta.txt").write_text("only\nthree\nnames\n")  # wrong count: ignored
    assert read_cifar10_binary(tmp_path, "test")[2] == CIFAR10_CLASSES


def test_cifar_errors(tmp_path):
    with pytest.raises(ValueError, match=r"holds no CIFAR-10 binary files"):
        read_cifar10_binary(tmp_path, "test")
    (tmp_path / "test_batch.bin").write_bytes(_cifar_records([5, 42]).tobytes())
    with pytest.raises(ValueError, match=r"labels above 9; is it CIFAR-100"):
        read_cifar10_binary(tmp_path, "test")


# ---------------------------------------------------------------------------- load_dataset spec


def test_load_dataset_spec_errors(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"dataset path .*missing\.npz does not exist"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")
    with pytest.raises(
        ValueError,
        match=r"unknown dataset 'fashon-mnist'; did you mean "
        r"'fashion-mnist'",
    ):
        load_dataset("fashon-mnist")
    with pytest.raises(ValueError, match=r"fmnist has splits train, test; got split='val'"):
        load_dataset("fmnist", split="val")
    with pytest.raises(ValueError, match=r"split must be a non-empty string"):
        load_dataset("fmnist", split="")
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match=r"cannot tell what kind of dataset .*data\.csv"):
        load_dataset(tmp_path / "data.csv")


# ---------------------------------------------------------------------------- fetching


def _serve(tmp_path: Path, files: dict[str, bytes]) -> str:
    src = tmp_path / "server"
    src.mkdir()
    for name, data in files.items():
        (src / name).write_bytes(data)
    return src.as_uri() + "/"


def test_content_sha256_gzip_equals_content(tmp_path):
    data = b"robustcv " * 1000
    plain = tmp_path / "a.bin"
    plain.write_bytes(data)
    gz = tmp_path / "a.bin.gz"
    gz.write_bytes(gzip.compress(data, compresslevel=1))
    gz9 = tmp_path / "b.gz"
    gz9.write_bytes(gzip.compress(data, compresslevel=9, mtime=12345))
    expected = hashlib.sha256(data).hexdigest()
    assert content_sha256(plain) == content_sha256(gz) == content_sha256(gz9) == expected
    assert gz.read_bytes() != gz9.read_bytes()
    assert content_sha256(plain) != hashlib.sha256(gz.read_bytes()).hexdigest()


def test_fetch_good_file(tmp_path):
    payload = {"a.txt": b"alpha", "b.bin.gz": gzip.compress(b"bravo" * 100)}
    url = _serve(tmp_path, payload)
    sums = {
        "a.txt": hashlib.sha256(b"alpha").hexdigest(),
        "b.bin.gz": hashlib.sha256(b"bravo" * 100).hexdigest(),
    }
    dest = tmp_path / "dest" / "nested"
    got = fetch_files(sums, url, dest, quiet=True)
    assert got == [dest / "a.txt", dest / "b.bin.gz"]
    assert (dest / "a.txt").read_bytes() == b"alpha"
    assert (dest / "b.bin.gz").read_bytes() == payload["b.bin.gz"]
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt", "b.bin.gz"]  # no .part left


def test_fetch_keeps_existing_good_file(tmp_path):
    sha = hashlib.sha256(b"alpha").hexdigest()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.txt").write_bytes(b"alpha")
    # a gzip file whose content matches is also kept (content checksum)
    (dest / "c.gz").write_bytes(gzip.compress(b"charlie"))
    csha = hashlib.sha256(b"charlie").hexdigest()
    missing_server = (tmp_path / "no-server").as_uri() + "/"
    got = fetch_files({"a.txt": sha, "c.gz": csha}, missing_server, dest, quiet=True)
    assert got == [dest / "a.txt", dest / "c.gz"]
    assert (dest / "a.txt").read_bytes() == b"alpha"


def test_fetch_replaces_corrupt_existing_file(tmp_path):
    url = _serve(tmp_path, {"a.txt": b"alpha"})
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a.txt").write_bytes(b"corrupt")
    fetch_files({"a.txt": hashlib.sha256(b"alpha").hexdigest()}, url, dest, quiet=True)
    assert (dest / "a.txt").read_bytes() == b"alpha"


def test_fetch_checksum_mismatch_leaves_nothing(tmp_path):
    url = _serve(tmp_path, {"a.txt": b"tampered"})
    dest = tmp_path / "dest"
    with pytest.raises(
        RobustcvError,
        match=r"checksum mismatch for file://.*a\.txt: expected "
        r"0000000000000000\.\.\., got ",
    ):
        fetch_files({"a.txt": "0" * 64}, url, dest, quiet=True)
    assert list(dest.iterdir()) == []


def test_fetch_missing_remote_file(tmp_path):
    url = _serve(tmp_path, {})
    dest = tmp_path / "dest"
    with pytest.raises(RobustcvError, match=r"could not download file://.*nothere\.bin"):
        fetch_files({"nothere.bin": "0" * 64}, url, dest, quiet=True)
    assert list(dest.iterdir()) == []


def test_user_cache_dir_respects_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert user_cache_dir() == tmp_path / "robustcv"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "robustcv"


# ---------------------------------------------------------------------------- Fashion-MNIST


@pytest.fixture
def no_fmnist(monkeypatch, tmp_path):
    """Hide every Fashion-MNIST location behind empty temporary folders."""
    for sub in ("debian", "data", "cache"):
        (tmp_path / sub).mkdir()
    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "debian")
    monkeypatch.setenv("ROBUSTCV_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_fmnist_missing_message(no_fmnist):
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("fashion-mnist", split="test")
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    assert "Fashion-MNIST (test split) not found" in msg
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "robustcv data fetch fashion-mnist" in msg
    assert "ROBUSTCV_DATA" in msg
    for searched in (
        no_fmnist / "data" / "fashion-mnist",
        no_fmnist / "debian",
        no_fmnist / "cache" / "robustcv" / "fashion-mnist",
    ):
        assert str(searched) in msg
    with pytest.raises(DataNotFoundError, match=r"\(train split\) not found"):
        find_fashion_mnist("train")
    with pytest.raises(ValueError, match=r"fashion-mnist has splits 'train' and 'test', not 'val'"):
        find_fashion_mnist("val")


def test_fmnist_dirs_order(no_fmnist):
    assert fm.fashion_mnist_dirs() == [
        no_fmnist / "data" / "fashion-mnist",
        no_fmnist / "data",
        no_fmnist / "debian",
        no_fmnist / "cache" / "robustcv" / "fashion-mnist",
    ]


@pytest.mark.parametrize("sub", ["fashion-mnist", ""])
def test_fmnist_found_via_robustcv_data(no_fmnist, sub):
    x = np.zeros((4, 28, 28), np.uint8)
    x[:, 0, 0] = [9, 8, 7, 6]
    folder = no_fmnist / "data" / sub if sub else no_fmnist / "data"
    _write_idx_pair(folder, "t10k", x, np.array([9, 0, 3, 3]), gz=sub != "")
    images, labels = find_fashion_mnist("test")
    assert images.parent == folder and labels.parent == folder
    ds = load_dataset("FMNIST", split="test", limit=3)
    assert ds.name == "fashion-mnist" and ds.classes == FASHION_MNIST_CLASSES
    assert ds.y.tolist() == [9, 0, 3]
    assert ds.x.shape == (3, 1, 28, 28)
    assert ds.x.mul(255).round()[:, 0, 0, 0].tolist() == [9, 8, 7]
    xa, ya = load_fashion_mnist_arrays("test")
    assert not xa.flags.writeable and not ya.flags.writeable


def test_fmnist_found_in_user_cache(no_fmnist):
    folder = no_fmnist / "cache" / "robustcv" / "fashion-mnist"
    _write_idx_pair(folder, "train", np.zeros((2, 28, 28), np.uint8), np.array([1, 2]), gz=True)
    assert load_dataset("fashion_mnist", split="train").y.tolist() == [1, 2]


def test_fmnist_mismatched_pair(no_fmnist):
    folder = no_fmnist / "data"
    _write_idx_pair(folder, "t10k", np.zeros((3, 28, 28), np.uint8), np.array([1, 2]), gz=False)
    with pytest.raises(ValueError, match=r"do not form an image/label pair"):
        load_dataset("fashion-mnist")


@pytest.mark.fmnist
def test_real_fashion_mnist_test_split(fmnist_test, monkeypatch, tmp_path):
    ds = fmnist_test
    assert len(ds) == 10000
    assert ds.x.shape == (10000, 1, 28, 28) and ds.x.dtype == torch.float32
    assert ds.classes == FASHION_MNIST_CLASSES
    assert ds.y.dtype == torch.int64
    assert torch.bincount(ds.y).tolist() == [1000] * 10
    check_batch(ds.x, ds.y, num_classes=10)

    # ROBUSTCV_DATA pointing at a copy is searched first
    images, labels = find_fashion_mnist("test")
    copy = tmp_path / "fashion-mnist"
    copy.mkdir()
    shutil.copy(images, copy / images.name)
    shutil.copy(labels, copy / labels.name)
    monkeypatch.setenv("ROBUSTCV_DATA", str(tmp_path))
    assert find_fashion_mnist("test") == (copy / images.name, copy / labels.name)
    again = load_dataset("fashion-mnist", split="test", limit=500, seed=0)
    ref = ds.limit(500, seed=0)
    assert len(again) == 500
    assert torch.equal(again.x, ref.x)
    assert torch.equal(again.y, ref.y)

    # the pinned checksums match the installed files, so fetching from them succeeds
    got = fetch_fashion_mnist(tmp_path / "fetched", base_url=images.parent.as_uri(), quiet=True)
    assert sorted(p.name for p in got.iterdir()) == sorted(fm.FASHION_MNIST_FILES)


def test_fetch_fashion_mnist_bad_source_raises(no_fmnist):
    with pytest.raises(RobustcvError, match=r"could not download"):
        fetch_fashion_mnist(no_fmnist / "out", base_url=(no_fmnist / "none").as_uri(), quiet=True)
    assert list((no_fmnist / "out").iterdir()) == []


def test_inputerror_types():
    assert issubclass(DataNotFoundError, InputError)
