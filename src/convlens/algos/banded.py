"""Banded: a depthwise convolution as one matrix product per kernel row, with banded (Toeplitz) matrices.

Along a row, one channel's correlation with the kernel row ``w[i, :]`` is a product with a
matrix that holds the kernel row on a band::

    out[y, x] = sum_i sum_j w[i, j] * x_pad[y + i*d_h, x*s_w + j*d_w]
              = sum_i ( x_pad[y + i*d_h, :] @ bands[i] )[x]
    bands[i][x*s_w + j*d_w, x] = w[i, j]                    (W_pad, W_out), zero off the band

so each kernel row is one batched product over the channels, every image row at once: the
padded input's rows laid end to end, each kernel row a shifted view of them::

    rows  (C, N*H_pad + tail, W_pad)      one copy of the input, channels first, zero padding written
                                          in it: the stride-1 "phase" of phases.py, seen as rows
    bands (k_h, C, W_pad, W_out)          cached per weight (transform cache)
    out   (C, N*H_pad, W_out)             out += rows[:, i*d_h : i*d_h + N*H_pad] @ bands[i]   one baddbmm per i
    out   -> (N, C, H_out, W_out)         rows y >= H_out of each image read across its edge: cropped

with tail = d_h*(k_h - 1) zero rows, so the last kernel row's view stays inside.

k_h products instead of the depthwise path's k_h*k_w passes, but each product does W_pad / k_w
times the work the band needs (the zeros off it): worth it for large kernels on narrow images,
so auto uses it for 5x5 and larger kernels on narrow outputs only (``auto.py``, rule 2). Why: it
leads FFT and the depthwise path on ConvNeXt-T's 7x7 depthwise layers from 28x28 down, not at
56x56 nor on 3x3 kernels; evidence: ``convlens bench --suite convnext_tiny`` and ``convlens bench
--suite mobilenet_v2 --kernel 3 --algorithms depthwise,banded`` (benchmarks/RESULTS.md). Runs
depthwise layers with one filter per channel at stride 1; any dilation and padding.
"""

from __future__ import annotations

import torch

from convlens.algos import Algorithm, accumulation_dtype, exact, real_only, register
from convlens.algos.cache import TransformCache
from convlens.algos.phases import phase_grid, stride_phases
from convlens.spec import ConvSpec

BAND_CACHE = TransformCache()


def supports(spec: ConvSpec) -> str | None:
    if real_only(spec) is not None:
        return real_only(spec)
    if not (spec.is_depthwise and spec.out_per_group == 1):
        return (
            f"only depthwise convolutions with one filter per channel (groups == C_in == C_out), got "
            f"groups={spec.groups}, C_in={spec.in_channels}, C_out={spec.out_channels}"
        )
    if spec.stride != (1, 1):
        return f"stride 1 only (the rows of every image are one product), got stride={spec.stride}"
    return None


def band_matrices(weight: torch.Tensor, spec: ConvSpec, dtype: torch.dtype) -> torch.Tensor:
    """bands (k_h, C, W_pad, W_out): bands[i, c, x + j*d_w, x] = weight[c, 0, i, j]."""
    channels, _, k_h, k_w = weight.shape
    w_pad, w_out, d_w = spec.padded_size[1], spec.out_size[1], spec.dilation[1]
    bands = weight.new_zeros((k_h, channels, w_pad, w_out), dtype=dtype)
    columns = torch.arange(w_out, device=weight.device)
    for j in range(k_w):  # tap j of every kernel row: one diagonal of each band
        bands[:, :, columns + j * d_w, columns] = weight[:, 0, :, j].t().to(dtype)[:, :, None]
    return bands


def buffer_bytes(spec: ConvSpec, workspace: int) -> dict[str, int]:
    """Bytes beyond input, weight and output: the input's ``phases`` copy (phases.py), the uncropped
    ``products`` and the ``bands`` kept in BAND_CACHE with its ``saved weight`` copy."""
    itemsize = accumulation_dtype(spec.dtype).itemsize
    h_q, w_q, tail = phase_grid(spec)  # stride 1: the padded size, and the largest tap shift
    w_out = spec.out_size[1]
    return {
        "phases": spec.in_channels * (spec.batch * h_q * w_q + tail) * itemsize,
        "products": spec.in_channels * spec.batch * h_q * w_out * itemsize,
        "bands": spec.kernel_size[0] * spec.in_channels * w_q * w_out * itemsize,
        "saved weight": spec.out_channels * spec.taps * spec.dtype.itemsize,  # the cache's copy of the weight
    }


def forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    compute = accumulation_dtype(x.dtype)
    n, channels = x.shape[:2]
    (h_pad, w_pad), (h_out, w_out) = spec.padded_size, spec.out_size
    k_h, d_h = spec.kernel_size[0], spec.dilation[0]
    positions = n * h_pad  # output rows computed, H_pad per image
    flat = stride_phases(x, spec, compute).values[0, 0]  # (C, N*H_pad*W_pad + tail): one phase at stride 1
    rows = flat[:, : (positions + d_h * (k_h - 1)) * w_pad].view(channels, -1, w_pad)  # the last kernel row's reach
    key = (spec.padded_size, spec.dilation, compute)
    bands = BAND_CACHE.get(weight, key, lambda _buffer: band_matrices(weight, spec, compute))
    out_rows = torch.bmm(rows[:, :positions], bands[0])  # (C, N*H_pad, W_pad) @ (C, W_pad, W_out)
    for i in range(1, k_h):
        out_rows.baddbmm_(rows[:, i * d_h : i * d_h + positions], bands[i])
    if bias is not None:
        out_rows += bias.to(compute).view(-1, 1, 1)
    # rows y >= H_out of each image read across its bottom edge: cropped
    return out_rows.view(channels, n, h_pad, w_out)[:, :, :h_out].transpose(0, 1).to(x.dtype)


ALGORITHM = register(
    Algorithm(
        name="banded",
        summary="depthwise as one batched product per kernel row with banded (Toeplitz) matrices; stride 1",
        forward=forward,
        supports=supports,
        buffer_bytes=buffer_bytes,
        error_bound=exact,
        mixes_values=True,
    )
)
