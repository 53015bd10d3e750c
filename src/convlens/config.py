"""Process-wide settings, read at call time; a per-call argument always wins.

    workspace_limit   bytes one piece of scratch work may take (im2col's columns; FFT's buffers, for auto)
    cache_limit       bytes each cache of transformed weights may keep (Winograd's U, FFT's spectra, bands)
    precision         "highest" or "high": how much extra float32 error fast algorithms may add
    autotune          whether auto times the candidates once per configuration

Each has a setter and a getter (``set_precision`` / ``get_precision``, like
``torch.set_float32_matmul_precision``), and :func:`settings` sets any of them for a block
only. A bad value is refused when it is set, never at the next convolution.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from convlens.errors import ArgumentError, ArgumentTypeError

DEFAULT_WORKSPACE_BYTES = 256 * 1024**2
DEFAULT_CACHE_BYTES = 512 * 1024**2  # per cache: ResNet-50's Winograd U at F(4x4), all layers, is about 190 MB
USEFUL_WORKSPACE_BYTES = 1024**2  # below this im2col's pieces shrink to a few output rows; see check_workspace_limit
PRECISIONS = ("highest", "high")

_lock = threading.Lock()
_workspace_bytes = DEFAULT_WORKSPACE_BYTES
_precision = "highest"
_autotune = False
_cache_bytes = DEFAULT_CACHE_BYTES


# ---- the rules, checked before anything changes ----------------------------------------------
def check_bytes(limit: object, name: str, minimum: int) -> int:
    """An int number of bytes of at least ``minimum`` (1: "positive", 0: "non-negative")."""
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ArgumentTypeError(f"{name} must be an int number of bytes, got {type(limit).__name__} {name}={limit!r}")
    if limit < minimum:
        rule = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f"at least {minimum}"
        raise ArgumentError(f"{name} must be {rule}, got {name}={limit}")
    return limit


def check_workspace_limit(limit: object, name: str = "workspace_limit") -> int:
    """A positive int number of bytes; below USEFUL_WORKSPACE_BYTES a warning says what it costs."""
    limit = check_bytes(limit, name, minimum=1)
    if limit < USEFUL_WORKSPACE_BYTES:
        warnings.warn(
            f"{name}={limit} bytes is below {USEFUL_WORKSPACE_BYTES // 2**20} MiB: im2col then works a few "
            f"output rows (3-D: depth planes) at a time (at least one), many small products that run far "
            f"below the machine's speed; 1 MiB or more keeps it near full speed",
            stacklevel=3,
        )
    return limit


def check_cache_limit(limit: object, name: str = "cache_limit") -> int:
    """A non-negative int number of bytes (0: keep nothing)."""
    return check_bytes(limit, name, minimum=0)


def check_precision(precision: object) -> str:
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ArgumentError(f"precision must be one of {PRECISIONS}, got precision={precision!r}")
    return precision


def check_autotune(enabled: object, name: str = "autotune") -> bool:
    if not isinstance(enabled, bool):
        raise ArgumentTypeError(f"{name} must be a bool, got {type(enabled).__name__} {name}={enabled!r}")
    return enabled


# ---- setters and getters ---------------------------------------------------------------------
def set_workspace_limit(limit_bytes: int) -> None:
    """Largest im2col columns buffer, in bytes, that one piece of work may allocate."""
    global _workspace_bytes
    limit = check_workspace_limit(limit_bytes, "limit_bytes")
    with _lock:
        _workspace_bytes = limit


def get_workspace_limit() -> int:
    return _workspace_bytes


def resolve_workspace(limit_bytes: int | None) -> int:
    """The per-call limit if given (checked), else the process-wide one."""
    return _workspace_bytes if limit_bytes is None else check_workspace_limit(limit_bytes)


def set_cache_limit(limit_bytes: int) -> None:
    """Most bytes each cache of transformed weights keeps (entries and their saved weight copies);
    the least recently used go first, and a transform larger than the limit is not kept at all."""
    global _cache_bytes
    limit = check_cache_limit(limit_bytes, "limit_bytes")
    with _lock:
        _cache_bytes = limit


def get_cache_limit() -> int:
    return _cache_bytes


def set_precision(precision: str) -> None:
    """How much extra float32 error fast algorithms may add.

    "highest" (the default): only algorithms whose error stays at PyTorch's own level (within
    about 2x of its error against float64). "high": also Winograd F(4x4, 3x3), up to 50x
    PyTorch's error, for its 4x fewer multiplications, where it is the faster tile size (see
    ``convlens.algos.winograd.plan.tile_size``). Like ``torch.set_float32_matmul_precision``.
    """
    global _precision
    checked = check_precision(precision)
    with _lock:
        _precision = checked


def get_precision() -> str:
    return _precision


def set_autotune(enabled: bool) -> None:
    """Let ``algorithm="auto"`` time every candidate once per configuration and keep the fastest
    (like ``torch.backends.cudnn.benchmark``). Off by default: auto then follows its cost rule."""
    global _autotune
    checked = check_autotune(enabled, "enabled")
    with _lock:
        _autotune = checked


def get_autotune() -> bool:
    return _autotune


@contextmanager
def settings(
    *,
    precision: str | None = None,
    workspace_limit: int | None = None,
    autotune: bool | None = None,
    cache_limit: int | None = None,
) -> Iterator[None]:
    """Any of the settings for the length of a ``with`` block, the previous values restored after,
    also when the block raises. Every value is checked before any is changed; None leaves one as it is.

    >>> import convlens
    >>> with convlens.settings(precision="high", workspace_limit=64 * 2**20):
    ...     convlens.get_precision()
    'high'
    >>> convlens.get_precision()
    'highest'
    """
    if precision is not None:
        check_precision(precision)
    if workspace_limit is not None:
        check_workspace_limit(workspace_limit)
    if autotune is not None:
        check_autotune(autotune)
    if cache_limit is not None:
        check_cache_limit(cache_limit)
    global _precision, _workspace_bytes, _autotune, _cache_bytes
    saved = (_precision, _workspace_bytes, _autotune, _cache_bytes)
    try:
        if precision is not None:
            set_precision(precision)
        if workspace_limit is not None:
            set_workspace_limit(workspace_limit)
        if autotune is not None:
            set_autotune(autotune)
        if cache_limit is not None:
            set_cache_limit(cache_limit)
        yield
    finally:
        with _lock:
            _precision, _workspace_bytes, _autotune, _cache_bytes = saved
