"""Models: ``load_model(spec)``, the architectures and the shipped model zoo."""

from robustcv.models.architectures import ARCHITECTURES, SmallCNN, build_architecture
from robustcv.models.loading import load_model
from robustcv.models.onnx import OnnxNet
from robustcv.models.weights import load_weights, read_state_dict
from robustcv.models.zoo import ZOO, load_zoo_model, zoo_card

__all__ = [
    "ARCHITECTURES",
    "ZOO",
    "OnnxNet",
    "SmallCNN",
    "build_architecture",
    "load_model",
    "load_weights",
    "load_zoo_model",
    "read_state_dict",
    "zoo_card",
]
