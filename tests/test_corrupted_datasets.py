"""-C datasets: write (ImageNet-C / CIFAR-10-C layouts), resume, refuse, and read back, ours and
mocks of the published files."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import robustcv.corruptions.dataset as writer_module
from robustcv.core.errors import DataNotFoundError, InputError
from robustcv.core.names import BENCHMARK_CORRUPTIONS, HELD_OUT_CORRUPTIONS
from robustcv.corruptions import CORRUPTIONS, corrupt, select_corruptions, write_corrupted
from robustcv.corruptions.base import CorruptionDef, register_corruption
from robustcv.corruptions.dataset import class_folder_names, to_uint8
from robustcv.corruptions.selection import parse_severities
from robustcv.data import Dataset, load_dataset
from robustcv.data.cifar import CIFAR10_CLASSES
from robustcv.data.corrupted import (
    MANIFEST_NAME,
    available_corruptions,
    detect_c_format,
    parse_c_spec,
)
from robustcv.data.folder import sorted_class_names

SHIFT, NOISE, MVH = "ztest_shift", "ztest_noise", "mvh-ztest"


def _shift(x: torch.Tensor, p: dict[str, float], rng: Any) -> torch.Tensor:
    return x * (1.0 - p["amount"]) + 0.5 * p["amount"]


def _noise(x: torch.Tensor, p: dict[str, float], rng: Any) -> torch.Tensor:
    return (x + p["sigma"] * rng.randn(*x.shape[1:])).clamp(0.0, 1.0)


def _levels(x: torch.Tensor, p: dict[str, float], rng: Any) -> torch.Tensor:
    return x * p["level"]


FAKES = [
    CorruptionDef(SHIFT, _shift, "digital", True, ("amount",),
                  {"imagenet-c": tuple((0.1 * s,) for s in range(1, 6)),
                   "cifar-10-c": tuple((0.05 * s,) for s in range(1, 6))},
                  summary="test: blend towards grey"),
    CorruptionDef(NOISE, _noise, "noise", False, ("sigma",),
                  {"imagenet-c": tuple((0.04 * s,) for s in range(1, 6)),
                   "cifar-10-c": tuple((0.02 * s,) for s in range(1, 6))},
                  random=True, summary="test: gaussian noise"),
    CorruptionDef(MVH, _levels, "mvh", False, ("level",),
                  {"levels": ((1.0,), (0.5,), (0.25,))}, summary="test: mvh levels"),
]  # fmt: skip


@pytest.fixture
def fakes() -> Iterator[None]:
    """Register the test corruptions, and remove them afterwards."""
    for d in FAKES:
        register_corruption(d)
    try:
        yield
    finally:
        for d in FAKES:
            CORRUPTIONS._entries.pop(d.name, None)
            CORRUPTIONS._aliases.pop(d.name.replace("_", "-"), None)


def _make_npz(tmp_path: Path, grey: bool) -> Dataset:
    rng = np.random.default_rng(7)
    shape = (12, 16, 16) if grey else (12, 16, 16, 3)
    x = rng.integers(0, 256, shape, dtype=np.uint8)
    y = np.array([2, 0, 1, 1, 0, 2, 2, 1, 0, 0, 2, 1])
    path = tmp_path / ("grey.npz" if grey else "rgb.npz")
    if grey:
        np.savez(path, x=x, y=y)
    else:
        np.savez(path, x=x, y=y, classes=np.array(["zebra", "ant", "Cat/dog"]))
    return load_dataset(f"npz:{path}")


def _expected(clean: Dataset, name: str, severity: int, seed: int = 0) -> torch.Tensor:
    """The corrupted images quantised to uint8 with numpy (round half to even), as floats."""
    y = corrupt(clean.x, name, severity, seed=seed).numpy()
    q = np.rint(y * np.float32(255.0)).clip(0, 255).astype(np.uint8)
    return torch.from_numpy(q).float() / 255.0


# ----------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        (["n01440764", "n01443537"], ["n01440764", "n01443537"]),
        (["ant", "bee"], ["ant", "bee"]),
        (["zebra", "ant", "Cat/dog"], ["0-zebra", "1-ant", "2-Cat_dog"]),
        ([str(i) for i in range(10)], [str(i) for i in range(10)]),
        ([str(i) for i in range(11)], [f"{i:02d}" for i in range(11)]),
        (["5", "3"], ["0-5", "1-3"]),
        ([".hidden", "b"], ["0-_hidden", "1-b"]),
        (["Cat", "cat"], ["0-Cat", "1-cat"]),
    ],
)
def test_class_folder_names(classes: list[str], expected: list[str]) -> None:
    assert class_folder_names(classes) == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=15, unique=True))
def test_class_folders_sort_into_label_order(classes: list[str]) -> None:
    folders = class_folder_names(classes)
    assert len({f.lower() for f in folders}) == len(folders)
    assert all(f and not f.startswith(".") and "/" not in f for f in folders)
    assert sorted(folders) == folders  # torchvision ImageFolder's order
    assert sorted_class_names(folders) == folders  # robustcv's folder reader


def test_to_uint8_rounds_half_to_even() -> None:
    x = torch.cat(
        [torch.rand(1000), torch.tensor([0.5, 1.5, 2.5, 254.5]) / 255, torch.tensor([0.0, 1.0])]
    )
    ref = np.rint(x.numpy() * np.float32(255)).astype(np.uint8)
    assert to_uint8(x).dtype == torch.uint8
    assert np.array_equal(to_uint8(x).numpy(), ref)
    assert to_uint8(torch.tensor([1.5, 2.5]) / 255).tolist() == [2, 2]


def test_parse_severities() -> None:
    assert parse_severities("1-5") == (1, 2, 3, 4, 5)
    assert parse_severities("5,1, 3") == (1, 3, 5)
    assert parse_severities([2, 2, 1]) == (1, 2)
    assert parse_severities(4) == (4,)
    assert parse_severities("all") is None and parse_severities(None) is None
    for bad in ("0", "3-1", "x", "", [0], [True]):
        with pytest.raises(InputError):
            parse_severities(bad)


def test_parse_c_spec() -> None:
    assert parse_c_spec("d/x#gaussian-noise/5") == ("d/x", "gaussian-noise", 5)
    assert parse_c_spec("d/x#fog") == ("d/x", "fog", None)
    assert parse_c_spec("d/x") == ("d/x", None, None)
    with pytest.raises(InputError, match="DIR#<corruption>/<severity>"):
        parse_c_spec("d#fog/three")


def test_select_corruptions(fakes: None) -> None:
    assert select_corruptions(f"{NOISE}, ztest-shift,{NOISE}") == [NOISE, SHIFT]
    assert select_corruptions([SHIFT]) == [SHIFT]
    mvh = select_corruptions("mvh")
    assert MVH in mvh and all(CORRUPTIONS.get(n).family == "mvh" for n in mvh)
    bench = select_corruptions("benchmark")
    # ImageNet-C's 15 in their canonical order, then registered ones flagged benchmark
    assert bench == [*BENCHMARK_CORRUPTIONS, SHIFT]
    assert select_corruptions("held_out") == [*HELD_OUT_CORRUPTIONS, NOISE]
    everything = [*bench, *HELD_OUT_CORRUPTIONS, NOISE]
    assert select_corruptions("all") == select_corruptions("imagenet-c") == everything
    assert MVH not in select_corruptions("all")
    assert select_corruptions(["fog", "benchmark"])[:2] == ["fog", "gaussian_noise"]
    with pytest.raises(InputError, match="'fog' twice"):
        select_corruptions("fog,benchmark", on_repeat="error")
    with pytest.raises(InputError, match="did you mean"):
        select_corruptions("ztest_shfit")
    with pytest.raises(InputError, match="no corruptions"):
        select_corruptions(" , ")


def test_benchmark_flags_agree_with_the_name_lists() -> None:
    """The registry's ``benchmark`` flag and core's lists say the same (both feed the groups)."""
    flagged = {e.name for e in CORRUPTIONS if e.obj.family != "mvh" and e.obj.benchmark}
    held = {e.name for e in CORRUPTIONS if e.obj.family != "mvh" and not e.obj.benchmark}
    assert flagged == set(BENCHMARK_CORRUPTIONS) and held == set(HELD_OUT_CORRUPTIONS)


def test_old_writer_locations_warn_and_still_work() -> None:
    import robustcv.data
    import robustcv.data.corrupted

    for module in (robustcv.data, robustcv.data.corrupted):
        with pytest.warns(DeprecationWarning, match="use robustcv.corruptions.write_corrupted"):
            assert module.write_corrupted is write_corrupted
        assert "write_corrupted" not in module.__all__
    with pytest.warns(DeprecationWarning, match="robustcv.corruptions.select_corruptions"):
        assert robustcv.data.corrupted.select_corruptions is select_corruptions


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
def test_imagenet_c_round_trip(tmp_path: Path, fakes: None, grey: bool) -> None:
    clean = _make_npz(tmp_path, grey)
    out = tmp_path / "in-c"
    res = write_corrupted(
        clean, out, corruptions=[SHIFT, NOISE], severities="1,3", batch_size=5, progress=False
    )
    units = [(SHIFT, 1), (SHIFT, 3), (NOISE, 1), (NOISE, 3)]
    assert res.written == units and res.skipped == [] and res.n == 12
    assert res.image_shape == ((1 if grey else 3), 16, 16)
    folders = ["0", "1", "2"] if grey else ["0-zebra", "1-ant", "2-Cat_dog"]
    assert sorted(p.name for p in (out / SHIFT / "3").iterdir()) == folders
    files = sorted(p.name for p in (out / SHIFT / "3" / folders[2]).iterdir())
    assert files == ["00.png", "05.png", "06.png", "10.png"]  # source positions of class 2
    assert available_corruptions(out, "imagenet-c") == {SHIFT: (1, 3), NOISE: (1, 3)}
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert sorted(map(tuple, manifest["done"])) == sorted(units)
    for name, sev in units:
        ds = load_dataset(f"imagenet-c:{out}#{name}/{sev}")
        assert ds.classes == clean.classes
        assert torch.equal(ds.y, clean.y)
        assert torch.equal(ds.x, _expected(clean, name, sev))
    kw = load_dataset(f"imagenet-c:{out}", corruption="ztest-noise", severity=3)
    assert torch.equal(kw.x, _expected(clean, NOISE, 3))
    # a plain image folder reads it too: class by class, with the right labels
    plain = load_dataset(f"folder:{out / NOISE / '3'}")
    order = np.argsort(clean.y.numpy(), kind="stable")
    assert plain.classes == folders
    assert torch.equal(plain.y, clean.y[order])
    assert torch.equal(plain.x, _expected(clean, NOISE, 3)[order])
    # the random corruption really depends on the seed
    assert not torch.equal(_expected(clean, NOISE, 3), _expected(clean, NOISE, 3, seed=1))


@pytest.mark.parametrize("grey", [False, True], ids=["rgb", "grey"])
def test_cifar_c_round_trip(tmp_path: Path, fakes: None, grey: bool) -> None:
    clean = _make_npz(tmp_path, grey)
    out = tmp_path / "c10-c"
    res = write_corrupted(
        clean, out, corruptions=[NOISE, SHIFT], fmt="cifar-c", batch_size=5, progress=False
    )
    assert res.written == [(NOISE, s) for s in range(1, 6)] + [(SHIFT, s) for s in range(1, 6)]
    c = 1 if grey else 3
    arr = np.load(out / f"{NOISE}.npy")
    labels = np.load(out / "labels.npy")
    assert arr.dtype == np.uint8 and arr.shape == (60, 16, 16, c)
    assert labels.dtype == np.uint8 and labels.tolist() == clean.y.tolist() * 5
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{NOISE}.npy", f"{SHIFT}.npy", "labels.npy", MANIFEST_NAME]
    )
    for s in range(1, 6):
        block = torch.from_numpy(arr[(s - 1) * 12 : s * 12].transpose(0, 3, 1, 2)).float() / 255
        assert torch.equal(block, _expected(clean, NOISE, s))
    for name, sev in [(NOISE, 2), (SHIFT, 5)]:
        ds = load_dataset(f"cifar-c:{out}#{name}/{sev}")
        assert ds.classes == clean.classes
        assert torch.equal(ds.y, clean.y)
        assert torch.equal(ds.x, _expected(clean, name, sev))
    assert len(load_dataset(f"cifar-c:{out}#{SHIFT}/1", limit=4)) == 4


def test_spec_only_changes_parameters(tmp_path: Path, fakes: None) -> None:
    clean = _make_npz(tmp_path, False)
    out = tmp_path / "spec"
    write_corrupted(clean, out, corruptions=SHIFT, severities=[2], spec="imagenet-c",
                    progress=False)  # fmt: skip
    got = load_dataset(f"imagenet-c:{out}#{SHIFT}/2").x
    amount = 0.2  # the imagenet-c table value at severity 2, not the interpolated one
    ref = np.rint((clean.x.numpy() * (1 - amount) + 0.5 * amount) * np.float32(255)) / 255
    assert np.abs(got.numpy() - ref).max() <= 1 / 255 + 1e-6
    assert json.loads((out / MANIFEST_NAME).read_text())["config"]["spec"] == "imagenet-c"


@pytest.mark.parametrize("fmt", ["imagenet-c", "cifar-c"])
def test_real_corruption_round_trip(tmp_path: Path, fmt: str) -> None:
    """Whatever real corruption is registered (the fakes above stand in when none is)."""
    candidates = ["contrast", "gaussian_noise", "brightness", "fog"]
    if fmt == "imagenet-c":
        candidates += ["mvh-contrast", "mvh-uniform-noise"]
    name = next((n for n in candidates if n in CORRUPTIONS), None)
    if name is None:
        pytest.skip(f"none of {candidates} is registered yet")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", x=rng.integers(0, 256, (4, 32, 32, 3), np.uint8), y=[0, 1, 0, 1])
    clean = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    sevs = "1-5" if fmt == "cifar-c" else "2"
    write_corrupted(clean, tmp_path / "c", corruptions=name, severities=sevs, fmt=fmt,
                    batch_size=3, progress=False)  # fmt: skip
    got = load_dataset(f"{fmt}:{tmp_path / 'c'}#{name}/2")
    assert torch.equal(got.y, clean.y)
    assert torch.equal(got.x, _expected(clean, name, 2))


# ----------------------------------------------------------------------------- resume / refuse


class Killed(Exception):
    """Stands in for a kill in the middle of a unit."""


def _counting(monkeypatch: pytest.MonkeyPatch, kill_at: int | None) -> list[str]:
    calls: list[str] = []
    real: Callable[..., torch.Tensor] = writer_module.corrupt

    def wrapper(x: torch.Tensor, name: str, severity: int, **kw: Any) -> torch.Tensor:
        calls.append(name)
        if kill_at is not None and len(calls) == kill_at:
            raise Killed
        return real(x, name, severity, **kw)

    monkeypatch.setattr(writer_module, "corrupt", wrapper)
    return calls


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every visible file except the manifest (its timings differ), decoded to pixels."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and p.name != MANIFEST_NAME:
            assert not any(part.startswith(".") for part in p.relative_to(root).parts), rel
            out[rel] = np.asarray(Image.open(p)).tobytes() if p.suffix == ".png" else p.read_bytes()
    return out


@pytest.mark.parametrize("fmt", ["imagenet-c", "cifar-c"])
def test_resume_after_interruption(
    tmp_path: Path, fakes: None, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    clean = _make_npz(tmp_path, False)
    sevs = (1, 2) if fmt == "imagenet-c" else (1, 2, 3, 4, 5)
    per_corruption = 3 * len(sevs)  # 12 images in batches of 5
    kw: dict[str, Any] = dict(
        corruptions=[SHIFT, NOISE], severities=sevs, fmt=fmt, batch_size=5, progress=False
    )
    out = tmp_path / "resumed"
    calls = _counting(monkeypatch, kill_at=per_corruption + 2)
    with pytest.raises(Killed):
        write_corrupted(clean, out, **kw)
    assert calls == [SHIFT] * per_corruption + [NOISE] * 2
    done = json.loads((out / MANIFEST_NAME).read_text())["done"]
    assert sorted(map(tuple, done)) == [(SHIFT, s) for s in sevs]
    assert NOISE not in available_corruptions(out, fmt)  # nothing half-written is visible
    with pytest.raises(InputError, match="re-run the same 'robustcv corrupt' command"):
        load_dataset(f"{fmt}:{out}#{NOISE}/1")
    load_dataset(f"{fmt}:{out}#{SHIFT}/1")  # finished units are readable

    calls = _counting(monkeypatch, kill_at=None)
    res = write_corrupted(clean, out, **kw)
    assert calls == [NOISE] * per_corruption  # the finished corruption was not redone
    assert res.skipped == [(SHIFT, s) for s in sevs]
    assert res.written == [(NOISE, s) for s in sevs]

    calls = _counting(monkeypatch, kill_at=None)
    again = write_corrupted(clean, out, **kw)
    assert calls == [] and again.written == [] and len(again.skipped) == 2 * len(sevs)

    straight = tmp_path / "straight"
    write_corrupted(clean, straight, **kw)
    assert _snapshot(out) == _snapshot(straight)


def test_extend_with_more_corruptions(tmp_path: Path, fakes: None) -> None:
    clean = _make_npz(tmp_path, True)
    out = tmp_path / "ext"
    write_corrupted(clean, out, corruptions=SHIFT, severities=[1], progress=False)
    res = write_corrupted(clean, out, corruptions=[SHIFT, NOISE], severities="1-2", progress=False)
    assert res.skipped == [(SHIFT, 1)]
    assert res.written == [(SHIFT, 2), (NOISE, 1), (NOISE, 2)]


def test_refuses_a_foreign_folder(tmp_path: Path, fakes: None) -> None:
    clean = _make_npz(tmp_path, False)
    out = tmp_path / "c"
    write_corrupted(clean, out, corruptions=SHIFT, severities=[1, 2], progress=False)
    changes: list[tuple[dict[str, Any], str]] = [
        ({"seed": 3}, "seed 0 vs 3"),
        ({"spec": "cifar-10-c"}, 'spec "auto" vs "cifar-10-c"'),
        ({"fmt": "cifar-c", "severities": "1-5"}, 'format "imagenet-c" vs "cifar-c"'),
    ]
    for kwargs, what in changes:
        kw: dict[str, Any] = {"corruptions": SHIFT, "severities": [1], "progress": False}
        with pytest.raises(InputError, match="different configuration") as info:
            write_corrupted(clean, out, **{**kw, **kwargs})
        assert what in str(info.value) and "--force" in str(info.value)
    with pytest.raises(InputError, match="n 12 vs 10"):
        write_corrupted(clean.limit(10), out, corruptions=SHIFT, progress=False)
    other = Dataset(clean.name, clean.split, clean.classes, clean.source).subset(
        np.arange(12)[::-1]
    )
    with pytest.raises(InputError, match="fingerprint"):
        write_corrupted(other, out, corruptions=SHIFT, progress=False)
    # --force discards the old units and writes the new configuration
    res = write_corrupted(
        clean, out, corruptions=NOISE, severities=[2], seed=3, force=True, progress=False
    )
    assert res.written == [(NOISE, 2)]
    assert available_corruptions(out, "imagenet-c") == {NOISE: (2,)}
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["config"]["seed"] == 3 and manifest["done"] == [[NOISE, 2]]
    assert torch.equal(load_dataset(f"imagenet-c:{out}#{NOISE}/2").x, _expected(clean, NOISE, 2, 3))


def test_refuses_a_non_empty_folder_without_manifest(tmp_path: Path, fakes: None) -> None:
    clean = _make_npz(tmp_path, False)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match=r"not empty.*new or empty folder.*--force"):
        write_corrupted(clean, out, corruptions=SHIFT, severities=[1], progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    write_corrupted(clean, out, corruptions=SHIFT, severities=[1], force=True, progress=False)
    assert (out / "notes.txt").read_text() == "keep me"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(InputError, match="manifest is damaged"):
        write_corrupted(clean, bad, corruptions=SHIFT, progress=False)


def test_bad_write_arguments(tmp_path: Path, fakes: None) -> None:
    clean = _make_npz(tmp_path, False)
    out = tmp_path / "x"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"fmt": "cifar-c", "severities": "1,3"}, "stacks exactly the 5 severities"),
        ({"fmt": "cifar-c", "corruptions": MVH, "severities": "all"}, "has 3 levels"),
        ({"corruptions": MVH, "severities": "1-5"}, "levels 1..3"),
        ({"fmt": "webdataset"}, "unknown -C format"),
        ({"spec": "imagenet"}, "unknown spec"),
        ({"batch_size": 0}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"corruptions": "fgo"}, "unknown corruption"),
    ]
    for kwargs, needle in cases:
        kw: dict[str, Any] = {"corruptions": SHIFT, "progress": False, **kwargs}
        with pytest.raises(InputError, match=needle):
            write_corrupted(clean, out, **kw)
    assert not out.exists()  # nothing is created before the arguments check out
    res = write_corrupted(clean, out, corruptions=MVH, severities="all", progress=False)
    assert res.written == [(MVH, 1), (MVH, 2), (MVH, 3)]


def test_image_too_small(tmp_path: Path, fakes: None) -> None:
    tiny = CorruptionDef("ztest_big", _shift, "blur", False, ("amount",),
                         {"imagenet-c": ((0.1,),) * 5, "cifar-10-c": ((0.1,),) * 5},
                         min_size=32)  # fmt: skip
    register_corruption(tiny)
    try:
        with pytest.raises(InputError, match=r"needs at least 32x32.*image_size"):
            write_corrupted(_make_npz(tmp_path, True), tmp_path / "o", corruptions="ztest_big",
                            progress=False)  # fmt: skip
    finally:
        CORRUPTIONS._entries.pop("ztest_big")
        CORRUPTIONS._aliases.pop("ztest-big")


# ----------------------------------------------------------------------------- published layouts


def _published_cifar_c(root: Path) -> tuple[np.ndarray, np.ndarray]:
    root.mkdir()
    rng = np.random.default_rng(3)
    fog = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)  # 5 severities x 4 images
    labels = np.tile(np.array([3, 9, 0, 3], dtype=np.uint8), 5)
    np.save(root / "fog.npy", fog)
    np.save(root / "gaussian_noise.npy", fog[::-1].copy())
    np.save(root / "labels.npy", labels)
    return fog, labels


def test_published_cifar_c(tmp_path: Path) -> None:
    root = tmp_path / "CIFAR-10-C"
    fog, _ = _published_cifar_c(root)
    ds = load_dataset(f"cifar-c:{root}#fog/2")
    assert ds.classes == CIFAR10_CLASSES and len(ds) == 4
    assert ds.y.tolist() == [3, 9, 0, 3]
    assert torch.equal(ds.x, torch.from_numpy(fog[4:8]).permute(0, 3, 1, 2).float() / 255)
    noise = load_dataset(f"cifar-c:{root}", corruption="gaussian-noise", severity=5)
    assert torch.equal(noise.x, torch.from_numpy(fog[3::-1].copy()).permute(0, 3, 1, 2) / 255.0)
    # a bare path is recognised as cifar-c
    assert detect_c_format(root) == "cifar-c"
    assert torch.equal(load_dataset(root, corruption="fog", severity=2).x, ds.x)
    with pytest.raises(InputError, match=r"cifar-c:.*#fog/3.*it holds: fog 1-5, gaussian_noise"):
        load_dataset(root)
    with pytest.raises(InputError, match="did you mean 'fog'"):
        load_dataset(f"cifar-c:{root}#fgo/1")
    with pytest.raises(InputError, match="no severity 6 of 'fog'; it holds severities 1-5"):
        load_dataset(f"cifar-c:{root}#fog/6")
    with pytest.raises(InputError, match="give it once"):
        load_dataset(f"cifar-c:{root}#fog/2", severity=3)
    with pytest.raises(InputError, match="apply to -C datasets only"):
        np.savez(tmp_path / "p.npz", x=np.zeros((2, 8, 8), np.uint8), y=[0, 1])
        load_dataset(f"npz:{tmp_path / 'p.npz'}", corruption="fog", severity=1)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_dataset(f"cifar-c:{tmp_path / 'nope'}#fog/1")
    with pytest.raises(InputError, match="holds a cifar-c dataset"):
        _ = (root / MANIFEST_NAME).write_text(
            json.dumps({"format": "cifar-c", "config": {}, "done": []})
        )
        load_dataset(f"imagenet-c:{root}#fog/1")


@pytest.mark.parametrize(
    ("write", "needle"),
    [
        (lambda r: np.save(r / "fog.npy", np.zeros((20, 32, 32, 3), np.float32)), "float32"),
        (lambda r: np.save(r / "fog.npy", np.zeros((21, 32, 32, 3), np.uint8)), "5N"),
        (lambda r: np.save(r / "fog.npy", np.zeros((20, 32, 32, 5), np.uint8)), "C = 1 or 3"),
        (lambda r: (r / "fog.npy").write_bytes(b"garbage"), "damaged"),
        (lambda r: np.save(r / "labels.npy", np.zeros(7, np.uint8)), "7 labels"),
        (lambda r: np.save(r / "labels.npy", np.zeros(20, np.float32)), "expected integer"),
        (lambda r: (r / "labels.npy").unlink(), "no labels.npy"),
    ],
)
def test_malformed_cifar_c(tmp_path: Path, write: Callable[[Path], Any], needle: str) -> None:
    root = tmp_path / "c"
    _published_cifar_c(root)
    write(root)
    with pytest.raises(InputError, match=needle):
        load_dataset(f"cifar-c:{root}#fog/1")


def test_cifar_c_labels_once_and_greyscale(tmp_path: Path) -> None:
    root = tmp_path / "g"
    root.mkdir()
    imgs = np.arange(5 * 2 * 8 * 8, dtype=np.uint8).reshape(10, 8, 8)
    np.save(root / "blur.npy", imgs)
    np.save(root / "labels.npy", np.array([1, 0], np.int64))
    (root / "classes.txt").write_text("cat\ndog\n")
    ds = load_dataset(f"cifar-c:{root}#blur/3")
    assert ds.classes == ["cat", "dog"] and ds.y.tolist() == [1, 0]
    assert torch.equal(ds.x, torch.from_numpy(imgs[4:6]).unsqueeze(1).float() / 255)


def _published_imagenet_c(root: Path) -> dict[int, tuple[int, np.ndarray]]:
    """fog/3/<wnid>/ILSVRC2012_val_<id>.JPEG, ids interleaved across the two classes."""
    rng = np.random.default_rng(5)
    truth = {}
    for wnid_index, (wnid, ids) in enumerate([("n01440764", (2, 9, 11)), ("n01443537", (1, 10))]):
        folder = root / "fog" / "3" / wnid
        folder.mkdir(parents=True)
        for i in ids:
            path = folder / f"ILSVRC2012_val_{i:08d}.JPEG"
            Image.fromarray(rng.integers(0, 256, (24, 24, 3), np.uint8)).save(path, quality=85)
            truth[i] = (wnid_index, np.asarray(Image.open(path).convert("RGB")))
    (root / "fog" / "5" / "n01440764").mkdir(parents=True)
    Image.new("RGB", (24, 24)).save(root / "fog" / "5" / "n01440764" / "ILSVRC2012_val_1.JPEG")
    return truth


def test_published_imagenet_c(tmp_path: Path) -> None:
    root = tmp_path / "ImageNet-C"
    truth = _published_imagenet_c(root)
    ds = load_dataset(f"imagenet-c:{root}#fog/3")
    assert ds.classes == ["n01440764", "n01443537"]
    ids = sorted(truth)  # validation order, not class by class
    assert ds.y.tolist() == [truth[i][0] for i in ids] == [1, 0, 0, 1, 0]
    ref = torch.from_numpy(np.stack([truth[i][1] for i in ids])).permute(0, 3, 1, 2) / 255.0
    assert torch.equal(ds.x, ref.float())
    plain = load_dataset(f"folder:{root / 'fog' / '3'}")
    assert plain.y.tolist() == [0, 0, 0, 1, 1]
    assert detect_c_format(root) == "imagenet-c"
    assert len(load_dataset(root, corruption="FOG", severity=5)) == 1
    with pytest.raises(InputError, match="no severity 4 of 'fog'; it holds severities 3,5"):
        load_dataset(f"imagenet-c:{root}#fog/4")
    with pytest.raises(InputError, match=r"imagenet-c:.*#fog/3.*it holds: fog 3,5"):
        load_dataset(f"imagenet-c:{root}")
    with pytest.raises(InputError, match="no corruption 'snow'"):
        load_dataset(f"imagenet-c:{root}#snow/3")
    assert detect_c_format(tmp_path / "ImageNet-C" / "fog" / "3") is None


def test_write_corrupted_on_processes_writes_the_same_bytes(tmp_path: Path) -> None:
    """(corruption, severity, shard) units on a process pool: identical files, resumable."""
    import numpy as np

    from robustcv.corruptions.dataset import write_corrupted
    from robustcv.data import ArraySource, Dataset

    rng = np.random.default_rng(3)
    ds = Dataset("toy", "test", ["a", "b"], ArraySource(
        rng.integers(0, 256, (17, 20, 20), np.uint8), rng.integers(0, 2, 17)))  # fmt: skip
    kw: dict[str, object] = {"corruptions": "shot_noise", "severities": "1,4", "progress": False}
    for fmt in ("imagenet-c", "cifar-c"):
        sev = "all" if fmt == "cifar-c" else "1,4"
        write_corrupted(ds, tmp_path / f"s-{fmt}", fmt=fmt, **{**kw, "severities": sev})
        res = write_corrupted(ds, tmp_path / f"p-{fmt}", fmt=fmt, executor="processes",
                              workers=2, shard_size=6, **{**kw, "severities": sev})  # fmt: skip
        assert len(res.written) == (5 if fmt == "cifar-c" else 2)

        def files(root: Path) -> dict[str, bytes]:
            return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
                    if p.is_file() and p.name != "robustcv_manifest.json"}  # fmt: skip

        assert files(tmp_path / f"p-{fmt}") == files(tmp_path / f"s-{fmt}")
    with pytest.raises(InputError, match="unknown executor 'threads'"):
        write_corrupted(ds, tmp_path / "x", executor="threads", **kw)
    with pytest.raises(InputError, match="shard_size must be an int >= 1"):
        write_corrupted(ds, tmp_path / "x", executor="processes", shard_size=0, **kw)
