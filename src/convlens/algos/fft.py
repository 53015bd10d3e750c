"""FFT convolution: correlation becomes a product of spectra. Cost independent of the kernel size.

By the correlation theorem, for one input channel and one filter, both zero-extended to an FFT
size H_f x W_f at least the padded input's H_pad x W_pad (the kernel's taps placed ``dilation``
apart)::

    corr[y, x] = sum_{i, j} k[i, j] * x[y + i, x + j] = irfft2( rfft2(x) * conj(rfft2(k)) )[y, x]

which is exact (no wrap-around) for every window that lies inside the padded input, i.e. for
y <= H_pad - span_h. Summing over input channels happens in the frequency domain, one complex
matrix product per frequency::

    X   = rfft2(x_pad, s=(H_f, W_f))       (F, N, C_in)      F = H_f * (W_f // 2 + 1) frequencies
    K   = conj(rfft2(kernel))              (F, C_in, C_out)  cached per weight and size
    Y   = X @ K                            (F, N, C_out)     (with one input channel per group,
                                                              as in depthwise, a broadcast product)
    out = irfft2(Y)[:, :, 0:H_valid:s_h, 0:W_valid:s_w]      (N, C_out, H_out, W_out)

The FFT size is the padded size rounded up to an even length with no prime factor above 13
(``fft_length``): the FFT library takes such lengths several times faster than one with a large
prime factor (62 = 2*31, the padded 56 of a 7x7 layer, against 64; ``python
benchmarks/fft_sizes.py``). The extra rows and columns are zeros, like the padding's bottom and
right edges, which the zero extension of ``rfft2(..., s=...)`` writes too: only the top and left
padding are copied.

Cost: the two FFTs grow with N * (C_in + C_out) * H_f W_f log(H_f W_f); the products read the
cached K, C_in * C_out complex values per frequency, once per call for all N images, so at small
batches they run at memory speed. Neither grows with the kernel, while im2col's work grows with
k_h * k_w: FFT wins for large kernels at stride 1 (``auto``'s rule 3 says where). With stride
s it computes all outputs and keeps one in s_h*s_w.

Error bound: float32 FFTs add rounding that grows with log(H_f * W_f) and with the sum of
|x| * |k| over the window, not with the result; ``convlens verify`` measures it per layer.
"""

from __future__ import annotations

import torch

from convlens.algos import Algorithm, accumulation_dtype, exact, real_only, register
from convlens.algos.cache import TransformCache
from convlens.spec import ConvSpec
from convlens.unfold import zero_pad

SPECTRUM_CACHE = TransformCache()
FAST_PRIMES = (2, 3, 5, 7, 11, 13)  # FFT lengths made of these alone, and even, are fast; see fft_length


def fft_length(n: int) -> int:
    """The smallest even number at least ``n`` whose prime factors are all in FAST_PRIMES.

    Why: MKL's FFT takes a side with a prime factor of 17 or more (62 = 2*31, 34 = 2*17), or an
    odd side, markedly longer per value; evidence: ``python benchmarks/fft_sizes.py`` (whole
    layers; benchmarks/RESULTS.md).
    """
    length = max(2, n + n % 2)
    while True:
        rest = length
        for prime in FAST_PRIMES:
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return length
        length += 2


def fft_size(spec: ConvSpec) -> tuple[int, int]:
    """(H_f, W_f): the padded input's size, each side rounded up to a fast FFT length."""
    h_pad, w_pad = spec.padded_size
    return fft_length(h_pad), fft_length(w_pad)


