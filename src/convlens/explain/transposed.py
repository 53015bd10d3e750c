"""One output value of a transposed convolution, by hand, seen both ways.

For output channel ``o`` at ``(y, x)`` of conv_transpose2d (input (C_in, H, W), weight
(C_in, C_out/G, k_h, k_w), output channel ``o`` in group ``g``, ``o' = o - g*C_out/G``):

**scatter** (what it computes): every input value ``x[c, i, j]`` spreads the kernel, scaled, over
its window of the *full* output, ``weight[c, o', a, b] * x[c, i, j]`` landing at
``(i*s_h + a*d_h, j*s_w + b*d_w)``. Output ``(y, x)`` is full position ``(y + p_h, x + p_w)``
(padding crops p rows and columns from each side), so its value is the sum of what lands there::

    value = bias[o] + sum over c in group g, and (i, a), (j, b) with i*s_h + a*d_h = y + p_h,
                                                       j*s_w + b*d_w = x + p_w,   of  x[c, i, j] * weight[c, o', a, b]

A position past the full output (rows L = (H - 1)*s + d*(k - 1) + 1 and on, which
``output_padding`` adds when it is larger than the padding) gets nothing: the bias alone.

**gather** (the same value as an ordinary convolution): put s - 1 zeros between input values, pad
d*(k - 1) - p on each side (output_padding more at the bottom / right; negative: a crop), and
correlate with each group's kernel block transposed and every kernel turned 180 degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from convlens.errors import ArgumentError
from convlens.functional import conv2d
from convlens.spec import IntOrSizes, non_negative_sizes, positive_sizes, transposed_length
from convlens.spec.transposed import TransposedSpec
from convlens.transposed import conv_transpose2d


@dataclass(frozen=True)
class Landing:
    """One input value times one kernel tap, landing on the explained output."""

    channel: int  # input channel c
    input_position: tuple[int, int]  # (i, j)
    tap: tuple[int, int]  # (a, b)
    input_value: float
    weight_value: float

    @property
    def product(self) -> float:
        return self.input_value * self.weight_value


@dataclass(frozen=True)
class TransposedExplanation:
    x: torch.Tensor  # (C_in, H, W)
    weight: torch.Tensor  # (C_in, C_out/G, k_h, k_w)
    options: dict  # stride, padding, output_padding, groups, dilation, each per dimension
    filter_index: int
    position: tuple[int, int]  # (y, x) in the output
    full_position: tuple[int, int]  # (y + p_h, x + p_w) in the full output
    full_size: tuple[int, int]  # (L_h, L_w): every row / column a window reaches
    landings: tuple[Landing, ...]
    bias: float
    output: torch.Tensor  # (C_out, H_t, W_t), from convlens
    convlens_value: float
    torch_value: float
    spread: torch.Tensor  # (C_in, H_z, W_z): the zero-inserted, padded input of the gather view
    turned: torch.Tensor  # (C_out, C_in/G, k_h, k_w) the transposed, turned kernel
    gather_value: float

    @property
    def value(self) -> float:
        return sum(landing.product for landing in self.landings) + self.bias

    @property
    def local_filter(self) -> int:
        """The output channel within its group: the weight's second index."""
        return self.filter_index % (self.output.shape[0] // self.options["groups"])

    @property
    def beyond_full(self) -> bool:
        """Whether the position lies in the rows / columns output_padding adds past every window."""
        return any(p >= size for p, size in zip(self.full_position, self.full_size, strict=True))


def explain_transposed(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    filter_index: int,
    position: tuple[int, int],
    stride: IntOrSizes = 1,
    padding: IntOrSizes = 0,
    output_padding: IntOrSizes = 0,
    groups: int = 1,
    dilation: IntOrSizes = 1,
) -> TransposedExplanation:
    """Output ``[filter_index, y, x]`` of conv_transpose2d on an unbatched (C_in, H, W) input, by hand."""
    TransposedSpec.from_args(x, weight, bias, stride, padding, output_padding, groups, dilation)  # PyTorch's rules
    strides, dilations = positive_sizes("stride", stride), positive_sizes("dilation", dilation)
    pads, extra = non_negative_sizes("padding", padding), non_negative_sizes("output_padding", output_padding)
    options = {"stride": strides, "padding": pads, "output_padding": extra, "groups": groups, "dilation": dilations}
    output = conv_transpose2d(x, weight, bias, strides, pads, extra, groups, dilations)
    c_out, h_t, w_t = output.shape
    y, x_pos = position
    if not 0 <= filter_index < c_out:
        raise ArgumentError(f"filter must be in [0, {c_out - 1}], got {filter_index}")
    if not (0 <= y < h_t and 0 <= x_pos < w_t):
        raise ArgumentError(f"output position must be within the {h_t}x{w_t} output, got (y, x)={position}")

    per_group_out, per_group_in = c_out // groups, x.shape[0] // groups
    group, local = divmod(filter_index, per_group_out)
    full_position = (y + pads[0], x_pos + pads[1])
    full_size = tuple(transposed_length(n, k, s, 0, d, 0) for n, k, s, d in
                      zip(x.shape[1:], weight.shape[2:], strides, dilations, strict=True))  # fmt: skip
    landings = []
    for channel in range(group * per_group_in, (group + 1) * per_group_in):
        for a in range(weight.shape[2]):
            i, rest = divmod(full_position[0] - a * dilations[0], strides[0])
            if rest or not 0 <= i < x.shape[1]:
                continue
            for b in range(weight.shape[3]):
                j, rest = divmod(full_position[1] - b * dilations[1], strides[1])
                if rest or not 0 <= j < x.shape[2]:
                    continue
                landings.append(Landing(channel, (i, j), (a, b), x[channel, i, j].item(),
                                        weight[channel, local, a, b].item()))  # fmt: skip

    spread, turned = gather_view(x, weight, strides, pads, extra, groups, dilations)
    gathered = conv2d(spread, turned, bias, dilation=dilations, groups=groups)
    torch_output = F.conv_transpose2d(x, weight, bias, strides, pads, extra, groups, dilations)
    return TransposedExplanation(
        x=x,
        weight=weight,
        options=options,
        filter_index=filter_index,
        position=(y, x_pos),
        full_position=full_position,
        full_size=(full_size[0], full_size[1]),
        landings=tuple(landings),
        bias=bias[filter_index].item() if bias is not None else 0.0,
        output=output,
        convlens_value=output[filter_index, y, x_pos].item(),
        torch_value=torch_output[filter_index, y, x_pos].item(),
        spread=spread,
        turned=turned,
        gather_value=gathered[filter_index, y, x_pos].item(),
    )


def gather_view(
    x: torch.Tensor,
    weight: torch.Tensor,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_padding: tuple[int, ...],
    groups: int,
    dilation: tuple[int, ...],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ordinary convolution a transposed one equals: the input with s - 1 zeros between values
    and d*(k - 1) - p padding (output_padding more at the end; negative crops), and the kernel
    transposed per group and turned 180 degrees, (C_out, C_in/G, k_h, k_w)."""
    channels, height, width = x.shape
    spread = x.new_zeros((channels, (height - 1) * stride[0] + 1, (width - 1) * stride[1] + 1))
    spread[:, :: stride[0], :: stride[1]] = x
    reach = [d * (k - 1) - p for d, k, p in zip(dilation, weight.shape[2:], padding, strict=True)]
    spread = F.pad(spread, (reach[1], reach[1] + output_padding[1], reach[0], reach[0] + output_padding[0]))
    blocks = weight.unflatten(0, (groups, -1))  # (G, C_in/G, C_out/G, k_h, k_w)
    turned = blocks.transpose(1, 2).flatten(0, 1).flip(-2, -1)  # (C_out, C_in/G, k_h, k_w)
    return spread, turned


def _number(value: float) -> str:
    value = value + 0.0
    return f"{value:g}" if float(value).is_integer() else f"{value:.4g}"


def format_transposed(e: TransposedExplanation, max_landings: int = 24) -> str:
    """The by-hand computation as text: what lands on the output, the sum, and both checks."""
    y, x = e.position
    o = e.options
    (full_y, full_x), (l_h, l_w) = e.full_position, e.full_size
    lines = [
        f"output[{e.filter_index}, {y}, {x}] of conv_transpose2d: input {tuple(e.x.shape)}, weight "
        f"{tuple(e.weight.shape)}, stride {o['stride']}, padding {o['padding']}, output_padding "
        f"{o['output_padding']}, dilation {o['dilation']}, groups {o['groups']} -> output {tuple(e.output.shape)}",
        f"H_out = (H - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1 = ({e.x.shape[1]} - 1)*"
        f"{o['stride'][0]} - 2*{o['padding'][0]} + {o['dilation'][0]}*({e.weight.shape[2]} - 1) + "
        f"{o['output_padding'][0]} + 1 = {e.output.shape[1]}",
        f"scatter view: every input value x[c, i, j] adds x[c, i, j] * weight[c, {e.local_filter}, a, b] "
        f"at full-output position (i*{o['stride'][0]} + a*{o['dilation'][0]}, "
        f"j*{o['stride'][1]} + b*{o['dilation'][1]}); "
        f"output ({y}, {x}) is full position ({full_y}, {full_x}) (padding crops {o['padding']}), "
        f"the full output being {l_h}x{l_w}",
    ]
    if e.beyond_full:
        lines.append(
            f"\n({full_y}, {full_x}) lies past the full {l_h}x{l_w} output: it is a row / column that "
            f"output_padding={o['output_padding']} adds, and no window reaches it, so nothing lands there"
        )
    elif not e.landings:
        lines.append("\nno input value lands here (the stride's gaps: no i*s + a*d hits this position)")
    else:
        lines.append(f"\n{len(e.landings)} input value(s) land here:")
        for landing in e.landings[:max_landings]:
            (i, j), (a, b) = landing.input_position, landing.tap
            lines.append(
                f"  x[{landing.channel}, {i}, {j}] = {_number(landing.input_value)}  *  weight[{landing.channel}, "
                f"{e.local_filter}, {a}, {b}] = {_number(landing.weight_value)}"
                f"  ->  {_number(landing.product)}"
            )
        if len(e.landings) > max_landings:
            rest = sum(landing.product for landing in e.landings[max_landings:])
            lines.append(f"  ... {len(e.landings) - max_landings} more, adding up to {_number(rest)}")
    products = " + ".join(_number(landing.product) for landing in e.landings[:max_landings]).replace("+ -", "- ")
    lines.append(f"\nvalue = {products or '0'} + bias {_number(e.bias)} = {_number(e.value)}")
    lines.append(
        f"gather view: the same value as an ordinary convolution of the zero-inserted, padded input "
        f"{tuple(e.spread.shape)} with the transposed, turned kernel {tuple(e.turned.shape)}: {_number(e.gather_value)}"
    )
    lines.append(
        f"check: convlens.conv_transpose2d gives {_number(e.convlens_value)}, torch gives {_number(e.torch_value)}"
    )
    return "\n".join(lines)
