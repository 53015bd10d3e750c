"""The tensors ``convlens explain`` works on when the user gives no layer: small, seeded, readable.

cs231n_example     the CS231n demo: a 5x5x3 input of 0..2, two 3x3x3 filters of -1..1, biases 1, 0
integer_example    any configuration, with small integers so every product can be read by eye
transposed_example the same numbers for a transposed convolution (its weight laid out (C_in, C_out/G, ...))
random_example     any configuration with normal noise, for the im2col picture

and what one costs before it is made: ``example_spec`` checks a configuration on the meta device,
``explain_bytes`` and ``im2col_bytes`` predict the memory, to refuse one over ``MEMORY_LIMIT``.
"""

from __future__ import annotations

import torch

from convlens.spec import ConvSpec, IntOrSizes, Padding, volume


def cs231n_example(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The CS231n demo's setup: 5x5x3 input of integers 0..2, two 3x3x3 filters of -1..1, biases 1 and 0."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (3, 5, 5), generator=generator).float()
    w = torch.randint(-1, 2, (2, 3, 3, 3), generator=generator).float()
    b = torch.tensor([1.0, 0.0])
    return x, w, b


def integer_example(
    size: tuple[int, ...], channels: int, filters: int, kernel: tuple[int, ...], groups: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Input (channels, *size) of integers 0..2, weight (filters, channels/groups, *kernel) of -1..1,
    bias 0, 1, 2, ...: the CS231n demo's kind of numbers for any configuration."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (channels, *size), generator=generator).float()
    w = torch.randint(-1, 2, (filters, channels // groups, *kernel), generator=generator).float()
    b = torch.arange(filters, dtype=torch.float32)
    return x, w, b


def transposed_example(
    size: tuple[int, ...], channels: int, filters: int, kernel: tuple[int, ...], groups: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``integer_example``'s numbers for a transposed convolution: input (channels, *size) of 0..2,
    weight (channels, filters/groups, *kernel) of -1..1 (the transposed layout), bias 0, 1, 2, ..."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 3, (channels, *size), generator=generator).float()
    w = torch.randint(-1, 2, (channels, filters // groups, *kernel), generator=generator).float()
    return x, w, torch.arange(filters, dtype=torch.float32)


def random_example(
    size: tuple[int, ...], channels: int, filters: int, kernel: tuple[int, ...], seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input (channels, *size) and weight (filters, channels, *kernel) of normal noise."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(channels, *size, generator=generator)
    w = torch.randn(filters, channels, *kernel, generator=generator)
    return x, w


# ---- what a configuration costs, predicted from its sizes before anything is allocated ------------
MEMORY_LIMIT = 2**30  # 1 GiB: explain draws every value it computes; a larger picture is not one anyone reads
FIGURE_BYTES_PER_VALUE = 32  # matplotlib colours each drawn value as RGBA in float64


def example_spec(
    size: tuple[int, ...],
    channels: int,
    filters: int,
    kernel: tuple[int, ...],
    stride: IntOrSizes = 1,
    padding: Padding = 0,
    dilation: IntOrSizes = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> ConvSpec:
    """The checked spec of a (channels, *size) input and (filters, channels/groups, *kernel) weight,
    built on the meta device: every rule of conv2d applied (conv1d's or conv3d's for 1 or 3 sizes),
    nothing allocated."""
    x = torch.empty((channels, *size), device="meta")
    w = torch.empty((filters, channels // groups, *kernel), device="meta")
    return ConvSpec.from_args(x, w, None, stride, padding, dilation, groups, padding_mode, rank=len(size))


def explain_bytes(spec: ConvSpec, drawn_channels: int = 4) -> int:
    """About the bytes ``explain`` needs: the input (drawn as int64, kept as float32), its padded copy,
    the output twice (convlens and PyTorch), the weight, and the figure's padded channels and output."""
    size, padded, out = volume(spec.in_size), volume(spec.padded_size), volume(spec.out_size)
    c, o = spec.in_channels, spec.out_channels
    tensors = 12 * c * size + 4 * (c * padded + 2 * o * out + o * spec.in_per_group * spec.taps)
    return tensors + FIGURE_BYTES_PER_VALUE * (min(c, drawn_channels) * padded + out)


def im2col_bytes(spec: ConvSpec) -> int:
    """About the bytes the im2col figure needs: input and padded input, X_col, W_row @ X_col (float32),
    and X_col, the product and its per-channel views drawn."""
    columns, products = im2col_shape(spec), spec.out_channels * volume(spec.out_size)
    values = columns[0] * columns[1]
    pixels = volume(spec.in_size) + volume(spec.padded_size)
    tensors = 4 * (spec.in_channels * pixels + values + products + spec.out_channels * columns[0])
    return tensors + FIGURE_BYTES_PER_VALUE * (values + 2 * products)


def im2col_shape(spec: ConvSpec) -> tuple[int, int]:
    """X_col's shape: (C*k_h*k_w, H_out*W_out)."""
    return spec.in_channels * spec.taps, volume(spec.out_size)
