"""The ``robustcv`` command line, run in-process: output, JSON, and exit codes 0 / 2 / 3."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import robustcv
import robustcv.cli.listing as listing
import robustcv.diagnostics.accuracy as acc_mod
from robustcv.cli._common import parse_preprocess
from robustcv.cli.main import (
    COMMANDS,
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_USAGE,
    main,
)
from robustcv.core.errors import InputError
from robustcv.data.dataset import ArraySource, Dataset
from robustcv.diagnostics.accuracy import accuracy
from robustcv.models import build_architecture, load_model, load_weights


@pytest.fixture(autouse=True)
def _one_thread_for_tiny_work(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tiny tensors run faster on one thread (and do not spin against other CPU users)."""
    if request.node.get_closest_marker("fmnist") is not None:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI; argparse errors raise SystemExit, which is turned into the code."""
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
    assert len(lines) == 1, f"expected a one-line message, got: {err!r}"
    assert lines[0].startswith("robustcv: error:")
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"


@pytest.fixture
def npz_data(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(40, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=40)
    labels[:10] = np.arange(10)
    path = tmp_path / "toy.npz"
    np.savez(path, x=images, y=labels)
    return path, images, labels


# ----------------------------------------------------------------------------- list / version


def test_list_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["list"], capsys)
    assert code == EXIT_OK, err
    for needle in ("models:", "zoo:fmnist-cnn", "datasets:", "fashion-mnist", "recipes:",
                   "fgsm-rs", "architectures:", "small-cnn"):  # fmt: skip
        assert needle in out


def test_list_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["list", "models", "--json"], capsys)
    assert code == EXIT_OK, err
    data = json.loads(out)
    assert list(data) == ["models"]
    rows = {row["name"]: row for row in data["models"]}
    from robustcv.models.zoo import ZOO

    assert set(rows) == {f"zoo:{name}" for name in ZOO.names()}
    assert len(rows) >= 8  # the two first models plus one per remedy
    assert rows["zoo:fmnist-cnn"]["clean_accuracy"] >= 0.91
    assert rows["zoo:fmnist-cnn"]["robust_accuracy"] is None


@pytest.mark.parametrize("what", ["datasets", "recipes", "architectures"])
def test_list_sections_json(what: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["list", what, "--json"], capsys)
    assert code == EXIT_OK
    data = json.loads(out)
    names = [row["name"] for row in data[what]]
    expected = {"datasets": "fashion-mnist", "recipes": "pgd-at", "architectures": "small-cnn"}
    assert expected[what] in names
    if what == "datasets":
        assert "fmnist" in data[what][0]["aliases"]


def test_version_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == EXIT_OK
    assert out.strip() == f"robustcv {robustcv.__version__}"


def test_python_m_robustcv_version() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "robustcv", "--version"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"robustcv {robustcv.__version__}"


def _console_script() -> list[str]:
    """The installed ``robustcv`` script next to this Python, else ``python -m robustcv``."""
    script = Path(sys.executable).with_name("robustcv")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "robustcv"]


@pytest.mark.parametrize(
    ("argv", "codes"),
    [
        (["list", "--json"], {EXIT_BROKEN_PIPE}),
        (["list", "corruptions"], {EXIT_BROKEN_PIPE}),
        (["--help"], {EXIT_OK}),  # argparse drops a failed write of the help itself
    ],
)
def test_closed_pipe_exits_quietly(argv: list[str], codes: set[int]) -> None:
    """``robustcv list --json | head -c 20``: no traceback, no 'internal error', exit 141."""
    proc = subprocess.Popen(
        [*_console_script(), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before the first byte is written
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert code in codes, err
    assert err == "", err


def test_closed_pipe_after_some_output() -> None:
    """Like ``| head -c 20``: read a little, then close; whatever the timing, it ends quietly."""
    proc = subprocess.Popen(
        [*_console_script(), "list", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(20).startswith(b"{")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (EXIT_OK, EXIT_BROKEN_PIPE), err
    assert err == "", err


def test_broken_pipe_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def closed(args: Any) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(listing, "run", closed)
    code, _, err = run(["list"], capsys)
    assert code == EXIT_BROKEN_PIPE and err == ""


def test_attack_help_names_the_real_default_ensemble(capsys: pytest.CaptureFixture[str]) -> None:
    from robustcv.attacks.ensemble import DEFAULT_ENSEMBLE, default_ensemble

    with pytest.raises(SystemExit):
        main(["attack", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for norm in ("linf", "l2", "l1", "l0"):
        assert ", ".join(name for name, _ in default_ensemble(norm)) in out
    assert all(name in out for name, _ in DEFAULT_ENSEMBLE)


def test_commands_import_common_not_main() -> None:
    import ast

    for path in sorted((Path(robustcv.__file__).parent / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and path.name != "__init__.py":
                assert node.module != "robustcv.cli.main", f"{path.name} imports cli.main"
    names = [m.NAME for m in COMMANDS]
    assert names == ["list", "eval", "attack", "train", "data", "corrupt", "explain", "audit",
                     "compare", "check", "report", "leaderboard"]  # fmt: skip


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([], capsys)
    assert code == EXIT_USAGE
    assert "usage: robustcv" in out


def test_data_without_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["data"], capsys)
    assert_usage_error(code, err, "data fetch")


# ----------------------------------------------------------------------------- eval


def test_eval_zoo_on_npz_json(
    npz_data: tuple[Path, np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    path, images, labels = npz_data
    code, out, err = run(
        ["eval", "--model", "zoo:fmnist-cnn", "--data", f"npz:{path}", "--json", "--quiet",
         "--batch-size", "16"],
        capsys,
    )  # fmt: skip
    assert code == EXIT_OK, err
    data = json.loads(out)
    model = load_model("zoo:fmnist-cnn")
    x = torch.from_numpy(images).float().div(255)[:, None]
    expected = accuracy(model, x, torch.from_numpy(labels).long(), progress=False)
    assert data["model"] == "zoo:fmnist-cnn"
    assert data["data"] == f"npz:{path}"
    assert data["split"] == "test"
    assert data["n"] == 40
    assert data["correct"] == expected.correct
    assert data["accuracy"] == pytest.approx(expected.accuracy)
    assert data["ci95"] == pytest.approx(list(expected.ci95))
    assert data["per_class"] == {str(k): pytest.approx(v) for k, v in expected.per_class.items()}
    assert data["classes"] == [str(i) for i in range(10)]


def test_eval_text_and_limit(
    npz_data: tuple[Path, np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = npz_data
    code, out, err = run(
        ["eval", "--model", "zoo:fmnist-cnn", "--data", f"npz:{path}", "--limit", "25", "--quiet"],
        capsys,
    )
    assert code == EXIT_OK, err
    assert "zoo:fmnist-cnn on toy/test (N=25): accuracy" in out
    assert "95% CI" in out


def test_eval_factory_with_weights_and_preprocess(
    npz_data: tuple[Path, np.ndarray, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, images, labels = npz_data
    factory = tmp_path / "arch.py"
    factory.write_text(
        "from robustcv.models.architectures import SmallCNN\n\n\n"
        "def factory():\n    return SmallCNN()\n"
    )
    torch.manual_seed(0)
    from robustcv.models.architectures import SmallCNN

    net = SmallCNN().eval()
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    code, out, err = run(
        ["eval", "--model", f"{factory}:factory", "--weights", str(weights), "--data",
         f"npz:{path}", "--preprocess", "range=0,255", "--preprocess", "mean=120,std=60",
         "--json"],
        capsys,
    )  # fmt: skip
    assert code == EXIT_OK, err
    x = torch.from_numpy(images).float()[:, None]  # 0-255, the network's input range
    with torch.no_grad():
        pred = net((x - 120) / 60).argmax(1)
    assert json.loads(out)["correct"] == int((pred == torch.from_numpy(labels)).sum())


@pytest.mark.parametrize(
    "items,expected",
    [
        (["mean=0.5,std=0.25"], {"mean": [0.5], "std": [0.25]}),
        (["mean=0.485,0.456,0.406,std=0.229,0.224,0.225"],
         {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}),
        (["range=0,255"], {"input_range": (0.0, 255.0)}),
        (["range=-1,1,mean=0.1"], {"input_range": (-1.0, 1.0), "mean": [0.1]}),
        (["mean=0.5", "std=0.2", "range=0,255"],
         {"mean": [0.5], "std": [0.2], "input_range": (0.0, 255.0)}),
        ([], {}),
    ],
)  # fmt: skip
def test_parse_preprocess(items: list[str], expected: dict[str, Any]) -> None:
    assert parse_preprocess(items) == expected


@pytest.mark.parametrize(
    "item,pattern",
    [
        ("mean", "cannot parse"),
        ("foo=1", "cannot parse"),
        ("mean=0.5 std=0.2", "cannot parse"),
        ("mean=0.5,bar=2", "cannot parse"),
        ("mean=a,b", "needs numbers"),
        ("mean=,std=0.2", "has no values"),
        ("range=0", "two numbers"),
        ("range=0,1,2", "two numbers"),
    ],
)
def test_parse_preprocess_rejects(item: str, pattern: str) -> None:
    with pytest.raises(InputError, match=pattern):
        parse_preprocess([item])


# ----------------------------------------------------------------------------- usage errors


def test_unknown_dataset_suggests_close_match(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["eval", "--model", "zoo:fmnist-cnn", "--data", "fashion-mnst"], capsys)
    assert_usage_error(code, err, "unknown dataset 'fashion-mnst'", "did you mean 'fashion-mnist'")


def test_unknown_zoo_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["eval", "--model", "zoo:fmnist-cn", "--data", "fmnist"], capsys)
    assert_usage_error(code, err, "unknown zoo model", "did you mean")


@pytest.mark.parametrize("spec", ["missing.pt", "missing.onnx", "missing.py:factory"])
def test_missing_model_file(spec: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["eval", "--model", str(tmp_path / spec), "--data", "fmnist"], capsys)
    assert_usage_error(code, err, "does not exist", "missing.")


def test_missing_data_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        ["eval", "--model", "zoo:fmnist-cnn", "--data", f"npz:{tmp_path / 'nope.npz'}"], capsys
    )
    assert_usage_error(code, err, "does not exist")


def test_bad_preprocess_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        ["eval", "--model", "zoo:fmnist-cnn", "--data", "fmnist", "--preprocess", "mean=x"], capsys
    )
    assert_usage_error(code, err, "--preprocess mean needs numbers")


def test_preprocess_with_zoo_model_is_refused(
    npz_data: tuple[Path, np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = npz_data
    code, _, err = run(
        ["eval", "--model", "zoo:fmnist-cnn", "--data", f"npz:{path}", "--preprocess",
         "mean=0.5"],
        capsys,
    )  # fmt: skip
    assert_usage_error(code, err, "zoo models carry their own")


@pytest.mark.parametrize("size", ["0", "-3"])
def test_bad_batch_size(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["list", "--batch-size", size], capsys)
    assert_usage_error(code, err, "--batch-size must be >= 1")
    assert out == ""


def test_bad_weights_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    factory = tmp_path / "arch.py"
    factory.write_text("from robustcv.models import SmallCNN\n\n\ndef f():\n    return SmallCNN()")
    evil = tmp_path / "evil.pt"
    torch.save(torch.nn.Linear(2, 2), evil)
    code, _, err = run(
        ["eval", "--model", f"{factory}:f", "--weights", str(evil), "--data", "fmnist"], capsys
    )
    assert_usage_error(code, err, "state_dict")


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["list", "--bogus"], "unrecognized arguments: --bogus"),
        (["eval", "--data", "fmnist"], "--model"),
        (["list", "--batch-size", "many"], "invalid int value"),
        (["train", "--recipe", "adam", "--out", "x"], "invalid choice: 'adam'"),
        (["list", "things"], "invalid choice: 'things'"),
        (["data", "fetch", "mnist"], "invalid choice: 'mnist'"),
    ],
)
def test_argparse_errors(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(argv, capsys)
    assert_usage_error(code, err, needle)
    assert out == ""


def test_bad_train_values_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for flag, value in (("--eps", "0"), ("--epochs", "0"), ("--limit", "0"), ("--steps", "500")):
        code, _, err = run(["train", "--out", str(tmp_path), flag, value], capsys)
        assert_usage_error(code, err, flag.lstrip("-").replace("-", "_"))
    assert not (tmp_path / "card.json").exists()


# ----------------------------------------------------------------------------- internal errors


def test_internal_error_exits_3(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(args: Any) -> int:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(listing, "run", boom)
    code, _, err = run(["list"], capsys)
    assert code == EXIT_INTERNAL
    assert "Traceback" in err and "RuntimeError: kaboom" in err
    assert "internal error" in err.splitlines()[-1]


def test_library_bug_in_eval_exits_3(
    monkeypatch: pytest.MonkeyPatch,
    npz_data: tuple[Path, np.ndarray, np.ndarray],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("oops")

    monkeypatch.setattr(acc_mod, "accuracy", broken)
    path, _, _ = npz_data
    code, _, err = run(["eval", "--model", "zoo:fmnist-cnn", "--data", f"npz:{path}"], capsys)
    assert code == EXIT_INTERNAL
    assert "KeyError" in err


# ----------------------------------------------------------------------------- data fetch


@pytest.mark.fmnist
def test_data_fetch_from_local_mirror(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from robustcv.data.fashion_mnist import find_fashion_mnist

    mirror = find_fashion_mnist("test")[0].parent
    dest = tmp_path / "fm"
    code, out, err = run(
        ["data", "fetch", "fashion-mnist", "--dest", str(dest), "--url", mirror.as_uri() + "/",
         "--quiet", "--json"],
        capsys,
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert json.loads(out) == {"name": "fashion-mnist", "folder": str(dest)}
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
         "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    )  # fmt: skip


def test_data_fetch_failure_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "empty-mirror"
    mirror.mkdir()
    code, _, err = run(
        ["data", "fetch", "fashion-mnist", "--dest", str(tmp_path / "fm"), "--url",
         mirror.as_uri() + "/", "--quiet"],
        capsys,
    )  # fmt: skip
    assert_usage_error(code, err, "could not download")
    assert not any((tmp_path / "fm").glob("*.part"))


# ----------------------------------------------------------------------------- train


@pytest.mark.fmnist
def test_train_fgsm_rs_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "run"
    argv = ["train", "--recipe", "fgsm-rs", "--limit", "256", "--eval-limit", "128",
            "--epochs", "1", "--out", str(out_dir), "--quiet", "--json"]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == EXIT_OK, err
    res = json.loads(out)
    assert res["test_n"] == 128
    assert 0.0 <= res["test_robust_accuracy"] <= res["test_accuracy"] <= 1.0
    assert res["config"]["recipe"] == "fgsm-rs" and res["config"]["limit"] == 256
    assert len(res["history"]) == 1 and "val_robust_accuracy" in res["history"][0]
    card = json.loads((out_dir / "card.json").read_text())
    assert card["recipe"] == "fgsm-rs"
    assert card["robust_accuracy"]["eps"] == pytest.approx(0.1)
    assert card["robust_accuracy"]["n"] == 128
    assert card["command"] == "robustcv " + " ".join(argv)  # the call that reproduces it
    net = build_architecture(card["architecture"], **card["architecture_kwargs"])
    load_weights(net, out_dir / "model.safetensors")  # strict: every key and shape matches


def test_dataset_helper_matches_npz(npz_data: tuple[Path, np.ndarray, np.ndarray]) -> None:
    # guards the eval test above: the npz spec yields the arrays we wrote
    from robustcv.data import load_dataset

    path, images, labels = npz_data
    ds = load_dataset(f"npz:{path}")
    ref = Dataset("toy", "test", [str(i) for i in range(10)], ArraySource(images, labels))
    assert torch.equal(ds.x, ref.x) and torch.equal(ds.y, ref.y)
