"""Winograd convolution F(m x m, 3x3): fewer multiplications through polynomial interpolation.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015). In one dimension, m
outputs of a 3-tap correlation ``y_i = sum_k g_k d_{i+k}`` from a tile of t = m + 2 inputs are::

    y = A^T [ (G g) * (B^T d) ]        (G g), (B^T d): t values; * is elementwise

t multiplications instead of 3m. In two dimensions the transforms apply on both sides,
``Y = A^T [ (G g G^T) * (B^T d B) ] A``, so an m x m output tile costs t^2 multiplications instead
of 9 m^2: 16 vs 36 for F(2x2, 3x3) (2.25x fewer), 36 vs 144 for F(4x4, 3x3) (4x fewer).

The matrices come from the interpolation points (Toom-Cook): A^T and G by the formulas below,
B^T by solving the identity above exactly. Points: F(2, 3): 0, 1, -1; F(4, 3): 0, 1, -1, 1/2,
-1/2 (half-integer points keep the entries small, which is what keeps F(4, 3) accurate), and the
point at infinity for both.

Over a whole layer, with P = N * tiles_h * tiles_w tiles and channels contiguous in the tiles::

    x_pad = x zero-padded, channels last                     (N, H_pad', W_pad', C_in)  one copy, zeros written in it
    tiles = overlapping t x t windows of x_pad, stride m     (t*t, P, C_in)       gathered once
    V     = kron(B^T, B^T) @ tiles                           (t*t, P, C_in)       input transform
    U     = kron(G, G) @ weight                              (t*t, C_in, C_out)   weight transform, cached
    M     = V @ U, one matmul per tile position xi           (t*t, P, C_out)      the products
    Y     = kron(A^T, A^T) @ M                               (m*m, P, C_out)      output transform
    out   = Y rearranged to (N, C_out, tiles_h*m, tiles_w*m), cropped to (H_out, W_out)

For ResNet-50's 128->128 layer at 28x28, batch 8, F(4x4): 7x7 tiles per image, P = 392;
tiles and V (36, 392, 128), U (36, 128, 128), M (36, 392, 128), Y (16, 392, 128), out (8, 128, 28, 28).
The batch goes through in pieces (each reads all of U): whole images, about 16 MiB of tiles
at a time, or, for an image with more than 4 MiB of tiles, bands of its tile rows of about
2 MiB (see ``pieces``).
The intermediates live in scratch buffers kept between calls
(:mod:`convlens.algos.scratch`): fresh 15 MiB buffers on every call cost the 64-channel 56x56
layer half its speed. The zero padding is written by the channels-last copy: a separate padded
tensor first cost one more pass over the input (the copies stage of ``python
benchmarks/winograd_profile.py`` went from 3.37 to 2.89 ms at 64 channels on 56x56, 1.86 to
1.15 ms at 128 on 28x28, batch 8). The bias is added by the output transform's matrix product
(addmm).

Error bound: the transforms add rounding on top of the direct sum. Against float64, F(2x2, 3x3)
stays within 2x PyTorch's own float32 error; F(4x4, 3x3) measured up to 47x over the 3x3
layers of ResNet-18/50, MobileNetV2 and VGG-16 (max |error| 7e-5 at unit-scale outputs,
``convlens verify --precision high``; computing the weight transform in float64 barely changed
it: the rounding is in the tile transforms), so its documented bound is 50x, and it is used
only when ``convlens.set_precision("high")`` allows it.
``convlens verify`` checks both.
Supports 3x3 kernels, stride 1, dilation 1, any padding and groups.
"""

from __future__ import annotations

import math
from functools import cache

import torch

from convlens.algos import Algorithm, accumulation_dtype, register
from convlens.algos.cache import TransformCache
from convlens.algos.scratch import Scratch
from convlens.settings import get_precision
from convlens.spec import ConvSpec, ceil_div, prefers_channels_last

R = 3  # kernel size handled
POINTS = {2: (0.0, 1.0, -1.0), 4: (0.0, 1.0, -1.0, 0.5, -0.5)}  # finite points; infinity is implied


