"""im2col: unfold the input into columns, multiply by the weight rows, view as an image.

This is the seed's algorithm. Each output value is a dot product of one weight row with one
column of input values (its receptive field), so all of them together are one matrix product::

    cols     = unfold(x_pad)                   (N, C_in*k_h*k_w, L)       L = H_out*W_out
    w_rows   = weight.view(C_out, -1)          (C_out, C_in*k_h*k_w)
    out_rows = w_rows @ cols                   (N, C_out, L)
    out      = out_rows.view(N, C_out, H_out, W_out) + bias

For the seed's CIFAR-10 layer, nn.Conv2d(3, 1, 5) on one 32x32 image: cols (1, 75, 784),
w_rows (1, 75), out_rows (1, 1, 784), out (1, 1, 28, 28).

With groups G the columns and rows split into G blocks and the product is batched over them::

    cols     (N, C_in*k_h*k_w, L)  -> (N, G, C_in/G*k_h*k_w, L)
    w_rows   (C_out, C_in/G*k_h*k_w) -> (G, C_out/G, C_in/G*k_h*k_w)
    out_rows = w_rows @ cols          (N, G, C_out/G, L)

Memory: cols holds k_h*k_w copies of the input, ``ConvSpec.cols_bytes()`` bytes. The work is
split so that one piece's columns never exceed the workspace limit (256 MiB by default): first
into chunks of images, and when a single image is too large, into bands of output rows (a band
of rows y0..y1 needs only input rows y0*s_h .. (y1-1)*s_h + d_h*(k_h-1)).

A channels-last input (N, H, W, C_in in memory) gets the same products transposed, with the
window positions as rows, so that neither the input nor the output is transposed::

    cols   = windows of x_pad, channels innermost        (G, N*L, k_h*k_w*C_in/G)
    w_cols = weight -> (G, k_h*k_w*C_in/G, C_out/G)       rows in the windows' (k_h, k_w, C) order
    out    = cols @ w_cols                                 (N*L, C_out): the output, channels-last

For a 1x1 stride-1 kernel those columns are the input itself, (N*H*W, C_in), a view. Why: through
the NCHW path a channels-last input costs a transposing copy in and out; evidence: ``python
benchmarks/channels_last.py`` (benchmarks/RESULTS.md).

Where the windows tile a channels-last input without overlap (kernel == stride, no padding, one
group: ConvNeXt's stem and downsampling layers, ``patchifies``) no columns are copied at all. Kernel
row a of every window is a view, each output row's k_w*C_in-long runs k_w*C_in apart, so the layer
is k_h batched products over the rows of windows (``patches``)::

    rows   = x viewed (N*H_out, k_h, W_out, k_w*C_in)     row a of window (n, i, j): rows[(n, i), a, j]
    w_rows = w_cols viewed (k_h, k_w*C_in, C_out)
    out    = sum over a of rows[:, a] @ w_rows[a] + bias  (N*H_out, W_out, C_out): the output, channels-last

A 1x1 unpadded layer with one group on a contiguous NCHW input (``pointwise``) skips the pieces:
its columns are the input itself (stride 1), or its every s-th row and column copied once, so it
is one product, ``w_rows @ x.view(N, C_in, L)``, the bias in it; with its batch folded
(``folds_batch``), one product over all images' positions (``pointwise_folded``).

Speed: pieces are also kept to at most 16 MiB of columns even when more would fit (for the
ResNet-50 layer 64->64 3x3 at 56x56, batch 8, one shot would be 55 MiB of columns). Why: columns
that stay cache-sized are written and read back faster than one huge buffer; evidence: ``python
benchmarks/im2col_pieces.py`` (benchmarks/RESULTS.md). The columns go into a scratch buffer kept
between calls (:mod:`convlens.algos.scratch`), and each piece's product straight into its slice
of the output, with the bias added while that slice is in cache. Why: a fresh 16 MiB tensor per
piece is faulted in page by page on every call; evidence: ``python benchmarks/im2col_scratch.py``
(benchmarks/RESULTS.md).

On the CPU, for a float32 NCHW input, the compiled core gathers the columns (src/convlens/native/im2col.c):
one pass from the unpadded input, the zero padding written into the columns, where this module pads
the input (a copy) and copies a strided view of it (a second pass, slow where its innermost run is
one strided output row). Why: ResNet-50's strided 3x3 layers and ConvNeXt's stem and downsampling
layers; evidence: ``convlens bench`` (benchmarks/RESULTS.md, fourteenth session). ``native = False``
keeps the Python gather (the tests run both).

A 3-D convolution (``forward_volume``) takes the same three steps over (D, H, W)::

    cols     = unfold(x_pad)                   (N, C_in*k_d*k_h*k_w, D_out*H_out*W_out)
    out_rows = w_rows @ cols                   (N, C_out, D_out*H_out*W_out)
    out      = out_rows.view(N, C_out, D_out, H_out, W_out) + bias

in pieces of images and of output depth planes whose columns fit the workspace (one plane of one
image is the smallest piece; a piece of
planes z0..z1 needs input planes z0*s_d .. (z1-1)*s_d + d_d*(k_d-1)), each piece's product copied
into its slice of the output. No scratch buffers, no channels-last path: autograd differentiates
these steps, and it keeps each piece's columns for the backward while it records.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import pairwise

import torch

from convlens import native as native_kernels
from convlens.algos import Algorithm, always, exact, register
from convlens.algos.cache import TransformCache
from convlens.algos.scratch import Scratch, vmapped
from convlens.spec import ConvSpec, prefers_channels_last, volume
from convlens.unfold import im2col, sliding_windows, zero_pad

PIECE_BYTES = 16 * 1024**2  # cache-friendly piece size, see the module docstring
FOLD_MAX_POSITIONS = 64  # outputs per image up to which the batch is folded into one product; see folds_batch
PATCH_MIN_WIDTH = 14  # output columns from which a patchify layer goes row by row; see patchifies
PATCH_MIN_DEPTH = 64  # and the least depth k_w*C_in of its products
SCRATCH = Scratch()  # one piece's columns (and products that cannot go straight into the output)
WEIGHT_COLUMNS = TransformCache()  # the channels-last products' weight columns, per weight (cached_weight_columns)
native = True  # whether the compiled kernel gathers the columns where it applies (tests switch it off to test both)


def columns_are_input(spec: ConvSpec) -> bool:
    """A 1x1 kernel with stride 1 and no padding: the columns are the input itself, (N, C_in, H*W),
    a view of a contiguous input, so there is nothing to cut into pieces."""
    return spec.kernel_size == (1, 1) and spec.stride == (1, 1) and not any(spec.padding)


def plan_pieces(spec: ConvSpec, workspace: int) -> tuple[int, int]:
    """(images per piece, output rows per piece) so one piece's columns fit in ``workspace`` bytes
    (and in PIECE_BYTES, for speed). One piece when the columns are the input itself. Why: pieces
    of a view bound no memory and cost a copy of the output; evidence: ``convlens bench``
    (ResNet-50's 256->128 1x1 layer at 56x56, batch 8; benchmarks/RESULTS.md)."""
    h_out, w_out = spec.out_size
    if columns_are_input(spec):
        return max(1, spec.batch), h_out
    row_bytes = spec.in_channels * spec.taps * w_out * spec.dtype.itemsize  # one output row of one image
    rows_that_fit = max(1, min(workspace, PIECE_BYTES) // max(1, row_bytes))
    if rows_that_fit < h_out:
        return 1, rows_that_fit
    images_that_fit = max(1, rows_that_fit // h_out)
    return min(images_that_fit, max(1, spec.batch)), h_out


def folds_batch(spec: ConvSpec) -> bool:
    """Whether to fold the batch into the positions (one product over N*L columns) instead of one
    product per image (L = H_out*W_out columns each).

    A product with few columns runs well below the GEMM peak, and folding costs a transposing copy
    of the output (and of the input for a 1x1 stride-1 kernel, whose columns are otherwise a view).
    Why at most FOLD_MAX_POSITIONS = 64 positions: on ResNet-50's layers at batch 8 folding wins at L = 49, not from
    L = 196 up; evidence: ``python benchmarks/im2col_fold.py`` (benchmarks/RESULTS.md). With one
    image there is nothing to fold.
    """
    return spec.batch > 1 and spec.out_size[0] * spec.out_size[1] <= FOLD_MAX_POSITIONS


def patchifies(spec: ConvSpec) -> bool:
    """Whether a 2-D layer goes through ``patches`` (given a dense channels-last input): its windows
    tile the input without overlap or gaps (kernel == stride, no padding, dilation 1, the input's
    height and width multiples of the kernel's), one group, output rows at least PATCH_MIN_WIDTH
    wide, products at least PATCH_MIN_DEPTH deep, and float32 or float64 (the k_h products add into
    the output: in float16 or bfloat16 each sum would round to it, where the columns' one product
    rounds once). Why: each product is W_out rows by k_w*C_in.
    ConvNeXt-T's downsampling layers at batch 1 and 8 ran 0.89x-0.99x of PyTorch this way at W_out =
    28 and 14 (192- and 384-deep), against 0.65x-0.92x with the columns copied, but not ahead of the
    columns at W_out = 7; its 4x4 stem on a channels-last input, 12 deep, 0.54x at batch 8 against
    0.61x; evidence: ``python benchmarks/channels_last.py --suite convnext_tiny --patchify``
    (benchmarks/RESULTS.md, eighteenth session). Between 12 and 192 the depth is not measured."""
    (h, w), (k_h, k_w) = spec.in_size, spec.kernel_size
    return (
        spec.rank == 2
        and spec.dtype in (torch.float32, torch.float64)
        and spec.channels_last
        and spec.groups == 1
        and spec.kernel_size == spec.stride
        and spec.dilation == (1, 1)
        and not any(spec.padding)
        and h % k_h == 0
        and w % k_w == 0
        and spec.out_size[1] >= PATCH_MIN_WIDTH
        and k_w * spec.in_channels >= PATCH_MIN_DEPTH
    )


def patches(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> torch.Tensor:
    """A layer ``patchifies`` takes, x dense channels-last (N, C_in, H, W): k_h batched products over
    the rows of its windows, read in place, into the channels-last output (the module docstring)."""
    n, (h_out, w_out), k_h = x.shape[0], spec.out_size, spec.kernel_size[0]
    rows = x.permute(0, 2, 3, 1).view(n * h_out, k_h, w_out, -1)  # (N*H_out, k_h, W_out, k_w*C_in), a view
    w_rows = cached_weight_columns(weight, spec)[0].view(k_h, -1, spec.out_channels)  # (k_h, k_w*C_in, C_out)
    shared = (n * h_out, -1, -1)  # each row's product reads the same weight rows: expanded, not copied
    if bias is None:
        out = torch.bmm(rows[:, 0], w_rows[0].expand(shared))  # (N*H_out, W_out, C_out)
    else:
        out = torch.baddbmm(bias, rows[:, 0], w_rows[0].expand(shared))
    for a in range(1, k_h):
        out.baddbmm_(rows[:, a], w_rows[a].expand(shared))
    return out.view(n, h_out, w_out, spec.out_channels).permute(0, 3, 1, 2)  # (N, C_out, H_out, W_out), channels-last


def dense_channels_last(x: torch.Tensor) -> bool:
    """Whether x (N, C, H, W) is laid out (N, H, W, C) with no gaps. Asked of the permuted view, not
    by ``x.is_contiguous(memory_format=torch.channels_last)``, which torch.func's vmap cannot answer."""
    return x.permute(0, 2, 3, 1).is_contiguous()


def buffer_bytes(spec: ConvSpec, workspace: int) -> dict[str, int]:
    """Bytes of every buffer the forward uses besides input, weight and output, by name, predicted
    from the shapes: the zero-``padded input`` (a fresh tensor), and the scratch buffers kept
    between calls: the largest piece's ``cols`` and, when the batch is folded or the output is cut
    into bands of rows (for a channels-last input, ``spec.channels_last``: when there are groups), its
    ``products``; for a channels-last input, a kernel larger than 1x1 and several input channels per
    group, the ``cached weight`` (its weight columns and the copy of the weight they are checked
    against, kept between calls: cached_weight_columns). A layer ``patches`` runs (a dense
    channels-last input assumed) copies no columns."""
    if spec.rank == 3:
        return volume_buffer_bytes(spec, workspace)
    images, rows = plan_pieces(spec, workspace)
    images = min(images, spec.batch)
    h_out, w_out = spec.out_size
    h_pad, w_pad = spec.padded_size
    itemsize = spec.dtype.itemsize
    if spec.channels_last:
        view, through_buffer = spec.groups == 1, spec.groups > 1
    else:
        view, through_buffer = not folds_batch(spec), folds_batch(spec) or rows < h_out
    no_copy = (columns_are_input(spec) and view) or patchifies(spec)
    cols = 0 if no_copy else images * spec.in_channels * spec.taps * rows * w_out
    products = images * spec.out_channels * rows * w_out if through_buffer else 0
    # im2col.c writes the padding into the columns (a contiguous NCHW input: see gathers): no padded copy
    gathered = native and not (spec.channels_last or columns_are_input(spec)) and native_kernels.float32_2d_on_cpu(spec)
    padded = any(spec.padding) and not gathered
    cached = spec.channels_last and spec.taps > 1 and spec.in_per_group > 1  # else a view: cached_weight_columns
    return {
        "padded input": spec.batch * spec.in_channels * h_pad * w_pad * itemsize if padded else 0,
        "cols": cols * itemsize,
        "products": products * itemsize,
        "cached weight": 2 * spec.out_channels * spec.in_per_group * spec.taps * itemsize if cached else 0,
    }


def column_buffer(spec: ConvSpec, images: int, out_rows: int, like: torch.Tensor) -> torch.Tensor | None:
    """The kept scratch buffer for the columns of ``images`` images by ``out_rows`` output rows, or
    None (fresh columns) while autograd records, as in a backward with create_graph: a recorded
    graph must not hold a buffer that later calls overwrite (an algorithm's forward runs inside
    the autograd Function, which records nothing); None too when ``like`` is batched under vmap."""
    if torch.is_grad_enabled() or vmapped(like):
        return None
    numel = images * spec.in_channels * spec.taps * out_rows * spec.out_size[1]
    return SCRATCH.take("cols", (numel,), like.dtype, like.device)


def gathers(x: torch.Tensor, spec: ConvSpec) -> bool:
    """Whether the compiled kernel gathers this call's columns (``native``, and im2col.c takes it:
    float32, NCHW, contiguous, on the CPU), unless they are the input itself (a view, nothing to
    gather)."""
    return native and not columns_are_input(spec) and native_kernels.gathers_columns(x, spec)


def columns(x_band: torch.Tensor, spec: ConvSpec, out_rows: int, batch_last: bool) -> torch.Tensor:
    """The columns of a padded input band: a view when they are the input itself (``batch_last``
    too for one image, whose positions are already last), else gathered into a scratch buffer kept
    between calls (see the module docstring)."""
    out_size = (out_rows, spec.out_size[1])
    if columns_are_input(spec) and (not batch_last or x_band.shape[0] == 1) and x_band.is_contiguous():
        return im2col(x_band, spec.kernel_size, spec.dilation, spec.stride, out_size)  # a view
    buffer = column_buffer(spec, x_band.shape[0], out_rows, x_band)
    return im2col(x_band, spec.kernel_size, spec.dilation, spec.stride, out_size, batch_last, buffer)


def gathered_columns(
    x: torch.Tensor, spec: ConvSpec, images: tuple[int, int], rows: tuple[int, int], batch_last: bool
) -> torch.Tensor:
    """The columns of output rows ``rows`` of images ``images`` of the unpadded input, gathered by
    the compiled kernel (im2col.c) in one pass, the zero padding written in: (N, C_in*k_h*k_w, L), or
    with ``batch_last`` (C_in*k_h*k_w, N*L); into the scratch buffer as the Python path's are."""
    n, out_rows = images[1] - images[0], rows[1] - rows[0]
    buffer = column_buffer(spec, n, out_rows, x)
    if buffer is None:
        buffer = x.new_empty(n * spec.in_channels * spec.taps * out_rows * spec.out_size[1])
    cols = native_kernels.im2col_columns(x, spec, images, rows, batch_last, buffer)
    rows_total = spec.in_channels * spec.taps
    return cols.view(rows_total, -1) if batch_last else cols.view(n, rows_total, -1)


def multiply(
    cols_of: Callable[[bool], torch.Tensor], w_rows: torch.Tensor, spec: ConvSpec, out_piece: torch.Tensor
) -> None:
    """Output rows of a piece, written into ``out_piece`` (N, C_out, out_rows, W_out): its columns
    (``cols_of(batch_last)``: ``columns`` of a padded band, or ``gathered_columns``), one batched
    matmul per group, view. The product goes straight into ``out_piece`` when it is contiguous
    (whole images), else through a scratch buffer."""
    n, _, out_rows, w_out = out_piece.shape
    positions = out_rows * w_out
    rows_per_group = spec.in_per_group * spec.taps
    if folds_batch(spec):
        cols = cols_of(True)  # (C_in*k_h*k_w, N*L)
        products = SCRATCH.take("products", (spec.groups, spec.out_per_group, n * positions), cols.dtype, cols.device)
        torch.matmul(w_rows, cols.view(spec.groups, rows_per_group, n * positions), out=products)  # (G, C_out/G, N*L)
        out_piece.copy_(products.view(spec.out_channels, n, out_rows, w_out).transpose(0, 1))
        return
    cols = cols_of(False).view(n, spec.groups, rows_per_group, positions)
    shape = (n, spec.groups, spec.out_per_group, positions)  # (G, C_out/G, C_in/G*k_h*k_w) @ cols -> this
    if out_piece.is_contiguous():
        torch.matmul(w_rows, cols, out=out_piece.view(shape))
    else:
        products = SCRATCH.take("products", shape, cols.dtype, cols.device)
        out_piece.copy_(torch.matmul(w_rows, cols, out=products).view(out_piece.shape))


def weight_columns(weight: torch.Tensor, spec: ConvSpec, buffer: torch.Tensor | None = None) -> torch.Tensor:
    """(C_out, C_in/G, k_h, k_w) -> w_cols (G, k_h*k_w*C_in/G, C_out/G), rows in (k_h, k_w, C) order
    (into ``buffer`` when given)."""
    blocks = weight.unflatten(0, (spec.groups, spec.out_per_group))  # (G, C_out/G, C_in/G, k_h, k_w)
    laid_out = blocks.permute(0, 3, 4, 2, 1)  # (G, k_h, k_w, C_in/G, C_out/G), a view
    if buffer is None:
        return laid_out.reshape(spec.groups, -1, spec.out_per_group)
    return buffer.view(laid_out.shape).copy_(laid_out).view(spec.groups, -1, spec.out_per_group)


def cached_weight_columns(weight: torch.Tensor, spec: ConvSpec) -> torch.Tensor:
    """``weight_columns``, kept per weight (a TransformCache: recomputed whenever the weight's values
    change). Why: ConvNeXt's downsampling layers see a channels-last input (LayerNorm2d's permuted
    output), and laying the 384->768 2x2 weight out took 1.7 ms of a 50 ms forward at batch 1;
    comparing the weight with the cache's copy reads it once; evidence: ``python benchmarks/models.py
    --models convnext_tiny`` (benchmarks/RESULTS.md, fourteenth session)."""
    laid_out = weight.unflatten(0, (spec.groups, spec.out_per_group)).permute(0, 3, 4, 2, 1)
    if mergeable(laid_out, 1, 3):  # a 1x1 weight's, one input channel per group's, a channels-last weight's
        return laid_out.reshape(spec.groups, -1, spec.out_per_group)  # a view of the weight: nothing to keep
    if torch.is_grad_enabled() or vmapped(weight):  # autograd may save the columns (a double backward)
        return weight_columns(weight, spec)
    return WEIGHT_COLUMNS.get(weight, (spec.groups,), lambda buffer: weight_columns(weight, spec, buffer))


def mergeable(tensor: torch.Tensor, first: int, last: int) -> bool:
    """Whether dimensions first..last of ``tensor`` merge into one in a view: each one's stride is the
    next one's stride times its size (dimensions of size 1 aside). Asked up front: a failed ``view``
    raises a C++ exception whose backtrace took 17 us and more per call."""
    sizes, strides = tensor.shape[first : last + 1], tensor.stride()[first : last + 1]
    dims = [(size, stride) for size, stride in zip(sizes, strides, strict=True) if size != 1]
    return all(outer == size * stride for (_, outer), (size, stride) in pairwise(dims))


def columns_channels_last(
    x_band: torch.Tensor, spec: ConvSpec, out_rows: int, buffer: torch.Tensor | None = None
) -> torch.Tensor:
    """The columns of a padded input band with positions as rows and channels innermost,
    (G, N*out_rows*W_out, k_h*k_w*C_in/G): copied into ``buffer`` when given, else a fresh tensor."""
    n, w_out = x_band.shape[0], spec.out_size[1]
    shape = (spec.groups, n * out_rows * w_out, spec.in_per_group * spec.taps)
    windows = sliding_windows(x_band, spec.kernel_size, spec.dilation, spec.stride, (out_rows, w_out))
    # (N, C, k_h, k_w, rows, W_out) -> (G, N, rows, W_out, k_h, k_w, C/G): channels innermost
    windows = windows.unflatten(1, (spec.groups, spec.in_per_group)).permute(1, 0, 5, 6, 3, 4, 2)
    if buffer is None:
        return windows.reshape(shape)
    return buffer.view(windows.shape).copy_(windows).view(shape)


def multiply_channels_last(x_band: torch.Tensor, w_cols: torch.Tensor, spec: ConvSpec, out_piece: torch.Tensor) -> None:
    """Output rows of a channels-last padded input band, written into ``out_piece`` (N, C_out,
    out_rows, W_out), itself channels-last: positions as rows, one product per group."""
    n, _, out_rows, w_out = out_piece.shape
    positions = n * out_rows * w_out
    x_hwc = x_band.permute(0, 2, 3, 1)  # (N, H, W, C_in), a view
    out_rows_hwc = out_piece.permute(0, 2, 3, 1).view(positions, spec.groups, spec.out_per_group)  # a view
    if spec.groups == 1 and columns_are_input(spec) and x_hwc.is_contiguous():
        cols = x_hwc.reshape(1, positions, spec.in_channels)  # the input itself, a view
    else:
        cols = columns_channels_last(x_band, spec, out_rows, column_buffer(spec, n, out_rows, x_band))
    if spec.groups == 1:
        torch.mm(cols[0], w_cols[0], out=out_rows_hwc.view(positions, spec.out_channels))
    else:
        products = SCRATCH.take("products", (spec.groups, positions, spec.out_per_group), cols.dtype, cols.device)
        out_rows_hwc.copy_(torch.bmm(cols, w_cols, out=products).transpose(0, 1))


def forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    if spec.rank == 3:
        return forward_volume(x, weight, bias, spec, workspace)
    if one_product(spec, workspace) and x.is_contiguous():
        return pointwise_folded(x, weight, bias, spec) if folds_batch(spec) else pointwise(x, weight, bias, spec)
    if patchifies(spec) and dense_channels_last(x):
        return patches(x, weight, bias, spec)
    return forward_in_pieces(x, weight, bias, spec, workspace)


def forward_in_pieces(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    """The 2-D forward piece by piece (``plan_pieces``): each piece's columns, its product, its bias."""
    gather = gathers(x, spec)  # im2col.c gathers the columns from x itself, padding included
    x_pad = x if gather else zero_pad(x, spec.padding)  # (N, C_in, H_pad, W_pad), in x's layout
    n = x_pad.shape[0]
    h_out, w_out = spec.out_size
    images, rows = plan_pieces(spec, workspace)
    channels_last = prefers_channels_last(x_pad)
    if channels_last:  # positions as rows, and the output channels-last too
        out = x_pad.new_empty((n, h_out, w_out, spec.out_channels)).permute(0, 3, 1, 2)
        weights = cached_weight_columns(weight, spec)  # (G, k_h*k_w*C_in/G, C_out/G)
    else:
        out = x_pad.new_empty((n, spec.out_channels, h_out, w_out))
        weights = weight.reshape(spec.groups, spec.out_per_group, -1)  # (G, C_out/G, K/G)
    bias_view = None if bias is None else bias.view(1, -1, 1, 1)
    span_h = spec.dilation[0] * (spec.kernel_size[0] - 1) + 1
    for n0 in range(0, n, images):
        for y0 in range(0, h_out, rows):
            n1, y1 = min(n0 + images, n), min(y0 + rows, h_out)
            out_piece = out[n0:n1, :, y0:y1]
            if gather:
                multiply(partial(gathered_columns, x, spec, (n0, n1), (y0, y1)), weights, spec, out_piece)
            else:
                x_band = x_pad[n0:n1, :, y0 * spec.stride[0] : (y1 - 1) * spec.stride[0] + span_h]
                if channels_last:
                    multiply_channels_last(x_band, weights, spec, out_piece)
                else:
                    multiply(partial(columns, x_band, spec, y1 - y0), weights, spec, out_piece)
            if bias_view is not None:
                out_piece += bias_view  # while the piece is still in cache
    return out


def one_product(spec: ConvSpec, workspace: int) -> bool:
    """Whether the layer goes through ``pointwise`` / ``pointwise_folded`` (given a contiguous NCHW
    input): a 1x1 unpadded kernel with one group, whose columns are the input itself (stride 1) or
    its every s-th row and column, one copy that fits one piece (``plan_pieces``)."""
    if spec.kernel_size != (1, 1) or any(spec.padding) or spec.groups != 1:
        return False
    if columns_are_input(spec):
        return True
    images, rows = plan_pieces(spec, workspace)
    return images >= spec.batch and rows == spec.out_size[0]


def subsampled(x: torch.Tensor, spec: ConvSpec) -> torch.Tensor:
    """What a 1x1 unpadded kernel reads of x: every s_h-th row and s_w-th column, (N, C_in, H_out,
    W_out), a view (x itself for stride 1)."""
    return x if spec.stride == (1, 1) else x[:, :, :: spec.stride[0], :: spec.stride[1]]


def copied(view: torch.Tensor, buffer: torch.Tensor | None) -> torch.Tensor:
    """``view``'s values, contiguous: copied into ``buffer`` (a kept scratch buffer of their size),
    or into a fresh tensor where there is none."""
    return view.contiguous() if buffer is None else buffer.view(view.shape).copy_(view)


def pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> torch.Tensor:
    """A 1x1 unpadded layer with one group on a contiguous NCHW input (``one_product``), the batch
    not folded: its columns are the input itself, or for stride s its every s-th row and column
    (one copy), so the whole layer is one batched product (the weight shared, not copied), the
    bias in it::

        cols (N, C_in, L)     = x, or x[:, :, ::s_h, ::s_w] copied       L = H_out*W_out
        out  (N, C_out, L)    = bias + w_rows (C_out, C_in) @ cols      one baddbmm

    For ResNet-50's 1024->2048 stride-2 layer at 14x14, batch 1: cols (1, 1024, 49), out (1, 2048, 49).
    The same product as ``forward_in_pieces``'s one piece, without its bookkeeping, which cost
    40-130 us a call on ResNet-50's 1x1 layers at batch 1 (5-17% of a 0.5-0.8 ms layer), and for
    stride 2 without the gather's bookkeeping and its separate bias pass: its 512->1024 and
    1024->2048 layers at batch 1 ran 1.13x and 0.96x of PyTorch, against 1.02x and 0.89x in pieces
    (``python benchmarks/im2col_pointwise.py``, benchmarks/RESULTS.md, sixteenth and seventeenth
    sessions). ``torch.bmm``, not ``torch.matmul``: given a weight that requires grad, matmul folds
    the batch into a transposed copy of the input (8x the time on ResNet-50's 64->256 layer at
    batch 8)."""
    n, (h, w), c_in = spec.batch, spec.out_size, spec.in_channels
    if spec.stride == (1, 1):
        cols = x.view(n, c_in, h * w)
    else:
        cols = copied(subsampled(x, spec), column_buffer(spec, n, h, x)).view(n, c_in, h * w)
    w_rows = weight.view(1, spec.out_channels, c_in).expand(n, -1, -1)
    out = torch.bmm(w_rows, cols) if bias is None else torch.baddbmm(bias.view(1, -1, 1), w_rows, cols)
    return out.view(n, spec.out_channels, h, w)  # (N, C_out, L) viewed


def pointwise_folded(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> torch.Tensor:
    """``pointwise`` with the batch folded into the positions (``folds_batch``: few positions per
    image), one product over N*L columns with the bias in it::

        cols     = x (or its every s-th row and column) transposed   (C_in, N*L)    one copy
        products = bias + w_rows @ cols               (C_out, N*L)   one addmm
        out      = products transposed                (N, C_out, H, W)  one copy

    For ResNet-50's 512->2048 layer at 7x7, batch 8: cols (512, 392), products (2048, 392), out
    (8, 2048, 7, 7). Why: per image the product reads all of the weight (4 MiB) for 49 columns;
    evidence: ``python benchmarks/im2col_pointwise.py`` (benchmarks/RESULTS.md, seventeenth
    session). The copies go into scratch buffers, as ``multiply``'s folded product does."""
    n, (h, w), positions = spec.batch, spec.out_size, spec.out_size[0] * spec.out_size[1]
    c_in, c_out = spec.in_channels, spec.out_channels
    buffer = column_buffer(spec, n, h, x)  # None while autograd records (or under vmap): fresh tensors
    cols = copied(subsampled(x, spec).transpose(0, 1), buffer).view(c_in, n * positions)
    products = None if buffer is None else SCRATCH.take("products", (c_out, n * positions), x.dtype, x.device)
    w_rows = weight.view(c_out, c_in)
    if bias is None:
        products = torch.mm(w_rows, cols, out=products)
    else:
        products = torch.addmm(bias.view(-1, 1), w_rows, cols, out=products)
    out = x.new_empty((n, c_out, h, w))
    out.copy_(products.view(c_out, n, h, w).transpose(0, 1))
    return out


def plan_volume_pieces(spec: ConvSpec, workspace: int) -> tuple[int, int]:
    """(images per piece, output depth planes per piece) of a 3-D convolution so that one piece's
    columns fit in ``workspace`` bytes (and in PIECE_BYTES, for speed), as ``plan_pieces`` in 2-D;
    one depth plane of one image is the smallest piece, even where its columns are larger."""
    d_out = spec.out_size[0]
    plane_bytes = spec.in_channels * spec.taps * volume(spec.out_size[1:]) * spec.dtype.itemsize
    planes_that_fit = max(1, min(workspace, PIECE_BYTES) // max(1, plane_bytes))
    if planes_that_fit < d_out:
        return 1, planes_that_fit
    return min(max(1, planes_that_fit // d_out), max(1, spec.batch)), d_out


def volume_buffer_bytes(spec: ConvSpec, workspace: int) -> dict[str, int]:
    """``buffer_bytes`` of a 3-D convolution: the padded input, and one piece's columns and products."""
    images, planes = plan_volume_pieces(spec, workspace)
    images, plane = min(images, spec.batch), volume(spec.out_size[1:])
    itemsize = spec.dtype.itemsize
    return {
        "padded input": spec.batch * spec.in_channels * volume(spec.padded_size) * itemsize if any(spec.padding) else 0,
        "cols": images * spec.in_channels * spec.taps * planes * plane * itemsize,
        "products": images * spec.out_channels * planes * plane * itemsize,
    }


def volume_band(x_band: torch.Tensor, w_rows: torch.Tensor, spec: ConvSpec, planes: int) -> torch.Tensor:
    """The output planes (n, C_out, planes, H_out, W_out) of a padded input band: im2col, one batched
    matmul per group, view. Its columns are freed on return, before the next band's are made."""
    band_size = (planes, *spec.out_size[1:])
    cols = im2col(x_band, spec.kernel_size, spec.dilation, spec.stride, band_size)  # (n, C_in*k_d*k_h*k_w, positions)
    cols = cols.unflatten(1, (spec.groups, -1))  # (n, G, C_in/G*k_d*k_h*k_w, positions)
    out_rows = torch.matmul(w_rows, cols)  # (n, G, C_out/G, positions)
    return out_rows.reshape(x_band.shape[0], spec.out_channels, *band_size)


def forward_volume(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    """im2col over (D, H, W), in pieces of images and output depth planes (module docstring).

    Each piece is written into its slice of one output when nothing records gradients, so the memory
    stays within the workspace plus the output; while autograd records or vmap batches, the pieces
    are joined by ``torch.cat``, whose gradient (a slice per piece) runs under vmap, unlike a write
    into a slice's."""
    x_pad = zero_pad(x, spec.padding)  # (N, C_in, D_pad, H_pad, W_pad)
    n, d_out = x_pad.shape[0], spec.out_size[0]
    w_rows = weight.reshape(spec.groups, spec.out_per_group, -1)  # (G, C_out/G, C_in/G*k_d*k_h*k_w)
    images, planes = plan_volume_pieces(spec, workspace)
    span_d = spec.dilation[0] * (spec.kernel_size[0] - 1) + 1
    recording = torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)
    joined = recording or vmapped(x) or vmapped(weight)  # a write into a slice: neither recorded nor vmapped
    out = None if joined else x_pad.new_empty((n, spec.out_channels, *spec.out_size))
    chunks: list[torch.Tensor] = []
    for n0 in range(0, max(n, 1), images):
        bands: list[torch.Tensor] = []
        for z0 in range(0, d_out, planes):
            z1 = min(z0 + planes, d_out)
            x_band = x_pad[n0 : n0 + images, :, z0 * spec.stride[0] : (z1 - 1) * spec.stride[0] + span_d]
            band = volume_band(x_band, w_rows, spec, z1 - z0)
            if out is None:
                bands.append(band)
            else:
                out[n0 : n0 + images, :, z0:z1] = band
        if out is None:
            chunks.append(torch.cat(bands, dim=2) if len(bands) > 1 else bands[0])
    if out is None:
        out = torch.cat(chunks) if len(chunks) > 1 else chunks[0]
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1, 1)
    return out


ALGORITHM = register(
    Algorithm(
        name="im2col",
        summary="the seed's unfold + matmul + view, in workspace-bounded pieces",
        forward=forward,
        supports=always,
        buffer_bytes=buffer_bytes,
        error_bound=exact,
        ranks=(2, 3),
    )
)
