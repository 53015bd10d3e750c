"""Tap-wise GEMM: the sum of k_h*k_w matrix products over shifted views. No k^2 copy of the input.

For kernel tap (i, j), every output position reads the input at the same offset, so the tap's
contribution to the whole output is one matrix product::

    out[n, y, x, :] += x_pad[n, y*s_h + i*d_h, x*s_w + j*d_w, :] @ weight[:, :, i, j]^T   (C_in) @ (C_in, C_out)

To make each tap's input rows a plain strided matrix, the padded input is laid out channels last
and split into its s_h*s_w stride phases (phase (a, b) holds rows a, a+s_h, ... and columns
b, b+s_w, ...), each flattened over (N, H_q, W_q). In phase coordinates the tap is a stride-1
shift by ``(i*d_h // s_h) * W_q + (j*d_w // s_w)`` rows, so::

    phases   (s_h*s_w, N*H_q*W_q + tail, C_in)       one copy of the input
    out_flat (N*H_q*W_q, C_out)
    for each tap (i, j):
        out_flat += phases[phase(i, j)][shift(i, j) : shift(i, j) + N*H_q*W_q] @ w_tap   # one addmm_
    out = out_flat viewed (N, H_q, W_q, C_out), cropped to (H_out, W_out)

Positions past (H_out, W_out) read across row and image edges and are cropped away: the price
of one large product per tap is computing those few extra rows. With groups, each tap is one
product per group on the group's channel slices.
"""

from __future__ import annotations

import torch

from convlens.algos import Algorithm, always, register
from convlens.spec import ConvSpec, ceil_div


def forward(
    x_pad: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    compute = torch.float32 if x_pad.dtype in (torch.float16, torch.bfloat16) else x_pad.dtype
    n, c_in, h_pad, w_pad = x_pad.shape
    (s_h, s_w), (d_h, d_w), (k_h, k_w) = spec.stride, spec.dilation, spec.kernel_size
    h_q, w_q = ceil_div(h_pad, s_h), ceil_div(w_pad, s_w)  # phase grid
    positions = n * h_q * w_q
    tail = ((d_h * (k_h - 1)) // s_h) * w_q + (d_w * (k_w - 1)) // s_w  # the largest shift

    phases = x_pad.new_zeros((s_h, s_w, positions + tail, c_in), dtype=compute)
    grid = phases[:, :, :positions].view(s_h, s_w, n, h_q, w_q, c_in)
    for a in range(s_h):
        for b in range(s_w):
            part = x_pad[:, :, a::s_h, b::s_w]  # (N, C_in, rows, cols) of phase (a, b)
            grid[a, b, :, : part.shape[2], : part.shape[3]] = part.permute(0, 2, 3, 1)

    groups, c_in_g, c_out_g = spec.groups, spec.in_per_group, spec.out_per_group
    w_taps = weight.to(compute).permute(2, 3, 1, 0)  # (k_h, k_w, C_in/G, C_out): w_taps[i, j] = weight[:, :, i, j]^T
    out_flat = x_pad.new_zeros((positions, spec.out_channels), dtype=compute)
    for i in range(k_h):
        for j in range(k_w):
            phase = phases[(i * d_h) % s_h, (j * d_w) % s_w]
            shift = ((i * d_h) // s_h) * w_q + (j * d_w) // s_w
            rows = phase[shift : shift + positions]  # (P, C_in): the tap's input, a view
            for g in range(groups):
                out_cols = slice(g * c_out_g, (g + 1) * c_out_g)
                in_cols = slice(g * c_in_g, (g + 1) * c_in_g)
                out_flat[:, out_cols].addmm_(rows[:, in_cols], w_taps[i, j, :, out_cols])

    h_out, w_out = spec.out_size
    out = out_flat.view(n, h_q, w_q, spec.out_channels)[:, :h_out, :w_out]  # (N, H_out, W_out, C_out)
    if bias is not None:
        out = out + bias.to(compute)
    return out.permute(0, 3, 1, 2).to(x_pad.dtype)  # channels-last view; conv2d fixes the layout


ALGORITHM = register(
    Algorithm(
        name="gemm",
        summary="tap-wise: k_h*k_w matrix products over shifted views of the input, no im2col copy",
        forward=forward,
        supports=always,
    )
)
