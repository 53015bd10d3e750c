"""The output-size formula along one spatial dimension, and the padding that feeds it.

PyTorch's formula::

    out = floor((size + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1

``padding="same"`` keeps ``out == size`` (stride 1 only): the total padding
``dilation * (kernel - 1)`` is split with the smaller half before and the larger half after,
exactly as PyTorch does, so even kernels pad one more row at the bottom and column at the right.
A kernel larger than the padded input is refused with the formula and the caller's numbers.
"""

from __future__ import annotations

from convlens.errors import ArgumentError
from convlens.spec.args import (
    PADDING_STRINGS,
    IntOrPair,
    Padding,
    non_negative_pair,
    positive_pair,
)


def same_padding(kernel_size: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding that keeps the size at stride 1, split as PyTorch does."""
    total_h = dilation[0] * (kernel_size[0] - 1)
    total_w = dilation[1] * (kernel_size[1] - 1)
    return (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)


def resolve_padding(
    padding: object, kernel_size: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Explicit (top, bottom, left, right) padding from an int, a pair, "valid" or "same"."""
    if isinstance(padding, str):
        if padding not in PADDING_STRINGS:
            raise ArgumentError(
                f"Invalid padding string: {padding!r}: padding must be an int, a tuple of 2 ints, 'valid' or 'same'"
            )
        if padding == "valid":
            return (0, 0, 0, 0)
        if stride != (1, 1):
            raise ArgumentError(
                f"padding='same' is not supported for strided convolutions: padding='same' requires stride=1, "
                f"got stride={stride}"
            )
        return same_padding(kernel_size, dilation)
    pad_h, pad_w = non_negative_pair("padding", padding)
    return (pad_h, pad_h, pad_w, pad_w)


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


def effective_stride(
    in_size: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """The stride, at most the number of window starts along each axis: a larger stride gives the
    same single output there, so the algorithms (stride phases, strided views) never see a stride of
    2**63, whose work or index arithmetic would grow with it instead of with the output."""
    (height, width), (top, bottom, left, right) = in_size, padding
    starts_h = height + top + bottom - window_span(kernel_size[0], dilation[0]) + 1  # window starts at stride 1
    starts_w = width + left + right - window_span(kernel_size[1], dilation[1]) + 1
    return (min(stride[0], max(1, starts_h)), min(stride[1], max(1, starts_w)))


def check_window_fits(
    in_size: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    pytorch_wording: bool = False,
) -> tuple[int, int]:
    """(H_out, W_out), or an ArgumentError showing the formula when the kernel is larger than the padded
    input; with ``pytorch_wording``, the message opens with what PyTorch's convolution says."""
    height, width = in_size
    top, bottom, left, right = padding
    span_h = window_span(kernel_size[0], dilation[0])
    span_w = window_span(kernel_size[1], dilation[1])
    padded_h = height + top + bottom
    padded_w = width + left + right
    if span_h > padded_h or span_w > padded_w:
        pytorch = (
            f"Calculated padded input size per channel: ({padded_h} x {padded_w}). Kernel size: ({span_h} x "
            f"{span_w}). Kernel size can't be greater than actual input size: "
        )
        raise ArgumentError(
            f"{pytorch if pytorch_wording else ''}kernel_size={kernel_size} with dilation={dilation} spans "
            f"{span_h}x{span_w}, "
            f"larger than the padded input {padded_h}x{padded_w} (input {height}x{width}, "
            f"padding (top, bottom, left, right)={padding}); the output would be empty:\n"
            f"  {formula_text('H', height, kernel_size[0], stride[0], (top, bottom), dilation[0])}\n"
            f"  {formula_text('W', width, kernel_size[1], stride[1], (left, right), dilation[1])}"
        )
    return (
        output_length(height, kernel_size[0], stride[0], top, bottom, dilation[0]),
        output_length(width, kernel_size[1], stride[1], left, right, dilation[1]),
    )


def output_size(
    input_size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: Padding = 0,
    dilation: IntOrPair = 1,
) -> tuple[int, int]:
    """(H_out, W_out) of a convolution, by PyTorch's formula, with the same validation as conv2d.

    >>> output_size(32, 5)          # the seed's CIFAR-10 layer
    (28, 28)
    >>> output_size((5, 5), 3, stride=2, padding=1)   # the CS231n demo
    (3, 3)
    """
    size = positive_pair("input_size", input_size)
    kernel = positive_pair("kernel_size", kernel_size)
    strides = positive_pair("stride", stride)
    dilations = positive_pair("dilation", dilation)
    pads = resolve_padding(padding, kernel, strides, dilations)
    return check_window_fits(size, kernel, strides, pads, dilations)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
