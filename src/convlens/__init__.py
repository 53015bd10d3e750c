"""convlens: PyTorch's Conv2d rebuilt in plain, readable code, proven equal, measured.

Public API::

    conv1d, conv2d, conv3d                 the convolutions, with PyTorch's signatures
    conv_transpose1d, 2d, 3d               the transposed ones: each a convolution's input gradient
    unfold, fold, output_size              im2col / col2im (1-, 2- or 3-D) and the output-size formula
    solve                                  the formula backwards: stride / padding / ... for a wanted size
    summary                                every layer call of a model on meta, and why its shapes break
    explore                                an interactive HTML page of one convolution (Jupyter shows it inline)
    algorithms()                           names accepted by ``algorithm=``
    nn.Conv1d/2d/3d, nn.ConvTranspose1d/2d/3d, nn.convert   the layers, and swapping them into a model
    grad.conv2d_input, grad.conv2d_weight  torch.nn.grad's helpers: one gradient without a forward
    settings(precision=, workspace_limit=, autotune=, cache_limit=)   the settings for a ``with`` block
    set_workspace_limit, get_workspace_limit, set_precision, get_precision, set_autotune, get_autotune,
    set_cache_limit, get_cache_limit
    ConvlensError, ArgumentError, ArgumentTypeError     what a caller's mistake raises (also RuntimeError)
"""

from __future__ import annotations

from convlens import algos as _algos
from convlens import grad, nn
from convlens.choice import explain_choice
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
from convlens.explore import explore
from convlens.functional import conv1d, conv2d, conv3d
from convlens.solve import solve
from convlens.spec import ConvSpec, output_size
from convlens.summary import summary
from convlens.transposed import conv_transpose1d, conv_transpose2d, conv_transpose3d
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
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "explain_choice",
    "explore",
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
    "solve",
    "summary",
    "unfold",
]
