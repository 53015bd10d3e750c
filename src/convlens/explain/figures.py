"""Figures that show the work: the demo's outputs, one output value by hand, the im2col product.

Every function returns a matplotlib ``Figure`` built with the object API (no pyplot, so no global
state and no backend is touched): a notebook displays it, the CLI saves it with
:func:`convlens.files.save_figure`.
"""

from __future__ import annotations

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from convlens.explain.byhand import Explanation, PositionError
from convlens.explain.transposed import TransposedExplanation
from convlens.explain.walkthrough import Walkthrough
from convlens.padding import pad_input
from convlens.spec import ConvSpec, IntOrSizes, Padding

HIGHLIGHT = "#e4572e"


def input_figure(display: torch.Tensor, title: str):
    """The (3, H, W) input image in [0, 1]."""
    figure = Figure(figsize=(3.2, 3.4))
    axis = figure.subplots()
    axis.imshow(display.permute(1, 2, 0).numpy(), interpolation="nearest")
    axis.set_title(title, fontsize=9)
    axis.axis("off")
    return figure


def demo_figure(result: Walkthrough):
    """nn.Conv2d's output and convlens im2col's side by side, on one colour scale, and |difference|."""
    theirs = result.torch_output[0, 0].numpy()
    ours = result.im2col_output[0, 0].numpy()
    difference = abs(theirs - ours)
    low, high = min(theirs.min(), ours.min()), max(theirs.max(), ours.max())
    figure = Figure(figsize=(11, 3.9), layout="constrained")
    axes = figure.subplots(1, 3)
    for axis, data, title in (
        (axes[0], theirs, "nn.Conv2d(3, 1, 5)"),
        (axes[1], ours, "convlens: unfold @ w + b, view"),
    ):
        image = axis.imshow(data, cmap="viridis", vmin=low, vmax=high, interpolation="nearest")
        axis.set_title(f"{title}\n{tuple(result.shapes['out'])}", fontsize=10)
        axis.axis("off")
    figure.colorbar(image, ax=axes[:2], shrink=0.8, label="output value")
    diff_image = axes[2].imshow(difference, cmap="magma", interpolation="nearest")
    axes[2].set_title(f"|difference|, max {result.max_abs_difference:.2g}\n(float32 rounding)", fontsize=10)
    axes[2].axis("off")
    figure.colorbar(diff_image, ax=axes[2], shrink=0.8, format="%.0e")
    return figure


def _grid(
    axis, values: torch.Tensor, title: str, annotate: bool, cmap: str = "Blues", mask: torch.Tensor | None = None
):
    axis.imshow(values.numpy(), cmap=cmap, interpolation="nearest")
    if mask is not None:  # padding cells, hatched
        for row, col in mask.nonzero().tolist():
            axis.add_patch(Rectangle((col - 0.5, row - 0.5), 1, 1, fill=False, hatch="///", color="0.6", lw=0))
    if annotate:
        low, high = float(values.min()), float(values.max())
        middle = (low + high) / 2
        for row in range(values.shape[0]):
            for col in range(values.shape[1]):
                number = float(values[row, col]) + 0.0  # no "-0"
                text = f"{number:g}" if number.is_integer() else f"{number:.2f}"
                color = "white" if high > low and number > middle else "black"  # readable on dark cells
                axis.text(col, row, text, ha="center", va="center", fontsize=7, color=color)
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])


