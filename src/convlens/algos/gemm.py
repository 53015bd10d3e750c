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

Compiled (src/convlens/native/gemm.c; float32 NCHW on the CPU, one group, C_out a multiple of 16:
``uses_native``): the same sums piece by piece (``pieces``: bands of output rows of one image, or
whole images), the piece's padded input rows and its products in the cache, each tap's view an
offset into the band::

    w_rows = weight as (k_h*k_w*C_in, C_out), taps then channels as rows   cached, in panels
    band   = x_pad's rows the band reads, channels innermost   (rows_in, W_pad, C_in)    in C
    M[p]   = sum over taps and channels of band values * w_rows  (rows*W_out, C_out)       in registers
    out[n, :, band rows] = M transposed, + bias
"""

from __future__ import annotations

import math

import torch

from convlens import native as native_kernels
from convlens.algos import Algorithm, accumulation_dtype, always, exact, register
from convlens.algos.cache import TransformCache
from convlens.algos.phases import phase_grid, stride_phases
from convlens.spec import ConvSpec


def buffer_bytes(spec: ConvSpec, workspace: int) -> dict[str, int]:
    """Bytes beyond input, weight and output, predicted from the shapes: the input's ``phases``
    copy (phases.py) and ``out_flat``, the products at every phase position before the crop; for
    gemm.c, one band's input rows and products per thread and the weight rows (cached)."""
    if uses_native(spec):
        rows, images = pieces(spec)
        rows_in = (rows - 1) * spec.stride[0] + (spec.kernel_size[0] - 1) * spec.dilation[0] + 1
        reach = (spec.out_size[1] - 1) * spec.stride[1] + (spec.kernel_size[1] - 1) * spec.dilation[1] + 1
        band_w = max(reach, spec.padding[2] + spec.in_size[1])
        threads = torch.get_num_threads()
        return {
            "band": threads * images * spec.in_channels * rows_in * band_w * 4,
            "products": threads * images * rows * spec.out_size[1] * spec.out_channels * 4,
            "cached weight": spec.out_channels * spec.in_channels * spec.taps * 4,
            "saved weight": spec.out_channels * spec.in_channels * spec.taps * 4,
        }
    s_h, s_w = spec.stride
    h_q, w_q, tail = phase_grid(spec)
    positions = spec.batch * h_q * w_q
    itemsize = accumulation_dtype(spec.dtype).itemsize
    return {
        "phases": s_h * s_w * spec.in_channels * (positions + tail) * itemsize,
        "out_flat": spec.out_channels * positions * itemsize,
    }


native = True  # whether gemm.c computes the layers it takes (tests switch it off to test both)
BAND_BYTES = 1024**2  # a band's input rows and products in gemm.c, about; see pieces
LARGE_WEIGHT_BYTES = 4 * 1024**2  # weight rows from which a small batch goes in whole images; see pieces
WEIGHT_ROWS = TransformCache()  # w_rows in panels, per weight


def uses_native(spec: ConvSpec) -> bool:
    """Whether gemm.c computes this spec's forward (given a plain contiguous float32 CPU input)."""
    return native and native_kernels.runs_gemm_spec(spec)


def pieces(spec: ConvSpec) -> tuple[int, int]:
    """(output rows per band, images per piece) of gemm.c: ``pieces_by_cache``, except that each band
    reads all of the weight rows, so where they pass LARGE_WEIGHT_BYTES, an image fits a band and
    the batch has fewer than two images per thread: whole images, one per piece, whose
    output-channel panels gemm.c then splits between the threads (each reading its share of the
    weight once per image). Why: ResNet-50's 512-channel 3x3 layers (9.4 MB of weight rows) at
    batch 1 ran 1.06x (stride 2) and 0.92x (7x7) of PyTorch in bands of two rows, 1.35x and 1.40x
    so (gemm.c alone); at batch 4 and 8, pieces of several images, one per thread, ran slower
    than one image each on the stride-2 layers; evidence: ``python benchmarks/gemm_pieces.py``
    (benchmarks/RESULTS.md, sixteenth session)."""
    h_out = spec.out_size[0]
    fixed, row_bytes = band_bytes(spec)
    weight_bytes = 4 * spec.taps * spec.in_channels * spec.out_channels
    image_fits = fixed + h_out * row_bytes <= BAND_BYTES
    if weight_bytes > LARGE_WEIGHT_BYTES and image_fits and spec.batch < 2 * torch.get_num_threads():
        return h_out, 1
    return pieces_by_cache(spec)


