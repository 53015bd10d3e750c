"""Input and weight gradients computed as convolutions, where that is faster than the products.

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
on the layer. Winograd's U of the turned weight is the price: where winograd.c's fused pass runs
the convolution, winograd_weight.c makes it straight from the weight (no turned copy), kept in the
weight cache under the weight beside the forward's U and made again only when the weight changes
(every step of training); elsewhere the turned weight is a new tensor on every call and its U is
made by torch ops each time. Winograd takes the gradient where auto picks it for the gradient's
convolution and it has at least MIN_TILES_PER_CHANNEL_FUSED = 1/8 tiles per output channel in the
fused pass, MIN_TILES_PER_CHANNEL = 1 by torch ops (a U made afresh costs more than it saves with
fewer: 512 at 7x7, batch 8, has 1/16). Else im2col's columns of the zero-padded grad_output,
larger than col2im's by the padding, which at 14x14 and below (1.31x the area and more) costs
more than the scatter-add it saves: the convolution by auto's other choice (im2col for Winograd)
when the padding grows grad_output by at most 1.2x (MAX_PADDED_GROWTH). Evidence: ``python
benchmarks/grad_input.py`` (benchmarks/RESULTS.md); with the fused pass, ``--changing-weight``
(as in training), batch 1 and 8, precision "high" (twentieth session): ResNet-50's 128@28 at batch 1
(0.38 tiles per channel) 0.82 ms against col2im's 1.42, 256@14 at batch 8 (0.5) 4.5 against 8.6,
256@14 at batch 1 (0.19) 1.39 against 1.50, 512@7 at batch 8 (0.06) 11.4 against 9.6.
Elsewhere (stride > 1, padding beyond d*(k-1), small images) the col2im path is used.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from convlens import algos
from convlens import native as native_kernels
from convlens.algos import EXACT_BOUND
from convlens.algos.auto import rule as auto_rule
from convlens.algos.winograd import forward as winograd_forward
from convlens.algos.winograd import grad as winograd_grad
from convlens.algos.winograd.plan import tile_count
from convlens.spec import ConvSpec

MAX_PADDED_GROWTH = 1.2  # see the module docstring
MIN_TILES_PER_CHANNEL = 1.0  # Winograd's tiles per output channel, its U made by torch ops on every call
MIN_TILES_PER_CHANNEL_FUSED = 1 / 8  # the same where winograd.c's fused pass runs it, its U kept under the weight
STRIDED_WEIGHT_GRAD_MIN_TILES_PER_CHANNEL = 1.0  # see strided_weight_grad_pays


def turned_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """(C_out, C_in/G, k_h, k_w) -> (C_in, C_out/G, k_h, k_w): each group's block of the weight
    transposed, every kernel turned 180 degrees. A 1x1 kernel has nothing to turn: its blocks are
    left transposed views (one group), which the products read as they are. Why: ``flip`` copies
    even where it moves nothing, and that transposing copy of ResNet-50's 1x1 weights took 4-5 ms
    of a 270 ms train step at batch 1 (a profile of ``python benchmarks/models.py --models resnet50
    --batch 1 --train``, nineteenth session)."""
    c_out = weight.shape[0]
    blocks = weight.unflatten(0, (groups, c_out // groups))  # (G, C_out/G, C_in/G, k_h, k_w)
    turned = blocks.transpose(1, 2).flatten(0, 1)
    return turned if weight.shape[-2:] == (1, 1) else turned.flip(-2, -1)


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
    grad_output: torch.Tensor,
    weight: torch.Tensor,
    spec: ConvSpec,
    workspace: int,
    algorithm: str = "auto",
    bound: float = EXACT_BOUND,
) -> torch.Tensor | None:
    """dLoss/d x as a convolution of grad_output, or None where the col2im path is used instead.

    With ``algorithm="auto"`` (module docstring): Winograd where auto picks it, it has at least as
    many tiles as output channels and its error bound is within ``bound`` (the forward algorithm's:
    F(4x4)'s 50x serves only a forward that allows 50x); else auto's other choice, or im2col, where
    zero-padding grad_output grows it by at most MAX_PADDED_GROWTH; else None. With a named
    algorithm: that one, wherever the convolution exists."""
    grad_spec = grad_input_spec(spec)
    if grad_spec is None:
        return None
    chosen = algos.resolve(algorithm, grad_spec, workspace)
    if algorithm == "auto" and chosen.error_bound(grad_spec) > bound:
        chosen = algos.get("im2col")  # exact: no more error than the forward's algorithm allows
    # winograd.c's fused pass, U of the turned weight made from the weight itself and kept under it
    fused = chosen.name == "winograd" and not torch.is_grad_enabled()  # (recorded: double backward)
    fused = fused and winograd_forward.runs_fused(grad_output, None, grad_spec)
    min_tiles = MIN_TILES_PER_CHANNEL_FUSED if fused else MIN_TILES_PER_CHANNEL
    winograd_pays = chosen.name == "winograd" and tile_count(grad_spec) >= min_tiles * grad_spec.out_channels
    if algorithm == "auto" and not winograd_pays:
        (h, w), (h_pad, w_pad) = grad_spec.in_size, grad_spec.padded_size
        if h_pad * w_pad > MAX_PADDED_GROWTH * h * w:
            return None
        chosen = algos.get("im2col") if chosen.name == "winograd" else chosen
    if fused and chosen.name == "winograd":
        return winograd_forward.forward_fused(grad_output, weight, None, grad_spec, turned=True)[0]
    from convlens.autograd.function import Conv2dFunction  # the convolution that calls this backward

    return Conv2dFunction.apply(grad_output, turned_weight(weight, spec.groups), None, grad_spec, chosen, workspace)


def grad_weight_by_winograd(
    grad_output: torch.Tensor, x: torch.Tensor, spec: ConvSpec, bound: float = EXACT_BOUND
) -> torch.Tensor | None:
    """dLoss/d weight by Winograd's transforms (``algos/winograd/grad.py``) where auto's rule picks
    Winograd for the layer, or (``strided_weight_grad_pays``) a 3x3 stride-2 layer whose V comes from
    winograd.c's input pass has at least one of its tiles per output channel; there is one group
    and Winograd's error bound at this tile size is within ``bound`` (the forward algorithm's), or
    None: then the im2col product gives it. Not while the backward is itself recorded (double
    backward), since that path keeps its intermediates in scratch buffers."""
    if torch.is_grad_enabled() or spec.groups != 1:
        return None
    if auto_rule(spec).algorithm.name != "winograd" and not strided_weight_grad_pays(x, spec):
        return None
    if algos.get("winograd").error_bound(spec) > bound:
        return None
    return winograd_grad.weight_grad(grad_output, x, spec)


def strided_weight_grad_pays(x: torch.Tensor, spec: ConvSpec) -> bool:
    """Whether a 3x3 stride-2 layer that auto does not run by Winograd (gemm.c's, at 2 MiB of U and
    more) still gets its weight gradient faster by Winograd than by the products: V from winograd.c's
    input pass and at least STRIDED_WEIGHT_GRAD_MIN_TILES_PER_CHANNEL tiles per output channel (the
    weight gradient reads no U: the forward's reason does not apply). Why: the weight gradient alone
    (ad hoc, interleaved) of ResNet-50's 256@28 at batch 8 (1.5 tiles per channel) took 8.3 ms
    against the products' 12.8 and of 128@56 at batch 1 (1.5) 1.6-1.7 against 2.0-2.2, while 256@28
    at batch 1 (0.19) and 512@14 at batch 8 (0.25) ran faster by the products (1.4 against 1.8, 9.6
    against 12.8); their whole backward went from 1.30x-1.38x to 1.20x of PyTorch's time and from
    1.45x-1.54x to 1.22x (``python benchmarks/backward.py --batch 8|1 --precision high``,
    benchmarks/RESULTS.md, twentieth session)."""
    winograd = algos.get("winograd")
    return (
        max(spec.stride) == 2
        and winograd.supports(spec) is None
        and native_kernels.runs_winograd(x, None, spec)
        and tile_count(spec) >= STRIDED_WEIGHT_GRAD_MIN_TILES_PER_CHANNEL * spec.out_channels
    )