def explain_figure(explanation: Explanation, max_channels: int = 4):
    """Per input channel (the first ``max_channels``): the padded input with the window, the kernel,
    the products; then the output with the computed cell."""
    e = explanation
    spec = e.spec
    top, left = spec.padding[0], spec.padding[2]
    k_h, k_w = spec.kernel_size
    annotate = max(e.x_pad.shape[-2:]) <= 14
    steps = e.steps[:max_channels]
    rows = len(steps)
    figure = Figure(figsize=(12, 2.9 * rows), layout="constrained")
    axes = figure.subplots(rows, 4, squeeze=False)
    padding_mask = torch.ones(e.x_pad.shape[-2:], dtype=torch.bool)
    padding_mask[top : top + spec.in_size[0], left : left + spec.in_size[1]] = False
    span_h, span_w = spec.dilation[0] * (k_h - 1) + 1, spec.dilation[1] * (k_w - 1) + 1
    for row, step in enumerate(steps):
        axis = axes[row, 0]
        _grid(axis, e.x_pad[step.channel], f"input channel {step.channel}, padded", annotate, mask=padding_mask)
        origin_y, origin_x = e.window_origin
        axis.add_patch(Rectangle((origin_x - 0.5, origin_y - 0.5), span_w, span_h, fill=False, lw=2.5, ec=HIGHLIGHT))
        _grid(axes[row, 1], step.kernel, f"kernel [{e.filter_index}, {step.channel % spec.in_per_group}]",
              True, cmap="Oranges")  # fmt: skip
        _grid(axes[row, 2], step.products, f"window x kernel, sum = {step.partial:g}", True, cmap="Greens")
        axes[row, 3].axis("off")
    output = e.output[e.filter_index]
    _grid(axes[0, 3], output, f"output channel {e.filter_index} {tuple(output.shape)}", output.numel() <= 196)
    y, x = e.position
    axes[0, 3].add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, lw=2.5, ec=HIGHLIGHT))
    partials = " + ".join(f"{step.partial:.4g}" for step in steps)
    if len(e.steps) > len(steps):
        partials += (
            f"\n+ {sum(s.partial for s in e.steps[len(steps) :]):.4g} (other {len(e.steps) - len(steps)} channels)"
        )
    axes[min(1, rows - 1), 3].text(0.0, 0.5, f"{partials}\n+ bias {e.bias:.4g}\n= {e.value:.6g}", fontsize=12,
                                   transform=axes[min(1, rows - 1), 3].transAxes, va="center")  # fmt: skip
    figure.suptitle(f"output[{e.filter_index}, {y}, {x}] = {e.value:.6g}    ({spec.describe()})", fontsize=11)
    return figure


def volume_figure(explanation: Explanation, max_channels: int = 2):
    """A 3-D value by hand, one depth tap per row: for each input channel (the first ``max_channels``),
    the padded input plane that tap reads with the window, the kernel's slice, the products; then
    the output plane with the computed cell and the sum."""
    e = explanation
    spec = e.spec
    (k_d, k_h, k_w), (d_d, d_h, d_w) = spec.kernel_size, spec.dilation
    z0, y0, x0 = e.window_origin
    steps = e.steps[:max_channels]
    rows = k_d * len(steps)
    annotate = max(e.x_pad.shape[-2:]) <= 14
    figure = Figure(figsize=(12, 2.6 * rows), layout="constrained")
    axes = figure.subplots(rows, 4, squeeze=False)
    for index, step in enumerate(steps):
        for tap in range(k_d):
            row, plane = index * k_d + tap, z0 + tap * d_d
            axis = axes[row, 0]
            _grid(axis, e.x_pad[step.channel, plane], f"input channel {step.channel}, padded plane {plane}", annotate)
            axis.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), d_w * (k_w - 1) + 1, d_h * (k_h - 1) + 1, fill=False,
                                     lw=2.5, ec=HIGHLIGHT))  # fmt: skip
            title = f"kernel [{e.filter_index}, {step.channel % spec.in_per_group}, {tap}]"
            _grid(axes[row, 1], step.kernel[tap], title, True, cmap="Oranges")
            products = step.products[tap]
            _grid(axes[row, 2], products, f"window x kernel, sum = {float(products.sum()):g}", True, cmap="Greens")
            axes[row, 3].axis("off")
    z, y, x = e.position
    output = e.output[e.filter_index, z]
    _grid(
        axes[0, 3], output, f"output channel {e.filter_index}, plane {z} {tuple(output.shape)}", output.numel() <= 196
    )
    axes[0, 3].add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, lw=2.5, ec=HIGHLIGHT))
    partials = " + ".join(f"{step.partial:.4g}" for step in e.steps[:max_channels]).replace("+ -", "- ")
    text_axis = axes[min(1, rows - 1), 3]
    text_axis.text(0.0, 0.5, f"channels: {partials}\n+ bias {e.bias:.4g}\n= {e.value:.6g}", fontsize=12,
                   transform=text_axis.transAxes, va="center")  # fmt: skip
    figure.suptitle(f"output[{e.filter_index}, {z}, {y}, {x}] = {e.value:.6g}    ({spec.describe()})", fontsize=11)
    return figure


