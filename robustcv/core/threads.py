"""A small shared thread pool for CPU work that releases the GIL (numpy, Pillow).

torch parallelises its own operators with OpenMP. Work that runs in numpy or Pillow (the CPU
paths of pixelate and JPEG, the range checks of the image contract) is split into parts and
run here instead, on ``torch.get_num_threads()`` threads, so that one setting governs both.
The pool is created once and reused instead of starting threads on every call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch

__all__ = ["run_parallel", "scratch"]

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_PREFIX = "robustcv-worker"
_local = threading.local()


def _executor(workers: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(workers, thread_name_prefix=_PREFIX)
            _pool_size = workers
        return _pool


def run_parallel(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(item) for item in items]``, on up to ``torch.get_num_threads()`` threads.

    Items are handed out in order as threads become free. Runs serially when there is one
    item, one thread, or when called from one of the pool's own threads (no nested waits).
    Exceptions propagate to the caller.

    Example:
        >>> run_parallel(lambda v: v * v, [1, 2, 3])
        [1, 4, 9]
    """
    workers = min(torch.get_num_threads(), len(items))
    if workers <= 1 or threading.current_thread().name.startswith(_PREFIX):
        return [fn(item) for item in items]
    return list(_executor(torch.get_num_threads()).map(fn, items))


def scratch(key: str, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    """A per-thread reusable work array (uninitialised) of ``shape`` and ``dtype``.

    Large temporaries that are freed and allocated again on every call go back and forth
    between malloc and the kernel (the heap is trimmed), and each round trip pays a page fault
    for every page touched, which doubled the cost of JPEG on a virtual machine. A thread keeps
    one growing buffer per ``key`` instead; the array returned is valid until the same thread
    asks for the same key again.

    Example:
        >>> scratch("demo", (2, 3), np.float32).shape
        (2, 3)
    """
    store: dict[str, np.ndarray] = _local.__dict__.setdefault("arrays", {})
    count = int(np.prod(shape))
    nbytes = count * np.dtype(dtype).itemsize
    buf = store.get(key)
    if buf is None or buf.size < nbytes:
        buf = store[key] = np.empty(nbytes, dtype=np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)
