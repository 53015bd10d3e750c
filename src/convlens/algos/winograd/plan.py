"""Winograd's plan for a layer: which tile size, how many tiles, which pieces, which buffers.

tile_size(spec)        m = 4 (F(4x4, 3x3)) where precision "high" allows it and it pays, else 2 (always at stride 2)
tile_grid(spec, m)     (tiles_h, tiles_w) = (ceil(H_out/m), ceil(W_out/m))
tiling_stride(spec)    1 or 2: the layer's stride
span(spec, m)          t, the input tile's side: m + 2 at stride 1, 5 at stride 2
step(spec, m)          input pixels from one tile to the next: stride * m
pieces(...)            (images, tile rows) per piece of the batch
uses_fused(spec)       whether the forward runs winograd.c's fused pass (V and M kept in the cache)
fused_pieces(spec, m)  the fused pass's tile rows per band and images per piece
output_via_hwc(...)    whether a narrow NCHW output goes through channels-last scratch
buffer_bytes(spec, workspace)   every buffer the forward takes beyond input, weight and output
"""

from __future__ import annotations

import math

import torch

from convlens.algos import accumulation_dtype, real_only
from convlens.algos.winograd.transforms import R, tile_span
from convlens.config import get_precision
from convlens.spec import ConvSpec, ceil_div

# Whether the forward uses winograd.c's passes (float32, CPU) instead of the torch-op pipeline. Off:
# on the EPYC of this project (2 cores) the compiled passes, though they make two fewer passes over
# memory, measured slower than the pipeline on 7 of ResNet-50's 8 3x3 layer/precision pairs at
# batch 8; evidence: ``python benchmarks/winograd_native.py`` (benchmarks/RESULTS.md). On for a
# machine where that script shows them ahead; the tests run both.
native = False

# Whether the forward runs winograd.c's fused pass where it applies (uses_fused): on the Xeon of
# benchmarks/RESULTS.md (fifteenth session) it led both other forwards on every ResNet-50 3x3
# stride-1 layer at batch 8, F(2x2) and F(4x4), in the last run of winograd_native.py. Not yet
# measured on an AVX2 machine: ``python benchmarks/winograd_native.py`` there says whether it
# should stay on.
fused = True

MIN_TILES = 32  # tiles over the batch below which the products mostly stream U: F(4x4) falls back to F(2x2), auto
#               to im2col (each of the t*t products reads all of U once per piece of tiles)
F4_MIN_OUTPUT = 6  # F(4x4) only for outputs at least this tall and wide: below, its tiles are mostly overhang


def tile_size(spec: ConvSpec) -> int:
    """F(4x4, 3x3) when precision "high" allows it, the output is at least F4_MIN_OUTPUT on each side
    (a 5x5 output in 4x4 tiles computes 64 values for 25; in 2x2 tiles, 36) and its tiles
    number at least MIN_TILES over the batch; else F(2x2, 3x3).

    Each of the t*t products reads all of U, t*t*C_in*C_out values, for as many rows as there are
    tiles, and F(4x4)'s U is 36/16 times F(2x2)'s. Why: with few tiles the products mostly stream
    U; evidence: ``python benchmarks/winograd_rules.py`` (benchmarks/RESULTS.md). At stride 2 there is
    only F(2x2)."""
    h_out, w_out = spec.out_size
    if get_precision() != "high" or min(h_out, w_out) < F4_MIN_OUTPUT or tiling_stride(spec) != 1:
        return 2
    tiles_h, tiles_w = tile_grid(spec, 4)
    return 4 if spec.batch * tiles_h * tiles_w >= MIN_TILES else 2


def tile_grid(spec: ConvSpec, m: int) -> tuple[int, int]:
    """Tiles per image, (ceil(H_out/m), ceil(W_out/m)): the m x m output tiles that cover the output."""
    h_out, w_out = spec.out_size
    return ceil_div(h_out, m), ceil_div(w_out, m)


