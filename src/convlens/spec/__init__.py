"""Argument rules and shape math for a convolution, in one place.

Every public entry point (``conv1d/2d/3d``, ``conv_transpose1d/2d/3d``, ``unfold``, ``fold``,
``output_size``, the ``nn`` layers)
turns its arguments into normalised values here *before* anything is allocated; the number of
spatial dimensions (1, 2 or 3) is a field of the spec, and every rule is written once. A mistake
raises :class:`~convlens.errors.ArgumentTypeError` (wrong kind of value) or
:class:`~convlens.errors.ArgumentError` (right kind, wrong value), which are also PyTorch's
``RuntimeError`` and Python's ``TypeError`` / ``ValueError``, with a message that names the
argument, the value and the rule.

    args.py        one argument at a time: ints, one size per spatial dimension, padding modes, tensors
    shape.py       the output-size formula and its transposed form, "same" padding, a kernel too
                   large shown with its numbers
    conv.py        ConvSpec: a whole conv1d/2d/3d call validated (conv_spec: remembered for repeated
                   calls); nn.ConvNd's constructor rules
    transposed.py  TransposedSpec: a conv_transpose1d/2d/3d call, and the convolution it is the gradient of
    window.py      WindowSpec: unfold's and fold's window arguments and inputs
    layout.py      whether a tensor is channels-last, by PyTorch's rule

What convlens accepts is what ``torch.nn.functional.conv2d`` accepts (dtypes too: floating,
complex and integer for conv2d, bool instead of integer for unfold and fold, as PyTorch's CPU
kernels), with the few deliberate differences the README lists, each with its reason.
"""

from convlens.spec.args import (
    AXES,
    COMPLEX_DTYPES,
    CONV_DTYPES,
    FLOAT_DTYPES,
    INTEGER_DTYPES,
    PADDING_MODES,
    PADDING_STRINGS,
    WINDOW_DTYPES,
    IntOrSizes,
    Padding,
    check_padding_mode,
    check_same_kind,
    check_tensor,
    non_negative_sizes,
    positive_int,
    positive_sizes,
    to_int,
    to_sizes,
)
from convlens.spec.conv import (
    ConvSpec,
    check_layer_args,
    check_memory,
    check_mode_padding,
    conv_spec,
    device_memory_bytes,
)
from convlens.spec.layout import prefers_channels_last
from convlens.spec.shape import (
    ceil_div,
    check_transposed_sizes,
    check_window_fits,
    formula_text,
    output_length,
    output_size,
    pad_pairs,
    resolve_padding,
    same_padding,
    transposed_length,
    volume,
)
from convlens.spec.window import WindowSpec, check_fold_input, check_unfold_input

__all__ = [
    "AXES",
    "COMPLEX_DTYPES",
    "CONV_DTYPES",
    "FLOAT_DTYPES",
    "INTEGER_DTYPES",
    "PADDING_MODES",
    "PADDING_STRINGS",
    "WINDOW_DTYPES",
    "ConvSpec",
    "IntOrSizes",
    "Padding",
    "WindowSpec",
    "ceil_div",
    "check_fold_input",
    "check_layer_args",
    "check_memory",
    "check_mode_padding",
    "check_padding_mode",
    "check_same_kind",
    "check_tensor",
    "check_transposed_sizes",
    "check_unfold_input",
    "check_window_fits",
    "conv_spec",
    "device_memory_bytes",
    "formula_text",
    "non_negative_sizes",
    "output_length",
    "output_size",
    "pad_pairs",
    "positive_int",
    "positive_sizes",
    "prefers_channels_last",
    "resolve_padding",
    "same_padding",
    "to_int",
    "to_sizes",
    "transposed_length",
    "volume",
]
