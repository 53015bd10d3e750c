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
so the columns stay inside the workspace limit.

For stride 1, grad_x is itself a convolution, and is computed as one by whichever algorithm auto
picks (Winograd for wide 3x3 layers), instead of the product and col2im's scatter-add. With
``out[y] = sum_i w[i] * x_pad[y + i*d]`` (one axis, one channel)::

    dLoss/d x_pad[z] = sum_i w[i] * grad_output[z - i*d]
                     = grad_output, zero-padded by d*(k-1) on both sides, correlated with the kernel turned 180 degrees

and dLoss/d x is the part of it inside the input, so the padding is d*(k-1) minus the forward's on
each side. Over channels, input and output channels swap (each group's block of the weight is
transposed)::

    w_turned = weight, per group (C_out/G, C_in/G) -> (C_in/G, C_out/G), kernels flipped   (C_in, C_out/G, k_h, k_w)
    grad_x   = conv2d(grad_output, w_turned, padding=(d_h*(k_h-1) - top, ...), dilation=d, groups=G)   (N, C_in, H, W)

(PyTorch computes its own input gradient the same way.) The whole backward of ResNet-50's 3x3
stride-1 layers at batch 8 went from 2.92 / 1.79 / 1.45 / 1.16x PyTorch's time (64 / 128 / 256 /
512 channels) to 2.06-2.15 / 1.50-1.54 / 1.31-1.32 / 1.35-1.39x over two runs, the last one slower:
at 7x7 the scatter-add is cheap and the turned weight's transform is not (``python
benchmarks/backward.py``). Where the forward padding exceeds d*(k-1), or the stride is not 1, the
col2im path is used.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from convlens import algos
from convlens.algos import Algorithm
from convlens.algos.im2col import plan_pieces
from convlens.spec import ConvSpec
from convlens.unfold import col2im, im2col, unpad, zero_pad


def turned_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """(C_out, C_in/G, k_h, k_w) -> (C_in, C_out/G, k_h, k_w): each group's block of the weight
    transposed, every kernel turned 180 degrees."""
    c_out = weight.shape[0]
    blocks = weight.unflatten(0, (groups, c_out // groups))  # (G, C_out/G, C_in/G, k_h, k_w)
    return blocks.transpose(1, 2).flatten(0, 1).flip(-2, -1)


def grad_input_by_convolution(
    grad_output: torch.Tensor, weight: torch.Tensor, spec: ConvSpec, workspace: int
) -> torch.Tensor | None:
    """dLoss/d x for a stride-1 convolution as the convolution of grad_output described in the
    module docstring, or None where that does not apply (stride > 1, or more padding than d*(k-1))."""
    (d_h, d_w), (k_h, k_w) = spec.dilation, spec.kernel_size
    top, bottom, left, right = spec.padding
    reach_h, reach_w = d_h * (k_h - 1), d_w * (k_w - 1)
    padding = (reach_h - top, reach_h - bottom, reach_w - left, reach_w - right)
    if spec.stride != (1, 1) or min(padding) < 0 or spec.out_channels == 0:
        return None
    grad_spec = replace(
        spec,
        in_channels=spec.out_channels,
        in_size=spec.out_size,
        out_channels=spec.in_channels,
        padding=padding,
        padding_mode="zeros",
        has_bias=False,
    )
    algorithm = algos.resolve("auto", grad_spec)
    return Conv2dFunction.apply(grad_output, turned_weight(weight, spec.groups), None, grad_spec, algorithm, workspace)


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

    grad_x = grad_input_by_convolution(grad_output, weight, spec, workspace) if needs_input else None
    needs_input = needs_input and grad_x is None  # what is left for the product and col2im below

    w_rows = weight.reshape(groups, out_per_group, rows_per_group)  # (G, C_out/G, C_in/G*k_h*k_w)
    images = plan_pieces(spec, workspace)[0]
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
            cols = im2col(x_pad, spec.kernel_size, spec.dilation, spec.stride, (h_out, w_out), batch_last=True).view(
                groups, rows_per_group, positions
            )
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

    grad_weight = grad_weight_rows.reshape(weight.shape) if needs_weight else None
    if needs_input:
        # one piece (everything fit) needs no concatenation copy
        grad_x_pad = grad_input_pieces[0] if len(grad_input_pieces) == 1 else torch.cat(grad_input_pieces)
        grad_x = unpad(grad_x_pad, spec.padding)  # x_pad = zero_pad(x)  =>  dLoss/d x = crop of dLoss/d x_pad
    return grad_x, grad_weight, grad_bias


class Conv2dFunction(torch.autograd.Function):
    """A convolution by any algorithm (zero padding by ``spec.padding`` included), with the shared
    im2col backward."""

    @staticmethod
    def forward(
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        spec: ConvSpec,
        algorithm: Algorithm,
        workspace: int,
    ) -> torch.Tensor:
        return algorithm.forward(x, weight, bias, spec, workspace)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: torch.Tensor) -> None:
        x, weight, _bias, spec, _algorithm, workspace = inputs
        ctx.save_for_backward(x, weight)
        ctx.spec = spec
        ctx.workspace = workspace

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        grads = conv2d_backward(grad_output, x, weight, ctx.spec, ctx.workspace, needs)
        return (*grads, None, None, None)
