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

import torch
import torch.nn.functional as F

from convlens.spec import IntOrPair, WindowSpec, check_fold_input, check_unfold_input


def tap_slice(tap: int, dilation: int, stride: int, count: int) -> slice:
    """Rows (or columns) of the padded input that kernel tap ``tap`` reads for ``count`` outputs."""
    start = tap * dilation
    return slice(start, start + stride * (count - 1) + 1, stride)


def part(image: torch.Tensor, channels: slice, rows: slice, columns: slice) -> torch.Tensor:
    """``image[:, channels, rows, columns]``, a view; ``image`` itself where that takes all of it
    (an index that takes everything is an alias, for which vmap has no rule)."""
    index = (channels, rows, columns)
    if all(range(*taken.indices(size)) == range(size) for taken, size in zip(index, image.shape[1:], strict=True)):
        return image
    return image[:, channels, rows, columns]


def sliding_windows(
    x_pad: torch.Tensor,
    kernel_size: tuple[int, int],
    dilation: tuple[int, int],
    stride: tuple[int, int],
    out_size: tuple[int, int],
) -> torch.Tensor:
    """All windows of ``x_pad`` (N, C, H_pad, W_pad) as a view (N, C, k_h, k_w, H_out, W_out)."""
    if torch.compiler.is_compiling():
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
    x_pad: torch.Tensor,
    kernel_size: tuple[int, int],
    dilation: tuple[int, int],
    stride: tuple[int, int],
    out_size: tuple[int, int],
) -> torch.Tensor:
    """The same view as ``sliding_windows``, built from ``Tensor.unfold`` and slicing.

    Used under ``torch.compile``: Inductor may lay out an intermediate tensor differently from
    eager (it stored a padded input without its unused last row, seen with stride 2), and an
    ``as_strided`` written with eager's strides then reads the wrong elements. ``unfold`` and
    slicing are views Inductor follows whatever the layout."""
    (k_h, k_w), (d_h, d_w), (h_out, w_out) = kernel_size, dilation, out_size
    spans = x_pad.unfold(2, d_h * (k_h - 1) + 1, stride[0]).unfold(3, d_w * (k_w - 1) + 1, stride[1])
    windows = spans[:, :, :h_out, :w_out, ::d_h, ::d_w]  # (N, C, H_out, W_out, k_h, k_w)
    return windows.permute(0, 1, 4, 5, 2, 3)