@cache
def transforms(m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T, G, B^T) of F(m, 3) in float64: shapes (m, t), (t, 3), (t, t), t = m + 2."""
    t = m + R - 1
    points = torch.tensor(POINTS[m], dtype=torch.float64)
    a_t = torch.zeros(m, t, dtype=torch.float64)
    g = torch.zeros(t, R, dtype=torch.float64)
    for j, point in enumerate(points):
        others = torch.cat([points[:j], points[j + 1 :]])
        a_t[:, j] = point ** torch.arange(m)  # evaluate the output polynomial at the point
        g[j] = point ** torch.arange(R) / torch.prod(point - others)  # Lagrange weight of the point
    a_t[m - 1, t - 1] = 1.0  # the point at infinity: leading coefficients
    g[t - 1, R - 1] = 1.0
    # B^T is what makes A^T [(G g) * (B^T d)] the correlation for every g and d:
    #   sum_xi A^T[i, xi] G[xi, k] B^T[xi, l] = 1 if l == i + k else 0.
    equations, targets = [], []
    for i in range(m):
        for k in range(R):
            for lane in range(t):
                row = torch.zeros(t, t, dtype=torch.float64)
                row[:, lane] = a_t[i] * g[:, k]
                equations.append(row.flatten())
                targets.append(1.0 if lane == i + k else 0.0)
    system = torch.stack(equations)
    b_t = torch.linalg.lstsq(system, torch.tensor(targets, dtype=torch.float64).unsqueeze(1)).solution.view(t, t)
    b_t = torch.round(b_t * 1024) / 1024  # the entries are small dyadic fractions: snap off solver noise
    residual = (system @ b_t.flatten() - torch.tensor(targets, dtype=torch.float64)).abs().max()
    assert residual < 1e-12, f"F({m}, 3) transforms do not reproduce correlation (residual {residual})"
    return a_t, g, b_t


# Derived once, at import: torch.compile then sees constants, not the solver.
MATRICES = {m: transforms(m) for m in POINTS}
# The 2-D transforms as single matrices: kron(B^T, B^T) (t*t, t*t) and kron(A^T, A^T) (m*m, t*t).
KRON = {m: (torch.kron(b_t, b_t), torch.kron(a_t, a_t)) for m, (a_t, _, b_t) in MATRICES.items()}
KRON_G = {m: torch.kron(g, g) for m, (_, g, _) in MATRICES.items()}  # kron(G, G) (t*t, 9): the weight transform


F4_MIN_TILES = 32  # F(4x4) tiles over the batch below which F(2x2) is faster; see tile_size


def tile_size(spec: ConvSpec) -> int:
    """F(4x4, 3x3) when precision "high" allows it, the output has room for 4x4 tiles and they
    number at least F4_MIN_TILES over the batch; else F(2x2, 3x3).

    Each of the t*t products reads all of U, t*t*C_in*C_out values, for as many rows as there are
    tiles: with few tiles the products mostly stream U, and F(4x4)'s U is 36/16 times F(2x2)'s.
    ``python benchmarks/winograd_rules.py`` times the rule against either tile size forced; in a
    first, ad hoc timing at 512 channels (F(4x4) against F(2x2), in PyTorch's time): 7x7 at batch 1 (4 tiles)
    0.51x against 0.84x, at batch 4 (16 tiles) 0.81x against 0.98x, at batch 8 (32 tiles) 1.15x
    against 1.05x; 14x14 at batch 1 (16 tiles) 0.81x against 1.25x; at 256 channels, 14x14,
    batch 2 (32 tiles) 1.34x against 1.20x; 128 channels at 28x28, batch 1 (49 tiles) 1.23x against 0.97x."""
    h_out, w_out = spec.out_size
    if get_precision() != "high" or min(h_out, w_out) < 6:
        return 2
    tiles_h, tiles_w = tile_grid(spec, 4)
    return 4 if spec.batch * tiles_h * tiles_w >= F4_MIN_TILES else 2


def tile_grid(spec: ConvSpec, m: int) -> tuple[int, int]:
    """Tiles per image, (ceil(H_out/m), ceil(W_out/m)): the m x m output tiles that cover the output."""
    h_out, w_out = spec.out_size
    return ceil_div(h_out, m), ceil_div(w_out, m)


def tiled_input_size(spec: ConvSpec, m: int) -> tuple[int, int]:
    """(H, W) of the padded input the tiles read: tiles * m + 2 rows and columns (t x t tiles
    every m pixels overlap by 2), the padded input zero-extended at the bottom and right."""
    tiles_h, tiles_w = tile_grid(spec, m)
    return tiles_h * m + R - 1, tiles_w * m + R - 1


def tile_count(spec: ConvSpec) -> int:
    """Tiles over the whole batch, N * tiles_h * tiles_w: the rows of every product V @ U."""
    tiles_h, tiles_w = tile_grid(spec, tile_size(spec))
    return spec.batch * tiles_h * tiles_w


def error_bound(spec: ConvSpec) -> float:
    """Multiple of PyTorch's own float32 error this configuration may reach (see the docstring)."""
    return 50.0 if tile_size(spec) == 4 else 2.0


def supports(spec: ConvSpec) -> str | None:
    if spec.kernel_size != (3, 3) or spec.stride != (1, 1) or spec.dilation != (1, 1):
        return f"only 3x3 kernels with stride 1 and dilation 1, got kernel {spec.kernel_size}, " \
               f"stride {spec.stride}, dilation {spec.dilation}"  # fmt: skip
    return None


# ---- the weight transform, cached -----------------------------------------------------------
WEIGHT_CACHE = TransformCache()


TRANSFORM_FILTERS = 64  # filters per chunk of the weight transform; see transform_weight


def transform_weight(
    weight: torch.Tensor, m: int, groups: int, dtype: torch.dtype, out: torch.Tensor | None = None
) -> torch.Tensor:
    """U = G g G^T for every filter: (C_out, C_in/G, 3, 3) -> (G, t*t, C_in/G, C_out/G).

    For each chunk of TRANSFORM_FILTERS filters, one product kron(G, G) (t*t, 9) @ taps^T
    (9, filters*C_in/G) gives (t*t, filters, C_in/G), copied transposed into U, whose (C_in/G,
    C_out/G) blocks the products then read as they are. Paid whenever the weight changes (every
    optimizer step). For a 512x512 weight with F(4x4) the chunks took 16.7 ms against 23.2 ms for
    one product and one transposing copy of the whole U (both into fresh buffers). A U laid out
    (t*t, C_out, C_in) needs no copy (9.3 ms) but made the products up to 1.4x slower on every
    call (1.90 -> 2.64 ms on that layer at batch 8), so convlens pays the copy once per weight
    change instead (``python benchmarks/winograd_transform.py``). ``out``: a buffer of U's shape
    to write into."""
    t = m + R - 1
    c_out, c_in_g = weight.shape[:2]
    c_out_g = c_out // groups
    kron_g = KRON_G[m].to(dtype=dtype, device=weight.device)  # (t*t, 9)
    taps = weight.to(dtype).reshape(groups, c_out_g, c_in_g, R * R)  # (G, C_out/G, C_in/G, 9)
    shape = (groups, t * t, c_in_g, c_out_g)
    if out is None or out.shape != shape:
        out = torch.empty(shape, dtype=dtype, device=weight.device)
    for o0 in range(0, c_out_g, TRANSFORM_FILTERS):
        block = taps[:, o0 : o0 + TRANSFORM_FILTERS]  # (G, filters, C_in/G, 9)
        u_block = torch.matmul(kron_g, block.reshape(groups, -1, R * R).transpose(1, 2))  # (G, t*t, filters*C_in/G)
        out[..., o0 : o0 + block.shape[1]] = u_block.view(groups, t * t, -1, c_in_g).transpose(2, 3)
    return out


def cached_weight_transform(weight: torch.Tensor, m: int, groups: int, dtype: torch.dtype) -> torch.Tensor:
    return WEIGHT_CACHE.get(
        weight, (m, groups, dtype), lambda buffer: transform_weight(weight, m, groups, dtype, buffer)
    )


# ---- the forward ----------------------------------------------------------------------------
PIECE_BYTES = 16 * 1024**2  # tiles per piece of whole images; see pieces()
LARGE_IMAGE_BYTES = 4 * 1024**2  # an image with more tiles than this goes in bands of tile rows
BAND_BYTES = 2 * 1024**2  # tiles per band
SCRATCH = Scratch()  # the padded input in channels-last, and tiles, V, M, Y of one piece, kept between calls


def channels_last_tiled(
    x: torch.Tensor,
    padding: tuple[int, int, int, int],
    size: tuple[int, int],
    dtype: torch.dtype,
    name: str = "x",
) -> torch.Tensor:
    """x zero-padded by ``padding``, then zero-extended at the bottom / right to ``size``, as
    (N, H, W, C_in), contiguous.

    One copy into the scratch buffer ``name``, which writes the zeros of the padding and the
    extension as it goes (only those strips are zeroed); no copy at all when x is already
    channels-last in ``dtype`` and needs neither."""
    n, c_in, h, w = x.shape
    top, _, left, _ = padding
    x_hwc = x.permute(0, 2, 3, 1)  # (N, H, W, C_in), a view
    if not any(padding) and (h, w) == size and x_hwc.is_contiguous() and x.dtype == dtype:
        return x_hwc
    padded = SCRATCH.take(name, (n, *size, c_in), dtype, x.device)
    bottom, right = top + h, left + w  # the input's region is rows top..bottom, columns left..right
    padded[:, :top] = 0
    padded[:, bottom:] = 0
    padded[:, top:bottom, :left] = 0
    padded[:, top:bottom, right:] = 0
    padded[:, top:bottom, left:right] = x_hwc
    return padded


def pieces(spec: ConvSpec, m: int, tiles: tuple[int, int], u_bytes: int) -> tuple[int, int]:
    """(images, tile rows) per piece. An image whose tiles hold at most LARGE_IMAGE_BYTES goes
    whole, with as many others as fill about max(PIECE_BYTES, U's size); a larger image goes in
    bands of its tile rows holding about max(BAND_BYTES, U's size).

    Each piece reads all of U, so its tiles should be at least as large as U. Measured
    (``python benchmarks/winograd_pieces.py``): ResNet-50's 3x3 layers at batch 8 (0.3-1.8 MiB of
    tiles per image) ran fastest in pieces of 8-16 MiB, and up to a fifth slower in 1-2 MiB ones;
    VGG-16's 224x224 and 112x112 layers at batch 1 (7-29 MiB per image) ran 1.4-1.6x faster in
    1-2 MiB bands than in 8-16 MiB bands or whole. Why the two differ is not pinned down; the
    sizes follow the measurements."""
    tiles_h, tiles_w = tiles
    t = m + R - 1
    row_bytes = max(1, t * t * tiles_w * spec.in_channels * spec.dtype.itemsize)  # one tile row of one image
    image_bytes = row_bytes * tiles_h
    if image_bytes <= LARGE_IMAGE_BYTES:
        return max(1, min(spec.batch, max(PIECE_BYTES, u_bytes) // image_bytes)), tiles_h
    return 1, max(1, min(tiles_h, max(BAND_BYTES, u_bytes) // row_bytes))


def buffer_bytes(spec: ConvSpec, channels_last: bool = False) -> dict[str, int]:
    """Bytes of every buffer the forward uses besides input, weight and output, by name, predicted
    from the shapes: the scratch buffers (``x``, ``tiles``, ``v``, ``products``, ``y``, and ``out``
    when the output goes through channels-last scratch, see output_via_hwc; kept between calls),
    the cached ``transformed weight`` U with its ``saved weight`` copy, and the output's
    ``overhang`` (rows and columns of the last tiles beyond the output, cropped away) otherwise.
    ``x`` assumes the input is copied (it is not when it is already channels-last in the compute
    dtype, with no padding and a size that is a multiple of m). With groups > 1 the products are
    fresh tensors instead (a matmul result and its rearranged copy), counted twice."""
    m = tile_size(spec)
    t = m + R - 1
    itemsize = accumulation_dtype(spec.dtype).itemsize
    tiles_h, tiles_w = tile_grid(spec, m)
    u_elements = t * t * spec.in_per_group * spec.out_channels
    images, band = pieces(spec, m, (tiles_h, tiles_w), u_elements * itemsize)
    tiles = min(images, spec.batch) * band * tiles_w  # in the largest piece
    h_out, w_out = spec.out_size
    full = spec.batch * spec.out_channels * tiles_h * m * tiles_w * m  # the output with its overhang
    via_hwc = output_via_hwc(channels_last, tiles_w * m)
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


NARROW_WIDTH = 16  # output_via_hwc: at most this many columns of tiles (tiles_w * m)


def output_via_hwc(channels_last: bool, width: int) -> bool:
    """Whether the output, when NCHW (not ``channels_last``), goes through channels-last scratch:
    for outputs whose tiles span at most NARROW_WIDTH columns (``width`` = tiles_w * m).

    Y's rows hold channels innermost. Copied straight into NCHW, each tile row becomes runs of
    m values, from a source m*m*P*C_out values apart, and the narrower the output, the shorter
    the copy's loops. The detour is a channels-last copy (runs of C_out values) followed by one
    NHWC -> NCHW transpose of the output, which also crops the overhang the tiles leave (8x8
    computed for 7x7) that would otherwise cost a copy to make the output contiguous.
    ``python benchmarks/winograd_rules.py`` times the whole call with and without the detour;
    the copies alone, timed ad hoc, batch 8, straight against detour, in ms: F(4x4) on ResNet-50's 512-channel 7x7 layer
    (8 columns) 0.58 / 0.21, 256 at 14x14 (16 columns) 0.80 / 0.77, 128 at 28x28 (28 columns)
    0.98 / 1.21; F(2x2): 512 at 7x7 (8 columns) 0.73 / 0.25, 256 at 14x14 (14) 0.78 / 0.65,
    128 at 28x28 (28) 1.15 / 1.29."""
    return not channels_last and width <= NARROW_WIDTH


def transformed_tiles(rows_in: torch.Tensor, m: int, kron_b: torch.Tensor) -> torch.Tensor:
    """V = B^T d B for every t x t tile of one piece: ``rows_in`` (k, rows*m + 2, W, C_in), the
    channels-last input rows the piece's tiles cover, -> V (t*t, P, C_in), P = k * rows * tiles_w,
    in scratch (shared by the forward and the weight gradient)."""
    t = m + R - 1
    # t x t tiles every m pixels, (k, rows, tiles_w, C_in, t, t), as a view; tiles overlap by 2
    windows = rows_in.unfold(1, t, m).unfold(2, t, m)
    windows = windows.permute(4, 5, 0, 1, 2, 3)  # windows[a, b, n, i, j, c] = x_pad[n, i*m + a, j*m + b, c]
    tiles = SCRATCH.take("tiles", windows.shape, kron_b.dtype, rows_in.device)
    tiles.copy_(windows)  # the gather: one copy, channels contiguous                         (t*t, P*C_in)
    positions = windows.shape[2] * windows.shape[3] * windows.shape[4]
    v = SCRATCH.take("v", (t * t, positions, rows_in.shape[-1]), kron_b.dtype, rows_in.device)
    torch.mm(kron_b, tiles.view(t * t, -1), out=v.view(t * t, -1))  # V = B^T d B               (t*t, P, C_in)
    return v


def products_of(v: torch.Tensor, u: torch.Tensor, groups: int) -> torch.Tensor:
    """M = V @ U at every tile position xi: (t*t, P, C_in) and (G, t*t, C_in/G, C_out/G) -> (t*t, P*C_out)."""
    tt, p, c_in = v.shape
    if groups == 1:
        products = SCRATCH.take("products", (tt, p, u.shape[-1]), v.dtype, v.device)
        return torch.bmm(v, u[0], out=products).view(tt, -1)
    v_groups = v.view(tt, p, groups, c_in // groups).permute(2, 0, 1, 3)  # (G, t*t, P, C_in/G)
    return torch.matmul(v_groups, u).permute(1, 2, 0, 3).reshape(tt, -1)  # (t*t, P, G, C_out/G) -> rows


def forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    m = tile_size(spec)
    compute = accumulation_dtype(x.dtype)
    n = x.shape[0]
    c_out = spec.out_channels
    h_out, w_out = spec.out_size
    tiles_h, tiles_w = tile_grid(spec, m)
    kron_b, kron_a = (matrix.to(dtype=compute, device=x.device) for matrix in KRON[m])

    # Channels last, zero-padded, and zero-extended at the bottom/right so the tiles cover the output exactly.
    x_pad = channels_last_tiled(x, spec.padding, tiled_input_size(spec, m), compute)  # (N, H, W, C_in)
    u = cached_weight_transform(weight, m, spec.groups, compute)  # (G, t*t, C_in/G, C_out/G)

    # The output seen as tiles, out_tiles[n, o, i, a, j, b] = out[n, o, i*m + a, j*m + b]: in the
    # layout of the input, or, for a narrow NCHW output, channels-last scratch first (see output_via_hwc).
    channels_last = prefers_channels_last(x)
    via_hwc = output_via_hwc(channels_last, tiles_w * m)
    if via_hwc:
        full = SCRATCH.take("out", (n, tiles_h * m, tiles_w * m, c_out), compute, x.device).permute(0, 3, 1, 2)
    elif channels_last:
        full = x.new_empty((n, tiles_h * m, tiles_w * m, c_out)).permute(0, 3, 1, 2)
    else:
        full = x.new_empty((n, c_out, tiles_h * m, tiles_w * m))
    out_tiles = full.unflatten(3, (tiles_w, m)).unflatten(2, (tiles_h, m))  # (N, C_out, tiles_h, m, tiles_w, m)
    images, band = pieces(spec, m, (tiles_h, tiles_w), u.numel() * u.element_size())
    # The bias rides along in the output transform: Y = A^T M A + bias, one (P*C_out) row added to every row.
    bias_row = None if bias is None else bias.to(compute).repeat(images * band * tiles_w)
    for n0 in range(0, n, images):
        for i0 in range(0, tiles_h, band):
            k, rows = min(images, n - n0), min(band, tiles_h - i0)  # this piece: k images, tile rows i0 .. i0 + rows
            v = transformed_tiles(x_pad[n0 : n0 + k, i0 * m : (i0 + rows) * m + 2], m, kron_b)  # (t*t, P, C_in)
            products = products_of(v, u, spec.groups)  # M = V @ U                             (t*t, P*C_out)
            y = SCRATCH.take("y", (m, m, k, rows, tiles_w, c_out), compute, x.device)
            if bias_row is None:
                torch.mm(kron_a, products, out=y.view(m * m, -1))  # Y = A^T M A               (m*m, P*C_out)
            else:
                torch.addmm(bias_row[: products.shape[1]], kron_a, products, out=y.view(m * m, -1))
            # One copy into the output, rounded to its dtype: (k, C_out, rows, m, tiles_w, m)
            out_tiles[n0 : n0 + k, :, i0 : i0 + rows] = y.permute(2, 5, 3, 0, 4, 1)
    if via_hwc:  # one transposing copy into the output, NCHW, cropped, contiguous
        return x.new_empty((n, c_out, h_out, w_out)).copy_(full[:, :, :h_out, :w_out])
    return full[:, :, :h_out, :w_out]


ALGORITHM = register(
    Algorithm(
        name="winograd",
        summary="Winograd F(2x2,3x3) / F(4x4,3x3): 2.25x / 4x fewer multiplications for 3x3, stride 1",
        forward=forward,
        supports=supports,
        error_bound=error_bound,
    )
)
