"""Stride phases: the one copy of the input that gemm and depthwise read every tap from, zero padding included."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convlens.algos.phases import stride_phases
from convlens.spec import ConvSpec


def phases_by_definition(x_pad: torch.Tensor, stride: tuple[int, int], h_q: int, w_q: int, tail: int) -> torch.Tensor:
    """phases[a, b, c, (n*H_q + y)*W_q + x] = x_pad[n, c, y*s_h + a, x*s_w + b], zero past the input and in the tail."""
    n, c, h_pad, w_pad = x_pad.shape
    s_h, s_w = stride
    grid = F.pad(x_pad, (0, s_w * w_q - w_pad, 0, s_h * h_q - h_pad))  # (N, C, H_q*s_h, W_q*s_w)
    grid = grid.view(n, c, h_q, s_h, w_q, s_w).permute(3, 5, 1, 0, 2, 4)  # (s_h, s_w, C, N, H_q, W_q)
    return F.pad(grid.reshape(s_h, s_w, c, n * h_q * w_q), (0, tail))


@settings(max_examples=120, deadline=None)
@given(
    batch=st.integers(1, 2),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    padding=st.tuples(st.integers(0, 4), st.integers(0, 4)),
)
def test_phases_hold_the_zero_padded_input(batch, size, kernel, stride, dilation, padding) -> None:
    spans = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    if any(s + 2 * p < span for s, p, span in zip(size, padding, spans)):
        return  # the window does not fit: no convolution to split
    x = torch.randn(batch, 3, *size)
    weight = torch.randn(2, 3, *kernel)
    spec = ConvSpec.from_args(x, weight, None, stride, padding, dilation, 1, "zeros")
    phases = stride_phases(x, spec, torch.float32)
    top, bottom, left, right = spec.padding
    expected = phases_by_definition(
        F.pad(x, (left, right, top, bottom)),
        spec.stride,
        phases.h_q,
        phases.w_q,
        phases.values.shape[-1] - phases.positions,
    )
    assert torch.equal(phases.values, expected)
