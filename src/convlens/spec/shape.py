"""The output-size formula along each spatial dimension, its transposed form, and the padding that feeds it.

PyTorch's formula, the same along every spatial dimension (1, 2 or 3 of them)::

    out = floor((size + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1

and a transposed convolution's, the formula solved for the size (``output_padding`` picks one of
the ``stride`` sizes that the floor maps to the same ``out``)::

    out = (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1

``padding="same"`` keeps ``out == size`` (stride 1 only): the total padding
``dilation * (kernel - 1)`` is split with the smaller half before and the larger half after,
exactly as PyTorch does, so even kernels pad one more row at the bottom and column at the right.
A kernel larger than the padded input is refused with the formula and the caller's numbers.

Padding is kept explicit as (before, after) for each spatial dimension in order, flattened: for
2-D that is (top, bottom, left, right).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from convlens.errors import ArgumentError
from convlens.spec.args import (
    AXES,
    AXIS_WORDS,
    PADDING_STRINGS,
    IntOrSizes,
    Padding,
    non_negative_sizes,
    per_dimension,
    positive_sizes,
)


def padding_name(rank: int) -> str:
    """How explicit padding is named in messages: "(top, bottom, left, right)" for 2-D."""
    return "(top, bottom, left, right)" if rank == 2 else f"(before, after per {', '.join(AXES[rank])})"


def same_padding(kernel_size: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...]:
    """Explicit padding that keeps the size at stride 1, split as PyTorch does (the odd one after)."""
    pads: list[int] = []
    for kernel, step in zip(kernel_size, dilation, strict=True):
        total = step * (kernel - 1)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


def resolve_padding(
    padding: object, kernel_size: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]
) -> tuple[int, ...]:
    """Explicit padding (before, after per dimension) from an int, a tuple, "valid" or "same"."""
    rank = len(kernel_size)
    if isinstance(padding, str):
        if padding not in PADDING_STRINGS:
            raise ArgumentError(
                f"Invalid padding string: {padding!r}: padding must be an int, a tuple of {rank} ints, 'valid' or "
                f"'same'"
            )
        if padding == "valid":
            return (0,) * (2 * rank)
        if any(step != 1 for step in stride):
            raise ArgumentError(
                f"padding='same' is not supported for strided convolutions: padding='same' requires stride=1, "
                f"got stride={stride}"
            )
        return same_padding(kernel_size, dilation)
    return tuple(pad for pad in non_negative_sizes("padding", padding, rank) for _ in range(2))


def output_length(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int) -> int:
    """PyTorch's output-size formula along one dimension (may be < 1 for a kernel too large)."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def formula_text(axis: str, size: int, kernel: int, stride: int, pads: tuple[int, int], dilation: int) -> str:
    """The output-size formula with the numbers filled in, for error messages and ``explain``."""
    result = output_length(size, kernel, stride, pads[0], pads[1], dilation)
    return (
        f"{axis}_out = floor(({axis} + pad + pad - dilation*(kernel-1) - 1) / stride) + 1"
        f" = floor(({size} + {pads[0]} + {pads[1]} - {dilation}*({kernel}-1) - 1) / {stride}) + 1 = {result}"
    )


def window_span(kernel: int, dilation: int) -> int:
    """Input rows (or columns) one dilated kernel covers: dilation * (kernel - 1) + 1."""
    return dilation * (kernel - 1) + 1


