"""Core contracts: the image contract, the model wrapper, registries, seeds and results."""

from robustcv.core.contract import (
    check_batch,
    check_count,
    check_images,
    check_labels,
    check_model_fits,
)
from robustcv.core.devices import available_devices, resolve_device
from robustcv.core.errors import (
    DataNotFoundError,
    GradientUnavailableError,
    InputError,
    ModelDataMismatchError,
    RobustcvError,
    UserCodeError,
    user_code_error,
)
from robustcv.core.model import Model, NonFiniteLogitsWarning, PassCounts, ProbabilityOutputWarning
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
    "ModelDataMismatchError",
    "NonFiniteLogitsWarning",
    "PassCounts",
    "ProbabilityOutputWarning",
    "Registry",
    "Result",
    "RobustcvError",
    "UserCodeError",
    "available_devices",
    "binomial_ci",
    "check_batch",
    "check_count",
    "check_images",
    "check_labels",
    "check_model_fits",
    "check_seed",
    "derive_seed",
    "make_generator",
    "resolve_device",
    "to_jsonable",
    "user_code_error",
]
