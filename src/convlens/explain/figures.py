"""Figures that show the work: the demo's outputs, one output value by hand, the im2col product.

Every function returns a matplotlib ``Figure`` built with the object API (no pyplot, so no global
state and no backend is touched): a notebook displays it, the CLI saves it with
:func:`convlens.files.save_figure`.
"""

from __future__ import annotations

import math

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from convlens.explain.byhand import Explanation, PositionError, sum_text
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
    ticks = ScalarFormatter(useMathText=True)  # one power of ten above the bar: no repeated "2e-07" labels
    ticks.set_powerlimits((0, 0))
    figure.colorbar(diff_image, ax=axes[2], shrink=0.8, format=ticks)
    return figure


def _grid(
    axis,
    values: torch.Tensor,
    title: str,
    annotate: bool,
    cmap: str = "Blues",
    mask: torch.Tensor | None = None,
    scale: float | None = None,
):
    """A grid of values: signed ones on a diverging map centred at 0 (blue below, red above; ``scale``
    the |value| of the strongest colour, shared by panels that are compared), others on ``cmap``;
    numbers in one format per grid (whole numbers as they are, else two decimals, never "-0.00")."""
    signed = bool((values < 0).any())
    if signed or scale is not None:
        top = scale if scale is not None else float(values.abs().max())
        top = top if top > 0 else 1.0
        axis.imshow(values.numpy(), cmap="RdBu_r", vmin=-1.6 * top, vmax=1.6 * top, interpolation="nearest")
    else:
        axis.imshow(values.numpy(), cmap=cmap, interpolation="nearest")
    if mask is not None:  # padding cells, hatched: the frame around the input as four bands, not a patch a cell
        rows, cols = values.shape
        inside = (~mask).nonzero()
        top, left = inside.min(dim=0).values.tolist() if len(inside) else (rows, cols)
        bottom, right = (inside.max(dim=0).values + 1).tolist() if len(inside) else (rows, cols)
        for x0, y0, width, height in ((0, 0, cols, top), (0, bottom, cols, rows - bottom), (0, top, left, bottom - top),
                                      (right, top, cols - right, bottom - top)):  # fmt: skip
            if width > 0 and height > 0:
                band = Rectangle((x0 - 0.5, y0 - 0.5), width, height, fill=False, hatch="///", color="0.6", lw=0)
                axis.add_patch(band)
    if annotate:
        low, high = float(values.min()), float(values.max())
        middle = (low + high) / 2
        whole = bool((values == values.round()).all())
        strongest = scale if scale is not None else float(values.abs().max())
        for row in range(values.shape[0]):
            for col in range(values.shape[1]):
                number = float(values[row, col])
                text = f"{number:g}" if whole else f"{number:.2f}"
                text = "0" if whole and number == 0 else "0.00" if text == "-0.00" else text
                if signed or scale is not None:  # readable on the darker diverging cells
                    color = "white" if abs(number) > 0.85 * strongest else "black"
                else:
                    color = "white" if high > low and number > middle else "black"
                axis.text(col, row, text, ha="center", va="center", fontsize=7, color=color)
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])


