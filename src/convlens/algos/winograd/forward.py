"""Winograd's forward over a whole layer: one copy in, the products on the BLAS matmul, one copy out.

channels_last_tiled   x_pad, channels last, zero-padded and extended to whole tiles   one copy
transformed_tiles     V = B^T d B for every tile of a piece                            gather + one product
products_of           M = V @ U, one product per tile position xi
forward               the compiled passes where they apply (forward_native), else forward_python
forward_python        the reference: the pieces, then Y = A^T M A + bias into the output
forward_native        the same pieces, with winograd.c's two passes around the same products:
                      x -> V in one pass (padding, gather, transform), M -> out in one (transform,
                      bias, crop, layout); no padded copy, no tiles, no Y, no detour
forward_fused         winograd.c's two passes and winograd_products.c's products, band by band of
                      tile rows, V and M never leaving the cache: one call for the whole layer
forward_checked       forward, and whether every output is finite (auto's NaN/Inf guard): the
                      fused pass sees each value as it writes it
"""

from __future__ import annotations

import torch

from convlens import native as native_kernels
from convlens.algos import accumulation_dtype
from convlens.algos.scratch import Scratch
from convlens.algos.winograd import plan
from convlens.algos.winograd.plan import (
    output_via_hwc,
    pieces,
    span,
    step,
    tile_grid,
    tile_size,
    tiled_input_size,
    tiling_stride,
)
from convlens.algos.winograd.transforms import cached_panels, cached_weight_transform, kron
from convlens.spec import ConvSpec, prefers_channels_last

SCRATCH = Scratch()  # the padded input in channels-last, and tiles, V, M, Y of one piece, kept between calls


def channels_last_tiled(
    x: torch.Tensor,
    padding: tuple[int, ...],
    size: tuple[int, int],
    dtype: torch.dtype,
    name: str = "x",
) -> torch.Tensor:
    """x zero-padded by ``padding``, then zero-extended at the bottom / right to ``size`` (or cropped
    to it: at stride 2 the tiles may not reach the last row or column no window reads), as (N, H, W,
    C_in), contiguous.

    One copy into the scratch buffer ``name``, which writes the zeros of the padding and the
    extension as it goes (only those strips are zeroed); no copy at all when x is already
    channels-last in ``dtype`` and needs neither."""
    n, c_in, h, w = x.shape
    top, _, left, _ = padding
    x_hwc = x.permute(0, 2, 3, 1)  # (N, H, W, C_in), a view
    if not any(padding) and (h, w) == size and x_hwc.is_contiguous() and x.dtype == dtype:
        return x_hwc
    padded = SCRATCH.take(name, (n, *size, c_in), dtype, x.device)
    bottom, right = min(top + h, size[0]), min(left + w, size[1])  # the input's region: rows top..bottom,
    x_hwc = x_hwc[:, : bottom - top, : right - left]  #                columns left..right
    padded[:, :top] = 0
    padded[:, bottom:] = 0
    padded[:, top:bottom, :left] = 0
    padded[:, top:bottom, right:] = 0
    padded[:, top:bottom, left:right] = x_hwc
    return padded


def transformed_tiles(rows_in: torch.Tensor, t: int, step: int, kron_b: torch.Tensor) -> torch.Tensor:
    """V = B^T d B for every t x t tile of one piece, one every ``step`` pixels: ``rows_in`` (k,
    rows*step + t - step, W, C_in), the channels-last input rows the piece's tiles cover, -> V (t*t,
    P, C_in), P = k * rows * tiles_w, in scratch (shared by the forward and the weight gradient)."""
    # t x t tiles every step pixels, (k, rows, tiles_w, C_in, t, t), as a view; tiles overlap by t - step
    windows = rows_in.unfold(1, t, step).unfold(2, t, step)
    windows = windows.permute(4, 5, 0, 1, 2, 3)  # windows[a, b, n, i, j, c] = x_pad[n, i*step + a, j*step + b, c]
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


