"""Tap-wise GEMM: the sum of k_h*k_w matrix products over shifted views. No k^2 copy of the input.

For kernel tap (i, j), every output position reads the input at the same offset, so the tap's
contribution to the whole output is one matrix product::

    out[:, n, y, x] += weight[:, :, i, j] @ x_pad[n, :, y*s_h + i*d_h, x*s_w + j*d_w]     (C_out, C_in) @ (C_in)

With the input split into stride phases (phases.py), the input a tap reads for all positions is
one view ``rows(i, j)`` of shape (C_in, P), P = N*H_q*W_q, so::

    phases   (s_h, s_w, C_in, P + tail)                 one copy of the input, zero padding written in it
    out_flat (C_out, P)
    for each tap (i, j):
        out_flat += weight[:, :, i, j] @ rows(i, j)     one addmm_: (C_out, C_in) @ (C_in, P)
    out = out_flat cropped to (N, C_out, H_out, W_out)

The few positions past (H_out, W_out) are computed and cropped: the price of one large product
per tap. With groups, each tap is one product per group on the group's channel slices.
"""

from __future__ import annotations

import torch

from convlens.algos import Algorithm, accumulation_dtype, always, exact, register
from convlens.algos.phases import phase_grid, stride_phases
from convlens.spec import ConvSpec


def buffer_bytes(spec: ConvSpec, workspace: int) -> dict[str, int]:
    """Bytes beyond input, weight and output, predicted from the shapes: the input's ``phases``
    copy (phases.py) and ``out_flat``, the products at every phase position before the crop."""
    s_h, s_w = spec.stride
    h_q, w_q, tail = phase_grid(spec)
    positions = spec.batch * h_q * w_q
    itemsize = accumulation_dtype(spec.dtype).itemsize
    return {
        "phases": s_h * s_w * spec.in_channels * (positions + tail) * itemsize,
        "out_flat": spec.out_channels * positions * itemsize,
    }


def forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    compute = accumulation_dtype(x.dtype)
    phases = stride_phases(x, spec, compute)
    groups, c_in_g, c_out_g = spec.groups, spec.in_per_group, spec.out_per_group
    w_taps = weight.to(compute)  # (C_out, C_in/G, k_h, k_w)
    out_flat = x.new_zeros((spec.out_channels, phases.positions), dtype=compute)
    for i in range(spec.kernel_size[0]):
        for j in range(spec.kernel_size[1]):
            rows = phases.rows(spec, i, j)  # (C_in, P): the tap's input, a view
            for g in range(groups):
                outs = slice(g * c_out_g, (g + 1) * c_out_g)
                ins = slice(g * c_in_g, (g + 1) * c_in_g)
                out_flat[outs].addmm_(w_taps[outs, :, i, j], rows[ins])
    if bias is not None:
        out_flat += bias.to(compute).view(-1, 1)
    return phases.crop(out_flat, spec).to(x.dtype)  # conv2d gives it PyTorch's layout


ALGORITHM = register(
    Algorithm(
        name="gemm",
        summary="tap-wise: k_h*k_w matrix products over shifted views of the input, no im2col copy",
        forward=forward,
        supports=always,
        buffer_bytes=buffer_bytes,
        error_bound=exact,
    )
)
