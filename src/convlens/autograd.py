"""The backward pass, written as the math, shared by every algorithm.

Whatever algorithm computed the forward, the convolution is the im2col product. With the batch
folded into the window positions (P = N * H_out * W_out) it is one matrix product per group::

    cols     = im2col(x_pad)                 (G, C_in/G*k_h*k_w, P)
    out_rows = w_rows @ cols + bias          (G, C_out/G, P)

so the chain rule gives, with ``grad_rows`` = dLoss/d out_rows (grad_output viewed as rows)::

    grad_bias   = grad_output summed over N, H_out, W_out          (C_out,)
    grad_weight = grad_rows @ cols^T                               (G, C_out/G, C_in/G*k_h*k_w)
    grad_cols   = w_rows^T @ grad_rows                             (G, C_in/G*k_h*k_w, P)
    grad_x_pad  = col2im(grad_cols)   (fold: overlapping windows add up)

Folding the batch into P makes grad_weight one large product instead of N small ones summed.
The function saves the unpadded input, as PyTorch does, and pads it again piece by piece for
grad_weight; zero padding's adjoint is the crop, ``grad_x = unpad(grad_x_pad)``. (The
reflect / replicate / circular modes pad with ``torch.nn.functional.pad`` before this function,
which then sees no padding; F.pad's own backward routes their gradient.) The backward is built
from differentiable tensor ops, so double backward works too. The batch is processed in pieces
of whole images, as many as keep the columns inside the workspace limit (at least one image,
whatever its size). The columns go into im2col's kept scratch buffer, except while the backward
is itself recorded for double backward. For a channels-last input the same products are taken
with the window positions as rows (``grads_channels_last``), as im2col's forward does. A
depthwise convolution with one filter per channel, whose products would be C products of one
row each, takes its gradients tap by tap instead (``depthwise_grads``). Where auto picks Winograd
for the forward (3x3, stride 1, many channels and tiles) and there is one group, grad_weight is
taken through Winograd's transforms instead, 2.25x or 4x fewer multiplications
(``algos/winograd_grad.py``). ``python benchmarks/backward.py --compare-weight-grad --precision
high`` (ResNet-50, batch 8, backward time over PyTorch's, im2col's weight gradient -> Winograd's):
64 channels at 56x56 1.70x -> 1.44x, 128 at 28x28 1.33x -> 0.89x, 256 at 14x14 1.47x -> 1.26x,
512 at 7x7 1.25x -> 1.29x (noise).

For stride 1, grad_x is itself a convolution, and where Winograd's fewer multiplications pay
it is computed as one (instead of the product and col2im's scatter-add). With
``out[y] = sum_i w[i] * x_pad[y + i*d]`` (one axis, one channel)::

    dLoss/d x_pad[z] = sum_i w[i] * grad_output[z - i*d]
                     = grad_output, zero-padded by d*(k-1) on both sides, correlated with the kernel turned 180 degrees

and dLoss/d x is the part of it inside the input, so the padding is d*(k-1) minus the forward's on
each side. Over channels, input and output channels swap (each group's block of the weight is
transposed)::

    w_turned = weight, per group (C_out/G, C_in/G) -> (C_in/G, C_out/G), kernels flipped   (C_in, C_out/G, k_h, k_w)
    grad_x   = conv2d(grad_output, w_turned, padding=(d_h*(k_h-1) - top, ...), dilation=d, groups=G)   (N, C_in, H, W)

(PyTorch computes its own input gradient the same way.) Which of the two ways is faster depends
on the layer (``python benchmarks/grad_input.py``, ResNet-50's 3x3 stride-1 layers at batch 8,
precision "highest", one input gradient in ms, col2im / Winograd / im2col): 64 channels at 56x56
25.6 / 9.4 / 8.8, 128 at 28x28 15.8 / 5.6 / 6.5, 256 at 14x14 6.4 / 5.4 / 6.8, 512 at 7x7
6.7 / 19.5 / 8.4. Winograd's transform of the turned weight is made afresh on every call (the
turned weight is a new tensor), which costs more than it saves when its tiles are fewer than its
output channels (512 at 7x7: 128 tiles); im2col's columns of the zero-padded grad_output are
larger than col2im's by the padding, which at 14x14 and below (1.31x the area and more) costs
more than the scatter-add it saves. So the convolution is used when auto picks Winograd and it
has at least as many tiles as output channels, or, by auto's other choice (im2col for Winograd),
when the padding grows grad_output by at most 1.2x (MAX_PADDED_GROWTH).
Elsewhere (stride > 1, padding beyond d*(k-1), small images) the col2im path is used.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from convlens import algos
from convlens.algos import Algorithm, winograd_grad
from convlens.algos import depthwise as depthwise_algorithm
from convlens.algos import im2col as im2col_algorithm
from convlens.algos.auto import rule as auto_rule
from convlens.algos.winograd import tile_count
from convlens.spec import ConvSpec, prefers_channels_last
from convlens.unfold import col2im, im2col, sum_windows, tap_slice, unpad, zero_pad

MAX_PADDED_GROWTH = 1.2  # see the module docstring


def turned_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """(C_out, C_in/G, k_h, k_w) -> (C_in, C_out/G, k_h, k_w): each group's block of the weight
    transposed, every kernel turned 180 degrees."""
    c_out = weight.shape[0]
    blocks = weight.unflatten(0, (groups, c_out // groups))  # (G, C_out/G, C_in/G, k_h, k_w)
    return blocks.transpose(1, 2).flatten(0, 1).flip(-2, -1)


def grad_input_spec(spec: ConvSpec) -> ConvSpec | None:
    """The convolution of grad_output that gives dLoss/d x (module docstring), or None where there
    is none: stride > 1, or more padding than the kernel reaches, d*(k-1)."""
    (d_h, d_w), (k_h, k_w) = spec.dilation, spec.kernel_size
    top, bottom, left, right = spec.padding
    reach_h, reach_w = d_h * (k_h - 1), d_w * (k_w - 1)
    padding = (reach_h - top, reach_h - bottom, reach_w - left, reach_w - right)
    if spec.stride != (1, 1) or min(padding) < 0 or spec.out_channels == 0:
        return None
    return replace(
        spec,
        in_channels=spec.out_channels,
        in_size=spec.out_size,
        out_channels=spec.in_channels,
        padding=padding,
        padding_mode="zeros",
        has_bias=False,
    )


def grad_input_by_convolution(
    grad_output: torch.Tensor, weight: torch.Tensor, spec: ConvSpec, workspace: int, algorithm: str = "auto"
) -> torch.Tensor | None:
    """dLoss/d x as a convolution of grad_output, or None where the col2im path is used instead.

    With ``algorithm="auto"`` (module docstring): Winograd where auto picks it and it has at least
    as many tiles as output channels; else auto's other choice, or im2col, where zero-padding
    grad_output grows it by at most MAX_PADDED_GROWTH; else None. With a named algorithm: that
    one, wherever the convolution exists."""
    grad_spec = grad_input_spec(spec)
    if grad_spec is None:
        return None
    chosen = algos.resolve(algorithm, grad_spec, workspace)
    if algorithm == "auto" and not (chosen.name == "winograd" and tile_count(grad_spec) >= grad_spec.out_channels):
        (h, w), (h_pad, w_pad) = grad_spec.in_size, grad_spec.padded_size
        if h_pad * w_pad > MAX_PADDED_GROWTH * h * w:
            return None
        chosen = algos.get("im2col") if chosen.name == "winograd" else chosen
    return Conv2dFunction.apply(grad_output, turned_weight(weight, spec.groups), None, grad_spec, chosen, workspace)


def grad_weight_by_winograd(grad_output: torch.Tensor, x: torch.Tensor, spec: ConvSpec) -> torch.Tensor | None:
    """dLoss/d weight by Winograd's transforms (``algos/winograd_grad.py``) where auto picks
    Winograd for the forward and there is one group, or None: then the im2col product gives it.
    Not while the backward is itself recorded (double backward), since that path keeps its
    intermediates in scratch buffers."""
    if torch.is_grad_enabled() or spec.groups != 1 or auto_rule(spec).algorithm.name != "winograd":
        return None
    return winograd_grad.weight_grad(grad_output, x, spec)


def conv2d_backward(
    grad_output: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    spec: ConvSpec,
    workspace: int,
    needs: tuple[bool, bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(grad_x, grad_weight, grad_bias) for the gradients asked for in ``needs``; ``x`` is the
    input before ``spec.padding``."""
    needs_input, needs_weight, needs_bias = needs
    n = grad_output.shape[0]
    h_out, w_out = spec.out_size
    groups, out_per_group, rows_per_group = spec.groups, spec.out_per_group, spec.in_per_group * spec.taps

    # out = out_rows + bias  =>  dLoss/d bias = sum of grad_output over every axis but C_out
    grad_bias = grad_output.sum(dim=(0, 2, 3)) if needs_bias else None

    if spec.is_depthwise and spec.out_per_group == 1:  # one filter per channel: scaled adds, tap by tap
        grad_x, grad_weight = depthwise_grads(grad_output, x, weight, spec, (needs_input, needs_weight))
        return grad_x, grad_weight, grad_bias

    grad_weight = grad_weight_by_winograd(grad_output, x, spec) if needs_weight else None
    grad_x = grad_input_by_convolution(grad_output, weight, spec, workspace) if needs_input else None
    # what is left for the products and col2im below
    needs_input, needs_weight = needs_input and grad_x is None, needs_weight and grad_weight is None

    if prefers_channels_last(x):  # the same products with positions as rows, nothing transposed
        needs_left = (needs_input, needs_weight)
        grad_x_by_col2im, grad_weight_by_product = grads_channels_last(
            grad_output, x, weight, spec, workspace, needs_left
        )
        return (
            grad_x if grad_x_by_col2im is None else grad_x_by_col2im,
            grad_weight if grad_weight_by_product is None else grad_weight_by_product,
            grad_bias,
        )

    w_rows = weight.reshape(groups, out_per_group, rows_per_group)  # (G, C_out/G, C_in/G*k_h*k_w)
    images = im2col_algorithm.plan_pieces(spec, workspace)[0]
    grad_weight_rows = None
    grad_input_pieces = []
    # An empty batch is one empty piece, so the (zero) gradients stay in the graph for double backward.
    for n0 in range(0, n, images) or [0]:
        count = min(images, n - n0)
        positions = count * h_out * w_out
        # grad_output (N, C_out, H_out, W_out) -> grad_rows (G, C_out/G, N*H_out*W_out)
        grad_rows = grad_output[n0 : n0 + count].transpose(0, 1).reshape(groups, out_per_group, positions)
        if needs_weight:
            x_pad = zero_pad(x[n0 : n0 + count], spec.padding)
            buffer = im2col_algorithm.column_buffer(spec, count, h_out, x)  # kept, unless this backward is recorded
            cols = im2col(x_pad, spec.kernel_size, spec.dilation, spec.stride, (h_out, w_out), True, buffer)
            cols = cols.view(groups, rows_per_group, positions)
            # out_rows = w_rows @ cols  =>  dLoss/d w_rows = grad_rows @ cols^T, one product over all positions
            piece = grad_rows @ cols.transpose(-1, -2)
            grad_weight_rows = piece if grad_weight_rows is None else grad_weight_rows + piece
        if needs_input:
            # out_rows = w_rows @ cols  =>  dLoss/d cols = w_rows^T @ grad_rows
            grad_cols = w_rows.transpose(-1, -2) @ grad_rows  # (G, C_in/G*k_h*k_w, P)
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
        grad_weight = grad_weight_rows.reshape(weight.shape)
    if needs_input:
        grad_x = input_grad_from_pieces(grad_input_pieces, spec)
    return grad_x, grad_weight, grad_bias