def runs_fused(x: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> bool:
    """Whether this call runs winograd.c's fused pass (``forward_fused``)."""
    return plan.uses_fused(spec) and native_kernels.runs_winograd(x, bias, spec)


def forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    if runs_fused(x, bias, spec):
        return forward_fused(x, weight, bias, spec)[0]
    if plan.uses_native(spec) and native_kernels.runs_winograd(x, bias, spec):
        return forward_native(x, weight, bias, spec)
    return forward_python(x, weight, bias, spec)


def forward_checked(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> tuple[torch.Tensor, bool]:
    """``forward``, and whether every output value is finite: from the fused pass, which looks at
    each value as it writes it, else by one sum over the output (NaN and Inf survive it)."""
    if runs_fused(x, bias, spec):
        return forward_fused(x, weight, bias, spec)
    out = forward(x, weight, bias, spec, workspace)
    return out, out.numel() == 0 or bool(torch.isfinite(out.sum()))


def forward_native(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> torch.Tensor:
    """forward_python's pieces and products, with the passes before and after them in C (winograd.c):
    V (t*t, P, C_in) straight from x, and the output straight from M (t*t, P, C_out), in x's layout."""
    m = tile_size(spec)
    t = span(spec, m)
    n = x.shape[0]
    tiles_h, tiles_w = tile_grid(spec, m)
    u = cached_weight_transform(weight, m, spec.groups, torch.float32)  # (G, t*t, C_in/G, C_out/G)
    layout = torch.channels_last if prefers_channels_last(x) else torch.contiguous_format
    out = torch.empty((n, spec.out_channels, *spec.out_size), dtype=x.dtype, device=x.device, memory_format=layout)
    images, band = pieces(spec, m, (tiles_h, tiles_w), u.numel() * u.element_size())
    for n0 in range(0, n, images):
        for i0 in range(0, tiles_h, band):
            piece = (n0, min(images, n - n0), i0, min(band, tiles_h - i0), tiles_w)
            tiles = piece[1] * piece[3] * tiles_w
            v = padded_scratch("v", t * t, (tiles, spec.in_channels))
            native_kernels.winograd_input(x, spec, m, piece, v)  # V = B^T d B                (t*t, P, C_in)
            if spec.groups == 1:  # M = V @ U                                                  (t*t, P, C_out)
                products = torch.bmm(v, u[0], out=padded_scratch("products", t * t, (tiles, spec.out_channels)))
            else:
                products = products_of(v, u, spec.groups).reshape(t * t, tiles, spec.out_channels).contiguous()
            native_kernels.winograd_output(products, bias, out, m, piece)  # out = A^T M A + bias
    return out


def forward_fused(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, turned: bool = False
) -> tuple[torch.Tensor, bool]:
    """The whole layer in one compiled call (winograd.c, convlens_winograd_fused): for each piece
    (a band of tile rows of one image, or several whole images: ``plan.fused_pieces``), V = B^T d B
    (t*t, P, C_in), M = V @ U (t*t, P, C_out) and out = A^T M A + bias, V and M in buffers of one
    piece per thread; out in x's layout. Also whether every output value is finite (the output
    pass looks at each). ``turned``: convolve with ``weight`` (C_in, C_out, 3, 3) turned 180 degrees
    and its channels swapped (the input gradient's convolution), its U kept under ``weight``."""
    m = tile_size(spec)
    u = cached_panels(weight, m, tiling_stride(spec), turned)  # U (t*t, C_in, C_out) in panels of 64 output channels
    layout = torch.channels_last if prefers_channels_last(x) else torch.contiguous_format
    out = torch.empty((x.shape[0], spec.out_channels, *spec.out_size), dtype=x.dtype, memory_format=layout)
    rows, images = plan.fused_pieces(spec, m)
    finite = native_kernels.winograd_fused(x, u, bias, out, spec, m, rows, images=images)
    return out, finite


def padded_scratch(name: str, rows: int, shape: tuple[int, int]) -> torch.Tensor:
    """A float32 (rows, *shape) scratch buffer whose rows are a cache line apart more than their size
    (``native.padded_rows`` says why)."""
    buffer = SCRATCH.take(name, (rows * (shape[0] * shape[1] + 16),), torch.float32, torch.device("cpu"))
    return native_kernels.padded_rows(buffer, rows, shape)


def forward_python(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> torch.Tensor:
    """The reference: every step a torch op (the module docstrings of this package)."""
    m = tile_size(spec)
    compute = accumulation_dtype(x.dtype)
    n = x.shape[0]
    c_out = spec.out_channels
    h_out, w_out = spec.out_size
    tiles_h, tiles_w = tile_grid(spec, m)
    t, tile_step = span(spec, m), step(spec, m)  # t x t input tiles, one every tile_step pixels
    kron_b, kron_a = (matrix.to(dtype=compute, device=x.device) for matrix in kron(m, tiling_stride(spec)))

    # Channels last, zero-padded, and zero-extended at the bottom/right so the tiles cover the output exactly.
    x_pad = channels_last_tiled(x, spec.padding, tiled_input_size(spec, m), compute)  # (N, H, W, C_in)
    u = cached_weight_transform(weight, m, spec.groups, compute, tiling_stride(spec))  # (G, t*t, C_in/G, C_out/G)

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
            rows_in = x_pad[n0 : n0 + k, i0 * tile_step : (i0 + rows) * tile_step + t - tile_step]
            v = transformed_tiles(rows_in, t, tile_step, kron_b)  # V = B^T d B                (t*t, P, C_in)
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
