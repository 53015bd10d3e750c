"""The input gradient of a strided convolution as stride-1 convolutions of grad_output, one per
stride phase of the input, instead of the im2col product and col2im's scatter-add.

One axis, one channel: the forward is ``out[y] = sum_i w[i] * x_pad[y*s + i*d]``, so input
position u (padded position u + top) gets the gradient of every output y and tap i with
y*s + i*d = u + top. Split the input into its s phases, u = s*q + p (0 <= p < s). In phase p,
tap i reaches input q exactly when i*d = p + top (mod s), and then from output y = q + e_i::

    grad_x[s*q + p] = sum over the phase's taps i of  w[i] * grad_output[q + e_i],   e_i = (p + top - i*d) / s

The phase's taps are i_0, i_0 + s/g, i_0 + 2s/g, ... (g = gcd(d, s)) and their e_i step down by
d/g, so with the taps in reverse it is a stride-1 correlation of grad_output with the turned
sub-kernel, dilation d/g, zero-padded by -min(e) before and past its end as far as the last q
reads. No tap lands twice on one position: nothing is summed into grad_x, every phase is written
once. Over channels the sub-kernel's channels swap, (C_in, C_out, t_h, t_w), as in the stride-1
input gradient (``by_convolution.py``); the phase convolutions together do the multiply-adds of
the im2col product, k_h*k_w per position of grad_output and channel pair, with no columns and no
scatter-add.

ResNet-50's 128->128 3x3 layer, stride 2, padding 1, at 56x56, batch 8 (grad_output (8, 128, 28,
28)), its four phases::

    rows p=0 (even), taps i=1            columns 0, taps 1      -> 1x1 sub-kernel, padding 0
    rows p=1 (odd),  taps i=2, 0 (e=0,1)  columns 1, taps 2, 0  -> 2 taps, padding 1 after
    phase (p_h, p_w)  conv2d(grad_output, sub-kernel (128, 128, t_h, t_w))   (8, 128, 28, 28)
    grad_x[:, :, p_h::2, p_w::2] = that phase                             grad_x (8, 128, 56, 56)

Each phase convolution runs by gemm.c, its weight rows laid out by gemm.c straight from the
weight (``native.gemm_phase_rows``, all phases in one pass) and kept in gemm.py's weight cache
(made again only when the weight changes); the phase, in a kept buffer, is then copied into its
places of grad_x.
Taken where gemm.c runs every phase (float32, CPU, one group, C_in a multiple of 16, zero
padding) and the layer's kernel has more than one tap per phase on some axis (a 1x1 stride-2
layer's one phase is the same product as col2im's, which then only adds zeros). The torch-op
reference (``phase_weight`` and convlens's im2col per phase) gives the same sums and is what the
tests hold the compiled route to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from convlens import native as native_kernels
from convlens.algos import gemm
from convlens.algos import get as get_algorithm
from convlens.algos.scratch import Scratch
from convlens.spec import ConvSpec

SCRATCH = Scratch()  # one phase's result, kept between calls (a fresh one faults its pages in every call)


@dataclass(frozen=True)
class AxisPhase:
    """Phase p of one axis: the input positions p, p + s, ... (``count`` of them) and the stride-1
    correlation of grad_output that gives their gradient (module docstring)."""

    start: int  # p
    count: int  # input positions in the phase
    taps: tuple[int, ...]  # the kernel's taps i it sums, in the sub-kernel's order (reversed)
    dilation: int  # d / gcd(d, s)
    reads: slice  # the part of grad_output it reads (the whole of it, unless padding passes the kernel's reach)
    padding: tuple[int, int]  # zeros before and after that part


def axis_phases(kernel: int, dilation: int, stride: int, before: int, size: int, out_size: int) -> list[AxisPhase]:
    """The phases of one axis: kernel size, dilation, stride, padding before, input and output size."""
    phases = []
    step = dilation // math.gcd(dilation, stride)
    for start in range(min(stride, size)):
        count = -(-(size - start) // stride)
        taps = [i for i in range(kernel) if (start + before - i * dilation) % stride == 0]
        taps.reverse()  # e_i grows as i falls
        first, last = ((start + before - i * dilation) // stride for i in (taps[0], taps[-1])) if taps else (0, 0)
        low, high = max(0, first), min(out_size, count + last)  # grad_output[q + e] for q < count
        if high <= low:  # no tap reaches this phase, or only grad_output's padding: its gradient is zero
            phases.append(AxisPhase(start, count, (), step, slice(0, 0), (0, 0)))
            continue
        padding = (max(0, -first), max(0, count + last - out_size))
        phases.append(AxisPhase(start, count, tuple(taps), step, slice(low, high), padding))
    return phases


@dataclass(frozen=True)
class Phase:
    """One phase of the input: a phase of each axis, and the convolution of grad_output that gives
    its gradient (None where no tap reaches it: its gradient is zero)."""

    rows: AxisPhase
    columns: AxisPhase
    spec: ConvSpec | None


def phases(spec: ConvSpec) -> list[Phase]:
    """Every phase of a 2-D spec's input with its convolution, worked out once per spec."""

    def make() -> list[Phase]:
        axes = zip(spec.kernel_size, spec.dilation, spec.stride, spec.padding[::2], spec.in_size, spec.out_size,
                   strict=True)  # fmt: skip
        per_axis = [axis_phases(*axis) for axis in axes]
        found = []
        for rows in per_axis[0]:
            for columns in per_axis[1]:
                if not rows.taps or not columns.taps:
                    found.append(Phase(rows, columns, None))
                    continue
                sub_spec = replace(
                    spec,
                    in_channels=spec.out_channels,
                    in_size=(rows.reads.stop - rows.reads.start, columns.reads.stop - columns.reads.start),
                    out_channels=spec.in_channels,
                    kernel_size=(len(rows.taps), len(columns.taps)),
                    stride=(1, 1),
                    padding=(*rows.padding, *columns.padding),
                    dilation=(rows.dilation, columns.dilation),
                    padding_mode="zeros",
                    has_bias=False,
                    channels_last=False,
                )
                found.append(Phase(rows, columns, sub_spec))
        return found

    return spec.remembered("input-gradient phases", make)


