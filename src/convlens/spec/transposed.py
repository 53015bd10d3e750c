"""conv_transpose2d's argument rules, and the convolution whose input gradient it is.

A transposed convolution of an (N, C_in, H, W) input with an (C_in, C_out/G, k_h, k_w) weight is
the input gradient of the ordinary convolution that maps (N, C_out, H_t, W_t) back to
(N, C_in, H, W) with the same weight, stride, padding, dilation and groups. Its output size is
that convolution's input size, the output-size formula solved for the input::

    H_t = (H - 1)*s_h - 2*p_h + d_h*(k_h - 1) + output_padding_h + 1

``output_padding`` picks one of the s_h sizes that all give H back through the forward formula
(it floors), so it must be smaller than the stride (or than the dilation, which PyTorch also
allows): it takes that many more rows of the full output at the bottom (the padding crops both
sides), zeros where they lie past the last window.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from convlens.errors import ArgumentError, ArgumentTypeError
from convlens.spec.args import IntOrPair, check_conv_tensors, non_negative_pair, positive_int, positive_pair
from convlens.spec.conv import ConvSpec


@dataclass(frozen=True)
class TransposedSpec:
    """A checked conv_transpose2d call. ``forward`` is the unpadded convolution whose input
    gradient is the *full* transposed output, every row a window reaches::

        full    (N, C_out, L_h, L_w),   L = (H - 1)*s + d*(k - 1) + 1
        output  = full[p : p + H_t]      rows past L (output_padding beyond p) are zeros

    ``forward`` is None when no window reaches the output (an empty input plane)."""

    forward: ConvSpec | None
    padding: tuple[int, int]
    batched: bool
    out_shape: tuple[int, int, int, int]  # (N, C_out, H_t, W_t), output_padding included

    @classmethod
    def from_args(
        cls,
        input: object,
        weight: object,
        bias: object = None,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        output_padding: IntOrPair = 0,
        groups: int = 1,
        dilation: IntOrPair = 1,
    ) -> TransposedSpec:
        """Check every argument against PyTorch's conv_transpose2d rules, before any allocation."""
        x, w, b = check_conv_tensors(input, weight, bias, "conv_transpose2d", "(C_in, C_out/groups, k_h, k_w)")
        if isinstance(padding, str):
            raise ArgumentTypeError(
                f"conv_transpose2d(): argument 'padding' must be tuple of ints, not str: a transposed convolution "
                f"takes no padding string, got padding={padding!r}"
            )
        strides, dilations = positive_pair("stride", stride), positive_pair("dilation", dilation)
        pads, extra = non_negative_pair("padding", padding), non_negative_pair("output_padding", output_padding)
        group_count = positive_int("groups", groups)
        in_channels, (height, width) = x.shape[-3], tuple(x.shape[-2:])
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
        if any(e >= s and e >= d for e, s, d in zip(extra, strides, dilations, strict=True)):
            raise ArgumentError(
                f"output padding must be smaller than either stride or dilation, but got output_padding_height: "
                f"{extra[0]} output_padding_width: {extra[1]} stride_height: {strides[0]} stride_width: {strides[1]} "
                f"dilation_height: {dilations[0]} dilation_width: {dilations[1]}: each output_padding value picks one "
                f"of the stride's output sizes, so it must be below the stride (or the dilation)"
            )
        full = tuple(
            (size - 1) * s + d * (k - 1) + 1
            for size, s, d, k in zip((height, width), strides, dilations, w.shape[2:], strict=True)
        )
        sizes = [f - 2 * p + e for f, p, e in zip(full, pads, extra, strict=True)]
        if min(sizes) < 1:
            raise ArgumentError(
                f"Given input size per channel: ({height} x {width}). Calculated output size per channel: "
                f"({sizes[0]} x {sizes[1]}). Output size is too small: H_out = (H - 1)*stride - 2*padding + "
                f"dilation*(k - 1) + output_padding + 1 = ({height} - 1)*{strides[0]} - 2*{pads[0]} + "
                f"{dilations[0]}*({w.shape[2]} - 1) + {extra[0]} + 1 = {sizes[0]}"
            )
        batch = x.shape[0] if x.dim() == 4 else 1
        forward = None
        if min(full) >= 1:  # the forward convolution: (N, C_out, L_h, L_w) -> (N, C_in, H, W), same weight
            forward_input = torch.empty((batch, out_channels, *full), dtype=x.dtype, device="meta")
            forward = ConvSpec.from_args(forward_input, w, None, strides, 0, dilations, group_count)
        out_shape = (batch, out_channels, sizes[0], sizes[1])
        return cls(forward=forward, padding=pads, batched=x.dim() == 4, out_shape=out_shape)