def tiling_stride(spec: ConvSpec) -> int:
    """The stride the tiles step by, 1 or 2: the layer's. An axis with a single output, whose stride
    the spec clamps to 1 (``spec.shape.effective_stride``), takes the other axis's: its one output
    is the same at any stride."""
    return max(spec.stride)


def span(spec: ConvSpec, m: int) -> int:
    """t, the side of the input tile of an m x m output tile at the layer's stride."""
    return tile_span(m, tiling_stride(spec))


def step(spec: ConvSpec, m: int) -> int:
    """Input rows (and columns) from one tile to the next: stride * m."""
    return tiling_stride(spec) * m


def tiled_input_size(spec: ConvSpec, m: int) -> tuple[int, int]:
    """(H, W) of the padded input the tiles read: tiles * step + t - step rows and columns (t x t
    tiles every step pixels: at stride 1 they overlap by 2, at stride 2 by 1), the padded input
    zero-extended at the bottom and right."""
    tiles_h, tiles_w = tile_grid(spec, m)
    overlap = span(spec, m) - step(spec, m)
    return tiles_h * step(spec, m) + overlap, tiles_w * step(spec, m) + overlap


def tile_count(spec: ConvSpec) -> int:
    """Tiles over the whole batch, N * tiles_h * tiles_w: the rows of every product V @ U."""
    tiles_h, tiles_w = tile_grid(spec, tile_size(spec))
    return spec.batch * tiles_h * tiles_w


def error_bound(spec: ConvSpec) -> float:
    """Multiple of PyTorch's own float32 error this configuration may reach (see the docstring)."""
    return 50.0 if tile_size(spec) == 4 else 2.0


def supports(spec: ConvSpec) -> str | None:
    if real_only(spec) is not None:
        return real_only(spec)
    strided = any(step != tiling_stride(spec) and out != 1 for step, out in zip(spec.stride, spec.out_size))
    if spec.kernel_size != (3, 3) or tiling_stride(spec) > 2 or strided or spec.dilation != (1, 1):
        return f"only 3x3 kernels with stride 1 or 2 and dilation 1, got kernel {spec.kernel_size}, " \
               f"stride {spec.stride}, dilation {spec.dilation}"  # fmt: skip
    return None


PIECE_BYTES = 16 * 1024**2  # tiles per piece of whole images; see pieces()
LARGE_IMAGE_BYTES = 4 * 1024**2  # an image with more tiles than this goes in bands of tile rows
BAND_BYTES = 2 * 1024**2  # tiles per band


