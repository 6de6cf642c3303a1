"""``robustcv explain`` (robustcv/cli/explain.py), run in-process through its own parser.

The command is not registered in ``robustcv.cli.main`` yet, so these tests build a parser with
only this command, the way ``main`` does, and map errors to exit codes the same way.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robustcv.cli import explain as explain_command
from robustcv.cli._common import (
    EXIT_OK,
    EXIT_USAGE,
    Parser,
    add_common_options,
    add_model_args,
    check_numbers,
)
from robustcv.core.errors import InputError


def cli(argv: list[str]) -> tuple[int, str]:
    parser = Parser(prog="robustcv")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    explain_command.add_parser(sub, common=add_common_options, model_args=add_model_args)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0), ""
    try:
        check_numbers(args)
        return explain_command.run(args), ""
    except InputError as err:
        return EXIT_USAGE, str(err)


@pytest.fixture()
def npz_data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "toy.npz"
    np.savez(path, x=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8), y=np.arange(5) % 10)
    return path


def test_explain_writes_pngs_npz_and_json(
    npz_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code, err = cli(
        ["explain", "--model", "zoo:fmnist-cnn", "--data", f"npz:{npz_data}", "--method",
         "integrated-gradients", "--param", "steps=8", "--limit", "3", "--out", str(out),
         "--batch-size", "2", "--json"]
    )  # fmt: skip
    assert code == EXIT_OK, err
    payload = json.loads(capsys.readouterr().out)
    assert payload["method"] == "integrated-gradients" and payload["n"] == 3
    assert payload["params"]["steps"] == 8 and "RdBu_r" in payload["color_scale"]
    assert sorted(p.name for p in out.glob("*.png")) == ["0000.png", "0001.png", "0002.png"]
    with np.load(out / "maps.npz") as data:
        assert data["maps"].shape == (3, 1, 28, 28) and data["maps"].dtype == np.float32
        assert data["targets"].tolist() == data["predicted"].tolist()
    # the stored maps are the library's maps (batching by --batch-size changes nothing)
    from robustcv import load_model
    from robustcv.explanations import explain

    with np.load(out / "maps.npz") as data:
        x = torch.from_numpy(data["images"])
        lib = explain(load_model("zoo:fmnist-cnn"), x, method="integrated-gradients", steps=8)
        assert np.allclose(data["maps"], lib.maps.numpy(), atol=1e-5)
    assert json.loads((out / "explanation.json").read_text())["files"]["maps"] == "maps.npz"


def test_explain_layer_method_with_label_targets_and_params(npz_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cam"
    code, err = cli(
        ["explain", "--model", "zoo:fmnist-cnn", "--data", f"npz:{npz_data}", "--method",
         "grad-cam", "--param", "upsample=none", "--param", "layer=features.0", "--target",
         "label", "--limit", "2", "--out", str(out), "--quiet"]
    )  # fmt: skip
    assert code == EXIT_OK, err
    with np.load(out / "maps.npz") as data:
        assert data["maps"].shape == (2, 1, 28, 28)  # features.0 keeps the input resolution
        assert data["targets"].tolist() == data["labels"].tolist()


@pytest.mark.parametrize(
    ("extra", "mentions"),
    [
        (["--method", "integrated-gradient"], "did you mean"),
        (["--param", "stepz=3"], "did you mean 'steps'"),
        (["--param", "steps"], "KEY=VALUE"),
        (["--target", "12"], "[0, 9]"),
        (["--target", "first"], "--target"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_explain_bad_input_is_a_usage_error(
    npz_data: Path, tmp_path: Path, extra: list[str], mentions: str
) -> None:
    argv = ["explain", "--model", "zoo:fmnist-cnn", "--data", f"npz:{npz_data}"]
    code, err = cli([*argv, "--out", str(tmp_path / "o"), "--limit", "2", *extra])
    assert code == EXIT_USAGE
    assert mentions.lower() in err.lower(), err


def test_parse_param_values() -> None:
    assert explain_command.parse_param("rule=riemann-trapezoid") == ("rule", "riemann-trapezoid")
    assert explain_command.parse_param("abs=false") == ("abs", False)
    assert explain_command.parse_param("noise=0.2") == ("noise", 0.2)
    assert explain_command.parse_param("internal-batch-size=64") == ("internal_batch_size", 64)


def test_interface_matches_the_other_commands() -> None:
    assert explain_command.NAME == "explain"
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    explain_command.add_parser(sub, common=add_common_options, model_args=add_model_args)
    args = parser.parse_args(["explain", "--model", "m", "--data", "d", "--out", "o"])
    assert args.method == "integrated-gradients" and args.limit == 8 and args.batch_size == 64
