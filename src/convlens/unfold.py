"""im2col (``unfold``) and col2im (``fold``), written from the index math.

im2col copies every sliding window of the (zero-padded) input into one column::

    cols[n, (c, i, j), (y, x)] = x_pad[n, c, y*s_h + i*d_h, x*s_w + j*d_w]

for channel ``c``, kernel tap ``(i, j)`` and output position ``(y, x)``. Shapes, for the
seed's CIFAR-10 layer (one 3x32x32 image, 5x5 kernel)::

    x_pad    (N, C, H_pad, W_pad)          (1, 3, 32, 32)
    windows  (N, C, k_h, k_w, H_out, W_out) (1, 3, 5, 5, 28, 28)   a strided *view*, no copy
    cols     (N, C*k_h*k_w, H_out*W_out)    (1, 75, 784)           the one copy

The view needs no loop: moving one step along tap ``i`` moves ``d_h`` rows in memory and one
step along output row ``y`` moves ``s_h`` rows, so both are plain strides of ``x_pad``.

col2im is the adjoint of im2col, not its inverse: every column entry is **added** back to the
input position it was copied from, so a position covered by several overlapping windows gets
the *sum* of their values (``fold(unfold(x))`` multiplies each pixel by the number of windows
that cover it). The sum is taken one kernel tap at a time::

    for each tap (i, j):
        x_pad[:, :, i*d_h : ... : s_h, j*d_w : ... : s_w] += blocks[:, :, i, j]    # (N, C, H_out, W_out)

and the padding is cropped at the end.
"""

from __future__ import annotations

import itertools
from types import EllipsisType

import torch
import torch.nn.functional as F

from convlens.spec import IntOrSizes, WindowSpec, check_fold_input, check_unfold_input, pad_pairs, volume

Sizes = tuple[int, ...]  # one value per spatial dimension: (H, W) in 2-D, (L,) in 1-D, (D, H, W) in 3-D


def tap_slice(tap: int, dilation: int, stride: int, count: int) -> slice:
    """Rows (or columns) of the padded input that kernel tap ``tap`` reads for ``count`` outputs."""
    start = tap * dilation
    return slice(start, start + stride * (count - 1) + 1, stride)


def tap_slices(tap: Sizes, dilation: Sizes, stride: Sizes, out_size: Sizes) -> tuple[slice, ...]:
    """The positions kernel tap ``tap`` (one index per spatial dimension) reads for every output."""
    return tuple(map(tap_slice, tap, dilation, stride, out_size))


def taps(kernel_size: Sizes) -> itertools.product[tuple[int, ...]]:
    """Every kernel tap (i, j) in row-major order (i, or (i, j, l) in 1-D or 3-D)."""
    return itertools.product(*map(range, kernel_size))


def part(image: torch.Tensor, channels: slice, *spatial: slice) -> torch.Tensor:
    """``image[:, channels, *spatial]``, a view; ``image`` itself where that takes all of it
    (an index that takes everything is an alias, for which vmap has no rule)."""
    index = (slice(None), channels, *spatial)
    if all(range(*taken.indices(size)) == range(size) for taken, size in zip(index, image.shape, strict=True)):
        return image
    return image[index]


def sliding_windows(
    x_pad: torch.Tensor, kernel_size: Sizes, dilation: Sizes, stride: Sizes, out_size: Sizes
) -> torch.Tensor:
    """All windows of ``x_pad`` (N, C, H_pad, W_pad) as a view (N, C, k_h, k_w, H_out, W_out);
    along every spatial dimension alike for 1-D and 3-D."""
    if torch.compiler.is_compiling() or len(kernel_size) != 2:
        return sliding_windows_by_unfold(x_pad, kernel_size, dilation, stride, out_size)
    n, c = x_pad.shape[:2]
    k_h, k_w = kernel_size
    h_out, w_out = out_size
    step_n, step_c, step_row, step_col = x_pad.stride()
    return x_pad.as_strided(
        size=(n, c, k_h, k_w, h_out, w_out),
        stride=(
            step_n,
            step_c,
            step_row * dilation[0],  # next kernel row: d_h input rows down
            step_col * dilation[1],  # next kernel column: d_w input columns right
            step_row * stride[0],  # next output row: s_h input rows down
            step_col * stride[1],  # next output column: s_w input columns right
        ),
    )  # the view starts where x_pad starts (as_strided keeps its storage offset)


