"""Padding, the way ``nn.Conv2d`` applies it, once per call.

``padding_mode="zeros"`` pads with zeros; ``"reflect"``, ``"replicate"`` and ``"circular"``
go through ``torch.nn.functional.pad`` with that mode, as ``nn.Conv2d`` does, so their
gradients flow back through the padding exactly as PyTorch's do. The padding is the spec's
explicit (top, bottom, left, right) ((before, after) per dimension in 1-D and 3-D), so
asymmetric "same" padding and different height and width padding take one path. Like
``nn.Conv2d``, the non-zero modes always go through ``F.pad``, even for zero padding, so the
tensor the convolution sees (and so the output's memory format) is the same as PyTorch's; the
algorithm then gets the padded input and ``spec.prepadded()``, a spec with no padding left to
apply.

Zero padding is not done here: each algorithm applies ``spec.padding`` itself, so that the ones
that copy the input anyway (Winograd's channels-last tiles, the stride phases of the tap-wise
methods) write the zeros in that same copy instead of a separate padded tensor first. The
others call :func:`convlens.unfold.zero_pad` first. :func:`pad_input` pads in every mode, for
callers that want to see the padded input (the by-hand explanation), and
:func:`pytorch_convolution` is PyTorch's own answer computed the way ``nn.Conv1d/2d/3d`` compute
it, the reference that ``convlens verify`` and ``convlens explain`` check against.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from convlens.spec import ConvSpec, IntOrSizes, Padding, positive_sizes, resolve_padding
from convlens.unfold import pad_last_first, zero_pad


def pad_input(x: torch.Tensor, spec: ConvSpec) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H + top + bottom, W + left + right) with the spec's padding mode
    (along every spatial dimension alike in 1-D and 3-D)."""
    if spec.padding_mode == "zeros":
        return zero_pad(x, spec.padding)
    return F.pad(x, pad_last_first(spec.padding), mode=spec.padding_mode)


def pytorch_convolution(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: IntOrSizes = 1,
    padding: Padding = 0,
    dilation: IntOrSizes = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """PyTorch's answer, as ``nn.Conv1d/2d/3d`` computes it (the rank is the weight's): ``F.convNd``
    with the padding for zeros, else ``F.pad`` in that mode by the explicit padding, then ``F.convNd``."""
    rank = weight.dim() - 2
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[rank]
    if padding_mode == "zeros":
        with warnings.catch_warnings():  # PyTorch's note that its "same" padding may copy the input
            warnings.filterwarnings("ignore", message="Using padding='same'")
            return conv(x, weight, bias, stride, padding, dilation, groups)
    kernel = tuple(weight.shape[2:])
    strides, dilations = positive_sizes("stride", stride, rank), positive_sizes("dilation", dilation, rank)
    pads = resolve_padding(padding, kernel, strides, dilations)
    padded = F.pad(x, pad_last_first(pads), mode=padding_mode)
    return conv(padded, weight, bias, stride, 0, dilation, groups)
