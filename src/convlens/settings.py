"""Process-wide settings: the im2col workspace limit (and, later, numeric precision).

Settings are plain values read at call time; a per-call argument always wins.
"""

from __future__ import annotations

import threading

DEFAULT_WORKSPACE_BYTES = 256 * 1024**2

_lock = threading.Lock()
_workspace_bytes = DEFAULT_WORKSPACE_BYTES


def set_workspace_limit(limit_bytes: int) -> None:
    """Largest im2col columns buffer, in bytes, that one piece of work may allocate."""
    global _workspace_bytes
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int):
        raise TypeError(f"limit_bytes must be an int, got {type(limit_bytes).__name__} limit_bytes={limit_bytes!r}")
    if limit_bytes < 1:
        raise ValueError(f"limit_bytes must be positive, got limit_bytes={limit_bytes}")
    with _lock:
        _workspace_bytes = limit_bytes


def get_workspace_limit() -> int:
    return _workspace_bytes


def resolve_workspace(limit_bytes: int | None) -> int:
    """The per-call limit if given (checked), else the process-wide one."""
    if limit_bytes is None:
        return _workspace_bytes
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, int):
        raise TypeError(
            f"workspace_limit must be an int number of bytes, got {type(limit_bytes).__name__} "
            f"workspace_limit={limit_bytes!r}"
        )
    if limit_bytes < 1:
        raise ValueError(f"workspace_limit must be positive, got workspace_limit={limit_bytes}")
    return limit_bytes


PRECISIONS = ("highest", "high")
_precision = "highest"


def set_precision(precision: str) -> None:
    """How much extra float32 error fast algorithms may add.

    "highest" (the default): only algorithms whose error stays at PyTorch's own level (within
    about 2x of its error against float64). "high": also Winograd F(4x4, 3x3), up to 50x
    PyTorch's error, for its 4x fewer multiplications, where it is the faster tile size (at
    least 32 tiles over the batch; see ``convlens.algos.winograd.tile_size``). Like
    ``torch.set_float32_matmul_precision``.
    """
    global _precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got precision={precision!r}")
    with _lock:
        _precision = precision


def get_precision() -> str:
    return _precision


_autotune = False


def set_autotune(enabled: bool) -> None:
    """Let ``algorithm="auto"`` time every candidate once per configuration and keep the fastest
    (like ``torch.backends.cudnn.benchmark``). Off by default: auto then follows its cost rule."""
    global _autotune
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__} enabled={enabled!r}")
    with _lock:
        _autotune = enabled


def get_autotune() -> bool:
    return _autotune
