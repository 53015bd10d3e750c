"""FFT convolution: correlation becomes a product of spectra. Cost independent of the kernel size.

By the correlation theorem, for one input channel and one filter (both zero-padded to the padded
input's size H_pad x W_pad, the kernel's taps placed ``dilation`` apart)::

    corr[y, x] = sum_{i, j} k[i, j] * x[y + i, x + j] = irfft2( rfft2(x) * conj(rfft2(k)) )[y, x]

which is exact (no wrap-around) for every window that lies inside the padded input, i.e. for
y <= H_pad - span_h. Summing over input channels happens in the frequency domain, one complex
matrix product per frequency::

    X   = rfft2(x_pad)                     (F, N, C_in)      F = H_pad * (W_pad // 2 + 1) frequencies
    K   = conj(rfft2(kernel))              (F, C_in, C_out)  cached per weight and size
    Y   = X @ K                            (F, N, C_out)
    out = irfft2(Y)[:, :, 0:H_valid:s_h, 0:W_valid:s_w]      (N, C_out, H_out, W_out)

Error bound: float32 FFTs add rounding that grows with log(H_pad * W_pad) and with the sum of
|x| * |k| over the window, not with the result; ``convlens verify`` measures it per layer. Fast
for large kernels (7x7 and up) at stride 1; with stride s it computes all outputs and keeps one
in s_h*s_w.
"""

from __future__ import annotations

import torch

from convlens.algos import Algorithm, accumulation_dtype, always, register
from convlens.algos.cache import TransformCache
from convlens.spec import ConvSpec
from convlens.unfold import zero_pad

SPECTRUM_CACHE = TransformCache()


def kernel_spectra(
    weight: torch.Tensor, size: tuple[int, int], dilation: tuple[int, int], groups: int, dtype: torch.dtype
) -> torch.Tensor:
    """conj(rfft2) of every dilated kernel at ``size``: (G, F, C_in/G, C_out/G)."""
    c_out, c_in_g, k_h, k_w = weight.shape
    spread = weight.new_zeros((c_out, c_in_g, *size), dtype=dtype)
    spread[:, :, : dilation[0] * (k_h - 1) + 1 : dilation[0], : dilation[1] * (k_w - 1) + 1 : dilation[1]] = weight
    spectra = torch.fft.rfft2(spread).conj()  # (C_out, C_in/G, H_pad, W_pad//2 + 1)
    spectra = spectra.flatten(2).view(groups, c_out // groups, c_in_g, -1)  # (G, C_out/G, C_in/G, F)
    return spectra.permute(0, 3, 2, 1).contiguous()  # (G, F, C_in/G, C_out/G)


def forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    x_pad = zero_pad(x, spec.padding)  # (N, C_in, H_pad, W_pad)
    compute = accumulation_dtype(x_pad.dtype)
    n, _, h_pad, w_pad = x_pad.shape
    if n == 0:  # MKL's FFT refuses an empty batch; there is nothing to transform
        return x_pad.new_zeros((0, spec.out_channels, *spec.out_size))
    groups, c_in_g = spec.groups, spec.in_per_group
    spectra_x = torch.fft.rfft2(x_pad.to(compute))  # (N, C_in, H_pad, W_pad//2 + 1)
    frequencies = spectra_x.shape[-2:]
    x_freq = spectra_x.flatten(2).view(n, groups, c_in_g, -1).permute(1, 3, 0, 2)  # (G, F, N, C_in/G)
    key = ((h_pad, w_pad), spec.dilation, groups, compute)
    k_freq = SPECTRUM_CACHE.get(
        weight, key, lambda _buffer: kernel_spectra(weight.to(compute), (h_pad, w_pad), spec.dilation, groups, compute)
    )
    y_freq = torch.matmul(x_freq, k_freq)  # (G, F, N, C_out/G): the channel sums, per frequency
    y_freq = y_freq.permute(2, 0, 3, 1).reshape(n, spec.out_channels, *frequencies)
    full = torch.fft.irfft2(y_freq, s=(h_pad, w_pad))  # (N, C_out, H_pad, W_pad): every window position
    h_out, w_out = spec.out_size
    (s_h, s_w) = spec.stride
    out = full[:, :, : s_h * (h_out - 1) + 1 : s_h, : s_w * (w_out - 1) + 1 : s_w]
    if bias is not None:
        out = out + bias.to(compute).view(1, -1, 1, 1)
    return out.to(x_pad.dtype)


ALGORITHM = register(
    Algorithm(
        name="fft",
        summary="correlation theorem: rfft2, a product of spectra per frequency, irfft2; for large kernels",
        forward=forward,
        supports=always,
    )
)