def zero_pad(x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """Zero padding (top, bottom, left, right) of the last two dimensions; no copy when all zero."""
    if not any(padding):
        return x
    top, bottom, left, right = padding
    return F.pad(x, (left, right, top, bottom))


def unpad(x_pad: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """The inverse of :func:`zero_pad`, a view: the original (H, W) region of a padded tensor. It is
    also zero padding's adjoint, so the backward uses it to turn dLoss/d x_pad into dLoss/d x."""
    if not any(padding):  # x_pad itself (a whole-range slice is an alias, which vmap has no rule for)
        return x_pad
    top, bottom, left, right = padding
    return x_pad[..., top : x_pad.shape[-2] - bottom, left : x_pad.shape[-1] - right]


def im2col(
    x_pad: torch.Tensor,
    kernel_size: tuple[int, int],
    dilation: tuple[int, int],
    stride: tuple[int, int],
    out_size: tuple[int, int],
    batch_last: bool = False,
    buffer: torch.Tensor | None = None,
) -> torch.Tensor:
    """Columns (N, C*k_h*k_w, H_out*W_out) of an already padded (N, C, H_pad, W_pad) input.

    With ``batch_last`` the batch is folded into the positions instead, (C*k_h*k_w, N*H_out*W_out):
    the same values, laid out so one matrix product contracts over every image's window positions
    at once (the backward's grad_weight = grad_rows @ cols^T). With ``buffer`` (a contiguous tensor
    of as many elements) the columns are copied into it instead of into a fresh tensor.
    """
    n, c = x_pad.shape[:2]
    rows = c * kernel_size[0] * kernel_size[1]
    positions = out_size[0] * out_size[1]
    windows = sliding_windows(x_pad, kernel_size, dilation, stride, out_size)  # (N, C, k_h, k_w, H_out, W_out)
    shape: tuple[int, ...] = (n, rows, positions)
    if batch_last:
        windows = windows.permute(1, 2, 3, 0, 4, 5)  # (C, k_h, k_w, N, H_out, W_out)
        shape = (rows, n * positions)
    if buffer is None:
        # (N, C, k_h, k_w, H_out, W_out) -> (N, C*k_h*k_w, H_out*W_out): the copy that is im2col
        return windows.reshape(shape)
    return buffer.view(windows.shape).copy_(windows).view(shape)


def col2im(
    cols: torch.Tensor,
    padded_size: tuple[int, int],
    kernel_size: tuple[int, int],
    dilation: tuple[int, int],
    stride: tuple[int, int],
    out_size: tuple[int, int],
    batch_last: bool = False,
) -> torch.Tensor:
    """Sum columns (N, C*k_h*k_w, H_out*W_out) back into a padded image (N, C, H_pad, W_pad).

    With ``batch_last`` the columns are laid out as ``im2col(..., batch_last=True)`` makes them,
    (C*k_h*k_w, N*H_out*W_out).
    """
    k_h, k_w = kernel_size
    h_out, w_out = out_size
    if batch_last:
        channels = cols.shape[0] // (k_h * k_w)
        n = cols.shape[1] // (h_out * w_out)
        blocks = cols.reshape(channels, k_h, k_w, n, h_out, w_out).permute(3, 0, 1, 2, 4, 5)
    else:
        n = cols.shape[0]
        channels = cols.shape[1] // (k_h * k_w)
        blocks = cols.reshape(n, channels, k_h, k_w, h_out, w_out)
    return sum_windows(blocks, padded_size, dilation, stride)


def sum_windows(
    blocks: torch.Tensor,
    padded_size: tuple[int, int],
    dilation: tuple[int, int],
    stride: tuple[int, int],
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """col2im's sum: every window's values (N, C, k_h, k_w, H_out, W_out), any strides, added back
    into a zero padded image (N, C, H_pad, W_pad) in ``memory_format``."""
    n, channels, k_h, k_w, h_out, w_out = blocks.shape
    x_pad = zeros_image(blocks, (n, channels, *padded_size), memory_format)
    for i in range(k_h):
        rows = tap_slice(i, dilation[0], stride[0], h_out)
        for j in range(k_w):
            columns = tap_slice(j, dilation[1], stride[1], w_out)
            part(x_pad, slice(None), rows, columns).add_(blocks[:, :, i, j])  # overlapping windows add up
    return x_pad


def zeros_image(source: torch.Tensor, shape: tuple[int, ...], memory_format: torch.memory_format) -> torch.Tensor:
    """Zeros (N, C, H, W) in ``memory_format``, made from ``source`` (its dtype and device) for sums
    that add ``source``'s values in place. Made by ``source.new_zeros``, not ``torch.zeros``: when
    ``source`` is batched under vmap (as in ``gradcheck(check_batched_grad=True)``), so are the
    zeros, and the in-place adds stay possible."""
    n, c, h, w = shape
    if memory_format == torch.channels_last:
        return source.new_zeros((n, h, w, c)).permute(0, 3, 1, 2)
    return source.new_zeros(shape)


def unfold(
    input: torch.Tensor,
    kernel_size: IntOrPair,
    dilation: IntOrPair = 1,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
) -> torch.Tensor:
    """im2col: every sliding window of ``input`` as one column, like ``torch.nn.functional.unfold``.

    Args:
        input: (N, C, H, W) or unbatched (C, H, W).
        kernel_size, dilation, padding, stride: an int or an (height, width) pair each;
            padding is zero padding on both sides.

    Returns:
        (N, C*k_h*k_w, L) or (C*k_h*k_w, L), with L = H_out * W_out windows in row-major order.
    """
    window = WindowSpec.from_args(kernel_size, dilation, padding, stride)
    x = check_unfold_input(input, window)
    batched = x.dim() == 4
    if not batched:
        x = x.unsqueeze(0)
    out_size = window.blocks((x.shape[-2], x.shape[-1]))
    x_pad = zero_pad(x, window.explicit_padding)
    cols = im2col(x_pad, window.kernel_size, window.dilation, window.stride, out_size)
    return cols if batched else cols.squeeze(0)


def fold(
    input: torch.Tensor,
    output_size: IntOrPair,
    kernel_size: IntOrPair,
    dilation: IntOrPair = 1,
    padding: IntOrPair = 0,
    stride: IntOrPair = 1,
    *,
    reduce: str = "sum",
) -> torch.Tensor:
    """col2im: add every column back into its window, like ``torch.nn.functional.fold``.

    Overlapping windows **sum**: fold is the adjoint (transpose) of unfold, not its inverse.
    ``fold(unfold(x), ...)`` equals ``x`` times the number of windows covering each pixel.
    ``reduce="mean"`` divides each pixel by that number instead, so ``fold(unfold(x), ...,
    reduce="mean")`` gives ``x`` back wherever a window covers it (and 0 where none does, as
    with a stride longer than the window)::

        counts = fold(unfold(ones))          (1, 1, H, W)   windows covering each pixel
        mean   = fold(cols) / counts          (N, C, H, W)   0 where counts is 0

    Args:
        input: (N, C*k_h*k_w, L) or unbatched (C*k_h*k_w, L).
        output_size: (H, W) of the image to rebuild, without padding.
        reduce: "sum" (PyTorch's fold) or "mean" (floating-point and complex inputs).

    Returns:
        (N, C, H, W) or (C, H, W).
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


def sum_into_image(cols: torch.Tensor, size: tuple[int, int], window: WindowSpec) -> torch.Tensor:
    """col2im of (N, C*k_h*k_w, L) columns into the (N, C, H, W) image of ``size``, padding cropped."""
    pad_h, pad_w = window.padding
    padded_size = (size[0] + 2 * pad_h, size[1] + 2 * pad_w)
    x_pad = col2im(cols, padded_size, window.kernel_size, window.dilation, window.stride, window.blocks(size))
    image = x_pad[:, :, pad_h : pad_h + size[0], pad_w : pad_w + size[1]]
    return image.contiguous() if pad_h or pad_w else image
