"""The image/label contract: every violation is a ValueError whose message names the problem."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustcv.core.contract import check_batch, check_images, check_labels
from robustcv.core.errors import InputError

# ---------------------------------------------------------------------------- check_images


def test_valid_batch_is_returned_unchanged_and_uncopied():
    x = torch.rand(3, 1, 8, 8)
    before = x.clone()
    out = check_images(x)
    assert out is x
    assert torch.equal(x, before)


def test_boundary_values_zero_and_one_are_accepted():
    x = torch.zeros(2, 3, 4, 4)
    x[1] = 1.0
    assert check_images(x) is x


def test_tensor_requiring_grad_passes_without_warnings():
    x = torch.rand(2, 1, 4, 4, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_images(x) is x
    assert x.grad is None


def test_errors_are_input_errors_and_value_errors():
    with pytest.raises(InputError) as info:
        check_images(torch.rand(1, 8, 8))
    assert isinstance(info.value, ValueError)


def test_nan_is_rejected_with_count():
    x = torch.rand(2, 1, 4, 4)
    x[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match=r"contains 1 NaN or infinite values"):
        check_images(x)


def test_inf_is_rejected():
    x = torch.rand(2, 1, 4, 4)
    x[1, 0, 0, 0] = float("inf")
    x[1, 0, 0, 1] = float("-inf")
    with pytest.raises(ValueError, match=r"contains 2 NaN or infinite values.*nan_to_num"):
        check_images(x)


def test_values_above_one_in_0_255_range_get_divide_hint():
    x = torch.rand(2, 3, 4, 4) * 255
    x[0, 0, 0, 0] = 255.0
    with pytest.raises(ValueError, match=r"outside \[0, 1\]: divide by 255 \(x / 255\)"):
        check_images(x)


def test_negative_values_get_normalisation_hint():
    x = torch.rand(2, 3, 4, 4) - 0.5
    with pytest.raises(ValueError, match=r"outside \[0, 1\].*undo any normalisation.*mean/std"):
        check_images(x)


def test_values_far_above_255_do_not_get_divide_hint():
    x = torch.rand(1, 1, 4, 4)
    x[0, 0, 0, 0] = 1000.0
    with pytest.raises(ValueError, match=r"values in \[.*, 1000\], outside \[0, 1\]") as info:
        check_images(x)
    assert "divide by 255" not in str(info.value)


def test_slightly_above_one_is_rejected():
    x = torch.full((1, 1, 2, 2), 1.0 + 1e-6)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        check_images(x)


def test_rank_3_gets_unsqueeze_hint():
    with pytest.raises(
        ValueError,
        match=r"x has 3 dimensions \(shape \(1, 28, 28\)\).*"
        r"x\.unsqueeze\(0\)",
    ):
        check_images(torch.rand(1, 28, 28))


@pytest.mark.parametrize("shape", [(28,), (4, 28 * 28), (1, 2, 1, 8, 8)])
def test_other_ranks_get_reshape_hint(shape):
    with pytest.raises(
        ValueError,
        match=rf"has {len(shape)} dimensions.*reshape it to "
        r"\(batch, channels, height, width\)",
    ):
        check_images(torch.rand(*shape))


def test_uint8_gets_scale_hint():
    x = torch.randint(0, 256, (2, 1, 4, 4), dtype=torch.uint8)
    with pytest.raises(
        ValueError,
        match=r"dtype torch\.uint8.*float32 in \[0, 1\].*"
        r"x\.float\(\) / 255",
    ):
        check_images(x)


def test_float64_is_rejected():
    with pytest.raises(ValueError, match=r"dtype torch\.float64.*convert it with x\.float\(\)"):
        check_images(torch.rand(2, 1, 4, 4, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.float16])
def test_other_dtypes_are_rejected(dtype):
    x = torch.zeros(2, 1, 4, 4, dtype=dtype)
    with pytest.raises(ValueError, match=rf"dtype {dtype}; robustcv expects float32"):
        check_images(x)


def test_empty_batch_is_rejected():
    with pytest.raises(ValueError, match=r"empty batch \(shape \(0, 1, 4, 4\)\)"):
        check_images(torch.rand(0, 1, 4, 4))


def test_zero_channels_are_rejected():
    with pytest.raises(ValueError, match=r"at least one channel"):
        check_images(torch.rand(2, 0, 4, 4))


def test_min_size_is_enforced():
    x = torch.rand(1, 1, 4, 4)
    assert check_images(x, min_size=4) is x
    with pytest.raises(ValueError, match=r"at least one channel and 5x5 pixels"):
        check_images(x, min_size=5)


def test_numpy_array_gets_conversion_hint():
    arr = np.zeros((2, 1, 4, 4), dtype=np.float32)
    with pytest.raises(
        ValueError,
        match=r"x is a ndarray, not a torch\.Tensor.*"
        r"torch\.from_numpy",
    ):
        check_images(arr)


def test_list_gets_generic_tensor_hint():
    with pytest.raises(ValueError, match=r"x is a list, not a torch\.Tensor; pass a torch\.Tensor"):
        check_images([[0.0]])


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channels_last_gets_permute_hint(channels):
    x = torch.rand(2, 32, 32, channels)
    with pytest.raises(ValueError, match=r"looks channels-last.*x\.permute\(0, 3, 1, 2\)"):
        check_images(x)


def test_name_is_used_in_messages():
    with pytest.raises(ValueError, match=r"^images has 3 dimensions.*images\.unsqueeze\(0\)"):
        check_images(torch.rand(3, 8, 8), name="images")


@settings(max_examples=30, deadline=None, derandomize=True)
@given(
    b=st.integers(1, 4),
    c=st.sampled_from([1, 2, 3, 4]),
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    seed=st.integers(0, 2**31 - 1),
)
def test_any_valid_batch_passes(b, c, h, w, seed):
    x = torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))
    assert check_images(x) is x


# ---------------------------------------------------------------------------- check_labels


def test_valid_labels_returned_unchanged():
    y = torch.tensor([0, 3, 9])
    assert check_labels(y, batch_size=3, num_classes=10) is y
    assert check_labels(y) is y


@pytest.mark.parametrize("dtype", [torch.int32, torch.uint8, torch.float32])
def test_labels_wrong_dtype(dtype):
    y = torch.tensor([0, 1], dtype=dtype)
    with pytest.raises(
        ValueError, match=rf"y has dtype {dtype}; labels must be int64.*y\.long\(\)"
    ):
        check_labels(y)


def test_labels_2d_gets_argmax_hint():
    y = torch.eye(3, dtype=torch.int64)
    with pytest.raises(
        ValueError,
        match=r"shape \(3, 3\); labels must be a 1-D vector.*"
        r"y\.argmax\(1\)",
    ):
        check_labels(y)


def test_labels_length_mismatch():
    with pytest.raises(ValueError, match=r"y has 3 labels but there are 2 images"):
        check_labels(torch.tensor([0, 1, 1]), batch_size=2)


def test_labels_negative():
    with pytest.raises(ValueError, match=r"negative label -2"):
        check_labels(torch.tensor([0, -2, 1]))


def test_labels_at_num_classes_rejected():
    with pytest.raises(
        ValueError,
        match=r"contains label 10 but the model has 10 classes.*"
        r"\[0, 10\)",
    ):
        check_labels(torch.tensor([0, 10]), num_classes=10)


def test_labels_largest_valid_class_accepted():
    y = torch.tensor([9, 0])
    assert check_labels(y, num_classes=10) is y


def test_labels_not_a_tensor():
    with pytest.raises(ValueError, match=r"y is a list, not a torch\.Tensor.*torch\.as_tensor"):
        check_labels([0, 1])
    with pytest.raises(ValueError, match=r"y is a ndarray"):
        check_labels(np.array([0, 1]))


def test_labels_empty():
    with pytest.raises(ValueError, match=r"y is empty"):
        check_labels(torch.zeros(0, dtype=torch.int64))


def test_labels_name_in_message():
    with pytest.raises(ValueError, match=r"^targets contains the negative label -1"):
        check_labels(torch.tensor([-1]), name="targets")


# ---------------------------------------------------------------------------- check_batch


def test_check_batch_returns_same_objects():
    x, y = torch.rand(2, 1, 4, 4), torch.tensor([1, 0])
    x2, y2 = check_batch(x, y, num_classes=2)
    assert x2 is x and y2 is y


def test_check_batch_checks_images_first():
    with pytest.raises(ValueError, match=r"x has dtype torch\.uint8"):
        check_batch(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0.5]))


def test_check_batch_length_mismatch():
    with pytest.raises(ValueError, match=r"y has 3 labels but there are 2 images"):
        check_batch(torch.rand(2, 1, 4, 4), torch.tensor([0, 1, 0]))


def test_check_batch_num_classes():
    with pytest.raises(ValueError, match=r"contains label 2 but the model has 2 classes"):
        check_batch(torch.rand(2, 1, 4, 4), torch.tensor([0, 2]), num_classes=2)