def im2col_figure(
    x: torch.Tensor,
    weight: torch.Tensor,
    position: tuple[int, int] = (0, 0),
    filter_index: int = 0,
    *,
    stride: IntOrSizes = 1,
    padding: Padding = 0,
    dilation: IntOrSizes = 1,
    padding_mode: str = "zeros",
):
    """X_col and W_row as heatmaps with their shapes, the product, and the reshaped output.

    ``x`` is one (C, H, W) image, ``weight`` (C_out, C, k_h, k_w); by default stride 1, no padding, as
    in the seed. The input is padded first (in ``padding_mode``), so X_col's columns are the windows
    conv2d reads. The column of X_col and the row of W_row that make output[filter_index, y, x] are
    highlighted.
    """
    from convlens.unfold import unfold

    spec = ConvSpec.from_args(x, weight, None, stride, padding, dilation, 1, padding_mode)
    c_out = weight.shape[0]
    h_out, w_out = spec.out_size
    y, x_pos = position
    if not 0 <= filter_index < c_out:
        raise PositionError(f"filter must be in [0, {c_out - 1}], got {filter_index}")
    if not (0 <= y < h_out and 0 <= x_pos < w_out):
        raise PositionError(f"output position must be within the {h_out}x{w_out} output, got (y, x)={position}")
    x_pad = pad_input(x.unsqueeze(0), spec)[0]
    x_col = unfold(x_pad, spec.kernel_size, spec.dilation, 0, spec.stride)  # (C*k_h*k_w, L)
    w_row = weight.reshape(c_out, -1)  # (C_out, C*k_h*k_w)
    product = w_row @ x_col  # (C_out, L)
    column = y * w_out + x_pos

    figure = Figure(figsize=(13, 8.5), layout="constrained")
    grid = figure.add_gridspec(3, max(c_out, 2) + 2, height_ratios=[2.2, 0.9, 1.6])
    axis_w = figure.add_subplot(grid[0, :2])
    axis_x = figure.add_subplot(grid[0, 2:])
    axis_p = figure.add_subplot(grid[1, :])
    axis_w.imshow(w_row.numpy(), aspect="auto", cmap="PuOr", interpolation="nearest")
    axis_w.add_patch(Rectangle((-0.5, filter_index - 0.5), w_row.shape[1], 1, fill=False, lw=2, ec=HIGHLIGHT))
    axis_w.set_title(f"W_row {tuple(w_row.shape)}\none filter per row", fontsize=10)
    axis_w.set_yticks(range(c_out))
    axis_x.imshow(x_col.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
    axis_x.add_patch(Rectangle((column - 0.5, -0.5), 1, x_col.shape[0], fill=False, lw=2, ec=HIGHLIGHT))
    axis_x.set_title(f"X_col {tuple(x_col.shape)}: one receptive field (C*k*k values) per column", fontsize=10)
    axis_p.imshow(product.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
    axis_p.add_patch(Rectangle((column - 3, filter_index - 0.5), 6, 1, fill=False, lw=2, ec=HIGHLIGHT))
    axis_p.set_yticks(range(c_out))
    axis_p.set_title(f"W_row @ X_col {tuple(product.shape)}: row {filter_index} . column {column}", fontsize=10)
    for axis in (axis_w, axis_x, axis_p):
        axis.set_xlabel("column")
    for index in range(c_out):
        axis = figure.add_subplot(grid[2, index])
        axis.imshow(product[index].reshape(h_out, w_out).numpy(), cmap="viridis", interpolation="nearest")
        if index == filter_index:
            axis.add_patch(Rectangle((x_pos - 0.5, y - 0.5), 1, 1, fill=False, lw=2, ec=HIGHLIGHT))
        axis.set_title(f"view -> channel {index} ({h_out}x{w_out})", fontsize=9)
        axis.axis("off")
    figure.suptitle(
        f"convolution as one matrix product: ({c_out}, {w_row.shape[1]}) @ ({x_col.shape[0]}, {x_col.shape[1]})"
        f" -> ({c_out}, {x_col.shape[1]}) -> view ({c_out}, {h_out}, {w_out})"
        + (
            ""
            if (spec.stride, spec.padding, spec.dilation) == ((1, 1), (0, 0, 0, 0), (1, 1))
            else f"\nstride {spec.stride}, padding {spec.padding} {spec.padding_mode}, dilation {spec.dilation}"
        ),
        fontsize=11,
    )
    return figure


def canvas_counts(e: TransposedExplanation) -> torch.Tensor:
    """How many input windows overlap at each position of the full output, extended to hold the
    rows and columns output_padding adds past it: conv_transpose2d of ones with a kernel of ones."""
    from convlens.transposed import conv_transpose2d

    o = e.options
    ones = e.x.new_ones((1, *e.x.shape[1:]))
    counts = conv_transpose2d(ones, e.weight.new_ones((1, 1, *e.weight.shape[2:])), stride=o["stride"],
                              dilation=o["dilation"])[0]  # fmt: skip
    (p_h, p_w), (h_t, w_t) = o["padding"], e.output.shape[1:]
    return torch.nn.functional.pad(
        counts, (0, max(0, p_w + w_t - counts.shape[1]), 0, max(0, p_h + h_t - counts.shape[0]))
    )


def transposed_figure(explanation: TransposedExplanation, max_channels: int = 2):
    """One transposed-convolution value both ways. Per input channel (the first ``max_channels`` of
    the filter's group): the input with the values that land on the output outlined; the full
    output, each of those values' kernel windows drawn where they spread (scatter), the kept region
    dashed (padding crops it, output_padding extends it); the gather view (zero-inserted, padded
    input with the turned kernel's window). Then the output with the cell."""
    e = explanation
    o = e.options
    channels = sorted({landing.channel for landing in e.landings})[:max_channels] or [
        e.filter_index // (e.output.shape[0] // o["groups"]) * (e.x.shape[0] // o["groups"])
    ]
    (k_h, k_w), (d_h, d_w), (s_h, s_w) = e.weight.shape[2:], o["dilation"], o["stride"]
    (l_h, l_w), (p_h, p_w) = e.full_size, o["padding"]
    h_t, w_t = e.output.shape[1:]
    annotate = max(e.spread.shape[-2:]) <= 16
    figure = Figure(figsize=(15, 3.6 * len(channels)), layout="constrained")
    axes = figure.subplots(len(channels), 4, squeeze=False)
    y, x = e.position
    full_y, full_x = e.full_position
    for row, channel in enumerate(channels):
        lands = [landing for landing in e.landings if landing.channel == channel]
        _grid(axes[row, 0], e.x[channel], f"input channel {channel} {tuple(e.x.shape[1:])}", True)
        for landing in lands:
            i, j = landing.input_position
            axes[row, 0].add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.5, ec=HIGHLIGHT))
        # the full output, each position showing how many windows overlap there; the landing values' windows
        counts = canvas_counts(e)
        axis = axes[row, 1]
        _grid(axis, counts, "", counts.numel() <= 400, cmap="Greys")
        for landing in lands:
            i, j = landing.input_position
            axis.add_patch(Rectangle((j * s_w - 0.5, i * s_h - 0.5), d_w * (k_w - 1) + 1, d_h * (k_h - 1) + 1,
                                     fill=False, lw=1.5, ec="#2e86ab"))  # fmt: skip
        axis.add_patch(Rectangle((p_w - 0.5, p_h - 0.5), w_t, h_t, fill=False, lw=1.5, ls="--", ec="0.3"))
        axis.add_patch(Rectangle((full_x - 0.5, full_y - 0.5), 1, 1, fill=True, alpha=0.8, color=HIGHLIGHT))
        axis.set_title(
            f"scatter: windows overlapping on the full {l_h}x{l_w}\noutput; blue: the {len(lands)} landing "
            f"values'; dashed: kept",
            fontsize=8,
        )
        # the gather view: zero-inserted, padded input and the turned kernel's window at (y, x)
        title = f"gather: input {channel}, {s_h - 1},{s_w - 1} zeros inserted, padded"
        _grid(axes[row, 2], e.spread[channel], title, annotate)
        axes[row, 2].add_patch(Rectangle((x - 0.5, y - 0.5), d_w * (k_w - 1) + 1, d_h * (k_h - 1) + 1, fill=False,
                                         lw=2.5, ec=HIGHLIGHT))  # fmt: skip
        axes[row, 3].axis("off")
    output = e.output[e.filter_index]
    _grid(axes[0, 3], output, f"output channel {e.filter_index} {tuple(output.shape)}", output.numel() <= 196)
    axes[0, 3].add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, lw=2.5, ec=HIGHLIGHT))
    sums = " + ".join(f"{landing.product:g}" for landing in e.landings[:8]).replace("+ -", "- ") or "nothing lands"
    if len(e.landings) > 8:
        sums += f" + ... ({len(e.landings) - 8} more)"
    text_axis = axes[min(1, len(channels) - 1), 3]
    text_axis.text(0.0, 0.5, f"{sums}\n+ bias {e.bias:.4g}\n= {e.value:.6g}\n(gather view: {e.gather_value:.6g})",
                   fontsize=11, transform=text_axis.transAxes, va="center")  # fmt: skip
    figure.suptitle(
        f"conv_transpose2d output[{e.filter_index}, {y}, {x}] = {e.value:.6g}: input {tuple(e.x.shape)}, weight "
        f"{tuple(e.weight.shape)}, stride {o['stride']}, padding {o['padding']}, output_padding "
        f"{o['output_padding']}, dilation {o['dilation']}, groups {o['groups']}",
        fontsize=11,
    )
    return figure
