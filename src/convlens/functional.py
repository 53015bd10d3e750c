"""``convlens.conv2d``: one call travels arguments -> spec -> padding -> algorithm -> output.

This is the only place the steps are put together; each step lives in its own module.
"""

from __future__ import annotations

import torch

from convlens import algos
from convlens.autograd import Conv2dFunction
from convlens.config import resolve_workspace
from convlens.func import FuncConv2dFunction, transforms_active
from convlens.padding import pad_input
from convlens.spec import ConvSpec, IntOrPair, Padding, prefers_channels_last


def no_channel_output(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> torch.Tensor:
    """PyTorch's rule for an input with no channels: an output with no channels either,
    (N, 0, H_out, W_out). (The maths would give C_out channels holding the bias; PyTorch
    deliberately returns none, and convlens keeps its shape.) The result stays connected to
    input, weight and bias so their gradients exist (zeros), as PyTorch's do."""
    connected = x.sum() * 0 + weight.sum() * 0
    if bias is not None:
        connected = connected + bias.sum() * 0
    return x.new_zeros((spec.batch, 0, *spec.out_size)) + connected


def conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrPair = 1,
    padding: Padding = 0,
    dilation: IntOrPair = 1,
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
    spec = ConvSpec.from_args(input, weight, bias, stride, padding, dilation, groups, padding_mode)
    if spec.device.type == "meta":  # a shapes-only call, as PyTorch's, whatever the weight's and bias's devices
        weight, bias = weight.to("meta"), None if bias is None else bias.to("meta")
    workspace = resolve_workspace(workspace_limit)
    chosen = algos.resolve(algorithm, spec, workspace)

    x = input if spec.batched else input.unsqueeze(0)
    if spec.in_channels == 0:
        out = no_channel_output(x, weight, bias, spec)
        return out if spec.batched else out.squeeze(0)
    if spec.padding_mode == "zeros":
        seen, run_spec = x, spec  # zero padding is the algorithm's to apply, in its first copy of the input
    else:
        seen, run_spec = pad_input(x, spec), spec.prepadded()  # F.pad, whose backward routes the gradient
    if transforms_active():  # torch.func's grad, vmap, jvp, ...: the Function written for them (func.py);
        # the output keeps the algorithm's layout (vmap cannot query a channels-last layout)
        out = FuncConv2dFunction.apply(seen, weight, bias, run_spec, chosen, workspace)
        return out if spec.batched else out.squeeze(0)
    out = Conv2dFunction.apply(seen, weight, bias, run_spec, chosen, workspace)
    # PyTorch's output is channels-last when the tensor its kernel sees (the input, or for the
    # non-zero padding modes the padded input) or the weight is laid out channels-last, else
    # contiguous. Algorithms may return any layout; this puts it right (a no-op when it is).
    layout = (
        torch.channels_last if prefers_channels_last(seen) or prefers_channels_last(weight) else torch.contiguous_format
    )
    out = out.contiguous(memory_format=layout)
    if out.numel() == 0:  # every layout test passes on an empty tensor: take PyTorch's strides
        out = out.as_strided(out.shape, empty_output_strides(seen, out.shape))
    return out if spec.batched else out.squeeze(0)


def empty_output_strides(x: torch.Tensor, shape: torch.Size) -> tuple[int, ...]:
    """The strides of PyTorch's output of ``shape`` for an input ``x`` with no elements: its kernel
    for that case returns ``(x * weight[0]).view(shape)`` (free: nothing to multiply)."""
    return (x.detach() * 0).view(shape).stride()
