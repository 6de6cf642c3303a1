"""Ray, the optional extra: import it with an install hint, and connect to a cluster.

Shared by the audit's :class:`robustcv.audit.RayExecutor` and ``robustcv corrupt --executor
ray``. Nothing here imports Ray at module level.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from robustcv.core.errors import InputError

__all__ = ["INSTALL_HINT", "check_reachable", "connect_ray", "import_ray"]

INSTALL_HINT = "pip install 'robustcv[ray]'"
"""How to install the optional Ray extra (quoted in the error when Ray is missing)."""


def import_ray() -> Any:
    """Import and return the ``ray`` module, or say how to install it.

    Raises:
        InputError: Ray is not installed (the message gives the pip command).

    Example:
        >>> import_ray().__name__  # doctest: +SKIP
        'ray'
    """
    try:
        import ray
    except ImportError as err:
        raise InputError(
            f"--executor ray needs Ray, which is not installed; install it with {INSTALL_HINT} "
            "(or use --executor processes on one machine)"
        ) from err
    return ray


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """Fail fast when nothing listens at ``HOST:PORT`` (Ray itself retries for minutes).

    Raises:
        InputError: the address does not answer within ``timeout`` seconds.

    Example:
        >>> check_reachable("127.0.0.1:1", timeout=1.0)
        Traceback (most recent call last):
        ...
        robustcv.core.errors.InputError: no Ray cluster answers at 127.0.0.1:1 ...
    """
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as err:
        raise InputError(
            f"no Ray cluster answers at {address} ({type(err).__name__}: {err}); check the "
            "address (the head's GCS port, 6379 by default, or ray://HOST:10001 for Ray "
            "Client) and that `ray start --head` runs there"
        ) from err


def connect_ray(ray: Any, address: str | None, *, num_cpus: int | None = None) -> bool:
    """Connect to ``address`` (None/"local": start a private local instance); True if started.

    Does nothing (returns False) when Ray is already initialised in this process.

    Raises:
        InputError: the cluster cannot be reached (the message says how to start one).
    """
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "log_to_driver": False,
    }
    if address not in (None, "local", "auto"):
        check_reachable(str(address))
    try:
        if address in (None, "local"):
            if num_cpus is not None:
                quiet["num_cpus"] = num_cpus
            ray.init(address="local", **quiet)  # Ray counts the CPUs (cgroup-aware)
        else:
            quiet.pop("include_dashboard")
            ray.init(address=address, **quiet)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError, ImportError) as err:
        raise InputError(
            f"cannot connect to the Ray cluster at {address!r} "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            "start one with `ray start --head` (or leave out --ray-address to start a "
            "local instance); ray:// addresses also need pip install 'ray[client]'"
        ) from err
    return True
