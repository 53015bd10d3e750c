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
"""

from __future__ import annotations

from typing import Any

import torch

from convlens.algos import Algorithm
from convlens.algos.im2col import plan_pieces
from convlens.spec import ConvSpec
from convlens.unfold import col2im, im2col, unpad, zero_pad


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
    grad_x = None
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
