"""Depthwise convolution (groups == C_in, one filter per channel): k_h*k_w scaled adds per channel.

With one input channel per group, each tap's product is not a matrix product but a scale of
every channel by its own weight. The padded input is split into its s_h*s_w stride phases (phases.py)
and kept channels first, so a tap is a shifted view (C, P) and each channel's weight a
scalar broadcast along its contiguous row::

    phases   (s_h, s_w, C, P + tail)                   one copy of the input, zero padding included (phases.py)
    out_flat (C, P)
    for each tap (i, j):
        out_flat += rows(i, j) * weight[:, 0, i, j, None]   rows (C, P) a view; one weight per row
    out = out_flat cropped to (N, C, H_out, W_out)

Channels never mix, so the channels go through in pieces whose output planes hold about 1 MiB
(PIECE_BYTES): a piece's out_flat and phases then stay in cache across its k_h*k_w passes,
instead of every pass streaming the whole tensor through memory. Why 1 MiB: on MobileNetV2's
depthwise layers at batch 8 it beats one piece, 256 KiB and 4 MiB pieces; evidence: ``python
benchmarks/depthwise_pieces.py`` (benchmarks/RESULTS.md). The pieces are sized by the output,
not the padded input: a stride-2 layer's output is a quarter of its input, and its per-piece
copy into four phases favours the larger pieces that gives (an observation from a first version
of the rule; the script measures only the current sizing).

PyTorch's kernel keeps each output in registers across the taps; here every tap is a pass over
the piece, launched from Python, and convlens stays far below its speed.
Channels first matters: a per-channel weight is then a scalar along each contiguous row;
broadcast along an innermost channel axis (channels last), the same multiply-add ran markedly
slower.

A channel multiplier m = C_out / C_in > 1 repeats each channel m times first. No matmul, no im2col.

Where the compiled core is built, a float32 CPU forward runs the same sums in C instead
(src/convlens/native/direct.c, ``native.takes``): NCHW with any multiplier, channels-last with one
filter per channel; 16 channels at a time, channels innermost, for planes up to 32 outputs wide
and every channels-last layer, else one row loop per plane. ``forward_python`` stays the reference.
"""

from __future__ import annotations

import torch

from convlens import native as native_kernels
from convlens.algos import Algorithm, accumulation_dtype, exact, register
from convlens.algos.phases import phase_grid, stride_phases
from convlens.spec import ConvSpec

native = True  # whether forward uses the compiled kernel where it applies (tests switch it off to test both)


def supports(spec: ConvSpec) -> str | None:
    if not spec.is_depthwise:
        return f"only depthwise convolutions (groups == C_in > 1), got groups={spec.groups}, C_in={spec.in_channels}"
    return None


PIECE_BYTES = 1024**2  # output planes per piece of channels; see the module docstring


def piece_channels(spec: ConvSpec) -> int:
    """Channels per piece: as many as keep the piece's output planes within PIECE_BYTES."""
    plane_bytes = spec.batch * spec.out_size[0] * spec.out_size[1] * accumulation_dtype(spec.dtype).itemsize
    return max(1, PIECE_BYTES // max(1, plane_bytes))


def compiled(spec: ConvSpec) -> bool:
    """Whether the forward of this spec runs direct.c (given plain float32 CPU tensors)."""
    return native and native_kernels.takes(spec)


def buffer_bytes(spec: ConvSpec, workspace: int) -> dict[str, int]:
    """Bytes of the buffers the forward uses besides input, weight and output, predicted from the
    shapes: the input ``repeated`` for a channel multiplier, and one piece's ``phases`` and
    ``products`` (fresh tensors, freed piece by piece); none when the compiled kernel takes the
    call (it writes the output directly)."""
    if compiled(spec):
        return {"repeated": 0, "phases": 0, "products": 0}
    s_h, s_w = spec.stride
    h_q, w_q, tail = phase_grid(spec)
    positions = spec.batch * h_q * w_q
    channels = min(piece_channels(spec), spec.out_channels)
    itemsize = accumulation_dtype(spec.dtype).itemsize
    repeated = spec.batch * spec.out_channels * spec.in_size[0] * spec.in_size[1] if spec.out_per_group > 1 else 0
    return {
        "repeated": repeated * spec.dtype.itemsize,
        "phases": s_h * s_w * channels * (positions + tail) * itemsize,
        "products": channels * positions * itemsize,
    }


def forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    if native and native_kernels.runs_direct(x, weight, bias, spec):  # the same math in one pass, in C
        return native_kernels.direct_forward(x, weight, bias, spec)
    return forward_python(x, weight, bias, spec)


def forward_python(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> torch.Tensor:
    """The reference: one broadcast multiply-add per tap over stride phases (the module docstring)."""
    compute = accumulation_dtype(x.dtype)
    if spec.out_per_group > 1:  # channel multiplier m: channel c feeds outputs c*m .. c*m + m - 1
        x = x.repeat_interleave(spec.out_per_group, dim=1)
    w_taps = weight.to(compute)[:, 0]  # (C, k_h, k_w): one weight per channel per tap
    bias_column = None if bias is None else bias.to(compute).view(-1, 1)  # (C, 1)
    taps = [(i, j) for i in range(spec.kernel_size[0]) for j in range(spec.kernel_size[1])]
    out = x.new_empty((x.shape[0], spec.out_channels, *spec.out_size), dtype=compute)
    channels = piece_channels(spec)
    for c0 in range(0, spec.out_channels, channels):
        block = slice(c0, c0 + channels)  # channels are independent: each piece is a whole depthwise conv
        phases = stride_phases(x[:, block], spec, compute)
        (i, j), *rest = taps
        out_flat = torch.mul(phases.rows(spec, i, j), w_taps[block, i, j, None])  # (C_piece, P) * (C_piece, 1)
        for i, j in rest:
            out_flat.addcmul_(phases.rows(spec, i, j), w_taps[block, i, j, None])
        if bias_column is not None:
            out_flat += bias_column[block]
        out[:, block] = phases.crop(out_flat, spec)
    return out.to(x.dtype)


ALGORITHM = register(
    Algorithm(
        name="depthwise",
        summary="one broadcast multiply-add per tap over channels-last stride phases; groups == C_in only",
        forward=forward,
        supports=supports,
        buffer_bytes=buffer_bytes,
        error_bound=exact,
        compiled=compiled,
    )
)
