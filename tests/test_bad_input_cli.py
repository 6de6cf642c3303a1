"""The CLI's bad-input corpus: mistakes a real user makes with every ``robustcv`` command.

Each case runs in-process through ``robustcv.cli.main.main(argv)`` (see ``tests/badinput.py``)
and must exit 2 with a one-line message that names the flag or argument, no traceback and no
"internal error". Cases that fail because of code another package owns stay here marked
``xfail(strict=True)`` with the owner in the reason, so they turn red once fixed.

Besides the corpus: the mapping of OS errors on user-named paths (exit 2) versus elsewhere
(exit 3), unwritable paths emulated for root, and the report's output path handling.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from badinput import CliCase, bad_files, check_cli

from robustcv.cli.main import EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, main

# ----------------------------------------------------------------------------- files

_ESTIMATE = {"value": 0.9, "low": 0.6, "high": 0.99, "n": 10, "method": "clopper-pearson"}

_CONFIGS: dict[str, str] = {
    "cfg_tab": "limit:\t3\n  x: [\n",
    "cfg_list": "- limit\n- 3\n",
    "cfg_scalar": "42\n",
    "cfg_unknown": "limt: 3\n",
    "cfg_unknown_section_key": "adversarial: {nn: 3}\n",
    "cfg_limit_float": "limit: 2.5\n",
    "cfg_batch_float": "batch_size: 2.5\n",
    "cfg_sanity_zero": "adversarial: {sanity_subset: 0}\n",
    "cfg_seed_string": "seed: '3'\n",
    "cfg_seed_huge": "seed: 99999999999999999999999\n",
    "cfg_nested_list": "corruption: {severities: [[1, 2]]}\n",
    "cfg_section_scalar": "corruption: 5\n",
    "cfg_bool_for_int": "clean: {n: true}\n",
    "cfg_string_for_bool": "adversarial: {sanity: 'yes'}\n",
    "cfg_duplicate": "limit: 1\nlimit: 2\n",
    "cfg_python_tag": "limit: !!python/object/apply:os.system ['echo hacked']\n",
    "cfg_bad_eps": "eps: {lfoo: [0.1]}\n",
    "cfg_bad_check": "check: {min_acc: abc}\n",
    "cfg_bad_executor": "executor: {name: threads}\n",
    "cfg_strength": "strength: medium\n",
    "cfg_workers_huge": "executor: {name: processes, workers: 100000}\n",
    "cfg_examples_typo": "examples: {corruptions: [fgo]}\n",
    "cfg_examples_severity": "examples: {severity: 9}\n",
    "cfg_shift_typo": "calibration: {shift_corruptions: [fgo], fit_n: 4, shift_n: 2, "
    "shift_severities: [1]}\nexamples: {n: 0}\n",
}


def _bomb() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    prev = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
        prev = name
    return "\n".join([*lines, f"check: {{min_acc: *{prev}}}"]) + "\n"


def corpus_files(tmp: Path) -> dict[str, Path]:
    """:func:`badinput.bad_files` plus configs, results folders and odd images for the CLI."""
    files = bad_files(tmp)
    rng = np.random.default_rng(1)
    for name, channels in (("rgba", 4), ("two", 2)):
        path = tmp / f"{name}.npz"
        x = rng.integers(0, 256, (4, 32, 32, channels), dtype=np.uint8)
        np.savez(path, x=x, y=np.arange(4))
        files[name] = path
    split = tmp / "split.npz"  # separate train and test images (for OOD / fit cases)
    np.savez(
        split,
        x_train=rng.integers(0, 256, (16, 28, 28), dtype=np.uint8),
        y_train=np.arange(16) % 10,
        x_test=rng.integers(0, 256, (8, 28, 28), dtype=np.uint8),
        y_test=np.arange(8) % 10,
    )
    files["split"] = split
    cfg = tmp / "configs"
    cfg.mkdir()
    for name, text in {**_CONFIGS, "cfg_bomb": _bomb()}.items():
        (cfg / f"{name}.yaml").write_text(text)
        files[name] = cfg / f"{name}.yaml"
    (cfg / "cfg_binary.yaml").write_bytes(bytes(range(256)) * 8)
    files["cfg_binary"] = cfg / "cfg_binary.yaml"
    (cfg / "cfg_bad.json").write_text('{"limit": 3,}')
    files["cfg_bad_json"] = cfg / "cfg_bad.json"
    (cfg / "cfg_deep.json").write_text("[" * 50_000 + "]" * 50_000)
    files["cfg_deep"] = cfg / "cfg_deep.json"
    results: dict[str, Any] = {
        "res_good": json.dumps(
            {"schema": "robustcv.audit/1", "suites": {"clean": {"accuracy": _ESTIMATE}}}
        ),
        "res_obj": "{}",
        "res_notjson": "{broken",
        "res_newer": json.dumps({"schema": "robustcv.audit/99", "suites": {}}),
        "res_other": json.dumps({"schema": "something.else/1", "suites": {}}),
        "res_emptyfile": "",
        "res_list": "[1, 2]",
        "res_badsuites": json.dumps({"schema": "robustcv.audit/1", "suites": {"clean": 5}}),
        "res_nosuites": json.dumps({"schema": "robustcv.audit/1"}),
    }
    for name, text in results.items():
        folder = tmp / name
        folder.mkdir()
        (folder / "results.json").write_text(text)
        files[name] = folder
    (tmp / "res_none").mkdir()
    files["res_none"] = tmp / "res_none"
    for name, data in (("bad_onnx", b"\x08\x07garbage" * 20), ("bad_pt", b"PK\x03\x04junk" * 20)):
        suffix = ".onnx" if name == "bad_onnx" else ".pt"
        (tmp / f"{name}{suffix}").write_bytes(data)
        files[name] = tmp / f"{name}{suffix}"
    factory2 = tmp / "factory2.py"
    factory2.write_text(
        "from torch import nn\n"
        "class NaNNet(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(28 * 28, 10)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.flatten(1)) * float('nan')\n"
        "def nan(num_classes=10):\n"
        "    return NaNNet()\n"
        "def notamodule(num_classes=10):\n"
        "    return 42\n"
    )
    files["factory2"] = factory2
    ro = tmp / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    files["ro"] = ro
    return files


@pytest.fixture
def files(tmp_path: Path) -> Iterator[dict[str, Path]]:
    made = corpus_files(tmp_path)
    try:
        yield made
    finally:
        made["ro"].chmod(0o755)  # let pytest clean the folder up


# ----------------------------------------------------------------------------- the corpus

MODEL = ["--model", "{factory}:build", "--data", "npz:{good}"]
"""A good factory model and a good dataset (1-channel 28x28, 16 images)."""
LEADERBOARD = ["leaderboard", "--data", "npz:{good}", "--out", "{tmp}/lb"]
"""``robustcv leaderboard`` on the good dataset; the models follow."""

AUDIT = ["audit", *MODEL, "--out", "{tmp}/audit", "--quiet"]
CORRUPT = ["corrupt", "--data", "npz:{good}", "--out", "{tmp}/c", "--quiet"]
EXPLAIN = ["explain", *MODEL, "--out", "{tmp}/e", "--quiet", "--limit", "2"]
TRAIN = ["train", "--data", "npz:{good}", "--quiet"]
FETCH = ["data", "fetch", "fashion-mnist"]

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")

READ_ONLY = "ro"
"""Cases pointing into the read-only folder: skipped where chmod does not stop writes (root)."""


def _cases() -> list[Any]:
    c = CliCase
    cases: list[Any] = [
        # --- argparse: unknown commands and flags, missing required arguments
        c("unknown-command", ["frobnicate"], ("frobnicate", "invalid choice")),
        c("command-typo-suggests", ["lst"], ("did you mean 'list'",)),
        c("no-command", [], ("usage",)),
        c("list-unknown-flag", ["list", "--bogus"], ("--bogus",)),
        c("list-unknown-section", ["list", "things"], ("things", "invalid choice")),
        c("list-bad-spec", ["list", "corruptions", "--spec", "foo"], ("--spec",)),
        c("list-bad-size", ["list", "corruptions", "--size", "axb"], ("--size",)),
        c("list-seed-negative", ["list", "--seed", "-1"], ("--seed",)),
        c("list-seed-float", ["list", "--seed", "2.5"], ("--seed", "invalid int")),
        c("list-seed-huge", ["list", "--seed", str(2**64)], ("--seed",)),
        c("list-batch-size-zero", ["list", "--batch-size", "0"], ("--batch-size",)),
        c("list-batch-size-word", ["list", "--batch-size", "many"], ("--batch-size",)),
        c("list-device-cuda", ["list", "--device", "cuda"], ("--device", "cuda")),
        c("eval-missing-model", ["eval", "--data", "npz:{good}"], ("--model",)),
        c("eval-missing-data", ["eval", "--model", "{factory}:build"], ("--data",)),
        c("attack-missing-eps", ["attack", *MODEL], ("--eps",)),
        c("train-missing-out", ["train"], ("--out",)),
        c("corrupt-missing-data", ["corrupt", "--out", "{tmp}/c"], ("--data",)),
        c("audit-missing-out", ["audit", *MODEL], ("--out",)),
        c("compare-missing-dir-b", ["compare", "{res_good}"], ("DIR_B",)),
        c("report-no-dir-arg", ["report"], ("DIR",)),
        c("check-no-dir-arg", ["check"], ("DIR",)),
        c("data-no-action", ["data"], ("action", "fetch")),
        c("data-fetch-unknown-dataset", ["data", "fetch", "mnist"], ("mnist",)),
        c(
            "check-unknown-threshold",
            ["check", "{res_good}", "--min-accuracy", "0.9"],
            ("--min-accuracy", "did you mean"),
        ),
        # --- eval: numbers
        c("eval-limit-zero", ["eval", *MODEL, "--limit", "0"], ("--limit",)),
        c("eval-limit-float", ["eval", *MODEL, "--limit", "2.5"], ("--limit", "invalid int")),
        c("eval-limit-huge", ["eval", *MODEL, "--limit", str(10**30)], ("--limit",)),
        c("eval-batch-size-zero", ["eval", *MODEL, "--batch-size", "0"], ("--batch-size",)),
        c("eval-batch-size-negative", ["eval", *MODEL, "--batch-size", "-4"], ("--batch-size",)),
        c("eval-seed-negative", ["eval", *MODEL, "--seed", "-1"], ("--seed",)),
        c("eval-num-classes-zero", ["eval", *MODEL, "--num-classes", "0"], ("--num-classes",)),
        c("eval-num-classes-wrong", ["eval", *MODEL, "--num-classes", "3"], ("num_classes",)),
        # --- eval: models
        c("eval-empty-model", ["eval", "--model", "", "--data", "npz:{good}"], ("--model",)),
        c(
            "eval-zoo-typo",
            ["eval", "--model", "zoo:fmnist-cn", "--data", "npz:{good}"],
            ("fmnist-cn", "did you mean"),
        ),
        c(
            "eval-missing-factory-file",
            ["eval", "--model", "{tmp}/nope.py:build", "--data", "npz:{good}"],
            ("nope.py",),
        ),
        c(
            "eval-unknown-factory",
            ["eval", "--model", "{factory}:nosuch", "--data", "npz:{good}"],
            ("nosuch", "build"),
        ),
        c(
            "eval-factory-raises",
            ["eval", "--model", "{factory}:broken", "--data", "npz:{good}"],
            ("my factory is broken", "factory.py"),
        ),
        c(
            "eval-factory-syntax-error",
            ["eval", "--model", "{syntax}:build", "--data", "npz:{good}"],
            ("syntax_error.py", "SyntaxError"),
        ),
        c(
            "eval-factory-not-a-module",
            ["eval", "--model", "{factory2}:notamodule", "--data", "npz:{good}"],
            ("notamodule", "nn.Module"),
        ),
        c(
            "eval-model-text-file",
            ["eval", "--model", "{file}", "--data", "npz:{good}"],
            ("file.txt",),
        ),
        c(
            "eval-model-folder",
            ["eval", "--model", "{folder}", "--data", "npz:{good}"],
            ("folder",),
        ),
        c(
            "eval-truncated-onnx",
            ["eval", "--model", "{bad_onnx}", "--data", "npz:{good}"],
            ("bad_onnx.onnx", "onnx"),
        ),
        c(
            "eval-corrupt-torchscript",
            ["eval", "--model", "{bad_pt}", "--data", "npz:{good}"],
            ("bad_pt.pt",),
        ),
        c(
            "eval-missing-weights",
            ["eval", *MODEL, "--weights", "{tmp}/nope.safetensors"],
            ("nope.safetensors",),
        ),
        c("eval-garbage-weights", ["eval", *MODEL, "--weights", "{garbage}"], ("garbage.npz",)),
        c("eval-bad-preprocess", ["eval", *MODEL, "--preprocess", "mean=abc"], ("--preprocess",)),
        c(
            "eval-preprocess-unknown-key",
            ["eval", *MODEL, "--preprocess", "avg=0.5"],
            ("--preprocess",),
        ),
        c(
            "eval-mean-wrong-length",
            ["eval", *MODEL, "--preprocess", "mean=0.5,0.5"],
            ("mean", "channel"),
        ),
        c("eval-std-zero", ["eval", *MODEL, "--preprocess", "std=0"], ("std",)),
        c("eval-range-reversed", ["eval", *MODEL, "--preprocess", "range=1,0"], ("range",)),
        c(
            "eval-nan-logits",
            ["eval", "--model", "{factory2}:nan", "--data", "npz:{good}"],
            ("nan",),
        ),
        # --- eval: data
        c("eval-empty-data", ["eval", "--model", "{factory}:build", "--data", ""], ("--data",)),
        c(
            "eval-dataset-typo",
            ["eval", "--model", "{factory}:build", "--data", "fmnistt"],
            ("fmnistt", "did you mean"),
        ),
        c(
            "eval-missing-npz",
            ["eval", "--model", "{factory}:build", "--data", "npz:{tmp}/nope.npz"],
            ("nope.npz",),
        ),
        c(
            "eval-npz-is-folder",
            ["eval", "--model", "{factory}:build", "--data", "npz:{folder}"],
            ("folder",),
        ),
        c(
            "eval-garbage-npz",
            ["eval", "--model", "{factory}:build", "--data", "npz:{garbage}"],
            ("garbage.npz",),
        ),
        c(
            "eval-empty-npz",
            ["eval", "--model", "{factory}:build", "--data", "npz:{empty}"],
            ("empty.npz", "no images"),
        ),
        c(
            "eval-npz-without-labels",
            ["eval", "--model", "{factory}:build", "--data", "npz:{nolabels}"],
            ("nolabels.npz",),
        ),
        c(
            "eval-folder-dataset-is-file",
            ["eval", "--model", "{factory}:build", "--data", "folder:{file}"],
            ("file.txt",),
        ),
        c(
            "eval-idx-empty-folder",
            ["eval", "--model", "{factory}:build", "--data", "idx:{folder}"],
            ("folder",),
        ),
        c(
            "eval-cifar-empty-folder",
            ["eval", "--model", "{factory}:build", "--data", "cifar10:{folder}"],
            ("folder",),
        ),
        c(
            "eval-c-unknown-corruption",
            ["eval", "--model", "{factory}:build", "--data", "imagenet-c:{folder}#fog/3"],
            ("fog",),
        ),
        c(
            "eval-rgb-into-grey-model",
            ["eval", "--model", "{factory}:build", "--data", "npz:{rgb32}"],
            ("3-channel", "32x32"),
        ),
        c(
            "eval-rgba-images",
            ["eval", "--model", "{factory}:build", "--data", "npz:{rgba}"],
            ("4 channels",),
        ),
        c("eval-device-cuda", ["eval", *MODEL, "--device", "cuda"], ("--device", "cuda")),
        c("eval-device-unknown", ["eval", *MODEL, "--device", "gpu0"], ("--device", "gpu0")),
        c("eval-device-empty", ["eval", *MODEL, "--device", ""], ("--device",)),
        # --- attack
        c("attack-eps-word", ["attack", *MODEL, "--eps", "abc"], ("--eps",)),
        c("attack-eps-norm-prefix", ["attack", *MODEL, "--eps", "linf:abc"], ("--eps",)),
        c("attack-eps-negative", ["attack", *MODEL, "--eps", "-0.1", "--limit", "2"], ("eps",)),
        c("attack-eps-nan", ["attack", *MODEL, "--eps", "nan", "--limit", "2"], ("eps",)),
        c("attack-eps-inf", ["attack", *MODEL, "--eps", "inf", "--limit", "2"], ("eps",)),
        c("attack-eps-empty", ["attack", *MODEL, "--eps", "", "--limit", "2"], ("eps",)),
        c(
            "attack-norm-typo",
            ["attack", *MODEL, "--eps", "0.1", "--norm", "lfoo"],
            ("lfoo", "did you mean"),
        ),
        c(
            "attack-unknown-attack",
            ["attack", *MODEL, "--eps", "0.1", "--attacks", "fmm"],
            ("fmm", "did you mean"),
        ),
        c(
            "attack-empty-attacks",
            ["attack", *MODEL, "--eps", "0.1", "--attacks", ""],
            ("attacks",),
        ),
        c(
            "attack-norm-unsupported",
            [
                "attack",
                *MODEL,
                "--eps",
                "1",
                "--norm",
                "l0",
                "--attacks",
                "apgd-ce",
                "--limit",
                "2",
            ],
            ("apgd-ce", "l0"),
        ),
        c("attack-limit-zero", ["attack", *MODEL, "--eps", "0.1", "--limit", "0"], ("--limit",)),
        c("attack-limit-float", ["attack", *MODEL, "--eps", "0.1", "--limit", "1.5"], ("--limit",)),
        c(
            "attack-empty-npz",
            ["attack", "--model", "{factory}:build", "--data", "npz:{empty}", "--eps", "0.1"],
            ("empty.npz",),
        ),
        c(
            "attack-rgb-into-grey-model",
            [
                "attack",
                "--model",
                "{factory}:build",
                "--data",
                "npz:{rgb32}",
                "--eps",
                "0.1",
                "--limit",
                "2",
            ],
            ("3-channel",),
        ),
        c(
            "attack-nan-logits",
            [
                "attack",
                "--model",
                "{factory2}:nan",
                "--data",
                "npz:{good}",
                "--eps",
                "0.1",
                "--limit",
                "2",
            ],
            ("nan",),
        ),
        c(
            "attack-device-cuda",
            ["attack", *MODEL, "--eps", "0.1", "--device", "cuda"],
            ("--device",),
        ),
        # --- train
        c(
            "train-recipe-typo",
            [*TRAIN, "--out", "{tmp}/t", "--recipe", "pgd"],
            ("--recipe", "did you mean 'pgd-at'"),
        ),
        c(
            "train-arch-typo",
            [*TRAIN, "--out", "{tmp}/t", "--arch", "smal-cnn"],
            ("--arch", "small-cnn"),
        ),
        c("train-epochs-zero", [*TRAIN, "--out", "{tmp}/t", "--epochs", "0"], ("--epochs",)),
        c("train-eps-zero", [*TRAIN, "--out", "{tmp}/t", "--eps", "0"], ("eps",)),
        c("train-eps-nan", [*TRAIN, "--out", "{tmp}/t", "--eps", "nan"], ("--eps",)),
        c("train-lr-zero", [*TRAIN, "--out", "{tmp}/t", "--lr", "0"], ("lr",)),
        c("train-lr-inf", [*TRAIN, "--out", "{tmp}/t", "--lr", "inf"], ("--lr",)),
        c("train-steps-too-many", [*TRAIN, "--out", "{tmp}/t", "--steps", "500"], ("steps",)),
        c("train-limit-float", [*TRAIN, "--out", "{tmp}/t", "--limit", "2.5"], ("--limit",)),
        c(
            "train-eval-limit-zero",
            [*TRAIN, "--out", "{tmp}/t", "--eval-limit", "0"],
            ("--eval-limit",),
        ),
        c("train-out-is-file", [*TRAIN, "--out", "{file}"], ("--out", "file.txt")),
        c("train-out-empty", [*TRAIN, "--out", ""], ("--out", "empty")),
        c("train-out-under-file", [*TRAIN, "--out", "{file}/sub"], ("--out", "file.txt")),
        c("train-unknown-dataset", ["train", "--out", "{tmp}/t", "--data", "nosuch"], ("nosuch",)),
        c(
            "train-empty-npz",
            ["train", "--out", "{tmp}/t", "--data", "npz:{empty}"],
            ("empty.npz",),
        ),
        c("train-device-cuda", [*TRAIN, "--out", "{tmp}/t", "--device", "cuda"], ("--device",)),
        c("train-out-read-only", [*TRAIN, "--out", "{ro}/t"], ("--out", "permission")),
        # --- data fetch
        c("fetch-dest-is-file", [*FETCH, "--dest", "{file}"], ("--dest", "file.txt")),
        c("fetch-dest-empty", [*FETCH, "--dest", ""], ("--dest", "empty")),
        c("fetch-dest-under-file", [*FETCH, "--dest", "{file}/x"], ("--dest", "file.txt")),
        c(
            "fetch-bad-mirror",
            [*FETCH, "--dest", "{tmp}/fm", "--url", "file:///nonexistent/m"],
            ("nonexistent",),
        ),
        c("fetch-url-not-a-url", [*FETCH, "--dest", "{tmp}/fm", "--url", "notaurl"], ("notaurl",)),
        c("fetch-device-cuda", [*FETCH, "--dest", "{tmp}/fm", "--device", "cuda"], ("--device",)),
        c("fetch-dest-read-only", [*FETCH, "--dest", "{ro}/fm"], ("--dest", "permission")),
        # --- corrupt
        c(
            "corrupt-out-is-file",
            ["corrupt", "--data", "npz:{good}", "--out", "{file}"],
            ("--out", "file.txt"),
        ),
        c("corrupt-out-empty", ["corrupt", "--data", "npz:{good}", "--out", ""], ("--out",)),
        c(
            "corrupt-corruption-typo",
            [*CORRUPT, "--corruptions", "fgo"],
            ("fgo", "did you mean 'fog'"),
        ),
        c("corrupt-empty-corruptions", [*CORRUPT, "--corruptions", ""], ("corruptions",)),
        c(
            "corrupt-severity-too-high",
            [*CORRUPT, "--corruptions", "fog", "--severities", "6"],
            ("severities",),
        ),
        c("corrupt-severity-zero", [*CORRUPT, "--severities", "0-2"], ("severities",)),
        c("corrupt-severity-word", [*CORRUPT, "--severities", "abc"], ("severities",)),
        c("corrupt-bad-format", [*CORRUPT, "--format", "tfrecord"], ("--format",)),
        c("corrupt-bad-spec", [*CORRUPT, "--spec", "imagenet"], ("--spec",)),
        c("corrupt-bad-image-size", [*CORRUPT, "--image-size", "axb"], ("--image-size",)),
        c("corrupt-limit-zero", [*CORRUPT, "--limit", "0"], ("--limit",)),
        c("corrupt-batch-size-zero", [*CORRUPT, "--batch-size", "0"], ("--batch-size",)),
        c(
            "corrupt-empty-npz",
            ["corrupt", "--data", "npz:{empty}", "--out", "{tmp}/c"],
            ("empty.npz",),
        ),
        c(
            "corrupt-missing-npz",
            ["corrupt", "--data", "npz:{tmp}/nope.npz", "--out", "{tmp}/c"],
            ("nope.npz",),
        ),
        c(
            "corrupt-rgba-images",
            [
                "corrupt",
                "--data",
                "npz:{rgba}",
                "--out",
                "{tmp}/c",
                "--corruptions",
                "frost",
                "--severities",
                "1",
            ],
            ("4 channels",),
        ),
        c(
            "corrupt-two-channel-images",
            [
                "corrupt",
                "--data",
                "npz:{two}",
                "--out",
                "{tmp}/c",
                "--corruptions",
                "fog",
                "--severities",
                "1",
            ],
            ("2 channels",),
        ),
        c("corrupt-device-cuda", [*CORRUPT, "--device", "cuda"], ("--device",)),
        c(
            "corrupt-out-read-only",
            ["corrupt", "--data", "npz:{good}", "--out", "{ro}/c"],
            ("--out", "permission"),
        ),
        # --- audit: flags
        c("audit-out-empty", ["audit", *MODEL, "--out", ""], ("--out", "empty")),
        c("audit-out-is-file", ["audit", *MODEL, "--out", "{file}"], ("--out", "file.txt")),
        c("audit-out-not-empty", ["audit", *MODEL, "--out", "{tmp}"], ("--out", "not empty")),
        c("audit-suite-typo", [*AUDIT, "--suites", "clen"], ("clen", "did you mean 'clean'")),
        c("audit-empty-suites", [*AUDIT, "--suites", ""], ("suites",)),
        c(
            "audit-unknown-ood-set",
            [
                "audit",
                "--model",
                "{factory}:build",
                "--data",
                "npz:{split}",
                "--out",
                "{tmp}/audit",
                "--suites",
                "ood",
                "--ood-data",
                "derived:nosuch",
            ],
            ("nosuch",),
        ),
        c("audit-limit-zero", [*AUDIT, "--limit", "0"], ("--limit",)),
        c("audit-limit-float", [*AUDIT, "--limit", "2.5"], ("--limit",)),
        c("audit-batch-size-float", [*AUDIT, "--batch-size", "2.5"], ("--batch-size",)),
        c("audit-workers-zero", [*AUDIT, "--workers", "0"], ("--workers",)),
        c(
            "audit-workers-huge",
            [*AUDIT, "--executor", "processes", "--workers", "100000"],
            ("--workers", "at most"),
        ),
        c(
            "audit-workers-in-process",
            [*AUDIT, "--workers", "2", "--executor", "in-process"],
            ("--workers",),
        ),
        c("audit-executor-typo", [*AUDIT, "--executor", "process"], ("--executor",)),
        c("audit-strength-unknown", [*AUDIT, "--strength", "medium"], ("--strength",)),
        c("audit-eps-word", [*AUDIT, "--eps", "linf:abc"], ("--eps", "abc")),
        c("audit-eps-norm-typo", [*AUDIT, "--eps", "lfoo:0.1"], ("--eps", "did you mean")),
        c("audit-eps-no-norm", [*AUDIT, "--eps", "0.1"], ("--eps", "norm")),
        c("audit-eps-negative", [*AUDIT, "--eps", "linf:-0.1"], ("eps",)),
        c(
            "audit-missing-fit-data",
            [*AUDIT, "--suites", "calibration", "--fit-data", "npz:{tmp}/nope.npz"],
            ("--fit-data", "nope.npz"),
        ),
        c(
            "audit-empty-npz",
            [
                "audit",
                "--model",
                "{factory}:build",
                "--data",
                "npz:{empty}",
                "--out",
                "{tmp}/audit",
            ],
            ("empty.npz",),
        ),
        c(
            "audit-factory-raises",
            [
                "audit",
                "--model",
                "{factory}:broken",
                "--data",
                "npz:{good}",
                "--out",
                "{tmp}/audit",
            ],
            ("my factory is broken",),
        ),
        c(
            "audit-rgb-into-grey-model",
            [
                "audit",
                "--model",
                "{factory}:build",
                "--data",
                "npz:{rgb32}",
                "--out",
                "{tmp}/audit",
                "--suites",
                "clean",
            ],
            ("3-channel",),
        ),
        c(
            "audit-nan-logits",
            [
                "audit",
                "--model",
                "{factory2}:nan",
                "--data",
                "npz:{good}",
                "--out",
                "{tmp}/audit",
                "--suites",
                "clean",
            ],
            ("nan",),
        ),
        c("audit-device-cuda", [*AUDIT, "--device", "cuda"], ("--device",)),
        c("audit-out-read-only", ["audit", *MODEL, "--out", "{ro}/a"], ("--out", "permission")),
        # --- audit: config files
        c("config-missing", [*AUDIT, "--config", "{tmp}/nope.yaml"], ("--config", "nope.yaml")),
        c("config-empty-path", [*AUDIT, "--config", ""], ("--config",)),
        c("config-is-folder", [*AUDIT, "--config", "{folder}"], ("folder",)),
        c("config-bad-yaml", [*AUDIT, "--config", "{cfg_tab}"], ("cfg_tab.yaml", "yaml")),
        c("config-bad-json", [*AUDIT, "--config", "{cfg_bad_json}"], ("cfg_bad.json", "json")),
        c("config-not-mapping", [*AUDIT, "--config", "{cfg_list}"], ("cfg_list", "mapping")),
        c("config-scalar", [*AUDIT, "--config", "{cfg_scalar}"], ("cfg_scalar", "mapping")),
        c("config-binary", [*AUDIT, "--config", "{cfg_binary}"], ("cfg_binary", "utf-8")),
        c("config-deep", [*AUDIT, "--config", "{cfg_deep}"], ("cfg_deep", "nested")),
        c("config-bomb", [*AUDIT, "--config", "{cfg_bomb}"], ("cfg_bomb", "too large")),
        c(
            "config-unknown-key",
            [*AUDIT, "--config", "{cfg_unknown}"],
            ("limt", "did you mean 'limit'"),
        ),
        c(
            "config-unknown-section-key",
            [*AUDIT, "--config", "{cfg_unknown_section_key}"],
            ("adversarial.nn",),
        ),
        c("config-limit-float", [*AUDIT, "--config", "{cfg_limit_float}"], ("limit", "2.5")),
        c(
            "config-batch-size-float",
            [*AUDIT, "--config", "{cfg_batch_float}"],
            ("batch_size", "2.5"),
        ),
        c(
            "config-sanity-subset-zero",
            [*AUDIT, "--config", "{cfg_sanity_zero}"],
            ("sanity_subset",),
        ),
        c("config-seed-string", [*AUDIT, "--config", "{cfg_seed_string}"], ("seed",)),
        c("config-seed-huge", [*AUDIT, "--config", "{cfg_seed_huge}"], ("seed",)),
        c(
            "config-nested-list",
            [*AUDIT, "--config", "{cfg_nested_list}"],
            ("corruption.severities",),
        ),
        c(
            "config-section-scalar",
            [*AUDIT, "--config", "{cfg_section_scalar}"],
            ("corruption", "mapping"),
        ),
        c("config-bool-for-int", [*AUDIT, "--config", "{cfg_bool_for_int}"], ("clean.n",)),
        c(
            "config-string-for-bool",
            [*AUDIT, "--config", "{cfg_string_for_bool}"],
            ("adversarial.sanity",),
        ),
        c("config-duplicate-key", [*AUDIT, "--config", "{cfg_duplicate}"], ("limit", "twice")),
        c("config-python-tag", [*AUDIT, "--config", "{cfg_python_tag}"], ("cfg_python_tag",)),
        c("config-eps-norm-typo", [*AUDIT, "--config", "{cfg_bad_eps}"], ("eps", "lfoo")),
        c("config-bad-threshold", [*AUDIT, "--config", "{cfg_bad_check}"], ("check", "min-acc")),
        c(
            "config-executor-typo",
            [*AUDIT, "--config", "{cfg_bad_executor}"],
            ("executor", "threads"),
        ),
        c(
            "config-strength-unknown",
            [*AUDIT, "--config", "{cfg_strength}"],
            ("strength", "medium"),
        ),
        c(
            "config-workers-huge",
            [*AUDIT, "--config", "{cfg_workers_huge}"],
            ("executor.workers", "at most"),
        ),
        c(
            "config-examples-corruption-typo",
            [*AUDIT, "--config", "{cfg_examples_typo}", "--suites", "clean", "--limit", "2"],
            ("examples.corruptions", "fgo"),
        ),
        c(
            "config-examples-severity-out-of-range",
            [*AUDIT, "--config", "{cfg_examples_severity}", "--suites", "clean", "--limit", "2"],
            ("examples.severity", "9"),
        ),
        c(
            "config-shift-corruption-typo",
            [
                "audit",
                "--model",
                "{factory}:build",
                "--data",
                "npz:{split}",
                "--out",
                "{tmp}/audit",
                "--quiet",
                "--no-report",
                "--config",
                "{cfg_shift_typo}",
                "--suites",
                "calibration",
                "--limit",
                "2",
            ],
            ("calibration.shift_corruptions", "fgo"),
        ),
        # --- compare
        c("compare-missing-dir", ["compare", "{tmp}/nope", "{res_good}"], ("nope",)),
        c("compare-no-results", ["compare", "{res_none}", "{res_good}"], ("res_none",)),
        c(
            "compare-empty-object",
            ["compare", "{res_obj}", "{res_good}"],
            ("res_obj", "not a robustcv audit"),
        ),
        c("compare-not-json", ["compare", "{res_good}", "{res_notjson}"], ("res_notjson",)),
        c("compare-newer-schema", ["compare", "{res_newer}", "{res_good}"], ("newer",)),
        c("compare-empty-file", ["compare", "{res_emptyfile}", "{res_good}"], ("empty",)),
        c("compare-empty-dir-arg", ["compare", "", "{res_good}"], ("DIR_A",)),
        c("compare-out-empty", ["compare", "{res_good}", "{res_good}", "--out", ""], ("--out",)),
        c(
            "compare-out-under-file",
            ["compare", "{res_good}", "{res_good}", "--out", "{file}/c.html"],
            ("--out", "file.txt"),
        ),
        c(
            "compare-out-read-only",
            ["compare", "{res_good}", "{res_good}", "--out", "{ro}/c.html"],
            ("--out", "permission"),
        ),
        # --- report
        c("report-missing-dir", ["report", "{tmp}/nope"], ("nope",)),
        c("report-no-results", ["report", "{res_none}"], ("results.json",)),
        c("report-empty-object", ["report", "{res_obj}"], ("res_obj", "not a robustcv audit")),
        c("report-not-json", ["report", "{res_notjson}"], ("res_notjson",)),
        c("report-newer-schema", ["report", "{res_newer}"], ("newer", "upgrade")),
        c("report-other-schema", ["report", "{res_other}"], ("something.else",)),
        c("report-empty-file", ["report", "{res_emptyfile}"], ("empty",)),
        c("report-json-list", ["report", "{res_list}"], ("res_list", "object")),
        c("report-bad-suites", ["report", "{res_badsuites}"], ("suites",)),
        c("report-no-suites", ["report", "{res_nosuites}"], ("suites",)),
        c("report-dir-is-text-file", ["report", "{file}"], ("file.txt",)),
        c("report-out-empty", ["report", "{res_good}", "--out", ""], ("--out",)),
        c(
            "report-out-under-file",
            ["report", "{res_good}", "--out", "{file}/r.html"],
            ("--out", "file.txt"),
        ),
        c(
            "report-out-read-only",
            ["report", "{res_good}", "--out", "{ro}/r.html"],
            ("--out", "permission"),
        ),
        # --- check
        c("check-no-thresholds", ["check", "{res_good}"], ("no thresholds", "--min-acc")),
        c("check-threshold-word", ["check", "{res_good}", "--min-acc", "abc"], ("--min-acc",)),
        c("check-threshold-empty", ["check", "{res_good}", "--min-acc", ""], ("--min-acc",)),
        c("check-threshold-nan", ["check", "{res_good}", "--min-acc", "nan"], ("--min-acc",)),
        c(
            "check-fraction-above-one",
            ["check", "{res_good}", "--min-acc", "1.5"],
            ("--min-acc", "[0, 1]"),
        ),
        c(
            "check-robust-without-eps",
            ["check", "{res_good}", "--min-robust-acc", "0.5"],
            ("--min-robust-acc", "@"),
        ),
        c(
            "check-robust-norm-typo",
            ["check", "{res_good}", "--min-robust-acc", "0.5@lfoo:0.1"],
            ("lfoo", "did you mean"),
        ),
        c(
            "check-ece-bad-qualifier",
            ["check", "{res_good}", "--max-ece", "0.05@during"],
            ("--max-ece", "after"),
        ),
        c(
            "check-empty-qualifier",
            ["check", "{res_good}", "--max-corruption-drop", "0.1@"],
            ("--max-corruption-drop", "empty"),
        ),
        c(
            "check-suite-not-run",
            ["check", "{res_good}", "--min-auroc", "0.9"],
            ("--min-auroc", "ood"),
        ),
        c("check-missing-dir", ["check", "{tmp}/nope", "--min-acc", "0.9"], ("nope",)),
        c(
            "check-empty-object",
            ["check", "{res_obj}", "--min-acc", "0.9"],
            ("not a robustcv audit",),
        ),
        c("check-not-json", ["check", "{res_notjson}", "--min-acc", "0.9"], ("res_notjson",)),
        c("check-newer-schema", ["check", "{res_newer}", "--min-acc", "0.9"], ("newer",)),
        c("check-empty-file", ["check", "{res_emptyfile}", "--min-acc", "0.9"], ("empty",)),
        c("check-bad-suites", ["check", "{res_badsuites}", "--min-acc", "0.9"], ("suites",)),
        # --- explain
        c("explain-missing-out", ["explain", *MODEL], ("--out",)),
        c("explain-unknown-method", [*EXPLAIN, "--method", "salincy"], ("salincy", "saliency")),
        c("explain-param-not-kv", [*EXPLAIN, "--param", "steps"], ("--param", "KEY=VALUE")),
        c(
            "explain-param-unknown",
            [*EXPLAIN, "--method", "saliency", "--param", "stepz=3"],
            ("stepz",),
        ),
        c(
            "explain-param-bad-value",
            [*EXPLAIN, "--method", "integrated-gradients", "--param", "steps=-1"],
            ("steps",),
        ),
        c(
            "explain-param-bad-rule",
            [*EXPLAIN, "--param", "rule=simpson"],
            ("rule", "simpson"),
        ),
        c("explain-target-word", [*EXPLAIN, "--target", "best"], ("--target", "best")),
        c("explain-target-out-of-range", [*EXPLAIN, "--target", "10"], ("target", "10")),
        c("explain-target-negative", [*EXPLAIN, "--target", "-1"], ("target", "-1")),
        c("explain-limit-zero", [*EXPLAIN, "--limit", "0"], ("--limit",)),
        c("explain-bad-normalize", [*EXPLAIN, "--normalize", "l2"], ("--normalize",)),
        c(
            "explain-layer-not-found",
            [*EXPLAIN, "--method", "grad-cam", "--param", "layer=conv9"],
            ("conv9",),
        ),
        c(
            "explain-grad-cam-no-conv",
            [*EXPLAIN, "--method", "grad-cam"],
            ("conv2d", "layer="),
        ),
        c("explain-out-is-file", ["explain", *MODEL, "--out", "{file}"], ("--out",)),
        c(
            "explain-data-mismatch",
            ["explain", "--model", "{factory}:build", "--data", "npz:{rgb32}", "--out", "{tmp}/e"],
            ("1-channel", "3-channel"),
        ),
        c(
            "explain-empty-data",
            ["explain", "--model", "{factory}:build", "--data", "npz:{empty}", "--out", "{tmp}/e"],
            ("empty",),
        ),
        c(
            "explain-seed-negative",
            [*EXPLAIN, "--method", "smoothgrad", "--seed", "-3"],
            ("--seed",),
        ),
        # --- leaderboard (every mistake is caught before any audit starts)
        c("leaderboard-missing-out", ["leaderboard", "zoo:fmnist-cnn"], ("--out",)),
        c("leaderboard-unknown-model", [*LEADERBOARD, "zoo:nosuch"], ("nosuch",)),
        c(
            "leaderboard-out-is-file",
            ["leaderboard", "{factory}:build", "--data", "npz:{good}", "--out", "{file}"],
            ("--out", "file.txt"),
        ),
        c(
            "leaderboard-robust-n-negative",
            [*LEADERBOARD, "{factory}:build", "--robust-n", "-1"],
            ("--robust-n",),
        ),
        c(
            "leaderboard-duplicate-model",
            [*LEADERBOARD, "{factory}:build", "{factory}:build"],
            ("more than once",),
        ),
        c(
            "leaderboard-baseline-not-a-row",
            [*LEADERBOARD, "{factory}:build", "--baseline", "zoo:nope"],
            ("nope",),
        ),
        c(
            "leaderboard-docs-without-markers",
            [*LEADERBOARD, "{factory}:build", "--docs", "{file}"],
            ("table:begin",),
        ),
        c(
            "leaderboard-bad-suite",
            [*LEADERBOARD, "{factory}:build", "--suites", "clen"],
            ("clen",),
        ),
    ]
    return cases


CASES = _cases()

_SUITES = "owned by the audit suites (lead, robustcv/audit/suites)"

XFAIL: dict[str, str] = {}
"""Case id -> "owned by X: what is wrong" for cases another package must fix (strict xfail)."""

NEEDS_NO_CUDA = {case.id for case in CASES if "cuda" in case.argv}
NEEDS_READ_ONLY = {case.id for case in CASES if any("{ro}" in a for a in case.argv)}


def _params() -> list[Any]:
    out = []
    for case in CASES:
        marks: list[Any] = []
        if case.id in XFAIL:
            marks.append(pytest.mark.xfail(strict=True, reason=XFAIL[case.id]))
        if case.id in NEEDS_NO_CUDA:
            marks.append(NO_CUDA)
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


def test_corpus_is_large_and_covers_every_command() -> None:
    from robustcv.cli.main import COMMANDS

    assert len(CASES) >= 80
    assert len({case.id for case in CASES}) == len(CASES), "duplicate case ids"
    used = {case.argv[0] for case in CASES if case.argv}
    assert {module.NAME for module in COMMANDS} <= used
    assert all(case.mentions for case in CASES if case.argv), "every case names the argument"


@pytest.mark.parametrize("case", _params())
def test_cli_bad_input(
    case: CliCase, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    if case.id in NEEDS_READ_ONLY and os.access(files[READ_ONLY], os.W_OK):
        pytest.skip("chmod does not stop writes here (running as root)")
    check_cli(case, files, capsys)


# ----------------------------------------------------------------------------- beyond the corpus


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["report", "{res_good}", "--out", "{ro}/r.html"], "--out"),
        (["train", "--out", "{ro}/t"], "--out"),
        (["data", "fetch", "fashion-mnist", "--dest", "{ro}/fm"], "--dest"),
        (["corrupt", "--data", "npz:{good}", "--out", "{ro}/c"], "--out"),
        (["audit", *MODEL, "--out", "{ro}/a"], "--out"),
    ],
)
def test_unwritable_paths_even_as_root(
    argv: list[str],
    flag: str,
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Where root ignores chmod, emulate an unwritable folder through ``os.access``."""
    ro = str(files[READ_ONLY])
    real = os.access

    def access(path: Any, mode: int, **kwargs: Any) -> bool:
        if os.fspath(path) == ro and mode & os.W_OK:
            return False
        return real(path, mode, **kwargs)

    monkeypatch.setattr(os, "access", access)
    code = main([a.format(**files) for a in argv])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert flag in err and "permission" in err and "Traceback" not in err


