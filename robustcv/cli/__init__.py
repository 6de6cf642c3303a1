"""The ``robustcv`` command line (``robustcv --help``)."""

from robustcv.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
