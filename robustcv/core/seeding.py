"""Explicit randomness: generators from seeds, and seeds derived from keys.

robustcv never touches the global RNG. Every random operation takes a seed or a
``torch.Generator``; derived seeds depend on (global seed, key), never on execution order.
"""

from __future__ import annotations

import hashlib

import torch

from robustcv.core.errors import InputError

__all__ = ["check_seed", "content_keys", "derive_seed", "make_generator"]


def check_seed(seed: object, *, name: str = "seed") -> int:
    """Validate a seed: a non-negative Python int below 2**63.

    Example:
        >>> check_seed(3)
        3
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"{name} must be an int, got {type(seed).__name__}; pass e.g. {name}=0")
    if not 0 <= seed < 2**63:
        raise InputError(f"{name}={seed} is out of range; use a value in [0, 2**63)")
    return seed


def make_generator(seed: int, device: torch.device | str | None = None) -> torch.Generator:
    """Return a ``torch.Generator`` on ``device`` seeded with ``seed``.

    Example:
        >>> g = make_generator(0)
        >>> a = torch.rand(2, generator=g)
        >>> torch.equal(a, torch.rand(2, generator=make_generator(0)))
        True
    """
    gen = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    gen.manual_seed(check_seed(seed))
    return gen


def derive_seed(seed: int, *keys: object) -> int:
    """Derive a child seed from a global seed and any keys (names, indices).

    The result does not depend on execution order: the same (seed, keys) always gives the same
    child seed.

    Example:
        >>> derive_seed(0, "fog", 3) == derive_seed(0, "fog", 3)
        True
        >>> derive_seed(0, "fog", 3) == derive_seed(0, "fog", 4)
        False
    """
    text = "\x1f".join([str(check_seed(seed)), *(repr(k) for k in keys)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def content_keys(x: torch.Tensor) -> torch.Tensor:
    """A 63-bit hash of each image's bytes (B,), used to key per-sample randomness.

    Example:
        >>> x = torch.rand(3, 1, 4, 4)
        >>> torch.equal(content_keys(x)[1:], content_keys(x[1:]))
        True
    """
    flat = x.detach().to("cpu", torch.float32).contiguous().reshape(x.shape[0], -1).numpy()
    keys = [
        int.from_bytes(hashlib.blake2b(row.tobytes(), digest_size=8).digest(), "little") >> 1
        for row in flat
    ]
    return torch.tensor(keys, dtype=torch.int64)
