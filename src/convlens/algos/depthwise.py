"""Depthwise convolution (groups == C_in, one filter per channel): k_h*k_w scaled adds per channel.

With one input channel per group, each tap's product is not a matrix product but a scale of
every channel by its own weight. The padded input is split into its s_h*s_w stride phases (phases.py)
and kept channels first, so a tap is a shifted view (C, P) and each channel's weight a
scalar broadcast along its contiguous row::

    phases   (s_h, s_w, C, P + tail)                   one copy of the input, zero padding included (phases.py)
    out_flat (C, P)
    for each tap (i, j):
        out_flat += rows(i, j) * weight[:, 0, i, j, None]   rows (C, P) a view; one weight per row
    out = out_flat cropped to (N, C, H_out, W_out)

Measured on MobileNetV2's depthwise layers (batch 1 / 8): 0.24x / 0.19x PyTorch's CPU depthwise
kernel, the same speed as im2col (0.24x / 0.21x) without its k_h*k_w copy of the input; direct
reaches 0.16x / 0.15x (``convlens bench --suite mobilenet_v2``). Channels first matters: a
per-channel weight is then a scalar along each contiguous row; broadcast along an innermost
channel axis (channels last), the same multiply-add ran markedly slower.

A channel multiplier m = C_out / C_in > 1 repeats each channel m times first. No matmul, no im2col.
"""

from __future__ import annotations

import torch

from convlens.algos import Algorithm, accumulation_dtype, register
from convlens.algos.phases import stride_phases
from convlens.spec import ConvSpec


def supports(spec: ConvSpec) -> str | None:
    if not spec.is_depthwise:
        return f"only depthwise convolutions (groups == C_in > 1), got groups={spec.groups}, C_in={spec.in_channels}"
    return None


def forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    compute = accumulation_dtype(x.dtype)
    if spec.out_per_group > 1:  # channel multiplier m: channel c feeds outputs c*m .. c*m + m - 1
        x = x.repeat_interleave(spec.out_per_group, dim=1)
    phases = stride_phases(x, spec, compute)
    w_taps = weight.to(compute)[:, 0]  # (C, k_h, k_w): one weight per channel per tap
    out_flat = x.new_zeros((spec.out_channels, phases.positions), dtype=compute)
    for i in range(spec.kernel_size[0]):
        for j in range(spec.kernel_size[1]):
            out_flat.addcmul_(phases.rows(spec, i, j), w_taps[:, i, j, None])  # (C, P) * (C, 1)
    if bias is not None:
        out_flat += bias.to(compute).view(-1, 1)
    return phases.crop(out_flat, spec).to(x.dtype)  # conv2d gives it PyTorch's layout


ALGORITHM = register(
    Algorithm(
        name="depthwise",
        summary="one broadcast multiply-add per tap over channels-last stride phases; groups == C_in only",
        forward=forward,
        supports=supports,
    )
)
