"""convlens: PyTorch's Conv2d rebuilt in plain, readable code, proven equal, measured.

Public API::

    conv2d, unfold, fold, output_size      the functions, with PyTorch's signatures
    conv_transpose2d                       the transposed convolution: conv2d's input gradient
    algorithms()                           names accepted by ``algorithm=``
    nn.Conv2d, nn.ConvTranspose2d, nn.convert   the layers, and swapping them into a model
    grad.conv2d_input, grad.conv2d_weight  torch.nn.grad's helpers: one gradient without a forward
    settings(precision=, workspace_limit=, autotune=, cache_limit=)   the settings for a ``with`` block
    set_workspace_limit, get_workspace_limit, set_precision, get_precision, set_autotune, get_autotune,
    set_cache_limit, get_cache_limit
    ConvlensError, ArgumentError, ArgumentTypeError     what a caller's mistake raises (also RuntimeError)
"""

from __future__ import annotations

from convlens import algos as _algos
from convlens import grad, nn
from convlens.config import (
    get_autotune,
    get_cache_limit,
    get_precision,
    get_workspace_limit,
    set_autotune,
    set_cache_limit,
    set_precision,
    set_workspace_limit,
    settings,
)
from convlens.errors import ArgumentError, ArgumentTypeError, ConvlensError
from convlens.functional import conv2d
from convlens.spec import ConvSpec, output_size
from convlens.transposed import conv_transpose2d
from convlens.unfold import fold, unfold

__version__ = "0.1.0"


def algorithms() -> tuple[str, ...]:
    """Every name ``algorithm=`` accepts, "auto" first."""
    return _algos.names()


__all__ = [
    "ArgumentError",
    "ArgumentTypeError",
    "ConvSpec",
    "ConvlensError",
    "algorithms",
    "conv2d",
    "conv_transpose2d",
    "fold",
    "get_autotune",
    "get_cache_limit",
    "get_precision",
    "get_workspace_limit",
    "grad",
    "nn",
    "output_size",
    "set_autotune",
    "set_cache_limit",
    "set_precision",
    "set_workspace_limit",
    "settings",
    "unfold",
]