def pad_pairs(padding: tuple[int, ...]) -> list[tuple[int, int]]:
    """(before, after) for each spatial dimension, from the flat explicit padding."""
    return [(padding[2 * axis], padding[2 * axis + 1]) for axis in range(len(padding) // 2)]


def effective_stride(
    in_size: tuple[int, ...],
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[int, ...]:
    """The stride, at most the number of window starts along each axis: a larger stride gives the
    same single output there, so the algorithms (stride phases, strided views) never see a stride of
    2**63, whose work or index arithmetic would grow with it instead of with the output."""
    return tuple(
        min(step, max(1, size + before + after - window_span(kernel, gap) + 1))  # window starts at stride 1
        for size, kernel, step, (before, after), gap in zip(
            in_size, kernel_size, stride, pad_pairs(padding), dilation, strict=True
        )
    )


def check_window_fits(
    in_size: tuple[int, ...],
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    pytorch_wording: bool = False,
) -> tuple[int, ...]:
    """The output size, or an ArgumentError showing the formula when the kernel is larger than the
    padded input; with ``pytorch_wording``, the message opens with what PyTorch's convolution says."""
    rank = len(in_size)
    pairs = pad_pairs(padding)
    spans = [window_span(kernel, gap) for kernel, gap in zip(kernel_size, dilation, strict=True)]
    padded = [size + before + after for size, (before, after) in zip(in_size, pairs, strict=True)]
    if any(span > size for span, size in zip(spans, padded, strict=True)):
        padded_text, span_text = " x ".join(map(str, padded)), " x ".join(map(str, spans))
        pytorch = (
            f"Calculated padded input size per channel: ({padded_text}). Kernel size: ({span_text}). "
            f"Kernel size can't be greater than actual input size: "
        )
        formulas = "".join(
            f"\n  {formula_text(axis, size, kernel, step, pads, gap)}"
            for axis, size, kernel, step, pads, gap in zip(
                AXES[rank], in_size, kernel_size, stride, pairs, dilation, strict=True
            )
        )
        raise ArgumentError(
            f"{pytorch if pytorch_wording else ''}kernel_size={kernel_size} with dilation={dilation} spans "
            f"{'x'.join(map(str, spans))}, larger than the padded input {'x'.join(map(str, padded))} (input "
            f"{'x'.join(map(str, in_size))}, padding {padding_name(rank)}={padding}); the output would be empty:"
            f"{formulas}"
        )
    return tuple(
        output_length(size, kernel, step, before, after, gap)
        for size, kernel, step, (before, after), gap in zip(in_size, kernel_size, stride, pairs, dilation, strict=True)
    )


def transposed_length(size: int, kernel: int, stride: int, padding: int, dilation: int, output_padding: int) -> int:
    """The transposed formula along one dimension (may be < 1 when the padding crops everything)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def check_transposed_sizes(
    in_size: tuple[int, ...],
    kernel_size: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_padding: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[int, ...]:
    """A transposed convolution's output size, after PyTorch's two rules: each ``output_padding``
    smaller than the stride or the dilation, and an output of at least one element per dimension."""
    words = AXIS_WORDS[len(in_size)]
    if any(extra >= step and extra >= gap for extra, step, gap in zip(output_padding, stride, dilation, strict=True)):
        named = " ".join(
            f"{argument}_{word}: {value}"
            for argument, values in (("output_padding", output_padding), ("stride", stride), ("dilation", dilation))
            for word, value in zip(words, values, strict=True)
        )
        raise ArgumentError(
            f"output padding must be smaller than either stride or dilation, but got {named}: each output_padding "
            f"value picks one of the stride's output sizes, so it must be below the stride (or the dilation)"
        )
    sizes = tuple(
        transposed_length(*values) for values in zip(in_size, kernel_size, stride, padding, dilation, output_padding)
    )
    if min(sizes) < 1:
        i = next(axis for axis, size in enumerate(sizes) if size < 1)
        axis = AXES[len(in_size)][i]
        raise ArgumentError(
            f"Given input size per channel: ({' x '.join(map(str, in_size))}). Calculated output size per channel: "
            f"({' x '.join(map(str, sizes))}). Output size is too small: {axis}_out = ({axis} - 1)*stride - "
            f"2*padding + dilation*(k - 1) + output_padding + 1 = ({in_size[i]} - 1)*{stride[i]} - 2*{padding[i]} + "
            f"{dilation[i]}*({kernel_size[i]} - 1) + {output_padding[i]} + 1 = {sizes[i]}"
        )
    return sizes


def sizes_rank(input_size: object, kernel_size: object) -> int:
    """The number of spatial dimensions ``input_size`` and ``kernel_size`` describe: the length of
    either that is a sequence of several values, 2 (PyTorch's 2-D default) when neither is; two
    different lengths are refused, naming both."""
    lengths = {
        name: len(value)
        for name, value in (("input_size", input_size), ("kernel_size", kernel_size))
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 1
    }
    if len(set(lengths.values())) > 1:
        raise ArgumentError(
            f"input_size={input_size} and kernel_size={kernel_size} must give the same number of spatial "
            f"dimensions, got {lengths['input_size']} and {lengths['kernel_size']} values"
        )
    if lengths:
        return next(iter(lengths.values()))
    one_value = [value for value in (input_size, kernel_size) if isinstance(value, Sequence) and len(value) == 1]
    return 1 if one_value else 2


def output_size(
    input_size: IntOrSizes,
    kernel_size: IntOrSizes,
    stride: IntOrSizes = 1,
    padding: Padding = 0,
    dilation: IntOrSizes = 1,
    *,
    transposed: bool = False,
    output_padding: IntOrSizes = 0,
) -> tuple[int, ...]:
    """The output size of a convolution (``transposed=True``: a transposed one), by PyTorch's
    formula, with the same validation as the convolution itself. The number of spatial dimensions
    is the length of ``input_size`` or ``kernel_size`` (the longer, 2 when both are ints).

    >>> output_size(32, 5)          # the seed's CIFAR-10 layer
    (28, 28)
    >>> output_size((5, 5), 3, stride=2, padding=1)   # the CS231n demo
    (3, 3)
    >>> output_size((16,), 4, stride=2, padding=1, transposed=True)   # a 1-D upsampling layer
    (32,)
    >>> output_size((4, 8, 8), 3, stride=(1, 2, 2))   # a video layer: (D, H, W)
    (2, 3, 3)
    """
    rank = sizes_rank(input_size, kernel_size)
    source = f"input_size={input_size} with kernel_size={kernel_size}"
    size = per_dimension(positive_sizes, "input_size", input_size, rank, source)
    kernel = per_dimension(positive_sizes, "kernel_size", kernel_size, rank, source)
    strides = per_dimension(positive_sizes, "stride", stride, rank, source)
    dilations = per_dimension(positive_sizes, "dilation", dilation, rank, source)
    if transposed:
        if isinstance(padding, str):
            raise ArgumentError(f"a transposed convolution takes no padding string, got padding={padding!r}")
        pads = per_dimension(non_negative_sizes, "padding", padding, rank, source)
        extra = per_dimension(non_negative_sizes, "output_padding", output_padding, rank, source)
        return check_transposed_sizes(size, kernel, strides, pads, extra, dilations)
    if output_padding != 0:
        raise ArgumentError("output_padding is for transposed convolutions only: pass transposed=True")
    try:
        pads = resolve_padding(padding, kernel, strides, dilations)
    except ArgumentError as error:
        raise ArgumentError(f"{error} ({source} makes it {rank}-D)") from None
    return check_window_fits(size, kernel, strides, pads, dilations)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def volume(sizes: tuple[int, ...]) -> int:
    """The number of positions in a grid of ``sizes`` (k_h * k_w for a 2-D kernel)."""
    return math.prod(sizes)