def pieces_by_cache(spec: ConvSpec) -> tuple[int, int]:
    """(output rows per band, images per piece) by the cache: as many rows as keep a band's input
    rows (rows_in, W_pad, C_in) and its products (rows*W_out, C_out) within about BAND_BYTES, at
    least one, the bands of equal height and at least two per thread over the batch (a batch of
    one image in one band ran on one thread); where a whole image fits, up to as many images as
    fit, in a number of pieces that the threads share evenly. Why 1 MiB: in the 2 MiB L2 of a core
    beside the weight rows' block that the products stream (benchmarks/RESULTS.md, fifteenth
    session). Why even: 512@7 at batch 4 in pieces of 3 + 1 images ran 0.64x PyTorch on two
    threads, in 2 + 2 0.94x (``python benchmarks/gemm_pieces.py``, sixteenth session)."""
    h_out = spec.out_size[0]
    fixed, row_bytes = band_bytes(spec)
    rows = max(1, min(h_out, (BAND_BYTES - fixed) // row_bytes))
    threads = torch.get_num_threads()
    bands = max(math.ceil(h_out / rows), math.ceil(2 * threads / spec.batch))  # two per thread
    if bands > 1:  # bands of equal height (13 + 1 rows put one thread's share in one band)
        return math.ceil(h_out / min(bands, h_out)), 1
    fit = max(1, min(spec.batch, BAND_BYTES // (fixed + h_out * row_bytes)))
    count = math.ceil(spec.batch / fit)
    if count > 1:  # a whole number of pieces per thread: 4 images fitting 3 go as 2 + 2, not 3 + 1
        count = math.ceil(count / threads) * threads
    return h_out, math.ceil(spec.batch / min(count, spec.batch))


def band_bytes(spec: ConvSpec) -> tuple[int, int]:
    """A band's bytes as (fixed, per output row): the input rows every band reads beyond its own
    (the kernel's reach less one stride), and per output row its input rows and its products."""
    s_h, d_h = spec.stride[0], spec.dilation[0]
    w_pad = spec.in_size[1] + spec.padding[2] + spec.padding[3]
    row_bytes = 4 * (spec.in_channels * s_h * w_pad + spec.out_size[1] * spec.out_channels)
    fixed = 4 * spec.in_channels * ((spec.kernel_size[0] - 1) * d_h + 1 - s_h) * w_pad
    return fixed, row_bytes


def weight_rows(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, k_h, k_w) -> (k_h*k_w*C_in, C_out), taps then channels as rows, in panels
    (``native.panels``), kept per weight (recomputed when its values change, into the stale entry's
    buffer). Laid out by gemm.c (``native.gemm_weight_rows``) where the weight is a float32 CPU
    tensor, else by a permuting copy and ``panels``, the reference. Why: a training step lays it out
    again on every step, and the torch ops took 6.2 ms for ResNet-50's 512x512 3x3 weight against
    0.57 ms (``python benchmarks/gemm_pieces.py --weight-rows``, benchmarks/RESULTS.md, twentieth
    session)."""

    def laid_out(buffer: torch.Tensor | None = None) -> torch.Tensor:
        if native_kernels.plain_cpu_float32(weight):
            return native_kernels.gemm_weight_rows(weight.detach().contiguous(), out=buffer)
        rows = weight.detach().permute(2, 3, 1, 0).reshape(1, -1, weight.shape[0])  # (1, k_h*k_w*C_in, C_out)
        return native_kernels.panels(rows)

    if torch.is_grad_enabled() and weight.requires_grad:  # autograd may save them (a double backward)
        return laid_out()
    return WEIGHT_ROWS.get(weight, (), laid_out)


def forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    if uses_native(spec):
        x_nchw = x.contiguous()  # a strided NCHW x: one copy
        if native_kernels.runs_gemm(x_nchw, bias, spec):
            return native_kernels.gemm_forward(x_nchw, weight_rows(weight), bias, spec, pieces(spec))
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
        compiled=uses_native,
    )
)