def frequency_count(spec: ConvSpec) -> int:
    """F = H_f * (W_f // 2 + 1): the frequencies of one real H_f x W_f transform."""
    h_f, w_f = fft_size(spec)
    return h_f * (w_f // 2 + 1)


def buffer_bytes(spec: ConvSpec, workspace: int) -> dict[str, int]:
    """Bytes of the buffers the forward uses besides input, weight and output, predicted from the
    shapes: the input's spectra (and their copy by frequency that the product reads), the output's
    spectra (and their copy back by image), every window position before the stride's pick, and
    the kernel spectra kept in SPECTRUM_CACHE with its saved copy of the weight."""
    n, frequencies = spec.batch, frequency_count(spec)
    complex_size = 2 * accumulation_dtype(spec.dtype).itemsize
    h_f, w_f = fft_size(spec)
    return {
        "input spectra": 2 * n * spec.in_channels * frequencies * complex_size,
        "output spectra": 2 * n * spec.out_channels * frequencies * complex_size,
        "full output": n * spec.out_channels * h_f * w_f * complex_size // 2,
        "kernel spectra": spec.in_per_group * spec.out_channels * frequencies * complex_size,
        "saved weight": spec.out_channels * spec.in_per_group * spec.taps * spec.dtype.itemsize,  # the cache's copy
    }


def kernel_spectra(
    weight: torch.Tensor, size: tuple[int, int], dilation: tuple[int, ...], groups: int, dtype: torch.dtype
) -> torch.Tensor:
    """conj(rfft2) of every dilated kernel at ``size``: (G, F, C_in/G, C_out/G)."""
    c_out, c_in_g, k_h, k_w = weight.shape
    spread = weight.new_zeros((c_out, c_in_g, *size), dtype=dtype)
    spread[:, :, : dilation[0] * (k_h - 1) + 1 : dilation[0], : dilation[1] * (k_w - 1) + 1 : dilation[1]] = weight
    spectra = torch.fft.rfft2(spread).conj()  # (C_out, C_in/G, H_f, W_f//2 + 1)
    spectra = spectra.flatten(2).view(groups, c_out // groups, c_in_g, -1)  # (G, C_out/G, C_in/G, F)
    return spectra.permute(0, 3, 2, 1).contiguous()  # (G, F, C_in/G, C_out/G)


def forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
) -> torch.Tensor:
    top, _, left, _ = spec.padding
    x_top_left = zero_pad(x, (top, 0, left, 0))  # the bottom and right zeros come with the FFT's zero extension
    compute = accumulation_dtype(x.dtype)
    n = x.shape[0]
    if n == 0:  # MKL's FFT refuses an empty batch; there is nothing to transform
        return x.new_zeros((0, spec.out_channels, *spec.out_size))
    groups, c_in_g = spec.groups, spec.in_per_group
    size = fft_size(spec)  # (H_f, W_f) >= (H_pad, W_pad)
    spectra_x = torch.fft.rfft2(x_top_left.to(compute), s=size)  # (N, C_in, H_f, W_f//2 + 1)
    frequencies = spectra_x.shape[-2:]
    x_freq = spectra_x.flatten(2).view(n, groups, c_in_g, -1).permute(1, 3, 0, 2)  # (G, F, N, C_in/G)
    key = (size, spec.dilation, groups, compute)
    k_freq = SPECTRUM_CACHE.get(
        weight, key, lambda _buffer: kernel_spectra(weight.to(compute), size, spec.dilation, groups, compute)
    )
    # (G, F, N, C_out/G): the channel sums, per frequency; with one input channel per group
    # (depthwise) each sum has one term, a broadcast product (G, F, N, 1) * (G, F, 1, C_out/G)
    y_freq = x_freq * k_freq if c_in_g == 1 else torch.matmul(x_freq, k_freq)
    y_freq = y_freq.permute(2, 0, 3, 1).reshape(n, spec.out_channels, *frequencies)
    full = torch.fft.irfft2(y_freq, s=size)  # (N, C_out, H_f, W_f): every window position, and more
    h_out, w_out = spec.out_size
    (s_h, s_w) = spec.stride
    out = full[:, :, : s_h * (h_out - 1) + 1 : s_h, : s_w * (w_out - 1) + 1 : s_w]
    if bias is not None:
        out = out + bias.to(compute).view(1, -1, 1, 1)
    return out.to(x.dtype)


ALGORITHM = register(
    Algorithm(
        name="fft",
        summary="correlation theorem: rfft2, a product of spectra per frequency, irfft2; for large kernels",
        forward=forward,
        supports=real_only,
        buffer_bytes=buffer_bytes,
        error_bound=exact,
        mixes_values=True,
    )
)
