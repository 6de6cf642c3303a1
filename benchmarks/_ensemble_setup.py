"""Shared setup of the default-ensemble benchmarks: their common options, model and data."""

from __future__ import annotations

import argparse
from typing import Any

import torch

import robustcv


def ensemble_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--n``, ``--model``, ``--eps``, ``--threads`` and ``--no-write``."""
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--model", default="zoo:fmnist-cnn-at")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--no-write", action="store_true", help="do not update docs")


def load_model_and_images(args: argparse.Namespace) -> tuple[robustcv.Model, Any]:
    """Set the torch threads, load ``--model`` and the first ``--n`` Fashion-MNIST test images."""
    if args.threads:
        torch.set_num_threads(args.threads)
    model = robustcv.load_model(args.model)
    return model, robustcv.load_dataset("fashion-mnist", split="test", limit=args.n)