def phase_weight(weight: torch.Tensor, phase: Phase) -> torch.Tensor:
    """The phase's sub-kernel (C_in, C_out, t_h, t_w): its taps of the weight, in its order, with
    the channels swapped (one group). The torch-op reference of gemm.c's phase rows."""
    rows, columns = list(phase.rows.taps), list(phase.columns.taps)
    return weight[:, :, rows][:, :, :, columns].transpose(0, 1)


def placements(weight_shape: torch.Size, found: list[Phase]) -> tuple[torch.Tensor, list[slice | None], int]:
    """Where gemm.c's phase rows go: ``native.gemm_phase_rows``'s (3, taps) places, each phase's
    floats among them (in ``found``'s order, None for a phase without taps) and the total size."""
    c_out, c_in, _, k_w = weight_shape
    places = torch.full((3, weight_shape[2] * k_w), -1, dtype=torch.int64)
    spans: list[slice | None] = []
    size = 0
    for phase in found:
        if phase.spec is None:
            spans.append(None)
            continue
        count = len(phase.rows.taps) * len(phase.columns.taps)
        for a, i in enumerate(phase.rows.taps):
            for b, j in enumerate(phase.columns.taps):
                places[:, i * k_w + j] = torch.tensor([size, a * len(phase.columns.taps) + b, count])
        spans.append(slice(size, size + count * c_out * c_in))
        size += count * c_out * c_in
    return places, spans, size


def phase_rows(weight: torch.Tensor, spec: ConvSpec) -> tuple[torch.Tensor, list[slice | None]]:
    """Every phase's weight rows, as gemm.c reads them, one after the other (1, size), and each
    phase's span of them; kept per weight in gemm.py's cache (``WEIGHT_ROWS``) and made again when
    the weight changes."""
    found = phases(spec)
    places, spans, size = spec.remembered("input-gradient phase places", lambda: placements(weight.shape, found))
    key = ("input-gradient phases", *((phase.rows.taps, phase.columns.taps) for phase in found))

    def laid_out(buffer: torch.Tensor | None = None) -> torch.Tensor:
        return native_kernels.gemm_phase_rows(weight.detach().contiguous(), places, size, out=buffer)

    return gemm.WEIGHT_ROWS.get(weight, key, laid_out), spans


