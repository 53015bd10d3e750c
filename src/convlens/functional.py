"""``convlens.conv1d / conv2d / conv3d``: one call travels arguments -> spec -> padding -> algorithm -> output.

This is the only place the steps are put together; each step lives in its own module.
"""

from __future__ import annotations

import torch

from convlens import algos
from convlens.algos.weight_changes import changed_since_last_call
from convlens.autograd import Conv2dFunction
from convlens.config import resolve_workspace
from convlens.func import FuncConv2dFunction, transforms_active
from convlens.padding import pad_input
from convlens.spec import ConvSpec, IntOrSizes, Padding, conv_spec, prefers_channels_last
from convlens.spec.layout import channels_last_format


def no_channel_output(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> torch.Tensor:
    """PyTorch's rule for an input with no channels: an output with no channels either,
    (N, 0, H_out, W_out). (The maths would give C_out channels holding the bias; PyTorch
    deliberately returns none, and convlens keeps its shape.) The result stays connected to
    input, weight and bias so their gradients exist (zeros), as PyTorch's do."""
    connected = x.sum() * 0 + weight.sum() * 0
    if bias is not None:
        connected = connected + bias.sum() * 0
    return x.new_zeros((spec.batch, 0, *spec.out_size)) + connected


def convolution(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: IntOrSizes,
    padding: Padding,
    dilation: IntOrSizes,
    groups: int,
    padding_mode: str,
    algorithm: str,
    workspace_limit: int | None,
    rank: int,
) -> torch.Tensor:
    """The one pipeline of conv1d, conv2d and conv3d (``rank`` spatial dimensions): arguments ->
    spec -> padding -> algorithm -> output.

    A 1-D convolution is the 2-D one of an image one row high, as in PyTorch's own conv1d: every
    2-D algorithm serves it. A 3-D one runs direct or im2col over (D, H, W), and autograd
    differentiates their steps; a 2-D one runs through the shared autograd Function."""
    spec = conv_spec(input, weight, bias, stride, padding, dilation, groups, padding_mode, rank)
    if rank == 1:
        row = spec.as_2d()
        padding_2d = padding if isinstance(padding, str) else (0, spec.padding[0])
        out = convolution(input.unsqueeze(-2), weight.unsqueeze(-2), bias, row.stride, padding_2d, row.dilation,
                          groups, padding_mode, algorithm, workspace_limit, rank=2)  # fmt: skip
        return out.squeeze(-2).contiguous()  # PyTorch's conv1d output is contiguous whatever the input's strides
    if spec.device.type == "meta":  # a shapes-only call, as PyTorch's, whatever the weight's and bias's devices
        weight, bias = weight.to("meta"), None if bias is None else bias.to("meta")
    workspace = resolve_workspace(workspace_limit)
    weight_changes = algorithm == "auto" and not transforms_active() and changed_since_last_call(weight)
    chosen = algos.resolve(algorithm, spec, workspace, weight_changes)

    x = input if spec.batched else input.unsqueeze(0)
    if spec.in_channels == 0:
        out = no_channel_output(x, weight, bias, spec)
        return out if spec.batched else out.squeeze(0)
    if spec.padding_mode == "zeros":
        seen, run_spec = x, spec  # zero padding is the algorithm's to apply, in its first copy of the input
    else:
        seen, run_spec = pad_input(x, spec), spec.prepadded()  # F.pad, whose backward routes the gradient
    if rank == 3:  # autograd differentiates the algorithm's own steps
        out = chosen.forward(seen, weight, bias, run_spec, workspace)
    elif transforms_active():  # torch.func's grad, vmap, jvp, ...: the Function written for them (func.py);
        # the output keeps the algorithm's layout (vmap cannot query a channels-last layout)
        out = FuncConv2dFunction.apply(seen, weight, bias, run_spec, chosen, workspace)
        return out if spec.batched else out.squeeze(0)
    elif torch.is_grad_enabled() and (
        seen.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    ):
        out = Conv2dFunction.apply(seen, weight, bias, run_spec, chosen, workspace)
    elif torch.is_grad_enabled():  # no gradient to record: the algorithm alone, without an autograd
        # Function's bookkeeping; with gradients off as inside the Function (scratch buffers). Switched
        # as a function, not by `with torch.no_grad()`: half its 1.4 us
        torch.set_grad_enabled(False)
        try:
            out = chosen.forward(seen, weight, bias, run_spec, workspace)
        finally:
            torch.set_grad_enabled(True)
    else:  # already under no_grad (or inference_mode): entering it again costs 2 us of a small layer
        out = chosen.forward(seen, weight, bias, run_spec, workspace)
    out = out.contiguous(memory_format=output_layout(seen, weight, spec))
    if out.numel() == 0:  # every layout test passes on an empty tensor: take PyTorch's strides
        out = out.as_strided(out.shape, empty_output_strides(seen, out.shape))
    return out if spec.batched else out.squeeze(0)


def output_layout(seen: torch.Tensor, weight: torch.Tensor, spec: ConvSpec) -> torch.memory_format:
    """PyTorch's output layout: channels-last when the tensor its kernel sees (the input, or for the
    non-zero padding modes the padded input) or the weight is laid out channels-last, else
    contiguous. Algorithms may return any layout; the caller puts it right (a no-op when it is).
    In 3-D, PyTorch's CPU kernel keeps channels-last-3d for float32 only (its oneDNN path)."""
    if seen.is_contiguous() and weight.is_contiguous():  # quick: a contiguous tensor never counts as channels-last
        return torch.contiguous_format
    if not (prefers_channels_last(seen) or prefers_channels_last(weight)):
        return torch.contiguous_format
    if spec.rank == 3 and spec.device.type == "cpu" and spec.dtype != torch.float32:
        return torch.contiguous_format
    return channels_last_format(spec.rank)


def conv1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrSizes = 1,
    padding: Padding = 0,
    dilation: IntOrSizes = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
    workspace_limit: int | None = None,
) -> torch.Tensor:
    """1-D convolution with the semantics of ``torch.nn.functional.conv1d``: conv2d's, along one
    dimension. It is computed as the 2-D convolution of an image one row high (input
    (N, C_in, 1, L), weight (C_out, C_in/groups, 1, k)), as PyTorch's own is, so every algorithm
    of ``conv2d`` serves it.

    Args:
        input: (N, C_in, L) or unbatched (C_in, L).
        weight: (C_out, C_in/groups, k).
        bias, groups, padding_mode, algorithm, workspace_limit: as :func:`conv2d`.
        stride, padding, dilation: an int or a 1-tuple; padding also "valid" or "same".

    Returns:
        (N, C_out, L_out) or (C_out, L_out), ``L_out = floor((L + 2*padding - dilation*(k-1) - 1) / stride) + 1``.
    """
    return convolution(input, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm,
                       workspace_limit, rank=1)  # fmt: skip


