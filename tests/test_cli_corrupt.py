"""``robustcv corrupt`` and ``robustcv list corruptions``: output, JSON and exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from robustcv.cli._common import parse_size
from robustcv.cli.corrupt import corruption_rows
from robustcv.cli.main import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, main
from robustcv.core.errors import InputError
from robustcv.corruptions import CORRUPTIONS, corrupt
from robustcv.corruptions.base import CorruptionDef, register_corruption
from robustcv.data import load_dataset
from robustcv.data.corrupted import MANIFEST_NAME

SHIFT, NOISE, MVH = "zcli_shift", "zcli_noise", "mvh-zcli"


def _shift(x: torch.Tensor, p: dict[str, float], rng: Any) -> torch.Tensor:
    return x * (1.0 - p["amount"]) + 0.5 * p["amount"]


def _noise(x: torch.Tensor, p: dict[str, float], rng: Any) -> torch.Tensor:
    return (x + p["sigma"] * rng.randn(*x.shape[1:])).clamp(0.0, 1.0)


FAKES = [
    # amount interpolates 0.05*s (32 px) .. 0.1*s (224 px); radius is an integer parameter
    CorruptionDef(SHIFT, _shift, "digital", True, ("amount", "radius"),
                  {"imagenet-c": tuple((0.1 * s, 2.0 * s) for s in range(1, 6)),
                   "cifar-10-c": tuple((0.05 * s, 1.0 * s) for s in range(1, 6))},
                  integer_params=("radius",), summary="test: blend towards grey"),
    CorruptionDef(NOISE, _noise, "noise", False, ("sigma",),
                  {"imagenet-c": tuple((0.04 * s,) for s in range(1, 6)),
                   "cifar-10-c": tuple((0.02 * s,) for s in range(1, 6))},
                  random=True, summary="test: gaussian noise"),
    CorruptionDef(MVH, _shift, "mvh", False, ("amount", "radius"),
                  {"levels": ((0.0, 0.0), (0.3, 1.0), (0.9, 2.0))}, summary="test: levels"),
]  # fmt: skip


@pytest.fixture(autouse=True)
def fakes() -> Iterator[None]:
    for d in FAKES:
        register_corruption(d)
    try:
        yield
    finally:
        for d in FAKES:
            CORRUPTIONS._entries.pop(d.name, None)
            CORRUPTIONS._aliases.pop(d.name.replace("_", "-"), None)


@pytest.fixture
def data(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    path = tmp_path / "toy.npz"
    np.savez(path, x=rng.integers(0, 256, (10, 16, 16, 3), np.uint8), y=np.arange(10) % 3)
    return f"npz:{path}"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(code: int, err: str, *needles: str) -> None:
    assert code == EXIT_USAGE, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("robustcv: error:"), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# ----------------------------------------------------------------------------- corrupt


def test_corrupt_writes_skips_and_reads_back(
    tmp_path: Path, data: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c"
    argv = ["corrupt", "--data", data, "--out", str(out), "--corruptions", f"{SHIFT},{NOISE}",
            "--severities", "1-3,5", "--limit", "8", "--batch-size", "3", "--quiet"]  # fmt: skip
    code, text, err = run(argv, capsys)
    assert code == EXIT_OK, err
    assert "8 units written, 0 skipped" in text
    assert f"wrote {SHIFT} severities 1-3,5" in text and f"wrote {NOISE} severities 1-3,5" in text
    assert f"imagenet-c:{out}#<corruption>/<severity>" in text
    assert err == ""  # --quiet: no progress bar
    ds = load_dataset(f"imagenet-c:{out}#{NOISE}/5")
    clean = load_dataset(data, limit=8)
    q = np.rint(corrupt(clean.x, NOISE, 5).numpy() * np.float32(255)).astype(np.uint8)
    assert torch.equal(ds.x, torch.from_numpy(q).float() / 255) and torch.equal(ds.y, clean.y)

    code, text, err = run([*argv, "--json"], capsys)
    assert code == EXIT_OK, err
    res = json.loads(text)
    assert res["written"] == [] and len(res["skipped"]) == 8
    assert res["n"] == 8 and res["image_shape"] == [3, 16, 16] and res["format"] == "imagenet-c"
    assert res["manifest"] == str(out / MANIFEST_NAME)


def test_corrupt_cifar_c_and_progress(
    tmp_path: Path, data: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c10"
    argv = ["corrupt", "--data", data, "--out", str(out), "--corruptions", SHIFT,
            "--format", "cifar-c", "--spec", "cifar-10-c", "--json"]  # fmt: skip
    code, text, err = run(argv, capsys)
    assert code == EXIT_OK, err
    assert json.loads(text)["written"] == [[SHIFT, s] for s in range(1, 6)]
    assert "corrupt" in err  # the progress bar goes to stderr unless --quiet
    arr = np.load(out / f"{SHIFT}.npy")
    assert arr.shape == (50, 16, 16, 3) and arr.dtype == np.uint8
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["config"]["spec"] == "cifar-10-c" and manifest["format"] == "cifar-c"


def test_corrupt_default_severities_are_all_levels(
    tmp_path: Path, data: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["corrupt", "--data", data, "--out", str(tmp_path / "m"), "--corruptions",
            f"{MVH},{SHIFT}", "--limit", "2", "--quiet", "--json"]  # fmt: skip
    code, text, err = run(argv, capsys)
    assert code == EXIT_OK, err
    written = json.loads(text)["written"]
    assert written == [[MVH, 1], [MVH, 2], [MVH, 3]] + [[SHIFT, s] for s in range(1, 6)]


def test_corrupt_interrupted(
    tmp_path: Path, data: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import robustcv.corruptions.dataset as writer_module

    def stop(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise KeyboardInterrupt

    monkeypatch.setattr(writer_module, "corrupt", stop)
    code, _, err = run(["corrupt", "--data", data, "--out", str(tmp_path / "o"),
                        "--corruptions", SHIFT, "--quiet"], capsys)  # fmt: skip
    assert code == EXIT_INTERNAL
    assert "run the same command again to resume" in err and "Traceback" not in err


def test_corrupt_refuses_then_force(
    tmp_path: Path, data: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "c"
    base = ["corrupt", "--data", data, "--out", str(out), "--corruptions", SHIFT,
            "--severities", "2", "--quiet"]  # fmt: skip
    assert run(base, capsys)[0] == EXIT_OK
    code, _, err = run([*base, "--seed", "4"], capsys)
    assert_usage_error(code, err, "different configuration", "seed 0 vs 4", "--force")
    code, text, err = run([*base, "--seed", "4", "--force"], capsys)
    assert code == EXIT_OK, err
    assert "1 units written" in text
    assert json.loads((out / MANIFEST_NAME).read_text())["config"]["seed"] == 4


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--severities", "0-2"], ["severities"]),
        (["--severities", "1,3", "--format", "cifar-c"], ["stacks exactly the 5 severities"]),
        (["--corruptions", "zcli_shfit"], ["unknown corruption", "did you mean"]),
        (["--corruptions", MVH, "--severities", "4"], ["levels 1..3"]),
        (["--limit", "0"], ["--limit must be >= 1"]),
        (["--batch-size", "0"], ["--batch-size must be >= 1"]),
        (["--format", "tfrecord"], ["invalid choice: 'tfrecord'"]),
        (["--spec", "imagenet"], ["invalid choice: 'imagenet'"]),
        (["--image-size", "axb"], ["cannot parse size"]),
    ],
)
def test_corrupt_bad_input(
    tmp_path: Path,
    data: str,
    extra: list[str],
    needles: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["corrupt", "--data", data, "--out", str(tmp_path / "o"), "--corruptions", SHIFT]
    code, _, err = run([*argv, *extra, "--quiet"], capsys)
    assert_usage_error(code, err, *needles)


def test_corrupt_missing_arguments_and_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["corrupt", "--out", str(tmp_path)], capsys)
    assert_usage_error(code, err, "--data")
    code, _, err = run(["corrupt", "--data", f"npz:{tmp_path / 'none.npz'}", "--out",
                        str(tmp_path / "o"), "--corruptions", SHIFT], capsys)  # fmt: skip
    assert_usage_error(code, err, "does not exist")


def test_corrupt_reads_c_data_with_fragment(
    tmp_path: Path, data: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A -C dataset is itself a --data spec (here: corrupt the corrupted images again)."""
    first, second = tmp_path / "a", tmp_path / "b"
    assert run(["corrupt", "--data", data, "--out", str(first), "--corruptions", SHIFT,
                "--severities", "1", "--quiet"], capsys)[0] == EXIT_OK  # fmt: skip
    code, text, err = run(["corrupt", "--data", f"imagenet-c:{first}#{SHIFT}/1", "--out",
                           str(second), "--corruptions", NOISE, "--severities", "2", "--quiet",
                           "--json"], capsys)  # fmt: skip
    assert code == EXIT_OK, err
    assert json.loads(text)["n"] == 10
    manifest = json.loads((second / MANIFEST_NAME).read_text())
    assert manifest["config"]["dataset"] == f"toy-c#{SHIFT}/1"