def sliding_windows_by_unfold(
    x_pad: torch.Tensor, kernel_size: Sizes, dilation: Sizes, stride: Sizes, out_size: Sizes
) -> torch.Tensor:
    """The same view as ``sliding_windows``, built from ``Tensor.unfold`` and slicing, for any rank.

    Used under ``torch.compile``: Inductor may lay out an intermediate tensor differently from
    eager (it stored a padded input without its unused last row, seen with stride 2), and an
    ``as_strided`` written with eager's strides then reads the wrong elements. ``unfold`` and
    slicing are views Inductor follows whatever the layout. Used for 1-D and 3-D too, where
    vmap and the autograd of ``unfold`` serve every transform."""
    rank = len(kernel_size)
    spans = x_pad
    for axis, (kernel, gap, step) in enumerate(zip(kernel_size, dilation, stride, strict=True)):
        spans = spans.unfold(2 + axis, gap * (kernel - 1) + 1, step)  # (N, C, *out, *spans) when done
    index = (
        slice(None),
        slice(None),
        *(slice(count) for count in out_size),
        *(slice(None, None, gap) for gap in dilation),
    )
    windows = spans[index]  # (N, C, H_out, W_out, k_h, k_w)
    return windows.permute(0, 1, *range(2 + rank, 2 + 2 * rank), *range(2, 2 + rank))


def zero_pad(x: torch.Tensor, padding: Sizes) -> torch.Tensor:
    """Zero padding (before, after per spatial dimension: (top, bottom, left, right) in 2-D) of the
    last dimensions; no copy when all zero."""
    if not any(padding):
        return x
    return F.pad(x, pad_last_first(padding))


def pad_last_first(padding: Sizes) -> tuple[int, ...]:
    """Explicit padding in F.pad's order: the last dimension's (before, after) first."""
    return tuple(pad for pair in reversed(pad_pairs(padding)) for pad in pair)


def unpad(x_pad: torch.Tensor, padding: Sizes) -> torch.Tensor:
    """The inverse of :func:`zero_pad`, a view: the original (H, W) region of a padded tensor. It is
    also zero padding's adjoint, so the backward uses it to turn dLoss/d x_pad into dLoss/d x."""
    if not any(padding):  # x_pad itself (a whole-range slice is an alias, which vmap has no rule for)
        return x_pad
    pairs = pad_pairs(padding)
    rank = len(pairs)
    region: tuple[slice | EllipsisType, ...] = (
        Ellipsis,
        *(slice(before, x_pad.shape[axis - rank] - after) for axis, (before, after) in enumerate(pairs)),
    )
    return x_pad[region]


def im2col(
    x_pad: torch.Tensor,
    kernel_size: Sizes,
    dilation: Sizes,
    stride: Sizes,
    out_size: Sizes,
    batch_last: bool = False,
    buffer: torch.Tensor | None = None,
) -> torch.Tensor:
    """Columns (N, C*k_h*k_w, H_out*W_out) of an already padded (N, C, H_pad, W_pad) input
    (any rank: (N, C*k_d*k_h*k_w, D_out*H_out*W_out) in 3-D).

    With ``batch_last`` the batch is folded into the positions instead, (C*k_h*k_w, N*H_out*W_out):
    the same values, laid out so one matrix product contracts over every image's window positions
    at once (the backward's grad_weight = grad_rows @ cols^T). With ``buffer`` (a contiguous tensor
    of as many elements) the columns are copied into it instead of into a fresh tensor.
    """
    n, c = x_pad.shape[:2]
    rank = len(kernel_size)
    rows = c * volume(kernel_size)
    positions = volume(out_size)
    windows = sliding_windows(x_pad, kernel_size, dilation, stride, out_size)  # (N, C, k_h, k_w, H_out, W_out)
    shape: tuple[int, ...] = (n, rows, positions)
    if batch_last:
        windows = windows.permute(
            1, *range(2, 2 + rank), 0, *range(2 + rank, 2 + 2 * rank)
        )  # (C, k_h, k_w, N, H_out, W_out)
        shape = (rows, n * positions)
    if buffer is None:
        # (N, C, k_h, k_w, H_out, W_out) -> (N, C*k_h*k_w, H_out*W_out): the copy that is im2col
        return windows.reshape(shape)
    return buffer.view(windows.shape).copy_(windows).view(shape)


