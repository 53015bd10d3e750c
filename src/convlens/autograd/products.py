"""The backward as the im2col product, written as the math; every algorithm's gradients come here
unless a faster way applies (:mod:`convlens.autograd.function` routes).

Whatever algorithm computed the forward, the convolution is the im2col product. With the batch
folded into the window positions (P = N * H_out * W_out) it is one matrix product per group::

    cols     = im2col(x_pad)                 (G, C_in/G*k_h*k_w, P)
    out_rows = w_rows @ cols + bias          (G, C_out/G, P)

so the chain rule gives, with ``grad_rows`` = dLoss/d out_rows (grad_output viewed as rows)::

    grad_bias   = grad_output summed over N, H_out, W_out          (C_out,)
    grad_weight = grad_rows @ cols^T                               (G, C_out/G, C_in/G*k_h*k_w)
    grad_cols   = w_rows^T @ grad_rows                             (G, C_in/G*k_h*k_w, P)
    grad_x_pad  = col2im(grad_cols)   (fold: overlapping windows add up)

Folding the batch into P makes grad_weight one large product instead of N small ones summed
(except a 1x1 layer with many positions per image, whose operands would be transposing copies:
``grad_weight_image_by_image``).
The function saves the unpadded input, as PyTorch does, and pads it again piece by piece for
grad_weight; zero padding's adjoint is the crop, ``grad_x = unpad(grad_x_pad)``. (The
reflect / replicate / circular modes pad with ``torch.nn.functional.pad`` before this function,
which then sees no padding; F.pad's own backward routes their gradient.) The backward is built
from differentiable tensor ops, so double backward works too. The batch is processed in pieces
of whole images, as many as keep the columns inside the workspace limit (at least one image,
whatever its size). The columns go into im2col's kept scratch buffer, except while the backward
is itself recorded for double backward; a piece of one image of a 1x1 stride-1 unpadded layer
takes the input itself as its columns, no copy (``im2col.columns``, as in the forward). For a
channels-last input the same products are taken with the window positions as rows
(``grads_channels_last``), as im2col's forward does.
"""

from __future__ import annotations

import torch

from convlens.algos import im2col as im2col_algorithm
from convlens.algos.scratch import vmapped
from convlens.spec import ConvSpec
from convlens.unfold import col2im, sum_windows, unpad, zero_pad


