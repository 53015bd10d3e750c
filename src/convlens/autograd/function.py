"""The autograd Function around every algorithm, and the routing of its backward.

    forward    any algorithm's forward (zero padding by ``spec.padding`` included)
    backward   grad_bias: a sum; grad_x and grad_weight by the first way that applies:
               depthwise, one filter per channel          tap by tap                     (depthwise.py)
               grad_weight, auto picks Winograd, G = 1    Winograd's transforms          (by_convolution.py)
               grad_x, stride 1, where it pays            a convolution of grad_output   (by_convolution.py)
               grad_x, stride > 1, where it pays          a convolution per stride phase (by_phases.py)
               otherwise                                  the im2col products, col2im    (products.py)
               (batched under vmap, as gradcheck's batched gradients run it: depthwise or products
               only, with every sum made from the batched gradient, so the backward is vmap-clean)

The faster ways are taken only within the error bound of the algorithm that ran the forward
(``error_bound(spec)``): Winograd F(2x2) (2x) serves every algorithm, F(4x4) (50x, precision "high")
only ``"winograd"`` or auto's pick of it; an exact algorithm's gradients there go by the im2col
products instead, so they stay within its 2x.
"""

from __future__ import annotations

from typing import Any

import torch

from convlens.algos import EXACT_BOUND, Algorithm
from convlens.algos.scratch import vmapped
from convlens.autograd import by_phases
from convlens.autograd.by_convolution import grad_input_by_convolution, grad_weight_by_winograd
from convlens.autograd.depthwise import depthwise_grads
from convlens.autograd.products import grads_by_products, grads_channels_last
from convlens.spec import ConvSpec, prefers_channels_last


def conjugated(x: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, weight) as the backward's products use them: conjugated when complex, as PyTorch's
    gradients are (dLoss/d x = grad_output correlated back with conj(weight), dLoss/d weight with
    conj(x)); unchanged, and not copied, when real."""
    if not x.is_complex():
        return x, weight
    return torch.conj_physical(x), torch.conj_physical(weight)


def conv2d_backward(
    grad_output: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    spec: ConvSpec,
    workspace: int,
    needs: tuple[bool, bool, bool],
    bound: float = EXACT_BOUND,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(grad_x, grad_weight, grad_bias) for the gradients asked for in ``needs``; ``x`` is the
    input before ``spec.padding``. ``bound``: the error bound of the algorithm that ran the forward
    (its ``error_bound(spec)``); a faster way that may add more error than that is not taken, so the
    gradients of an explicitly chosen algorithm stay within its documented bound. The gradients
    are dense and in the convolution's layout, as PyTorch's: channels-last when the input or the
    weight is, else contiguous (the products may leave a view of the padded gradient)."""
    grad_x, grad_weight, grad_bias = gradients(grad_output, x, weight, spec, workspace, needs, bound)
    if vmapped(grad_output, x, weight):  # vmap cannot tell a batched tensor's layout; the values are what count
        return grad_x, grad_weight, grad_bias
    layout = torch.channels_last if prefers_channels_last(x) or prefers_channels_last(weight) else None
    grad_x = None if grad_x is None else grad_x.contiguous(memory_format=layout or torch.contiguous_format)
    grad_weight = (
        None if grad_weight is None else grad_weight.contiguous(memory_format=layout or torch.contiguous_format)
    )
    return grad_x, grad_weight, grad_bias


def gradients(
    grad_output: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    spec: ConvSpec,
    workspace: int,
    needs: tuple[bool, bool, bool],
    bound: float,
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """``conv2d_backward``'s gradients in whatever layout each way leaves them: the routing of the
    module docstring."""
    needs_input, needs_weight, needs_bias = needs
    x, weight = conjugated(x, weight)

    # out = out_rows + bias  =>  dLoss/d bias = sum of grad_output over every axis but C_out
    grad_bias = grad_output.sum(dim=(0, 2, 3)) if needs_bias else None

    if grad_output.numel() == 0:  # no batch or no filters: every sum is over nothing
        nothing = grad_output.sum() * 0  # zero, and in the graph for double backward
        grad_x = nothing.expand(x.shape) if needs_input else None
        return grad_x, nothing.expand(weight.shape) if needs_weight else None, grad_bias

    if spec.is_depthwise and spec.out_per_group == 1:  # one filter per channel: scaled adds, tap by tap
        grad_x, grad_weight = depthwise_grads(grad_output, x, weight, spec, (needs_input, needs_weight))
        return grad_x, grad_weight, grad_bias

    grad_x = grad_weight = None
    if not vmapped(grad_output, x, weight):  # these keep scratch buffers and write into them in place
        grad_weight = grad_weight_by_winograd(grad_output, x, spec, bound) if needs_weight else None
        grad_x = grad_input_by_convolution(grad_output, weight, spec, workspace, bound=bound) if needs_input else None
        if needs_input and grad_x is None and by_phases.pays(grad_output, weight, spec):
            grad_x = by_phases.grad_input_by_phases(grad_output, weight, spec, workspace)
    # what is left for the products and col2im
    needs_left = (needs_input and grad_x is None, needs_weight and grad_weight is None)
    if any(needs_left):
        by_products = grads_channels_last if prefers_channels_last(x) else grads_by_products
        grad_x_by_col2im, grad_weight_by_product = by_products(grad_output, x, weight, spec, workspace, needs_left)
        grad_x = grad_x if grad_x_by_col2im is None else grad_x_by_col2im
        grad_weight = grad_weight if grad_weight_by_product is None else grad_weight_by_product
    return grad_x, grad_weight, grad_bias


class Conv2dFunction(torch.autograd.Function):
    """A convolution by any algorithm (zero padding by ``spec.padding`` included), with the shared
    im2col backward.

    Written in the form whose ``forward`` takes ``ctx``, not with a separate ``setup_context``:
    with ``setup_context`` defined, ``Function.apply`` binds its arguments through
    ``inspect.signature`` on every call, which costs about as much as the whole of a small layer's
    work (evidence: ``python benchmarks/overhead.py``, benchmarks/RESULTS.md).
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
        ctx.algorithm = algorithm
        return algorithm.forward(x, weight, bias, spec, workspace)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        bound = ctx.algorithm.error_bound(ctx.spec)
        grad_x, grad_weight, grad_bias = conv2d_backward(grad_output, x, weight, ctx.spec, ctx.workspace, needs, bound)
        return grad_x, grad_weight, grad_bias, None, None, None
