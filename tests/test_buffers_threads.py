"""Recycled output buffers, the shared worker pool, per-thread scratch and the fast range check."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest
import torch

from robustcv.core import buffers
from robustcv.core.contract import check_images, in_unit_interval, value_range
from robustcv.core.errors import InputError
from robustcv.core.threads import run_parallel, scratch

BIG = (2, 3, 512, 512)  # 6 MiB: above the pooling threshold
BIG_BYTES = 2 * 3 * 512 * 512 * 4


def _ptr(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


def test_small_arrays_are_plain_numpy() -> None:
    a = buffers.empty((2, 3))
    assert a.shape == (2, 3) and a.dtype == np.float32 and a.flags.owndata


def test_the_lease_outlives_every_name_but_its_views() -> None:
    buffers.release()
    a = buffers.empty(BIG)
    view = a[0]
    del a
    gc.collect()
    assert buffers.release() == 0  # still leased through ``view``
    del view
    gc.collect()
    assert buffers.release() == BIG_BYTES


def test_a_dropped_buffer_is_reused_for_the_same_size() -> None:
    buffers.release()
    a = buffers.empty(BIG)
    assert a.flags.writeable and a.flags.c_contiguous and a.dtype == np.float32
    first = _ptr(a)
    del a
    gc.collect()
    b = buffers.empty(BIG)
    assert _ptr(b) == first
    assert buffers.empty((1, 3, 512, 512)).shape == (1, 3, 512, 512)  # other sizes: a new map


def test_a_buffer_is_never_reused_while_any_view_or_tensor_lives() -> None:
    buffers.release()
    a = buffers.empty(BIG)
    a.fill(0.25)
    tensor_view = torch.from_numpy(a)[1:]  # a tensor of a slice: the only survivor
    first = _ptr(a)
    del a
    gc.collect()
    b = buffers.empty(BIG)
    assert _ptr(b) != first
    b.fill(0.75)
    assert bool((tensor_view == 0.25).all())
    del tensor_view, b
    gc.collect()
    assert buffers.release() == 2 * BIG_BYTES  # both maps back in the pool, none exported


def test_the_pool_keeps_at_most_max_free_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    buffers.release()
    monkeypatch.setattr(buffers, "MAX_FREE_BYTES", 8 << 20)
    arrays = [buffers.empty(BIG) for _ in range(3)]  # 3 x 6 MiB
    del arrays
    gc.collect()
    assert buffers.release() == BIG_BYTES  # only one 6 MiB map fits under 8 MiB
    assert buffers.release() == 0


def test_run_parallel_keeps_order_and_raises() -> None:
    assert run_parallel(lambda v: v * 2, list(range(20))) == [2 * v for v in range(20)]
    assert run_parallel(lambda v: v, []) == []

    def boom(v: int) -> int:
        if v == 3:
            raise ValueError("three")
        return v

    with pytest.raises(ValueError, match="three"):
        run_parallel(boom, list(range(6)))


def test_run_parallel_nested_calls_run_inline_without_deadlock() -> None:
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = run_parallel(lambda v: sum(run_parallel(lambda u: u + v, [1, 2, 3])), [0, 10, 20])
    finally:
        torch.set_num_threads(old)
    assert got == [6, 36, 66]


def test_scratch_is_per_thread_and_grows() -> None:
    a = scratch("t", (4, 4), np.float32)
    a.fill(1.0)
    b = scratch("t", (2, 2), np.float32)  # the same memory, smaller view
    assert np.shares_memory(a, b)
    c = scratch("t", (64, 64), np.float64)  # grows
    assert c.shape == (64, 64) and c.dtype == np.float64
    other: list[np.ndarray] = []
    th = threading.Thread(target=lambda: other.append(scratch("t", (4, 4), np.float32)))
    th.start()
    th.join()
    assert not np.shares_memory(other[0], scratch("t", (4, 4), np.float32))


@pytest.mark.parametrize("contiguous", [True, False])
def test_in_unit_interval_agrees_with_min_max(contiguous: bool) -> None:
    g = torch.Generator().manual_seed(0)
    cases = [
        torch.rand(3, 3, 40, 40, generator=g),
        torch.zeros(1, 1, 8, 8),
        torch.ones(1, 1, 8, 8),
        torch.rand(2, 1, 9, 9, generator=g) * 1.0001,
        torch.rand(2, 1, 9, 9, generator=g) - 1e-7,
        torch.full((1, 1, 4, 4), float("nan")),
        torch.full((1, 1, 4, 4), float("inf")),
        torch.full((1, 1, 4, 4), -0.0),
        torch.rand(1, 3, 1100, 1100, generator=g),  # large: scanned on several threads
    ]
    big_bad = torch.rand(1, 3, 1100, 1100, generator=g)
    big_bad[0, 2, -1, -1] = 1.5  # the last part holds the only bad value
    cases.append(big_bad)
    for x in cases:
        if not contiguous:
            x = x.transpose(2, 3)
        lo, hi = value_range(x)
        want = lo >= 0.0 and hi <= 1.0  # False for NaN
        got = in_unit_interval(x)
        assert got == want or (got is False and lo == 0.0 and hi == 0.0)  # -0.0: slow path
        if want:
            assert check_images(x) is x
        else:
            with pytest.raises(InputError):
                check_images(x)