MIN_POSITIONS = 512  # grad_output's positions N*H_out*W_out from which the phases pay; see pays


def pays(grad_output: torch.Tensor, weight: torch.Tensor, spec: ConvSpec) -> bool:
    """Whether the backward takes the phases (``runs_compiled``) rather than col2im: where grad_output
    has at least MIN_POSITIONS positions (N*H_out*W_out). The phase rows cost a pass over the weight
    whenever it changes (every step of training) and a check of its bits on every call, against
    work that grows with the positions. Why 512: with the weight changing before every call, ResNet-50's
    3x3 stride-2 layers took (col2im -> phases, ms, 2 threads) at batch 8 128@56 (6,272 positions)
    17.5-20.5 -> 9.7-10.1, 256@28 (1,568) 12.0 -> 9.0-10.0, 512@14 (392) 10.8-11.2 -> 12.2-13.3; at
    batch 2 256@28 (392) 3.0 -> 2.8, 512@14 (98) 4.2 -> 5.2; at batch 1 128@56 (784) 1.78 -> 1.46,
    256@28 (196) 1.65 -> 1.99, 512@14 (49) 2.92 -> 4.55 (``python benchmarks/grad_input.py --stride 2
    --changing-weight --batch 8|2|1``, benchmarks/RESULTS.md, twenty-first session)."""
    return spec.positions >= MIN_POSITIONS and runs_compiled(grad_output, weight, spec)


def runs_compiled(grad_output: torch.Tensor, weight: torch.Tensor, spec: ConvSpec) -> bool:
    """Whether the phases can run by gemm.c (module docstring): float32 contiguous CPU tensors, one
    group, C_in a multiple of 16, stride above 1, some phase with more than one tap on an axis,
    and no double backward recording this one."""
    return (
        gemm.native
        and not torch.is_grad_enabled()
        and spec.remembered("input-gradient phases by gemm.c", lambda: gemm_takes_phases(spec))
        and native_kernels.plain_cpu_float32(grad_output, weight)
        and grad_output.is_contiguous()
    )


def gemm_takes_phases(spec: ConvSpec) -> bool:
    """``runs_compiled``'s part that reads the spec alone."""
    return (
        max(spec.stride) > 1
        and native_kernels.runs_gemm_spec(replace(spec, out_channels=spec.in_channels))
        and any(len(p.rows.taps) > 1 or len(p.columns.taps) > 1 for p in phases(spec))
    )


def grad_input_by_phases(
    grad_output: torch.Tensor, weight: torch.Tensor, spec: ConvSpec, workspace: int, compiled: bool = True
) -> torch.Tensor:
    """dLoss/d x (N, C_in, H, W), phase by phase (module docstring): by gemm.c where ``compiled``
    (``runs_compiled`` must hold), else by the torch-op reference (im2col per phase; any dtype and
    device, one group)."""
    found = phases(spec)
    grad_x = grad_output.new_empty((spec.batch, spec.in_channels, *spec.in_size))
    s_h, s_w = spec.stride
    if compiled:
        rows, spans = phase_rows(weight, spec)
        largest = max(math.prod(phase.spec.output_shape) for phase in found if phase.spec is not None)
        buffer = SCRATCH.take("phase", (largest,), torch.float32, grad_output.device)  # one phase at a time
    for index, phase in enumerate(found):
        target = grad_x[:, :, phase.rows.start :: s_h, phase.columns.start :: s_w]
        if phase.spec is None:
            target.zero_()
            continue
        part = grad_output[:, :, phase.rows.reads, phase.columns.reads]
        if compiled:
            sub_spec = phase.spec
            w_rows = rows[:, spans[index]]
            out = buffer[: math.prod(sub_spec.output_shape)].view(sub_spec.output_shape)
            pieces = gemm.pieces(sub_spec)
            result = native_kernels.gemm_forward(part.contiguous(), w_rows, None, sub_spec, pieces, out=out)
        else:
            result = get_algorithm("im2col").forward(part, phase_weight(weight, phase), None, phase.spec, workspace)
        target.copy_(result)
    return grad_x
