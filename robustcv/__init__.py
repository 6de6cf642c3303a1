"""robustcv: find how and where a computer-vision model breaks, and help fix it.

The names most users need are re-exported here::

    import robustcv
    model = robustcv.load_model("zoo:fmnist-cnn")
    data = robustcv.load_dataset("fashion-mnist", split="test")
    print(robustcv.accuracy(model, data).accuracy)
    foggy = robustcv.corrupt(data.x[:8], "fog", 3)
"""

from robustcv.attacks import attack, robust_accuracy
from robustcv.audit.engine import run_audit
from robustcv.core import InputError, Model, RobustcvError, check_images, check_labels
from robustcv.corruptions import corrupt, corruption_accuracy
from robustcv.data import Dataset, load_dataset
from robustcv.diagnostics.accuracy import accuracy
from robustcv.explanations import explain
from robustcv.models import load_model

__version__ = "0.5.0"

__all__ = [
    "Dataset",
    "InputError",
    "Model",
    "RobustcvError",
    "__version__",
    "accuracy",
    "attack",
    "check_images",
    "check_labels",
    "corrupt",
    "corruption_accuracy",
    "explain",
    "load_dataset",
    "load_model",
    "robust_accuracy",
    "run_audit",
]