def explain_figure(explanation: Explanation, max_channels: int = 4, leading: tuple[int, ...] = ()):
    """Per input channel (the first ``max_channels``): the padded input with the window, the kernel,
    the products; then the output with the computed cell. ``leading``: indices before the channel
    in the title (a model layer's batch index)."""
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
    # one colour scale per kind of panel, so that the same number has the same colour in every row
    kernel_scale = max(float(step.kernel.abs().max()) for step in steps) or 1.0
    product_scale = max(float(step.products.abs().max()) for step in steps) or 1.0
    for row, step in enumerate(steps):
        axis = axes[row, 0]
        _grid(axis, e.x_pad[step.channel], f"input channel {step.channel}, padded", annotate, mask=padding_mask)
        origin_y, origin_x = e.window_origin
        axis.add_patch(Rectangle((origin_x - 0.5, origin_y - 0.5), span_w, span_h, fill=False, lw=2.5, ec=HIGHLIGHT))
        _grid(axes[row, 1], step.kernel, f"kernel [{e.filter_index}, {step.channel % spec.in_per_group}]",
              True, scale=kernel_scale)  # fmt: skip
        _grid(axes[row, 2], step.products, f"window x kernel, sum = {step.partial:.4g}", True, scale=product_scale)
        axes[row, 3].axis("off")
    output = e.output[e.filter_index]
    _grid(axes[0, 3], output, f"output channel {e.filter_index} {tuple(output.shape)}", output.numel() <= 196)
    y, x = e.position
    axes[0, 3].add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, lw=2.5, ec=HIGHLIGHT))
    terms: list[float | tuple[float, str]] = [step.partial for step in steps]
    if len(e.steps) > len(steps):
        terms.append((sum(s.partial for s in e.steps[len(steps) :]), f" (other {len(e.steps) - len(steps)} channels)"))
    added = sum_text([*terms, (e.bias, " (bias)")], lambda value: f"{value:.4g}").replace(" + ", "\n+ ")
    added = added.replace(" - ", "\n- ")  # one term a line
    axes[min(1, rows - 1), 3].text(0.0, 0.5, f"{added}\n= {e.value:.6g}", fontsize=12,
                                   transform=axes[min(1, rows - 1), 3].transAxes, va="center")  # fmt: skip
    index = ", ".join(map(str, (*leading, e.filter_index, y, x)))
    figure.suptitle(f"output[{index}] = {e.value:.6g}    ({spec.describe()})", fontsize=11)
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
    position: tuple[int, ...] = (0, 0),
    filter_index: int = 0,
    *,
    stride: IntOrSizes = 1,
    padding: Padding = 0,
    dilation: IntOrSizes = 1,
    padding_mode: str = "zeros",
    layer: str | None = None,
):
    """X_col and W_row as heatmaps with their shapes, the product, and the reshaped output; ``layer``
    says in the title which layer the weight is (the demo's, or a random one).

    ``x`` is one (C, H, W) image, ``weight`` (C_out, C, k_h, k_w); by default stride 1, no padding, as
    in the seed. The input is padded first (in ``padding_mode``), so X_col's columns are the windows
    conv2d reads. The column of X_col and the row of W_row that make output[filter_index, y, x] are
    highlighted. A (C, D, H, W) volume works the same (columns of C*k_d*k_h*k_w values, one per
    output position; the output drawn at the position's depth plane), and so does a (C, L) signal.
    """
    from convlens.unfold import unfold

    rank = x.dim() - 1
    spec = ConvSpec.from_args(x, weight, None, stride, padding, dilation, 1, padding_mode, rank=rank)
    c_out, out_size = weight.shape[0], spec.out_size
    if not 0 <= filter_index < c_out:
        raise PositionError(f"filter must be in [0, {c_out - 1}], got {filter_index}")
    if len(position) != rank or not all(0 <= p < n for p, n in zip(position, out_size, strict=True)):
        shape = "x".join(map(str, out_size))
        raise PositionError(f"output position must be within the {shape} output, got {tuple(position)}")
    x_pad = pad_input(x.unsqueeze(0), spec)[0]
    x_col = unfold(x_pad, spec.kernel_size, spec.dilation, 0, spec.stride)  # (C*k_h*k_w, L)
    w_row = weight.reshape(c_out, -1)  # (C_out, C*k_h*k_w)
    product = w_row @ x_col  # (C_out, L)
    column = 0
    for index, count in zip(position, out_size, strict=True):  # row-major: the position's column
        column = column * count + index
    plane = position[0] if rank == 3 else None  # the depth plane a 3-D output is drawn at
    y, x_pos = (0, position[0]) if rank == 1 else position[-2:]
    h_out, w_out = (1, out_size[0]) if rank == 1 else out_size[-2:]

    figure = Figure(figsize=(13, 8.5), layout="constrained")
    grid = figure.add_gridspec(3, max(c_out, 2) + 2, height_ratios=[2.2, 0.9, 1.6])
    axis_w = figure.add_subplot(grid[0, :2])
    axis_x = figure.add_subplot(grid[0, 2:])
    axis_p = figure.add_subplot(grid[1, :])
    image = axis_w.imshow(w_row.numpy(), aspect="auto", cmap="PuOr", interpolation="nearest")
    figure.colorbar(image, ax=axis_w, shrink=0.8)
    axis_w.add_patch(Rectangle((-0.5, filter_index - 0.5), w_row.shape[1], 1, fill=False, lw=2, ec=HIGHLIGHT))
    axis_w.set_title(f"W_row {tuple(w_row.shape)}\none filter per row", fontsize=10)
    axis_w.set_yticks(range(c_out))
    image = axis_x.imshow(x_col.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
    figure.colorbar(image, ax=axis_x, shrink=0.8)
    axis_x.add_patch(Rectangle((column - 0.5, -0.5), 1, x_col.shape[0], fill=False, lw=2, ec=HIGHLIGHT))
    taps = "*".join(["C", *(f"k_{axis.lower()}" for axis in ("D", "H", "W")[3 - rank :])]) if rank > 1 else "C*k"
    axis_x.set_title(f"X_col {tuple(x_col.shape)}: one receptive field ({taps} values) per column", fontsize=10)
    image = axis_p.imshow(product.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
    figure.colorbar(image, ax=axis_p, shrink=0.8)
    axis_p.add_patch(Rectangle((column - 0.5, filter_index - 0.5), 1, 1, fill=False, lw=2, ec=HIGHLIGHT))
    axis_p.set_yticks(range(c_out))
    flat = " + ".join(f"{index}*{math.prod(out_size[axis + 1 :])}" for axis, index in enumerate(position[:-1]))
    where = f" ({flat} + {position[-1]})" if rank > 1 else ""
    axis_p.set_title(
        f"W_row @ X_col {tuple(product.shape)}: output[{filter_index}, {', '.join(map(str, position))}] is row "
        f"{filter_index} of W_row times column {column}{where} of X_col",
        fontsize=10,
    )
    for axis in (axis_w, axis_x, axis_p):
        axis.set_xlabel("column")
    for index in range(c_out):
        axis = figure.add_subplot(grid[2, index])
        channel = product[index].reshape(out_size)
        drawn = channel[plane] if plane is not None else channel.reshape(h_out, w_out)
        picture = axis.imshow(drawn.numpy(), cmap="viridis", interpolation="nearest")
        figure.colorbar(picture, ax=axis, shrink=0.8)
        if index == filter_index:
            axis.add_patch(Rectangle((x_pos - 0.5, y - 0.5), 1, 1, fill=False, lw=2, ec=HIGHLIGHT))
        where = f"\nplane {plane} of {out_size[0]}" if plane is not None else f" ({'x'.join(map(str, out_size))})"
        axis.set_title(f"view -> channel {index}{where}", fontsize=9)
        axis.axis("off")
    plain = all(v == 1 for v in (*spec.stride, *spec.dilation)) and not any(spec.padding)
    figure.suptitle(
        (f"{layer}: " if layer else "")
        + f"convolution as one matrix product: ({c_out}, {w_row.shape[1]}) @ ({x_col.shape[0]}, {x_col.shape[1]})"
        f" -> ({c_out}, {x_col.shape[1]}) -> view ({c_out}, {', '.join(map(str, out_size))})"
        + (
            ""
            if plain
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


def transposed_im2col_figure(explanation: TransposedExplanation):
    """A transposed convolution as one matrix product, then col2im: W_row^T (C_out*k_h*k_w, C_in)
    times X (C_in, H*W) gives one column per input value, that value times every kernel tap of every
    output channel; col2im adds each column into its window of the full output, where overlapping
    windows sum; padding crops it. The entries that land on the explained output are outlined."""
    from convlens.unfold import fold

    e = explanation
    o = e.options
    if o["groups"] != 1:
        raise PositionError("the matrix picture of a transposed convolution is drawn for groups=1")
    c_in, height, width = e.x.shape
    c_out, (k_h, k_w) = e.output.shape[0], e.weight.shape[2:]
    x_rows = e.x.reshape(c_in, height * width)  # X (C_in, H*W)
    w_cols = e.weight.reshape(c_in, -1).t()  # W_row^T (C_out*k_h*k_w, C_in)
    cols = w_cols @ x_rows  # (C_out*k_h*k_w, H*W)
    full = fold(cols, e.full_size, (k_h, k_w), o["dilation"], 0, o["stride"])  # (C_out, L_h, L_w)
    figure = Figure(figsize=(13, 9), layout="constrained")
    grid = figure.add_gridspec(3, 2, height_ratios=[1.3, 2.2, 1.8])
    axis_w, axis_x = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1])
    axis_c = figure.add_subplot(grid[1, :])
    axis_full, axis_out = figure.add_subplot(grid[2, 0]), figure.add_subplot(grid[2, 1])
    for axis, data, title, cmap in (
        (axis_w, w_cols, f"W_row^T {tuple(w_cols.shape)}: one row per (output channel, tap)", "PuOr"),
        (axis_x, x_rows, f"X {tuple(x_rows.shape)}: one column per input position", "viridis"),
        (axis_c, cols, f"W_row^T @ X {tuple(cols.shape)}: each input position times every tap, summed over "
         "input channels", "viridis"),
    ):  # fmt: skip
        image = axis.imshow(data.numpy(), aspect="auto", cmap=cmap, interpolation="nearest")
        figure.colorbar(image, ax=axis, shrink=0.8)
        axis.set_title(title, fontsize=10)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    for landing in e.landings:  # the entries col2im adds into the explained output
        (i, j), (a, b) = landing.input_position, landing.tap
        row, column = (e.filter_index * k_h + a) * k_w + b, i * width + j
        axis_c.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, lw=2, ec=HIGHLIGHT))
    (full_y, full_x), (p_h, p_w) = e.full_position, o["padding"]
    _grid(axis_full, full[e.filter_index], f"col2im: full output channel {e.filter_index} {tuple(full.shape[1:])}, "
          "overlaps summed; dashed: kept", full[0].numel() <= 196)  # fmt: skip
    h_t, w_t = e.output.shape[1:]
    axis_full.add_patch(Rectangle((p_w - 0.5, p_h - 0.5), w_t, h_t, fill=False, lw=1.5, ls="--", ec="0.3"))
    if not e.beyond_full:
        axis_full.add_patch(Rectangle((full_x - 0.5, full_y - 0.5), 1, 1, fill=False, lw=2.5, ec=HIGHLIGHT))
    y, x = e.position
    output = e.output[e.filter_index]
    _grid(axis_out, output, f"output channel {e.filter_index} {tuple(output.shape)} (+ bias)", output.numel() <= 196)
    axis_out.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, lw=2.5, ec=HIGHLIGHT))
    figure.suptitle(
        f"a transposed convolution as one matrix product, then col2im: ({w_cols.shape[0]}, {c_in}) @ ({c_in}, "
        f"{height * width}) -> fold -> ({c_out}, {full.shape[1]}, {full.shape[2]}) -> crop -> ({c_out}, {h_t}, {w_t})",
        fontsize=11,
    )
    return figure


