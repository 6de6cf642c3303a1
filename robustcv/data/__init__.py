"""Datasets under the image contract.

``load_dataset(spec)`` reads named datasets (Fashion-MNIST) and files on disk (IDX, npz, image
folders, CIFAR-10 binary, ImageNet-C / CIFAR-10-C layouts). The data layer sits below the
corruptions: writing -C datasets is :func:`robustcv.corruptions.write_corrupted`.
"""

from robustcv.core.deprecation import deprecated_getattr
from robustcv.data.cifar import CIFAR10_CLASSES, read_cifar10_binary
from robustcv.data.corrupted import available_corruptions, load_corrupted
from robustcv.data.dataset import ArraySource, Dataset, Source, images_to_tensor
from robustcv.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    fetch_fashion_mnist,
    find_fashion_mnist,
)
from robustcv.data.fetch import content_sha256, fetch_files, user_cache_dir
from robustcv.data.folder import FolderSource
from robustcv.data.idx import read_idx, write_idx
from robustcv.data.loading import DATASETS, load_dataset

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "ArraySource",
    "Dataset",
    "FolderSource",
    "Source",
    "available_corruptions",
    "content_sha256",
    "fetch_fashion_mnist",
    "fetch_files",
    "find_fashion_mnist",
    "images_to_tensor",
    "load_corrupted",
    "load_dataset",
    "read_cifar10_binary",
    "read_idx",
    "user_cache_dir",
    "write_idx",
]

# moved to robustcv.corruptions in 0.5 (the data layer does not import the corruptions)
__getattr__ = deprecated_getattr(
    __name__,
    {
        "CorruptedWriteResult": "robustcv.corruptions.dataset:CorruptedWriteResult",
        "write_corrupted": "robustcv.corruptions.dataset:write_corrupted",
    },
)
