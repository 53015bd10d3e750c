"""Direct convolution: the readable reference, a sum over kernel taps. No im2col.

Convolution in deep learning is cross-correlation: the kernel is **not** flipped. For every
tap (i, j) of the k_h x k_w kernel, every output position reads the input at the same offset
``(i*d_h, j*d_w)`` from its window corner, so the inputs read by one tap for all outputs form
one strided slice of the padded input::

    out = bias
    for i in range(k_h):
        for j in range(k_w):
            x_tap = x_pad[:, :, i*d_h : : s_h, j*d_w : : s_w]     # (N, C_in, H_out, W_out)
            w_tap = weight[:, :, i, j]                            # (C_out, C_in/G)
            out  += w_tap applied channel-wise to x_tap           # (N, C_out, H_out, W_out)

With groups G, channels split into G independent blocks::

    x_tap  (N, C_in, H_out, W_out)  -> (N, G, C_in/G, H_out, W_out)
    w_tap  (C_out, C_in/G)          -> (G, C_out/G, C_in/G)
    out   += einsum("goc,ngchw->ngohw")  (N, G, C_out/G, H_out, W_out)

k_h*k_w small products, each a matrix multiply over channels. float16 and bfloat16 are
accumulated in float32 and rounded once at the end, as PyTorch's kernels do.

The same loop runs over every spatial dimension there is: over (i, j, l) taps of a k_d x k_h x k_w
kernel for a 3-D convolution, each tap's slice (N, C_in, D_out, H_out, W_out). This is the
3-D convolution's readable reference too, and autograd differentiates it step by step (the 2-D
one has the shared backward of :mod:`convlens.autograd`).

A 2-D float32 forward on the CPU runs the same sum in C where the compiled core is built
(src/convlens/native/direct.c: one pass over the output, each output row accumulating every tap
of every input channel of its group); ``forward_python`` stays the reference.
"""

from __future__ import annotations

from types import EllipsisType

import torch

from convlens import native as native_kernels
from convlens.algos import Algorithm, accumulation_dtype, always, exact, register
from convlens.spec import ConvSpec, volume
from convlens.unfold import tap_slices, taps, zero_pad

native = True  # whether a 2-D float32 forward uses the compiled kernel (tests switch it off to test both)


def compiled(spec: ConvSpec) -> bool:
    """Whether the forward of this spec runs direct.c (given plain float32 CPU tensors)."""
    return native and native_kernels.takes(spec)


def buffer_bytes(spec: ConvSpec, workspace: int) -> dict[str, int]:
    """Bytes beyond input, weight and output, predicted from the shapes: the zero-``padded input``
    (a fresh tensor), its float32 ``compute copy`` and the float32 ``accumulator`` for float16 and
    bfloat16, and one tap's ``tap product`` (the einsum's result, a fresh tensor per tap); none when
    the compiled kernel takes the call (it writes the output directly)."""
    if compiled(spec):
        return {"padded input": 0, "compute copy": 0, "accumulator": 0, "tap product": 0}
    itemsize, compute = spec.dtype.itemsize, accumulation_dtype(spec.dtype).itemsize
    padded = spec.batch * spec.in_channels * volume(spec.padded_size)
    outputs = spec.batch * spec.out_channels * volume(spec.out_size)
    widened = compute != itemsize
    return {
        "padded input": padded * itemsize if any(spec.padding) else 0,
        "compute copy": padded * compute if widened else 0,
        "accumulator": outputs * compute if widened else 0,
        "tap product": outputs * compute,
    }


def forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    if native and native_kernels.runs_direct(x, weight, bias, spec):  # the same sum in one pass, in C
        return native_kernels.direct_forward(x, weight, bias, spec)
    return forward_python(x, weight, bias, spec)


def forward_python(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> torch.Tensor:
    """The reference: one channel-mixing product per tap (the module docstring)."""
    x_pad = zero_pad(x, spec.padding)  # (N, C_in, H_pad, W_pad)
    groups = spec.groups
    acc = accumulation_dtype(x_pad.dtype)
    x_groups = x_pad.to(acc).unflatten(1, (groups, spec.in_per_group))  # (N, G, C_in/G, H_pad, W_pad)
    w_groups = weight.to(acc).unflatten(0, (groups, spec.out_per_group))  # (G, C_out/G, C_in/G, k_h, k_w)

    out: torch.Tensor | None = None
    for tap in taps(spec.kernel_size):  # (i, j) in 2-D
        read: tuple[EllipsisType | slice, ...] = (..., *tap_slices(tap, spec.dilation, spec.stride, spec.out_size))
        tap_index: tuple[EllipsisType | int, ...] = (..., *tap)
        x_tap = x_groups[read]  # (N, G, C_in/G, H_out, W_out)
        w_tap = w_groups[tap_index]  # (G, C_out/G, C_in/G)
        products = torch.einsum("goc,ngc...->ngo...", w_tap, x_tap)  # (N, G, C_out/G, H_out, W_out)
        if out is None:
            out = products  # the first tap's, a fresh tensor (batched under vmap as its inputs are)
        else:
            out += products
    assert out is not None  # a kernel has at least one tap

    out = out.flatten(1, 2)  # (N, C_out, H_out, W_out)
    if bias is not None:
        out = out + bias.to(acc).view(1, -1, *(1,) * spec.rank)
    return out.to(x_pad.dtype)


ALGORITHM = register(
    Algorithm(
        name="direct",
        summary="sum over the k_h*k_w kernel taps of (shifted input slice) x (weight slice); no im2col",
        forward=forward,
        supports=always,
        buffer_bytes=buffer_bytes,
        error_bound=exact,
        compiled=compiled,
        ranks=(2, 3),
    )
)