# ----------------------------------------------------------------------------- list corruptions


def test_list_corruptions_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["list", "corruptions"], capsys)
    assert code == EXIT_OK, err
    assert out.startswith("corruptions:\n")
    line = next(ln for ln in out.splitlines() if ln.startswith(SHIFT))
    assert line.split()[:3] == [SHIFT, "digital", "benchmark"]
    assert "held-out" in next(ln for ln in out.splitlines() if ln.startswith(NOISE))
    assert "mvh" in next(ln for ln in out.splitlines() if ln.startswith(MVH))
    assert "severity" not in out  # no parameter tables without --spec


def _param_table(out: str, name: str) -> list[list[str]]:
    block = out.split(f"\n{name} [", 1)[1].split("\n\n", 1)[0]
    return [ln.split() for ln in block.splitlines()[3:]]


def test_list_corruptions_spec_tables(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["list", "corruptions", "--spec", "auto", "--size", "128x128"], capsys)
    assert code == EXIT_OK, err
    assert f"{SHIFT} [digital, benchmark], spec auto at 128x128 (alpha 0.5):" in out
    # alpha 0.5: amount halfway between 0.05*s and 0.1*s; radius halfway, rounded to an int
    rows = _param_table(out, SHIFT)
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5"]
    assert [float(r[1]) for r in rows] == pytest.approx([0.075 * s for s in range(1, 6)])
    assert [float(r[2]) for r in rows] == [round(1.5 * s) for s in range(1, 6)]
    assert f"{MVH} [mvh], published level list:" in out
    assert [r[1] for r in _param_table(out, MVH)] == ["0", "0.3", "0.9"]

    code, out, err = run(["list", "corruptions", "--spec", "imagenet-c", "--json"], capsys)
    assert code == EXIT_OK, err
    by_name = {r["name"]: r for r in json.loads(out)["corruptions"]}
    shift = by_name[SHIFT]["params"]
    assert shift["spec"] == "imagenet-c" and shift["param_names"] == ["amount", "radius"]
    assert shift["values"] == [[pytest.approx(0.1 * s), 2.0 * s] for s in range(1, 6)]
    assert by_name[MVH]["params"]["spec"] == "levels"
    assert len(by_name[MVH]["params"]["values"]) == 3
    assert by_name[NOISE]["random"] is True and by_name[NOISE]["group"] == "held-out"

    code, out, _ = run(["list", "corruptions", "--spec", "auto", "--size", "28", "--json"], capsys)
    noise = {r["name"]: r for r in json.loads(out)["corruptions"]}[NOISE]["params"]
    assert noise["size"] == [28, 28] and noise["alpha"] == 0.0
    assert noise["values"][4] == [pytest.approx(0.1)]


def test_list_corruptions_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["list", "corruptions", "--spec", "imagenet"], capsys)
    assert_usage_error(code, err, "invalid choice: 'imagenet'")
    code, _, err = run(["list", "corruptions", "--size", "0x5"], capsys)
    assert_usage_error(code, err, "cannot parse size")
    with pytest.raises(InputError, match="unknown spec"):
        corruption_rows("imagenet")


def test_list_all_includes_corruptions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["list", "--json"], capsys)
    assert code == EXIT_OK, err
    assert SHIFT in [r["name"] for r in json.loads(out)["corruptions"]]


def test_parse_size() -> None:
    assert parse_size("32X48") == (32, 48) and parse_size(" 7 ") == (7, 7)
    for bad in ("", "1x2x3", "-3", "ax2"):
        with pytest.raises(InputError):
            parse_size(bad)