def test_os_error_on_a_user_path_is_a_usage_error(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An OS error on a path under --out is the user's (exit 2, naming --out and the file)."""
    import robustcv.corruptions.dataset as dataset

    out = files["tmp"] / "c"

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", str(out / "fog" / "1"))

    monkeypatch.setattr(dataset, "write_corrupted", refuse)
    code = main(["corrupt", "--data", f"npz:{files['good']}", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE, err
    assert "--out" in err and "fog" in err and "Permission denied" in err
    assert "Traceback" not in err


def test_os_error_elsewhere_stays_an_internal_error(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An OS error on a path the user did not name is a robustcv bug (exit 3, traceback)."""
    import robustcv.corruptions.dataset as dataset

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", "/somewhere/robustcv/cache")

    monkeypatch.setattr(dataset, "write_corrupted", refuse)
    code = main(
        ["corrupt", "--data", f"npz:{files['good']}", "--out", str(files["tmp"] / "c"), "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == EXIT_INTERNAL
    assert "Traceback" in err and "internal error" in err


def test_full_disk_is_reported_cleanly(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import robustcv.corruptions.dataset as dataset

    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device", "/anywhere/x.png")

    monkeypatch.setattr(dataset, "write_corrupted", full)
    code = main(
        ["corrupt", "--data", f"npz:{files['good']}", "--out", str(files["tmp"] / "c"), "--quiet"]
    )
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and "No space left" in err and "Traceback" not in err


def test_report_out_folder_writes_report_html_and_leaves_no_temp_file(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = files["tmp"] / "out-folder"
    folder.mkdir()
    assert main(["report", str(files["res_good"]), "--out", str(folder)]) == EXIT_OK
    assert (folder / "report.html").is_file()
    assert sorted(p.name for p in folder.iterdir()) == ["report.html"]
    assert not list(files["tmp"].glob("*.tmp")) and not list(folder.glob(".*tmp"))
    assert (
        main(
            [
                "compare",
                str(files["res_good"]),
                str(files["res_good"]),
                "--out",
                str(folder),
                "--quiet",
            ]
        )
        == EXIT_OK
    )
    assert sorted(p.name for p in folder.iterdir()) == ["comparison.html", "report.html"]
    capsys.readouterr()


def test_failed_report_write_leaves_no_temp_file(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = files["tmp"] / "r" / "report.html"

    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", refuse)
    assert main(["report", str(files["res_good"]), "--out", str(target)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "cannot write the report" in err and "Traceback" not in err
    assert list(target.parent.iterdir()) == []


def test_report_of_an_empty_object_writes_nothing(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(files["res_obj"])]) == EXIT_USAGE
    assert not (files["res_obj"] / "report.html").exists()
    capsys.readouterr()


def test_argparse_errors_return_2_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """main(argv) returns 2 for argparse's usage errors (no SystemExit to catch)."""
    assert main(["list", "--nope"]) == EXIT_USAGE
    assert main(["eval"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("robustcv: error:") == 2
    with pytest.raises(SystemExit) as stop:  # --help still ends argparse's way, with 0
        main(["list", "--help"])
    assert stop.value.code == 0
    capsys.readouterr()
