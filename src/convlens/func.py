"""torch.func support: ``convlens.conv2d`` under grad, vjp, jvp, vmap, jacrev, jacfwd and hessian.

The transforms of ``torch.func`` need an autograd Function written with ``setup_context``, a
rule for vmap and one for jvp. ``conv2d`` uses :class:`FuncConv2dFunction` only while such a
transform is active; everywhere else it keeps ``autograd.Conv2dFunction``, whose form is faster
to call (its docstring says why). Every rule below is itself a convolution, so the transforms
compose (vmap of grad, jacfwd of jacrev):

vmap: the mapped dimension B is folded into what a convolution already batches::

    only x mapped:            x (B, N, C_in, H, W) -> (B*N, C_in, H, W)       B*N images
                              out (B*N, C_out, H_out, W_out) -> (B, N, C_out, H_out, W_out)
    weight or bias mapped:    x -> (N, B*C_in, H, W)                          (x repeated if not mapped)
                              weight (B, C_out, C_in/G, k_h, k_w) -> (B*C_out, C_in/G, k_h, k_w)
                              groups G -> B*G: the B convolutions side by side, one block of groups each
                              out (N, B*C_out, H_out, W_out) -> (N, B, C_out, H_out, W_out)

jvp: a convolution is linear in each of its arguments, so::

    d out = conv(dx, w) + conv(x, dw) + db

backward (one axis shown; stride s, dilation d, kernel k, padding p)::

    grad_x = conv(grad_output with s - 1 zeros between values, zero-padded by d*(k-1),
                  weight turned: each group's block transposed, kernels flipped; dilation d),
             then cut to the input's rows p .. p + H (zeros below where no window reached)
    grad_w = conv(x_pad seen as (C_in/G, G*N, H_pad, W_pad): channels become the batch,
                  grad_output seen as kernels (C_out, N, H_out, W_out); stride d, dilation s,
                  groups G) -> (C_in/G, C_out, >= k_h, >= k_w), its first k_h x k_w, transposed
    grad_b = grad_output summed over N, H_out, W_out

These are the textbook identities (PyTorch's ``convolution_backward`` rests on the same ones);
they trade the shared backward's speed (``autograd.py``) for being made of convolutions only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
import torch.nn.functional as F

from convlens import algos
from convlens.algos import Algorithm
from convlens.autograd import conjugated, turned_weight
from convlens.spec import ConvSpec
from convlens.unfold import zero_pad


def transforms_active() -> bool:
    """Whether a torch.func transform (grad, vmap, jvp, ...) is running around this call."""
    return torch._C._are_functorch_transforms_active()


def convolve(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: tuple[int, ...] = (1, 1),
    dilation: tuple[int, ...] = (1, 1),
    groups: int = 1,
    *,
    workspace: int,
    bound: float,
) -> torch.Tensor:
    """An unpadded convolution of (N, C, H, W) tensors through FuncConv2dFunction, by auto's choice
    where its error bound is within ``bound`` (the forward algorithm's), else im2col's: the building
    block of every rule in this module."""
    spec = ConvSpec.from_args(x, weight, bias, stride, 0, dilation, groups)
    chosen = algos.resolve("auto", spec)
    if chosen.error_bound(spec) > bound:
        chosen = algos.get("im2col")
    return FuncConv2dFunction.apply(x, weight, bias, spec, chosen, workspace)


def spread(grad_output: torch.Tensor, stride: tuple[int, ...]) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, (H-1)*s_h + 1, (W-1)*s_w + 1), with s - 1 zeros between values:
    the positions the forward's windows started at, in the padded input's coordinates."""
    for dim, step in ((2, stride[0]), (3, stride[1])):
        if step > 1:
            zeros = grad_output.new_zeros(()).expand(grad_output.shape)
            gaps = [zeros] * (step - 1)
            woven = torch.stack([grad_output, *gaps], dim=dim + 1).flatten(dim, dim + 1)  # value, then s-1 zeros
            grad_output = woven.narrow(dim, 0, (grad_output.shape[dim] - 1) * step + 1)
    return grad_output


def grad_input(
    grad_output: torch.Tensor, weight: torch.Tensor, spec: ConvSpec, workspace: int, bound: float
) -> torch.Tensor:
    """dLoss/d x (module docstring): a stride-1 convolution of the spread grad_output, cut to the input."""
    (k_h, k_w), (d_h, d_w) = spec.kernel_size, spec.dilation
    reach_h, reach_w = d_h * (k_h - 1), d_w * (k_w - 1)
    spread_out = zero_pad(spread(grad_output, spec.stride), (reach_h, reach_h, reach_w, reach_w))
    grad_x_pad = convolve(
        spread_out,
        turned_weight(weight, spec.groups),
        None,
        (1, 1),
        spec.dilation,
        spec.groups,
        workspace=workspace,
        bound=bound,
    )
    # grad_x_pad covers padded rows 0 .. (H_out-1)*s + d*(k-1); the input is padded rows top .. top + H.
    top, _, left, _ = spec.padding
    (h, w), (covered_h, covered_w) = spec.in_size, grad_x_pad.shape[-2:]
    return F.pad(grad_x_pad, (-left, w + left - covered_w, -top, h + top - covered_h))  # negative: cut


def grad_weight(
    grad_output: torch.Tensor, x: torch.Tensor, spec: ConvSpec, workspace: int, bound: float
) -> torch.Tensor:
    """dLoss/d weight (module docstring): input channels as the batch, grad_output as the kernels."""
    groups = spec.groups
    x_pad = zero_pad(x, spec.padding)
    # x_pad (N, G, C_in/G, H_pad, W_pad) -> (C_in/G, G*N, H_pad, W_pad): channel (g, n) of image c
    images = x_pad.unflatten(1, (groups, spec.in_per_group)).permute(2, 1, 0, 3, 4).flatten(1, 2)
    kernels = grad_output.transpose(0, 1)  # (C_out, N, H_out, W_out): group g reads channels g*N .. (g+1)*N
    sums = convolve(
        images, kernels, None, spec.dilation, spec.stride, groups, workspace=workspace, bound=bound
    )  # (C_in/G, C_out, >=k_h, >=k_w)
    k_h, k_w = spec.kernel_size
    return sums[:, :, :k_h, :k_w].transpose(0, 1)


class FuncConv2dFunction(torch.autograd.Function):
    """``autograd.Conv2dFunction`` in the form torch.func needs, with vmap and jvp rules and a
    backward made of convolutions (module docstring)."""

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
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, weight, _, spec, algorithm, workspace = inputs
        ctx.save_for_backward(x, weight)
        ctx.save_for_forward(x, weight)
        ctx.spec, ctx.workspace, ctx.algorithm = spec, workspace, algorithm

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = conjugated(*ctx.saved_tensors)
        spec, workspace = ctx.spec, ctx.workspace
        bound = ctx.algorithm.error_bound(spec)  # gradients within the forward algorithm's documented bound
        needs_input, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        return (
            grad_input(grad_output, weight, spec, workspace, bound) if needs_input else None,
            grad_weight(grad_output, x, spec, workspace, bound) if needs_weight else None,
            grad_output.sum(dim=(0, 2, 3)) if needs_bias else None,
            None,
            None,
            None,
        )

    @staticmethod
    def jvp(ctx: Any, x_t: torch.Tensor | None, weight_t: torch.Tensor | None, bias_t: torch.Tensor | None, *_: Any):
        x, weight = ctx.saved_tensors
        spec, workspace, algorithm = ctx.spec, ctx.workspace, ctx.algorithm  # the tangent by the forward's algorithm
        terms = [
            FuncConv2dFunction.apply(x_t, weight, None, spec, algorithm, workspace) if x_t is not None else None,
            FuncConv2dFunction.apply(x, weight_t, None, spec, algorithm, workspace) if weight_t is not None else None,
        ]
        out_t = sum(term for term in terms if term is not None)
        if bias_t is not None:
            out_t = out_t + bias_t.view(1, -1, 1, 1)
        return out_t

    @staticmethod
    def vmap(
        info: Any,
        in_dims: tuple,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        spec: ConvSpec,
        algorithm: Algorithm,
        workspace: int,
    ) -> tuple[torch.Tensor, int]:
        x_dim, weight_dim, bias_dim = in_dims[:3]
        b = info.batch_size
        if weight_dim is None and bias_dim is None:  # B*N images
            images = x.movedim(x_dim, 0).flatten(0, 1)
            folded = replace(spec, batch=b * spec.batch)
            out = FuncConv2dFunction.apply(images, weight, bias, folded, usable(algorithm, folded), workspace)
            return out.unflatten(0, (b, spec.batch)), 0
        # B convolutions side by side: B blocks of groups
        x = x.movedim(x_dim, 1) if x_dim is not None else x.unsqueeze(1).expand(-1, b, -1, -1, -1)
        x = x.flatten(1, 2)  # (N, B*C_in, H, W)
        weight = weight.movedim(weight_dim, 0) if weight_dim is not None else weight.expand(b, *weight.shape)
        weight = weight.flatten(0, 1)  # (B*C_out, C_in/G, k_h, k_w)
        if bias is not None:
            bias = (bias.movedim(bias_dim, 0) if bias_dim is not None else bias.expand(b, *bias.shape)).flatten()
        folded = replace(
            spec, in_channels=b * spec.in_channels, out_channels=b * spec.out_channels, groups=b * spec.groups
        )
        out = FuncConv2dFunction.apply(x, weight, bias, folded, usable(algorithm, folded), workspace)
        return out.unflatten(1, (b, spec.out_channels)), 1


def usable(algorithm: Algorithm, spec: ConvSpec) -> Algorithm:
    """``algorithm`` if it supports ``spec``, else auto's choice (a folded spec may lose support:
    depthwise needs groups == C_in)."""
    return algorithm if algorithm.supports(spec) is None else algos.resolve("auto", spec)
