"""Stride phases: how tap-wise methods turn every kernel tap into one shifted view of the input.

For stride (s_h, s_w) the padded input splits into s_h*s_w phases; phase (a, b) holds rows
a, a+s_h, ... and columns b, b+s_w, ... . In phase coordinates every kernel tap (i, j) is a
stride-1 shift, so flattening each phase over (N, H_q, W_q) makes the input a tap reads for all
output positions one contiguous-rowed view::

    phases[a, b, c, (n*H_q + y)*W_q + x] = x_pad[n, c, y*s_h + a, x*s_w + b]      (s_h, s_w, C, P + tail)
    rows(i, j) = phases[(i*d_h) % s_h, (j*d_w) % s_w, :, shift : shift + P]          (C, P), a view
    shift      = (i*d_h // s_h) * W_q + (j*d_w // s_w)

Output position (n, y, x) is column (n*H_q + y)*W_q + x; columns with y >= H_out or x >= W_out read
across a row or image edge and are cropped away afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from convlens.spec import ConvSpec, ceil_div


@dataclass(frozen=True)
class Phases:
    values: torch.Tensor  # (s_h, s_w, C, P + tail)
    h_q: int
    w_q: int
    positions: int  # P = N * h_q * w_q

    def rows(self, spec: ConvSpec, i: int, j: int) -> torch.Tensor:
        """The (C, P) input values kernel tap (i, j) reads for every output position: a view."""
        (s_h, s_w), (d_h, d_w) = spec.stride, spec.dilation
        shift = ((i * d_h) // s_h) * self.w_q + (j * d_w) // s_w
        return self.values[(i * d_h) % s_h, (j * d_w) % s_w, :, shift : shift + self.positions]

    def crop(self, out_flat: torch.Tensor, spec: ConvSpec) -> torch.Tensor:
        """(C_out, P) results at every phase position -> (N, C_out, H_out, W_out), a view."""
        h_out, w_out = spec.out_size
        n = self.positions // (self.h_q * self.w_q)
        return out_flat.view(out_flat.shape[0], n, self.h_q, self.w_q)[:, :, :h_out, :w_out].transpose(0, 1)


def phase_grid(spec: ConvSpec) -> tuple[int, int, int]:
    """(H_q, W_q, tail): each phase's rows and columns, and the largest tap shift, which is how
    far past its P = N * H_q * W_q positions a flattened phase extends."""
    h_pad, w_pad = spec.padded_size
    (s_h, s_w), (d_h, d_w), (k_h, k_w) = spec.stride, spec.dilation, spec.kernel_size
    h_q, w_q = ceil_div(h_pad, s_h), ceil_div(w_pad, s_w)
    return h_q, w_q, ((d_h * (k_h - 1)) // s_h) * w_q + (d_w * (k_w - 1)) // s_w


def stride_phases(x: torch.Tensor, spec: ConvSpec, dtype: torch.dtype) -> Phases:
    """Split the input (N, C, H, W), zero-padded by ``spec.padding``, into its flattened stride
    phases: one copy, which writes the padding's zeros too (no padded tensor is made first)."""
    n, channels = x.shape[:2]
    top, _, left, _ = spec.padding
    s_h, s_w = spec.stride
    h_q, w_q, tail = phase_grid(spec)
    positions = n * h_q * w_q
    values = x.new_zeros((s_h, s_w, channels, positions + tail), dtype=dtype)
    grid = values[:, :, :, :positions].view(s_h, s_w, channels, n, h_q, w_q)
    for a in range(s_h):
        for b in range(s_w):
            # Phase (a, b) holds x_pad rows a + s_h*y, i.e. input rows a + s_h*y - top: the first
            # one inside the input is at y0 = ceil((top - a) / s_h), input row a + s_h*y0 - top.
            y0, x0 = max(0, ceil_div(top - a, s_h)), max(0, ceil_div(left - b, s_w))
            part = x[:, :, a + s_h * y0 - top :: s_h, b + s_w * x0 - left :: s_w]  # (N, C, rows, cols)
            grid[a, b, :, :, y0 : y0 + part.shape[2], x0 : x0 + part.shape[3]] = part.transpose(0, 1)
    return Phases(values, h_q, w_q, positions)