def grads_by_products(
    grad_output: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    spec: ConvSpec,
    workspace: int,
    needs: tuple[bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(grad_x by col2im, grad_weight), as ``needs`` (input, weight) asks, for an NCHW input: the
    products of the module docstring, over pieces of whole images; ``x`` is the input before
    ``spec.padding``."""
    needs_input, needs_weight = needs
    n = grad_output.shape[0]
    h_out, w_out = spec.out_size
    groups, out_per_group, rows_per_group = spec.groups, spec.out_per_group, spec.in_per_group * spec.taps
    grad_x = grad_weight = None
    if needs_weight and weight_grad_image_by_image(spec, grad_output, x):
        grad_weight, needs_weight = grad_weight_image_by_image(grad_output, x, spec), False
        if not needs_input:
            return None, grad_weight
    w_rows = weight.reshape(groups, out_per_group, rows_per_group)  # (G, C_out/G, C_in/G*k_h*k_w)
    images = im2col_algorithm.plan_pieces(spec, workspace)[0]
    grad_weight_rows = None
    grad_input_pieces = []
    for n0 in range(0, n, images):  # at least one image: conv2d_backward answers an empty batch itself
        count = min(images, n - n0)
        positions = count * h_out * w_out
        # grad_output (N, C_out, H_out, W_out) -> grad_rows (G, C_out/G, N*H_out*W_out)
        grad_rows = grad_output[n0 : n0 + count].transpose(0, 1).reshape(groups, out_per_group, positions)
        if needs_weight:
            x_pad = zero_pad(x[n0 : n0 + count], spec.padding)
            # in im2col's kept buffer unless this backward is recorded; one image's 1x1 columns: x itself
            cols = im2col_algorithm.columns(x_pad, spec, h_out, batch_last=True)
            cols = cols.view(groups, rows_per_group, positions)
            # out_rows = w_rows @ cols  =>  dLoss/d w_rows = grad_rows @ cols^T, one product over all positions
            piece = sum_over_positions(grad_rows, cols.transpose(-1, -2))
            grad_weight_rows = piece if grad_weight_rows is None else grad_weight_rows + piece
        if needs_input:
            # out_rows = w_rows @ cols  =>  dLoss/d cols = w_rows^T @ grad_rows
            grad_cols = input_grad_columns(w_rows, grad_rows)  # (G, C_in/G*k_h*k_w, P)
            grad_cols = grad_cols.reshape(spec.in_channels * spec.taps, positions)
            # cols = im2col(x_pad)  =>  dLoss/d x_pad = col2im(dLoss/d cols)
            grad_input_pieces.append(
                col2im(
                    grad_cols,
                    spec.padded_size,
                    spec.kernel_size,
                    spec.dilation,
                    spec.stride,
                    (h_out, w_out),
                    batch_last=True,
                )
            )

    if needs_weight:
        assert grad_weight_rows is not None  # the loop above runs at least once
        grad_weight = grad_weight_rows.reshape(weight.shape)
    if needs_input:
        grad_x = input_grad_from_pieces(grad_input_pieces, spec)
    return grad_x, grad_weight


FEW_POSITIONS = 128  # window positions below which input_grad_columns takes the transposed product


def input_grad_columns(w_rows: torch.Tensor, grad_rows: torch.Tensor) -> torch.Tensor:
    """dLoss/d cols = w_rows^T @ grad_rows (G, C_in/G*k_h*k_w, P), from w_rows (G, C_out/G,
    C_in/G*k_h*k_w) and grad_rows (G, C_out/G, P). With fewer than FEW_POSITIONS positions P it is
    taken as (grad_rows^T @ w_rows)^T, a transposed view: the same sums, as a product with P rows
    rather than P columns, which the BLAS runs faster when P is that narrow. Why 128: the product
    and col2im took (ms, P columns -> P rows) 2.20 -> 1.78 for ResNet-50's 512@7 at batch 1 (49
    positions), 1.86 -> 1.17 for its 1024->2048 1x1 stride-2 layer (49), 3.25 -> 2.37 for 512@7 at
    batch 2 (98), while at 196 positions P rows lost on 256@14 (1.46 -> 1.67) and on 512@7 at batch
    4 (5.32 -> 5.62); evidence: ``python benchmarks/grad_columns.py`` (benchmarks/RESULTS.md,
    twenty-first session)."""
    if grad_rows.shape[-1] < FEW_POSITIONS:
        return (grad_rows.transpose(-1, -2) @ w_rows).transpose(-1, -2)
    return w_rows.transpose(-1, -2) @ grad_rows


POSITIONS_PER_SUM = 256  # the longest run of window positions one product sums (see sum_over_positions)
MIN_RUNS_PER_IMAGE = 8  # runs per image from which a 1x1 layer's grad_weight goes image by image


def sum_over_positions(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` for ``a`` (G, A, P) and ``b`` (G, P, B): grad_weight's contraction over the window
    positions of every image, taken in runs of ``POSITIONS_PER_SUM`` positions whose products are
    then added by ``torch.sum``::

        partials = a[:, :, run] @ b[:, run, :]   for each run     (G, P/run, A, B)
        a @ b    = partials summed over the runs                  (G, A, B)

    Why: one product over all P positions (P = N*H_out*W_out, 4,096 for a 1x1 layer on
    (4, 8, 32, 32)) adds them one after another inside the BLAS: its error against float64 was
    2.5x PyTorch's (10x for a channels-last input, whose products the BLAS takes in another order);
    in runs of 256 it is level with PyTorch's or better, at no measurable cost on ResNet-50's
    layers (evidence: ``python benchmarks/grad_weight_precision.py``, benchmarks/RESULTS.md). The
    runs are at least A long, so the partials (G, P/run, A, B) take no more memory than ``b``."""
    groups, rows, positions = a.shape
    run = max(POSITIONS_PER_SUM, rows)
    runs = positions // run
    if runs <= 1:
        return a @ b
    whole = runs * run
    head_a, head_b = (a, b) if whole == positions else (a[:, :, :whole], b[:, :whole])
    partials = head_a.view(groups, rows, runs, run).transpose(1, 2) @ head_b.view(groups, runs, run, -1)
    total = partials.sum(dim=1)
    if whole < positions:
        total = total + a[:, :, whole:] @ b[:, whole:]
    return total


def weight_grad_image_by_image(spec: ConvSpec, grad_output: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether grad_weight goes image by image (``grad_weight_image_by_image``): a 1x1 stride-1
    unpadded layer with one group, at least MIN_RUNS_PER_IMAGE runs of positions per image, outside
    vmap."""
    positions = spec.out_size[0] * spec.out_size[1]
    return (
        im2col_algorithm.columns_are_input(spec)
        and spec.groups == 1
        and positions >= MIN_RUNS_PER_IMAGE * max(POSITIONS_PER_SUM, spec.out_channels)
        and not vmapped(grad_output, x)
    )


def grad_weight_image_by_image(grad_output: torch.Tensor, x: torch.Tensor, spec: ConvSpec) -> torch.Tensor:
    """grad_weight of a 1x1 stride-1 unpadded layer (one group): its columns are the input, so::

        grad_w_rows = sum over images n of grad_output[n] @ x[n]^T     (C_out, L) @ (L, C_in)

    each image's product taken in runs of ``sum_over_positions``'s length (its precision) and read
    in place, as strided matrices: the folded product's (N*L)-long operands are transposing copies
    of grad_output and x, which were most of its time on ResNet-50's 1x1 layers at 56x56. Why from
    MIN_RUNS_PER_IMAGE = 8 runs (2,048 positions): at batch 8, at 56x56 (12 runs) image by image
    took 1.12x-1.20x PyTorch's time against the folded 1.21x-1.33x; at 28x28 (3 runs) 1.41x-1.71x
    against 1.17x-1.29x, and below that worse still; the error against float64 the same; evidence:
    ``python benchmarks/grad_weight_pointwise.py`` (benchmarks/RESULTS.md, sixteenth session)."""
    n, c_out, c_in = spec.batch, spec.out_channels, spec.in_channels
    positions = spec.out_size[0] * spec.out_size[1]
    run = max(POSITIONS_PER_SUM, c_out)
    runs = positions // run
    whole = runs * run
    grads, inputs = grad_output.reshape(n, c_out, positions), x.reshape(n, c_in, positions)
    total = None
    for image in range(n):
        grad_rows, cols = grads[image], inputs[image]  # (C_out, L), (C_in, L)
        grad_runs = grad_rows[:, :whole].unflatten(1, (runs, run)).transpose(0, 1)  # (runs, C_out, run)
        col_runs = cols[:, :whole].unflatten(1, (runs, run)).permute(1, 2, 0)  # (runs, run, C_in)
        piece = torch.bmm(grad_runs, col_runs).sum(dim=0)  # (C_out, C_in)
        if whole < positions:
            piece = piece + grad_rows[:, whole:] @ cols[:, whole:].transpose(0, 1)
        total = piece if total is None else total + piece
    assert total is not None  # at least one image: conv2d_backward answers an empty batch itself
    return total.view(c_out, c_in, 1, 1)


def input_grad_from_pieces(pieces: list[torch.Tensor], spec: ConvSpec) -> torch.Tensor:
    """dLoss/d x from the batch pieces of dLoss/d x_pad: joined (no copy for one piece), then
    cropped, since x_pad = zero_pad(x)  =>  dLoss/d x = crop of dLoss/d x_pad."""
    grad_x_pad = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    return unpad(grad_x_pad, spec.padding)


def grads_channels_last(
    grad_output: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    spec: ConvSpec,
    workspace: int,
    needs: tuple[bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(grad_x by col2im, grad_weight), as ``needs`` (input, weight) asks, for a channels-last
    input, with the window positions as rows as in im2col's channels-last forward, so nothing is
    transposed (P positions, K/G = k_h*k_w*C_in/G, rows in (k_h, k_w, C) order)::

        cols          (G, P, K/G)         grad_out_rows = grad_output as (G, P, C_out/G), a view
        grad_w_cols = cols^T @ grad_out_rows                (G, K/G, C_out/G)
        grad_cols   = grad_out_rows @ w_cols^T               (G, P, K/G)  -> col2im, channels-last
    """
    needs_input, needs_weight = needs
    n = grad_output.shape[0]
    h_out, w_out = spec.out_size
    k_h, k_w = spec.kernel_size
    groups, in_per_group, out_per_group = spec.groups, spec.in_per_group, spec.out_per_group
    w_cols = im2col_algorithm.weight_columns(weight, spec)  # (G, K/G, C_out/G)
    images = im2col_algorithm.plan_pieces(spec, workspace)[0]
    grad_w_cols = None
    grad_input_pieces = []
    for n0 in range(0, n, images):
        count = min(images, n - n0)
        positions = count * h_out * w_out
        grad_out_rows = grad_output[n0 : n0 + count].permute(0, 2, 3, 1).reshape(positions, groups, out_per_group)
        grad_out_rows = grad_out_rows.transpose(0, 1)  # (G, P, C_out/G)
        if needs_weight:
            x_pad = zero_pad(x[n0 : n0 + count], spec.padding)
            buffer = im2col_algorithm.column_buffer(spec, count, h_out, x)
            cols = im2col_algorithm.columns_channels_last(x_pad, spec, h_out, buffer)  # (G, P, K/G)
            piece = sum_over_positions(cols.transpose(1, 2), grad_out_rows)  # (G, K/G, C_out/G)
            grad_w_cols = piece if grad_w_cols is None else grad_w_cols + piece
        if needs_input:
            grad_cols = grad_out_rows @ w_cols.transpose(1, 2)  # (G, P, K/G)
            # (G, N, H_out, W_out, k_h, k_w, C/G) -> blocks (N, C, k_h, k_w, H_out, W_out), channels innermost
            blocks = grad_cols.view(groups, count, h_out, w_out, k_h, k_w, in_per_group).permute(1, 0, 6, 4, 5, 2, 3)
            # a view for one group; a copy otherwise (reshape, not flatten: vmap has no rule for flatten)
            blocks = blocks.reshape(count, spec.in_channels, k_h, k_w, h_out, w_out)
            grad_input_pieces.append(
                sum_windows(blocks, spec.padded_size, spec.dilation, spec.stride, torch.channels_last)
            )
    grad_weight = None
    if needs_weight:  # (G, k_h, k_w, C_in/G, C_out/G) -> (C_out, C_in/G, k_h, k_w)
        assert grad_w_cols is not None  # the loop above runs at least once
        grad_weight = grad_w_cols.view(groups, k_h, k_w, in_per_group, out_per_group).permute(0, 4, 3, 1, 2)
        grad_weight = grad_weight.reshape(weight.shape)
    grad_x = None
    if needs_input:
        grad_x = input_grad_from_pieces(grad_input_pieces, spec)
    return grad_x, grad_weight