def col2im(
    cols: torch.Tensor,
    padded_size: Sizes,
    kernel_size: Sizes,
    dilation: Sizes,
    stride: Sizes,
    out_size: Sizes,
    batch_last: bool = False,
) -> torch.Tensor:
    """Sum columns (N, C*k_h*k_w, H_out*W_out) back into a padded image (N, C, H_pad, W_pad)
    (any rank, as :func:`im2col`).

    With ``batch_last`` the columns are laid out as ``im2col(..., batch_last=True)`` makes them,
    (C*k_h*k_w, N*H_out*W_out).
    """
    rank, taps_count, positions = len(kernel_size), volume(kernel_size), volume(out_size)
    if batch_last:
        channels, n = cols.shape[0] // taps_count, cols.shape[1] // positions
        blocks = cols.reshape(channels, *kernel_size, n, *out_size)
        blocks = blocks.permute(1 + rank, 0, *range(1, 1 + rank), *range(2 + rank, 2 + 2 * rank))
    else:
        n, channels = cols.shape[0], cols.shape[1] // taps_count
        blocks = cols.reshape(n, channels, *kernel_size, *out_size)
    return sum_windows(blocks, padded_size, dilation, stride)


def sum_windows(
    blocks: torch.Tensor,
    padded_size: Sizes,
    dilation: Sizes,
    stride: Sizes,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """col2im's sum: every window's values (N, C, k_h, k_w, H_out, W_out), any strides, added back
    into a zero padded image (N, C, H_pad, W_pad) in ``memory_format`` (any rank alike)."""
    rank = len(padded_size)
    n, channels = blocks.shape[:2]
    kernel_size, out_size = tuple(blocks.shape[2 : 2 + rank]), tuple(blocks.shape[2 + rank :])
    if rank == 3:
        return sum_windows_by_index(blocks, padded_size, dilation, stride)
    x_pad = zeros_image(blocks, (n, channels, *padded_size), memory_format)
    for tap in taps(kernel_size):
        window_part = part(x_pad, slice(None), *tap_slices(tap, dilation, stride, out_size))
        tap_index: tuple[slice | int, ...] = (slice(None), slice(None), *tap)
        window_part.add_(blocks[tap_index])  # (N, C, H_out, W_out): overlapping windows add up
    return x_pad


def window_positions(
    padded_size: Sizes, kernel_size: Sizes, dilation: Sizes, stride: Sizes, out_size: Sizes, device: torch.device
) -> torch.Tensor:
    """im2col's index map: the flat position in the padded image that each (tap, output position)
    reads, (k_d*k_h*k_w*D_out*H_out*W_out,) in the columns' order. The windows of the positions' own
    numbers, 0 .. D_pad*H_pad*W_pad - 1."""
    numbers = torch.arange(volume(padded_size), device=device).view(1, 1, *padded_size)
    return sliding_windows_by_unfold(numbers, kernel_size, dilation, stride, out_size).reshape(-1)


def sum_windows_by_index(blocks: torch.Tensor, padded_size: Sizes, dilation: Sizes, stride: Sizes) -> torch.Tensor:
    """col2im as one ``index_add``: every window value (N, C, *kernel, *out) added at the flat position
    its column entry was copied from. Used in 3-D, where autograd differentiates col2im: unlike the
    in-place adds into strided slices, its gradient (an ``index_select``) runs under vmap too."""
    n, channels = blocks.shape[:2]
    rank = len(padded_size)
    kernel_size, out_size = tuple(blocks.shape[2 : 2 + rank]), tuple(blocks.shape[2 + rank :])
    index = window_positions(padded_size, kernel_size, dilation, stride, out_size, blocks.device)
    image = blocks.new_zeros((n, channels, volume(padded_size)))
    values = blocks.reshape(n, channels, index.numel())  # (N, C, k_d*k_h*k_w*D_out*H_out*W_out)
    return image.index_add(2, index, values).view(n, channels, *padded_size)


def zeros_image(source: torch.Tensor, shape: tuple[int, ...], memory_format: torch.memory_format) -> torch.Tensor:
    """Zeros (N, C, H, W) in ``memory_format``, made from ``source`` (its dtype and device) for sums
    that add ``source``'s values in place. Made by ``source.new_zeros``, not ``torch.zeros``: when
    ``source`` is batched under vmap (as in ``gradcheck(check_batched_grad=True)``), so are the
    zeros, and the in-place adds stay possible."""
    if memory_format in (torch.channels_last, torch.channels_last_3d):
        n, c, *spatial = shape
        return source.new_zeros((n, *spatial, c)).movedim(-1, 1)
    return source.new_zeros(shape)


def unfold(
    input: torch.Tensor,
    kernel_size: IntOrSizes,
    dilation: IntOrSizes = 1,
    padding: IntOrSizes = 0,
    stride: IntOrSizes = 1,
) -> torch.Tensor:
    """im2col: every sliding window of ``input`` as one column, like ``torch.nn.functional.unfold``,
    over 1, 2 or 3 spatial dimensions.

    Args:
        input: (N, C, H, W) or unbatched (C, H, W); for 1-D windows (N, C, L) or (C, L), for 3-D
            windows (N, C, D, H, W) or (C, D, H, W).
        kernel_size: an int (2-D, as PyTorch's) or a tuple of 1, 2 or 3 ints, whose length is the
            number of spatial dimensions.
        dilation, padding, stride: an int or one value per spatial dimension each;
            padding is zero padding on both sides.

    Returns:
        (N, C*k_h*k_w, L) or (C*k_h*k_w, L), with L = H_out * W_out windows in row-major order
        (C*k_d*k_h*k_w rows and D_out*H_out*W_out windows in 3-D).
    """
    window = WindowSpec.from_args(kernel_size, dilation, padding, stride)
    x = check_unfold_input(input, window)
    batched = x.dim() == window.rank + 2
    if not batched:
        x = x.unsqueeze(0)
    out_size = window.blocks(tuple(x.shape[2:]))
    x_pad = zero_pad(x, window.explicit_padding)
    cols = im2col(x_pad, window.kernel_size, window.dilation, window.stride, out_size)
    return cols if batched else cols.squeeze(0)


def fold(
    input: torch.Tensor,
    output_size: IntOrSizes,
    kernel_size: IntOrSizes,
    dilation: IntOrSizes = 1,
    padding: IntOrSizes = 0,
    stride: IntOrSizes = 1,
    *,
    reduce: str = "sum",
) -> torch.Tensor:
    """col2im: add every column back into its window, like ``torch.nn.functional.fold``, over 1, 2
    or 3 spatial dimensions (the length of ``kernel_size``, 2 when it is an int, as in ``unfold``).

    Overlapping windows **sum**: fold is the adjoint (transpose) of unfold, not its inverse.
    ``fold(unfold(x), ...)`` equals ``x`` times the number of windows covering each pixel.
    ``reduce="mean"`` divides each pixel by that number instead, so ``fold(unfold(x), ...,
    reduce="mean")`` gives ``x`` back wherever a window covers it (and 0 where none does, as
    with a stride longer than the window)::

        counts = fold(unfold(ones))          (1, 1, H, W)   windows covering each pixel
        mean   = fold(cols) / counts          (N, C, H, W)   0 where counts is 0

    Args:
        input: (N, C*k_h*k_w, L) or unbatched (C*k_h*k_w, L).
        output_size: (H, W) of the image to rebuild, without padding (one size per spatial dimension).
        reduce: "sum" (PyTorch's fold) or "mean" (floating-point and complex inputs).

    Returns:
        (N, C, H, W) or (C, H, W) (with the spatial dimensions of ``output_size``).
    """
    window = WindowSpec.from_args(kernel_size, dilation, padding, stride)
    cols, size = check_fold_input(input, output_size, window, reduce)
    batched = cols.dim() == 3
    if not batched:
        cols = cols.unsqueeze(0)
    image = sum_into_image(cols, size, window)
    if reduce == "mean":
        ones = cols.new_ones((1, window.taps, cols.shape[-1]))
        image = image / sum_into_image(ones, size, window).clamp(min=1)  # a pixel no window covers holds 0
    return image if batched else image.squeeze(0)


def sum_into_image(cols: torch.Tensor, size: tuple[int, ...], window: WindowSpec) -> torch.Tensor:
    """col2im of (N, C*k_h*k_w, L) columns into the (N, C, H, W) image of ``size``, padding cropped."""
    padded_size = tuple(extent + 2 * pad for extent, pad in zip(size, window.padding, strict=True))
    x_pad = col2im(cols, padded_size, window.kernel_size, window.dilation, window.stride, window.blocks(size))
    image = unpad(x_pad, window.explicit_padding)
    return image.contiguous() if any(window.padding) else image