def pieces(spec: ConvSpec, m: int, tiles: tuple[int, int], u_bytes: int) -> tuple[int, int]:
    """(images, tile rows) per piece. An image whose tiles hold at most LARGE_IMAGE_BYTES goes
    whole, with as many others as fill about max(PIECE_BYTES, U's size); a larger image goes in
    bands of its tile rows holding about max(BAND_BYTES, U's size).

    Each piece reads all of U, so its tiles should be at least as large as U. Why these sizes:
    ResNet-50's 3x3 layers at batch 8 (0.3-1.8 MiB of tiles per image) run fastest in 8-16 MiB
    pieces, VGG-16's 224x224 and 112x112 layers at batch 1 (7-29 MiB per image) in 1-2 MiB bands,
    for reasons not pinned down; evidence: ``python benchmarks/winograd_pieces.py`` (benchmarks/RESULTS.md)."""
    tiles_h, tiles_w = tiles
    t = span(spec, m)
    row_bytes = max(1, t * t * tiles_w * spec.in_channels * spec.dtype.itemsize)  # one tile row of one image
    image_bytes = row_bytes * tiles_h
    if image_bytes <= LARGE_IMAGE_BYTES:
        return max(1, min(spec.batch, max(PIECE_BYTES, u_bytes) // image_bytes)), tiles_h
    return 1, max(1, min(tiles_h, max(BAND_BYTES, u_bytes) // row_bytes))


def uses_native(spec: ConvSpec) -> bool:
    """Whether the forward of this spec runs winograd.c's passes around the BLAS products (given
    plain float32 CPU tensors; the fused pass, where it applies, goes first). Stride 1 only: the
    stride-2 tiling is in the fused pass alone."""
    from convlens import native as native_kernels

    return native and tiling_stride(spec) == 1 and native_kernels.runs_winograd_spec(spec)


def compiled(spec: ConvSpec) -> bool:
    """Whether a compiled kernel computes this spec's forward: the fused pass or the two passes."""
    return uses_fused(spec) or uses_native(spec)


FUSED_MAX_U_BYTES = 64 * 1024**2  # the largest transformed weight U the fused pass takes; see uses_fused
FUSED_BAND_BYTES = 1024**2  # V and M of one band of the fused pass, about; see fused_pieces


def uses_fused(spec: ConvSpec) -> bool:
    """Whether the forward of this spec runs winograd.c's fused pass (given plain float32 CPU tensors):
    ``fused`` on, the compiled kernels' conditions (one group, C_out a multiple of 16), and a
    transformed weight U of at most FUSED_MAX_U_BYTES.

    The fused pass reads all of U once per piece (``fused_pieces``). Why FUSED_MAX_U_BYTES (64 MiB:
    1024 channels in F(2x2), 512 in F(4x4) and below): on every ResNet-50 3x3 layer at batch 8,
    with pieces of whole images for a large U, the fused pass led the pipeline; evidence:
    ``python benchmarks/winograd_native.py`` (benchmarks/RESULTS.md, fifteenth session)."""
    from convlens import native as native_kernels

    m = tile_size(spec)
    u_bytes = span(spec, m) ** 2 * spec.in_channels * spec.out_channels * 4
    return (
        fused
        and spec.groups == 1
        and spec.out_channels % 16 == 0
        and u_bytes <= FUSED_MAX_U_BYTES
        and native_kernels.runs_winograd_spec(spec)
    )


def fused_pieces(spec: ConvSpec, m: int) -> tuple[int, int]:
    """(tile rows per band, images per piece) of the fused pass. Each piece reads all of U; its V
    (t*t, P, C_in) and M (t*t, P, C_out) are the piece's size.

    Where U is smaller than one image's V and M: bands of as many tile rows as keep V and M within
    about FUSED_BAND_BYTES (in the 2 MiB L2 of a core with U beside them), at least one, of equal
    height, one image each, and at least one band per thread. Else (ResNet-50's 256- and 512-channel
    layers) U's reads are the cost: whole images, as many per piece as give each thread one piece
    (where the batch has an image per thread; else bands). Why: 64@56 and 128@28 ran
    within 10% of each other in bands of one to eight rows; 256@14 and 512@7 at batch 8 ran 1.2x
    to 2x faster in pieces of four images than one (F(2x2) 512@7: 1.11x -> 1.45x of PyTorch;
    F(4x4) 256@14: 1.80x -> 2.15x), and slower in one piece of eight (one thread); evidence:
    ``python benchmarks/winograd_native.py`` (benchmarks/RESULTS.md, fifteenth session)."""
    tiles_h, tiles_w = tile_grid(spec, m)
    t = span(spec, m)
    row_bytes = t * t * tiles_w * (spec.in_channels + spec.out_channels) * 4
    u_bytes = t * t * spec.in_channels * spec.out_channels * 4
    if u_bytes >= row_bytes * tiles_h and spec.batch >= threads():  # U at least an image's V and M
        return tiles_h, math.ceil(spec.batch / threads())
    rows = max(1, min(tiles_h, FUSED_BAND_BYTES // row_bytes))
    bands = max(math.ceil(tiles_h / rows), math.ceil(threads() / spec.batch))  # a piece for every thread
    return math.ceil(tiles_h / min(bands, tiles_h)), 1  # bands of equal height


def buffer_bytes(spec: ConvSpec, workspace: int) -> dict[str, int]:
    """Bytes of every buffer the forward uses besides input, weight and output, by name, predicted
    from the shapes: the scratch buffers (``x``, ``tiles``, ``v``, ``products``, ``y``, and ``out``
    when the output goes through channels-last scratch, see output_via_hwc; kept between calls),
    the cached ``transformed weight`` U with its ``saved weight`` copy, and the output's
    ``overhang`` (rows and columns of the last tiles beyond the output, cropped away) otherwise.
    ``x`` assumes the input is copied (it is not when it is already channels-last in the compute
    dtype, with no padding and a size that is a multiple of m). With groups > 1 the products are
    fresh tensors instead (a matmul result and its rearranged copy), counted twice."""
    m = tile_size(spec)
    t = span(spec, m)
    itemsize = accumulation_dtype(spec.dtype).itemsize
    tiles_h, tiles_w = tile_grid(spec, m)
    u_elements = t * t * spec.in_per_group * spec.out_channels
    images, band = pieces(spec, m, (tiles_h, tiles_w), u_elements * itemsize)
    tiles = min(images, spec.batch) * band * tiles_w  # in the largest piece
    h_out, w_out = spec.out_size
    if uses_fused(spec):  # V and M of one piece per thread, straight from x and into the output
        rows, images = fused_pieces(spec, m)
        band = images * rows * tiles_w
        return {
            "v": threads() * t * t * (band * spec.in_channels + 16) * 4,
            "products": threads() * t * t * (band * spec.out_channels + 16) * 4,
            "transformed weight": u_elements * itemsize,
            "saved weight": spec.out_channels * spec.in_per_group * R * R * spec.dtype.itemsize,
        }
    if uses_native(spec):  # V and M only (each row a cache line longer), straight from x and into the output
        return {
            "v": t * t * (tiles * spec.in_channels + 16) * itemsize,
            "products": t * t * (tiles * spec.out_channels + 16) * itemsize * (1 if spec.groups == 1 else 2),
            "transformed weight": u_elements * itemsize,
            "saved weight": spec.out_channels * spec.in_per_group * R * R * spec.dtype.itemsize,
        }
    full = spec.batch * spec.out_channels * tiles_h * m * tiles_w * m  # the output with its overhang
    via_hwc = output_via_hwc(spec.channels_last, tiles_w * m)
    return {
        "x": spec.batch * math.prod(tiled_input_size(spec, m)) * spec.in_channels * itemsize,
        "tiles": t * t * tiles * spec.in_channels * itemsize,
        "v": t * t * tiles * spec.in_channels * itemsize,
        "products": t * t * tiles * spec.out_channels * itemsize * (1 if spec.groups == 1 else 2),
        "y": m * m * tiles * spec.out_channels * itemsize,
        "transformed weight": u_elements * itemsize,
        "saved weight": spec.out_channels * spec.in_per_group * R * R * spec.dtype.itemsize,
        "out": full * itemsize if via_hwc else 0,
        "overhang": 0 if via_hwc else (full - spec.batch * spec.out_channels * h_out * w_out) * spec.dtype.itemsize,
    }


def threads() -> int:
    """Threads the fused pass runs on, each with its own band buffers: torch's."""
    return torch.get_num_threads()


NARROW_WIDTH = 16  # output_via_hwc: at most this many columns of tiles (tiles_w * m)


def output_via_hwc(channels_last: bool, width: int) -> bool:
    """Whether the output, when NCHW (not ``channels_last``), goes through channels-last scratch:
    for outputs whose tiles span at most NARROW_WIDTH columns (``width`` = tiles_w * m).

    Y's rows hold channels innermost. Copied straight into NCHW, each tile row becomes runs of
    m values, from a source m*m*P*C_out values apart, and the narrower the output, the shorter
    the copy's loops. The detour is a channels-last copy (runs of C_out values) followed by one
    NHWC -> NCHW transpose of the output, which also crops the overhang the tiles leave (8x8
    computed for 7x7) that would otherwise cost a copy to make the output contiguous. Why
    NARROW_WIDTH: the detour wins up to 16 columns, not at 28; evidence: ``python
    benchmarks/winograd_rules.py`` (benchmarks/RESULTS.md)."""
    return not channels_last and width <= NARROW_WIDTH