def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrSizes = 1,
    padding: Padding = 0,
    dilation: IntOrSizes = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
    workspace_limit: int | None = None,
) -> torch.Tensor:
    """2-D convolution with the semantics of ``torch.nn.functional.conv2d``.

    Like PyTorch, this is **cross-correlation**: the kernel is not flipped.
    ``out[n, o, y, x] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * x_pad[n, c', y*s_h + i*d_h, x*s_w + j*d_w]``
    with ``c'`` the input channel ``c`` of output channel ``o``'s group.

    Args:
        input: (N, C_in, H, W) or unbatched (C_in, H, W); float16, bfloat16, float32, float64,
            complex64, complex128 or an integer type (int8 to int64, uint8), as PyTorch's CPU kernel.
        weight: (C_out, C_in/groups, k_h, k_w), same dtype and device as input.
        bias: optional (C_out,).
        stride, dilation: int or (height, width); positive.
        padding: int, (height, width), "valid" or "same" (stride 1 only; for even kernels the
            extra row / column goes at the bottom / right, as in PyTorch).
        groups: C_in and C_out must both be divisible by it; groups == C_in is depthwise.
        padding_mode: "zeros", "reflect", "replicate" or "circular", as ``nn.Conv2d`` applies it.
        algorithm: one of ``convlens.algorithms()``; "auto" picks one. "winograd", "fft" and
            "banded" mix values within a tile, an image or a row: chosen explicitly, a NaN or Inf
            in the input spreads to more outputs than PyTorch's (and an Inf output may come out
            NaN). "auto" never does: where it picks one of them, a non-finite output is computed
            again by an exact algorithm.
        workspace_limit: largest im2col buffer in bytes for this call, and the most FFT's
            buffers may take for auto to pick it (default: the process-wide limit, 256 MiB
            unless ``set_workspace_limit`` changed it).

    Returns:
        (N, C_out, H_out, W_out) or (C_out, H_out, W_out), channels-last when the input or the
        weight is, as PyTorch's is.
    """
    return convolution(input, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm,
                       workspace_limit, rank=2)  # fmt: skip


def conv3d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrSizes = 1,
    padding: Padding = 0,
    dilation: IntOrSizes = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    algorithm: str = "auto",
    workspace_limit: int | None = None,
) -> torch.Tensor:
    """3-D convolution with the semantics of ``torch.nn.functional.conv3d``: conv2d's, along three
    dimensions (D, H, W), computed by "direct" (a sum over the k_d*k_h*k_w taps) or "im2col"
    (columns (N, C_in*k_d*k_h*k_w, D_out*H_out*W_out) in workspace-bounded pieces); "auto" picks
    im2col, or direct for a depthwise layer. Gradients come from autograd through their steps.

    Args:
        input: (N, C_in, D, H, W) or unbatched (C_in, D, H, W).
        weight: (C_out, C_in/groups, k_d, k_h, k_w).
        stride, padding, dilation: an int or (depth, height, width); padding also "valid" or "same".
        bias, groups, padding_mode, algorithm, workspace_limit: as :func:`conv2d`.

    Returns:
        (N, C_out, D_out, H_out, W_out) or (C_out, D_out, H_out, W_out), each size by the formula of conv2d.
    """
    return convolution(input, weight, bias, stride, padding, dilation, groups, padding_mode, algorithm,
                       workspace_limit, rank=3)  # fmt: skip


def empty_output_strides(x: torch.Tensor, shape: torch.Size) -> tuple[int, ...]:
    """The strides of PyTorch's output of ``shape`` for an input ``x`` with no elements: its kernel
    for that case returns ``(x * weight[0]).view(shape)`` (free: nothing to multiply)."""
    return (x.detach() * 0).view(shape).stride()
