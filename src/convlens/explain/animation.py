"""The sliding window as an animation, for slides and teaching.

An ordinary convolution, one frame per output position of one filter, in raster order: the window
(dilation gaps showing) on the padded input channels of the filter's group, the kernel, and the
output filling in, each new value written out as its sum. A transposed convolution the other way
round, one frame per input position: its value times the kernel lands on a window of the output
(``stride`` apart, overlaps adding), and the output is the running sum.

Drawn with matplotlib; written by its animation writers: GIF (Pillow, no ffmpeg needed), MP4
(ffmpeg), or one self-contained HTML file (``to_jshtml``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from convlens.errors import ArgumentError
from convlens.padding import pad_input
from convlens.spec import ConvSpec

HIGHLIGHT = "#e4572e"
FORMATS = ("gif", "mp4", "html")
MAX_FRAMES = 400
DPI = 90


class AnimationError(ArgumentError):
    """An animation that cannot be written (too many frames, no ffmpeg for MP4)."""


def draw_grid(axis, values: torch.Tensor, title: str, numbers: bool, scale: float, shown: torch.Tensor | None = None):
    """One 2-D grid on a diverging colour map centred at 0 (blue negative, red positive, each panel
    on its own ``scale``: the largest |value| it shows); ``shown`` masks the cells not yet computed."""
    data = values.clone()
    if shown is not None:
        data[~shown] = float("nan")
    soft = 1.6 * scale  # the largest value a mid-dark colour, so that its number stays readable
    axis.imshow(data.numpy(), cmap="RdBu_r", vmin=-soft, vmax=soft, interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])
    axis.set_title(title, fontsize=9)
    if numbers:
        for (row, col), value in zip(torch.cartesian_prod(*(torch.arange(n) for n in values.shape)).tolist(),
                                     values.flatten().tolist()):  # fmt: skip
            if shown is None or bool(shown[row, col]):
                colour = "white" if abs(value) > 0.85 * scale else "black"
                axis.text(col, row, f"{value + 0.0:g}", ha="center", va="center", fontsize=7, color=colour)


def box(axis, top: int, left: int, height: int = 1, width: int = 1, style: str = "-") -> None:
    axis.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False, edgecolor=HIGHLIGHT, linewidth=2,
                             linestyle=style))  # fmt: skip


def animate_convolution(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, spec: ConvSpec, filter_index: int = 0,
                        numbers: bool = True, max_channels: int = 3) -> FuncAnimation:  # fmt: skip
    """x (C_in, H, W), w (C_out, C_in/G, k_h, k_w), b (C_out,): one frame per output position of
    ``filter_index``, computed as convlens computes it."""
    import convlens

    padded = pad_input(x[None], spec)[0]  # (C_in, H + top + bottom, W + left + right)
    out = convlens.conv2d(padded[None], w, b, spec.stride, 0, spec.dilation, spec.groups)[0, filter_index]
    per_group = x.shape[0] // spec.groups
    group = filter_index // (w.shape[0] // spec.groups)
    channels = list(range(group * per_group, (group + 1) * per_group))[:max_channels]
    (k_h, k_w), (s_h, s_w), (d_h, d_w) = spec.kernel_size, spec.stride, spec.dilation
    H_out, W_out = out.shape
    top, left = spec.padding[0], spec.padding[2]
    input_scale, weight_scale, output_scale = (max(float(t.abs().max()), 1e-12) for t in (padded, w, out))
    figure = Figure(figsize=(2.2 * (2 * len(channels) + 1), 3.0))
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.8, wspace=0.08)  # fixed: no layout per frame
    axes = figure.subplots(1, 2 * len(channels) + 1)

    def frame(index: int) -> None:
        y, x_ = divmod(index, W_out)
        for axis in axes:
            axis.clear()
        for slot, c in enumerate(channels):
            image, kernel = axes[2 * slot], axes[2 * slot + 1]
            draw_grid(image, padded[c], f"input channel {c}, padded", numbers, input_scale)
            image.add_patch(
                Rectangle((left - 0.5, top - 0.5), x.shape[2], x.shape[1], fill=False, edgecolor="0.3", linestyle=":")
            )  # fmt: skip  (the input inside its padding)
            for ky in range(k_h):
                for kx in range(k_w):
                    box(image, y * s_h + ky * d_h, x_ * s_w + kx * d_w)
            draw_grid(kernel, w[filter_index, c - group * per_group], f"w[{filter_index}, {c - group * per_group}]",
                      numbers, weight_scale)  # fmt: skip
        shown = (torch.arange(H_out * W_out) <= index).reshape(H_out, W_out)
        draw_grid(axes[-1], out, f"output[{filter_index}, {y}, {x_}] = {out[y, x_].item():g}", numbers, output_scale,
                  shown)  # fmt: skip
        box(axes[-1], y, x_)
        figure.suptitle(f"window {index + 1} of {H_out * W_out}: stride {spec.stride}, dilation {spec.dilation}, "
                        f"groups {spec.groups}, padding {spec.padding_mode}", fontsize=9)  # fmt: skip

    return FuncAnimation(figure, frame, frames=H_out * W_out, interval=700)


def animate_transposed(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, stride: tuple[int, ...],
                       padding: tuple[int, ...], output_padding: tuple[int, ...], dilation: tuple[int, ...],
                       groups: int, filter_index: int = 0, numbers: bool = True) -> FuncAnimation:  # fmt: skip
    """x (C_in, H, W), w (C_in, C_out/G, k_h, k_w): one frame per input position; its values of the
    filter's group times their kernels land on the output, which is the running sum (bias first).
    The last frame's sum is convlens.conv_transpose2d's output (the arguments checked by it)."""
    import convlens

    out = convlens.conv_transpose2d(x[None], w, b, stride, padding, output_padding, groups, dilation)[0, filter_index]
    per_group_out = w.shape[1]
    group = filter_index // per_group_out
    per_group_in = x.shape[0] // groups
    channels = range(group * per_group_in, (group + 1) * per_group_in)
    (k_h, k_w), (s_h, s_w), (d_h, d_w) = tuple(w.shape[2:]), stride, dilation
    p_h, p_w = padding
    H_out, W_out = out.shape
    H, W = x.shape[1:]
    running = [torch.full((H_out, W_out), float(b[filter_index]), dtype=x.dtype)]
    for index in range(H * W):  # the sum after each input position has landed
        i, j = divmod(index, W)
        total = running[-1].clone()
        for c in channels:
            for ky in range(k_h):
                for kx in range(k_w):
                    y, x_ = i * s_h - p_h + ky * d_h, j * s_w - p_w + kx * d_w
                    if 0 <= y < H_out and 0 <= x_ < W_out:
                        total[y, x_] += x[c, i, j] * w[c, filter_index - group * per_group_out, ky, kx]
        running.append(total)
    torch.testing.assert_close(running[-1], out)  # the scatter view adds up to the convolution
    input_scale, weight_scale = max(float(x.abs().max()), 1e-12), max(float(w.abs().max()), 1e-12)
    output_scale = max(max(float(t.abs().max()) for t in running), 1e-12)
    figure = Figure(figsize=(7.5, 3.2))
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.8, wspace=0.08)
    axes = figure.subplots(1, 3)
    first = channels[0]

    def frame(index: int) -> None:
        i, j = divmod(index, W)
        for axis in axes:
            axis.clear()
        draw_grid(axes[0], x[first], f"input channel {first}: x[{first}, {i}, {j}] = {x[first, i, j].item():g}",
                  numbers, input_scale)  # fmt: skip
        box(axes[0], i, j)
        draw_grid(axes[1], w[first, filter_index - group * per_group_out],
                  f"w[{first}, {filter_index - group * per_group_out}]", numbers, weight_scale)  # fmt: skip
        draw_grid(axes[2], running[index + 1], f"output {filter_index}: running sum", numbers, output_scale)
        for ky in range(k_h):
            for kx in range(k_w):
                y, x_ = i * s_h - p_h + ky * d_h, j * s_w - p_w + kx * d_w
                if 0 <= y < H_out and 0 <= x_ < W_out:
                    box(axes[2], y, x_)
        figure.suptitle(f"input {index + 1} of {H * W} spreads over the output: stride {stride}, padding "
                        f"{padding} (crops), output_padding {output_padding}", fontsize=9)  # fmt: skip

    return FuncAnimation(figure, frame, frames=H * W, interval=700)


def check_frames(count: int) -> None:
    if count > MAX_FRAMES:
        raise AnimationError(f"the animation would have {count:,} frames, more than {MAX_FRAMES}: use a smaller --size")


def check_writer(file_format: str) -> None:
    if file_format == "mp4" and shutil.which("ffmpeg") is None:
        raise AnimationError("--format mp4 needs ffmpeg on the PATH (apt install ffmpeg); --format gif needs nothing")


def save(animation: FuncAnimation, path: Path, file_format: str, fps: int) -> Path:
    """Write ``animation`` as GIF, MP4 or HTML, atomically; MP4 needs ffmpeg on the PATH."""
    import os
    import tempfile

    from convlens.files import atomic_write_bytes, current_umask

    if file_format == "html":
        return atomic_write_bytes(path, animation.to_jshtml(fps=fps, default_mode="loop").encode())
    check_writer(file_format)
    handle, temporary = tempfile.mkstemp(suffix=f".{file_format}", dir=path.parent)
    os.close(handle)
    try:
        from rich.console import Console
        from rich.progress import Progress

        with Progress(transient=True, console=Console(stderr=True)) as progress:  # a third of a second a frame
            task = progress.add_task(f"drawing {path.name}", total=None)

            def advance(frame: int, frames: int) -> None:
                progress.update(task, completed=frame + 1, total=frames)

            if file_format == "gif":
                animation.save(temporary, writer=PillowWriter(fps=fps), dpi=DPI, progress_callback=advance)
            else:
                from matplotlib.animation import FFMpegWriter

                animation.save(temporary, writer=FFMpegWriter(fps=fps), dpi=DPI, progress_callback=advance)
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path
