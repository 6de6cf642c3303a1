"""Core contracts: the image contract, the model wrapper, registries, seeds and results."""

from robustcv.core.contract import check_batch, check_images, check_labels
from robustcv.core.errors import (
    DataNotFoundError,
    GradientUnavailableError,
    InputError,
    RobustcvError,
)
from robustcv.core.model import Model, PassCounts, ProbabilityOutputWarning
from robustcv.core.registry import Entry, Registry
from robustcv.core.results import Result, to_jsonable
from robustcv.core.seeding import check_seed, derive_seed, make_generator
from robustcv.core.stats import binomial_ci

__all__ = [
    "DataNotFoundError",
    "Entry",
    "GradientUnavailableError",
    "InputError",
    "Model",
    "PassCounts",
    "ProbabilityOutputWarning",
    "Registry",
    "Result",
    "RobustcvError",
    "binomial_ci",
    "check_batch",
    "check_images",
    "check_labels",
    "check_seed",
    "derive_seed",
    "make_generator",
    "to_jsonable",
]