def receptive_field_figure(display: torch.Tensor, rows: tuple[int, int], columns: tuple[int, int], title: str):
    """The (3, H, W) input image in [0, 1] with the window one output sees: solid where it lies on
    the image, dashed where it runs into the padding."""
    figure = Figure(figsize=(4.6, 4.9), layout="constrained")
    axis = figure.subplots()
    height, width = display.shape[1:]
    axis.imshow(display.permute(1, 2, 0).numpy(), interpolation="nearest")
    (top, bottom), (left, right) = rows, columns
    axis.add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1, fill=False,
                             edgecolor=HIGHLIGHT, linestyle="--", linewidth=1.2, clip_on=False))  # fmt: skip
    top, bottom, left, right = max(top, 0), min(bottom, height - 1), max(left, 0), min(right, width - 1)
    axis.add_patch(Rectangle((left - 0.5, top - 0.5), right - left + 1, bottom - top + 1, facecolor=HIGHLIGHT,
                             alpha=0.18, edgecolor=HIGHLIGHT, linewidth=2))  # fmt: skip
    axis.set_xlim(min(columns[0], 0) - 1.5, max(columns[1], width - 1) + 1.5)
    axis.set_ylim(max(rows[1], height - 1) + 1.5, min(rows[0], 0) - 1.5)
    axis.set_title(title, fontsize=9, wrap=True)
    axis.axis("off")
    return figure
