"""conv_transpose1d/2d/3d's argument rules, and the convolution whose input gradient each is.

A transposed convolution of an (N, C_in, H, W) input with an (C_in, C_out/G, k_h, k_w) weight is
the input gradient of the ordinary convolution that maps (N, C_out, H_t, W_t) back to
(N, C_in, H, W) with the same weight, stride, padding, dilation and groups. Its output size is
that convolution's input size, the output-size formula solved for the input::

    H_t = (H - 1)*s_h - 2*p_h + d_h*(k_h - 1) + output_padding_h + 1

``output_padding`` picks one of the s_h sizes that all give H back through the forward formula
(it floors), so it must be smaller than the stride (or than the dilation, which PyTorch also
allows): it takes that many more rows of the full output at the bottom (the padding crops both
sides), zeros where they lie past the last window. The same holds along every spatial
dimension, for 1, 2 or 3 of them (the rank).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from convlens.errors import ArgumentError, ArgumentTypeError
from convlens.spec.args import IntOrSizes, check_conv_tensors, non_negative_sizes, positive_int, positive_sizes
from convlens.spec.conv import ConvSpec
from convlens.spec.shape import check_transposed_sizes, transposed_length


@dataclass(frozen=True)
class TransposedSpec:
    """A checked conv_transpose call. ``forward`` is the unpadded convolution whose input
    gradient is the *full* transposed output, every row a window reaches::

        full    (N, C_out, L_h, L_w),   L = (H - 1)*s + d*(k - 1) + 1
        output  = full[p : p + H_t]      rows past L (output_padding beyond p) are zeros

    ``forward`` is None when no window reaches the output (an empty input plane)."""

    forward: ConvSpec | None
    padding: tuple[int, ...]  # one value per spatial dimension, cropped from both sides
    batched: bool
    out_shape: tuple[int, ...]  # (N, C_out, H_t, W_t) in 2-D, output_padding included

    @classmethod
    def from_args(
        cls,
        input: object,
        weight: object,
        bias: object = None,
        stride: IntOrSizes = 1,
        padding: IntOrSizes = 0,
        output_padding: IntOrSizes = 0,
        groups: int = 1,
        dilation: IntOrSizes = 1,
        rank: int = 2,
    ) -> TransposedSpec:
        """Check every argument against PyTorch's conv_transpose1d/2d/3d rules (``rank``), before any allocation."""
        op = f"conv_transpose{rank}d"
        x, w, b = check_conv_tensors(input, weight, bias, op, rank, transposed=True)
        if isinstance(padding, str):
            raise ArgumentTypeError(
                f"{op}(): argument 'padding' must be tuple of ints, not str: a transposed convolution "
                f"takes no padding string, got padding={padding!r}"
            )
        strides, dilations = positive_sizes("stride", stride, rank), positive_sizes("dilation", dilation, rank)
        pads = non_negative_sizes("padding", padding, rank)
        extra = non_negative_sizes("output_padding", output_padding, rank)
        group_count = positive_int("groups", groups)
        in_channels, in_size = x.shape[-rank - 1], tuple(x.shape[-rank:])
        if w.shape[0] % group_count != 0:
            raise ArgumentError(
                f"Given groups={group_count}, expected weight to be divisible by {group_count} at dimension 0, but got "
                f"weight of size [{list(w.shape)}] instead: weight.shape[0] (in_channels) must be a multiple of groups"
            )
        if in_channels != w.shape[0]:
            raise ArgumentError(
                f"Given transposed=1, weight of size {list(w.shape)}, expected input{list(x.shape)} to have "
                f"{w.shape[0]} channels, but got {in_channels} channels instead: weight.shape[0] is its input channels"
            )
        out_channels = w.shape[1] * group_count
        if b is not None and tuple(b.shape) != (out_channels,):
            raise ArgumentError(
                f"Given transposed=1, weight of size {list(w.shape)}, expected bias to be 1-dimensional with "
                f"{out_channels} elements, but got bias of size {list(b.shape)} instead: bias must have "
                f"weight.shape[1] * groups = {out_channels} elements"
            )
        kernel = tuple(w.shape[2:])
        sizes = check_transposed_sizes(in_size, kernel, strides, pads, extra, dilations)
        full = tuple(
            transposed_length(size, k, s, 0, d, 0)
            for size, k, s, d in zip(in_size, kernel, strides, dilations, strict=True)
        )
        batch = x.shape[0] if x.dim() == rank + 2 else 1
        forward = None
        if 0 not in in_size:  # the forward convolution: (N, C_out, *full) -> (N, C_in, *in_size), same weight
            forward_input = torch.empty((batch, out_channels, *full), dtype=x.dtype, device="meta")
            forward = ConvSpec.from_args(forward_input, w, None, strides, 0, dilations, group_count, rank=rank)
        return cls(forward=forward, padding=pads, batched=x.dim() == rank + 2, out_shape=(batch, out_channels, *sizes))