def input_grad_from_pieces(pieces: list[torch.Tensor], spec: ConvSpec) -> torch.Tensor:
    """dLoss/d x from the batch pieces of dLoss/d x_pad: joined (no copy for one piece), then
    cropped, since x_pad = zero_pad(x)  =>  dLoss/d x = crop of dLoss/d x_pad."""
    grad_x_pad = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
    return unpad(grad_x_pad, spec.padding)


def depthwise_grads(
    grad_output: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, spec: ConvSpec, needs: tuple[bool, bool]
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(grad_x, grad_weight), as ``needs`` (input, weight) asks, for a depthwise convolution with
    one filter per channel. Its taps are scaled adds (as in the depthwise algorithm), so their
    gradients are too, one pass per tap each; as im2col products they are C products of one row::

        out[n, c, y, x]      = sum_ij w[c, i, j] * x_pad[n, c, y*s_h + i*d_h, x*s_w + j*d_w]
        dLoss/d w[c, i, j]   = sum_nyx grad_output[n, c, y, x] * x_pad[n, c, y*s_h + i*d_h, x*s_w + j*d_w]
        dLoss/d x_pad[n, c, y*s_h + i*d_h, x*s_w + j*d_w] += w[c, i, j] * grad_output[n, c, y, x]
    """
    needs_input, needs_weight = needs
    (k_h, k_w), (d_h, d_w), (s_h, s_w) = spec.kernel_size, spec.dilation, spec.stride
    h_out, w_out = spec.out_size
    x_pad = zero_pad(x, spec.padding)  # (N, C, H_pad, W_pad), in x's layout
    grad_x_pad = torch.zeros_like(x_pad) if needs_input else None
    taps = [(tap_slice(i, d_h, s_h, h_out), tap_slice(j, d_w, s_w, w_out)) for i in range(k_h) for j in range(k_w)]
    w_taps = weight.reshape(spec.out_channels, k_h * k_w)  # (C, k_h*k_w)
    weight_pieces = []
    # Cache-sized pieces of channels, as the forward's; channels-last input in one piece (a slice of its
    # channels is strided along the innermost axis, which made every pass several times slower).
    channels = spec.out_channels if prefers_channels_last(x) else depthwise_algorithm.piece_channels(spec)
    for c0 in range(0, spec.out_channels, channels):
        block = slice(c0, c0 + channels)
        grad_block = grad_output[:, block]
        if needs_weight:
            tap_sums = [(grad_block * x_pad[:, block, rows, columns]).sum(dim=(0, 2, 3)) for rows, columns in taps]
            weight_pieces.append(torch.stack(tap_sums, dim=1))  # (C_piece, k_h*k_w)
        if grad_x_pad is not None:
            for tap, (rows, columns) in enumerate(taps):
                grad_x_pad[:, block, rows, columns].addcmul_(grad_block, w_taps[block, tap].view(1, -1, 1, 1))
    grad_weight = torch.cat(weight_pieces).view(weight.shape) if needs_weight else None
    grad_x = unpad(grad_x_pad, spec.padding) if grad_x_pad is not None else None
    return grad_x, grad_weight


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
    for n0 in range(0, n, images) or [0]:
        count = min(images, n - n0)
        positions = count * h_out * w_out
        grad_out_rows = grad_output[n0 : n0 + count].permute(0, 2, 3, 1).reshape(positions, groups, out_per_group)
        grad_out_rows = grad_out_rows.transpose(0, 1)  # (G, P, C_out/G)
        if needs_weight:
            x_pad = zero_pad(x[n0 : n0 + count], spec.padding)
            buffer = im2col_algorithm.column_buffer(spec, count, h_out, x)
            cols = im2col_algorithm.columns_channels_last(x_pad, spec, h_out, buffer)  # (G, P, K/G)
            piece = cols.transpose(1, 2) @ grad_out_rows  # (G, K/G, C_out/G)
            grad_w_cols = piece if grad_w_cols is None else grad_w_cols + piece
        if needs_input:
            grad_cols = grad_out_rows @ w_cols.transpose(1, 2)  # (G, P, K/G)
            # (G, N, H_out, W_out, k_h, k_w, C/G) -> blocks (N, C, k_h, k_w, H_out, W_out), channels innermost
            blocks = grad_cols.view(groups, count, h_out, w_out, k_h, k_w, in_per_group).permute(1, 0, 6, 4, 5, 2, 3)
            blocks = blocks.flatten(1, 2)  # a view for one group; a copy otherwise
            grad_input_pieces.append(
                sum_windows(blocks, spec.padded_size, spec.dilation, spec.stride, torch.channels_last)
            )
    grad_weight = None
    if needs_weight:  # (G, k_h, k_w, C_in/G, C_out/G) -> (C_out, C_in/G, k_h, k_w)
        grad_weight = grad_w_cols.view(groups, k_h, k_w, in_per_group, out_per_group).permute(0, 4, 3, 1, 2)
        grad_weight = grad_weight.reshape(weight.shape)
    grad_x = None
    if needs_input:
        grad_x = input_grad_from_pieces(grad_input_pieces, spec)
    return grad_x, grad_weight


class Conv2dFunction(torch.autograd.Function):
    """A convolution by any algorithm (zero padding by ``spec.padding`` included), with the shared
    im2col backward.

    Written in the form whose ``forward`` takes ``ctx``, not with a separate ``setup_context``:
    with ``setup_context`` defined, ``Function.apply`` binds its arguments through
    ``inspect.signature`` on every call, which made each call about 30 us slower (70 against
    40 us for ``apply`` on a 4-channel 8x8 input), as much as the whole of a small layer's work.
    The other form is needed only by ``torch.func`` transforms; ``conv2d`` switches to
    ``func.FuncConv2dFunction``, written in it with vmap and jvp rules, while one is active."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        spec: ConvSpec,
        algorithm: Algorithm,
        workspace: int,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.spec = spec
        ctx.workspace = workspace
        return algorithm.forward(x, weight, bias, spec, workspace)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        grads = conv2d_backward(grad_output, x, weight, ctx.spec, ctx.workspace, needs)
        return (*grads, None, None, None)
