"""One output value of a convolution, computed by hand and shown step by step.

For output channel ``o`` at position ``(y, x)``, and each input channel ``c`` of o's group::

    window[c] = x_pad[c, y*s_h : y*s_h + d_h*(k_h-1) + 1 : d_h, x*s_w : ... : d_w]     (k_h, k_w)
    products  = window[c] * weight[o, c]          elementwise, no kernel flip       (k_h, k_w)
    partial_c = products summed

    value = sum over c of partial_c + bias[o]

The CS231n demo this follows: a 5x5x3 input, two 3x3x3 filters, padding 1, stride 2 -> 3x3x2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import torch

from convlens.errors import ArgumentError
from convlens.functional import conv2d
from convlens.padding import pad_input, pytorch_conv2d
from convlens.spec import ConvSpec, IntOrSizes, Padding


class _Options(TypedDict):
    """conv2d's options, passed on with ``**`` to the spec, convlens and PyTorch alike."""

    stride: IntOrSizes
    padding: Padding
    dilation: IntOrSizes
    groups: int


class PositionError(ArgumentError):
    """An output position outside the output grid."""


@dataclass(frozen=True)
class ChannelStep:
    channel: int  # input channel index
    window: torch.Tensor  # (k_h, k_w) input values under the kernel, padding included
    kernel: torch.Tensor  # (k_h, k_w) weight[o, c - group start]
    products: torch.Tensor  # (k_h, k_w)

    @property
    def partial(self) -> float:
        return self.products.sum().item()


@dataclass(frozen=True)
class Explanation:
    spec: ConvSpec
    x_pad: torch.Tensor  # (C_in, H_pad, W_pad), the padded input
    filter_index: int
    position: tuple[int, int]  # (y, x) in the output grid
    window_origin: tuple[int, int]  # top-left of the window in the padded input
    steps: tuple[ChannelStep, ...]
    bias: float
    convlens_value: float
    torch_value: float
    output: torch.Tensor  # (C_out, H_out, W_out) the whole output, from convlens

    @property
    def value(self) -> float:
        return sum(step.partial for step in self.steps) + self.bias


def explain_value(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    filter_index: int,
    position: tuple[int, int],
    stride: IntOrSizes = 1,
    padding: Padding = 0,
    dilation: IntOrSizes = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Explanation:
    """Compute output ``[filter_index, y, x]`` of an unbatched (C_in, H, W) input by hand."""
    options: _Options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    spec = ConvSpec.from_args(x, weight, bias, padding_mode=padding_mode, **options)
    h_out, w_out = spec.out_size
    y, x_pos = position
    if not 0 <= filter_index < spec.out_channels:
        raise PositionError(f"filter must be in [0, {spec.out_channels - 1}], got {filter_index}")
    if not (0 <= y < h_out and 0 <= x_pos < w_out):
        raise PositionError(f"output position must be within the {h_out}x{w_out} output, got (y, x)={position}")

    x_pad = pad_input(x.unsqueeze(0), spec)[0]  # (C_in, H_pad, W_pad)
    top, left = y * spec.stride[0], x_pos * spec.stride[1]
    rows = slice(top, top + spec.dilation[0] * (spec.kernel_size[0] - 1) + 1, spec.dilation[0])
    cols = slice(left, left + spec.dilation[1] * (spec.kernel_size[1] - 1) + 1, spec.dilation[1])
    group = filter_index // spec.out_per_group
    steps = []
    for offset in range(spec.in_per_group):
        channel = group * spec.in_per_group + offset
        window = x_pad[channel, rows, cols]
        kernel = weight[filter_index, offset]
        steps.append(ChannelStep(channel, window, kernel, window * kernel))

    output = conv2d(x, weight, bias, padding_mode=padding_mode, **options)
    reference = pytorch_conv2d(x, weight, bias, padding_mode=padding_mode, **options)
    return Explanation(
        spec=spec,
        x_pad=x_pad,
        filter_index=filter_index,
        position=(y, x_pos),
        window_origin=(top, left),
        steps=tuple(steps),
        bias=bias[filter_index].item() if bias is not None else 0.0,
        convlens_value=output[filter_index, y, x_pos].item(),
        torch_value=reference[filter_index, y, x_pos].item(),
        output=output,
    )


def _number(value: float) -> str:
    value = value + 0.0  # no "-0"
    return f"{value:g}" if float(value).is_integer() else f"{value:.4g}"


def _grid(tensor: torch.Tensor) -> list[str]:
    cells = [[_number(v) for v in row] for row in tensor.tolist()]
    width = max((len(c) for row in cells for c in row), default=1)
    return ["[" + " ".join(c.rjust(width) for c in row) + "]" for row in cells]


def format_explanation(explanation: Explanation, max_channels: int = 8) -> str:
    """The by-hand computation as text: per channel window, kernel, products and sum; then the total.

    Channels past ``max_channels`` are summarised by their sums only.
    """
    e = explanation
    y, x = e.position
    lines = [
        f"output[{e.filter_index}, {y}, {x}] of {e.spec.describe()}",
        f"window top-left in the padded input: row {e.window_origin[0]}, column {e.window_origin[1]} "
        f"(= output position x stride); cross-correlation: the kernel is not flipped",
    ]
    for step in e.steps[:max_channels]:
        lines.append(f"\ninput channel {step.channel}:")
        window, kernel, products = _grid(step.window), _grid(step.kernel), _grid(step.products)
        width = max(len(line) for line in window)
        kernel_width = max(len(line) for line in kernel)
        lines.append(f"  {'window'.ljust(width)}     {'kernel'.ljust(kernel_width)}     products")
        for index, (a, b, c) in enumerate(zip(window, kernel, products)):
            op, eq = ("*", "=") if index == len(window) // 2 else (" ", " ")
            lines.append(f"  {a.ljust(width)}  {op}  {b.ljust(kernel_width)}  {eq}  {c}")
        lines.append(f"  sum of products = {_number(step.partial)}")
    hidden = e.steps[max_channels:]
    if hidden:
        rest = sum(step.partial for step in hidden)
        lines.append(
            f"\n... {len(hidden)} more input channels (window x kernel each), their sums add up to {_number(rest)}"
        )
    shown = [_number(step.partial) for step in e.steps[:max_channels]]
    if hidden:
        shown.append(f"{_number(sum(step.partial for step in hidden))} (the other {len(hidden)})")
    lines.append(f"\nvalue = {' + '.join(shown)} + bias {_number(e.bias)} = {_number(e.value)}")
    lines.append(f"check: convlens.conv2d gives {_number(e.convlens_value)}, torch gives {_number(e.torch_value)}")
    return "\n".join(lines)
