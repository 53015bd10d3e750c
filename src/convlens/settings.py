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
