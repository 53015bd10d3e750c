"""One output value of a convolution, computed by hand and shown step by step.

For output channel ``o`` at position ``(y, x)``, and each input channel ``c`` of o's group::

    window[c] = x_pad[c, y*s_h : y*s_h + d_h*(k_h-1) + 1 : d_h, x*s_w : ... : d_w]     (k_h, k_w)
    products  = window[c] * weight[o, c]          elementwise, no kernel flip       (k_h, k_w)
    partial_c = products summed

    value = sum over c of partial_c + bias[o]

The CS231n demo this follows: a 5x5x3 input, two 3x3x3 filters, padding 1, stride 2 -> 3x3x2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypedDict

import torch

from convlens.errors import ArgumentError
from convlens.functional import convolution
from convlens.padding import pad_input, pytorch_convolution
from convlens.spec import AXES, ConvSpec, IntOrSizes, Padding


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
    window: torch.Tensor  # (k_h, k_w) input values under the kernel, padding included ((k_d, k_h, k_w) in 3-D)
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
    position: tuple[int, ...]  # (y, x) in the output grid ((z, y, x) in 3-D)
    window_origin: tuple[int, ...]  # top-left of the window in the padded input
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
    position: tuple[int, ...],
    stride: IntOrSizes = 1,
    padding: Padding = 0,
    dilation: IntOrSizes = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Explanation:
    """Compute output ``[filter_index, *position]`` of an unbatched (C_in, H, W) input by hand (or
    (C_in, L), (C_in, D, H, W): the window then has one or three dimensions)."""
    options: _Options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    rank = x.dim() - 1
    spec = ConvSpec.from_args(x, weight, bias, padding_mode=padding_mode, rank=rank, **options)
    if not 0 <= filter_index < spec.out_channels:
        raise PositionError(f"filter must be in [0, {spec.out_channels - 1}], got {filter_index}")
    if len(position) != rank or not all(0 <= p < n for p, n in zip(position, spec.out_size, strict=True)):
        raise PositionError(
            f"output position must be within the {'x'.join(map(str, spec.out_size))} output, got {tuple(position)}"
        )

    x_pad = pad_input(x.unsqueeze(0), spec)[0]  # (C_in, H_pad, W_pad)
    origin = tuple(p * s for p, s in zip(position, spec.stride, strict=True))
    window_index = tuple(
        slice(start, start + d * (k - 1) + 1, d)
        for start, d, k in zip(origin, spec.dilation, spec.kernel_size, strict=True)
    )
    group = filter_index // spec.out_per_group
    steps = []
    for offset in range(spec.in_per_group):
        channel = group * spec.in_per_group + offset
        window = x_pad[channel][window_index]
        kernel = weight[filter_index, offset]
        steps.append(ChannelStep(channel, window, kernel, window * kernel))

    output = convolution(x, weight, bias, stride, padding, dilation, groups, padding_mode, "auto", None, rank)
    reference = pytorch_convolution(x, weight, bias, padding_mode=padding_mode, **options)
    return Explanation(
        spec=spec,
        x_pad=x_pad,
        filter_index=filter_index,
        position=tuple(position),
        window_origin=origin,
        steps=tuple(steps),
        bias=bias[filter_index].item() if bias is not None else 0.0,
        convlens_value=output[filter_index][tuple(position)].item(),
        torch_value=reference[filter_index][tuple(position)].item(),
        output=output,
    )


def _number(value: float) -> str:
    value = value + 0.0  # no "-0"
    return f"{value:g}" if float(value).is_integer() else f"{value:.4g}"


def _grid(tensor: torch.Tensor) -> list[str]:
    cells = [[_number(v) for v in row] for row in tensor.tolist()]
    width = max((len(c) for row in cells for c in row), default=1)
    return ["[" + " ".join(c.rjust(width) for c in row) + "]" for row in cells]


def _planes(step: ChannelStep) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """A channel's window, kernel and products as 2-D grids: as they are in 2-D, one row in 1-D,
    one (k_h, k_w) slice per depth tap in 3-D."""
    if step.window.dim() == 1:
        return [("", step.window[None], step.kernel[None], step.products[None])]
    if step.window.dim() == 2:
        return [("", step.window, step.kernel, step.products)]
    return [(f"depth tap {i}:", step.window[i], step.kernel[i], step.products[i]) for i in range(step.window.shape[0])]


def sum_text(terms: Sequence[float | tuple[float, str]], number: Callable[[float], str] | None = None) -> str:
    """Numbers added up as a person writes them: "0.01157 - 0.02514 + 3 (bias)", not
    "0.01157 + -0.02514 + bias 3"; a term may carry a label written after it."""
    number = number or _number
    parts = []
    for index, term in enumerate(terms):
        value, label = term if isinstance(term, tuple) else (term, "")
        if index == 0:
            parts.append(f"{number(value)}{label}")
        else:
            parts.append(f"{'-' if value < 0 else '+'} {number(abs(value))}{label}")
    return " ".join(parts)


def format_explanation(explanation: Explanation, max_channels: int = 8, leading: tuple[int, ...] = ()) -> str:
    """The by-hand computation as text: per channel window, kernel, products and sum; then the total.

    Channels past ``max_channels`` are summarised by their sums only. ``leading``: indices written
    before the channel (a model layer's batch index: output[n, c, y, x]).
    """
    e = explanation
    where = ", ".join(map(str, (*leading, e.filter_index, *e.position)))
    corner = (
        f"row {e.window_origin[0]}, column {e.window_origin[1]}"
        if len(e.window_origin) == 2
        else f"{', '.join(AXES[len(e.window_origin)])} = {', '.join(map(str, e.window_origin))}"
    )
    lines = [
        f"output[{where}] of {e.spec.describe()}",
        f"window {'top-left' if len(e.window_origin) == 2 else 'corner'} in the padded input: {corner} "
        f"(= output position x stride); cross-correlation: the kernel is not flipped",
    ]
    for step in e.steps[:max_channels]:
        lines.append(f"\ninput channel {step.channel}:")
        for label, window_plane, kernel_plane, products_plane in _planes(step):
            if label:
                lines.append(f"  {label}")
            window, kernel, products = _grid(window_plane), _grid(kernel_plane), _grid(products_plane)
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
    terms: list[float | tuple[float, str]] = [step.partial for step in e.steps[:max_channels]]
    if hidden:
        terms.append((sum(step.partial for step in hidden), f" (the other {len(hidden)} channels)"))
    lines.append(f"\nvalue = {sum_text([*terms, (e.bias, ' (bias)')])} = {_number(e.value)}")
    function = f"conv{e.spec.rank}d"
    lines.append(f"check: convlens.{function} gives {_number(e.convlens_value)}, torch gives {_number(e.torch_value)}")
    return "\n".join(lines)
