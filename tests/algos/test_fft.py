"""FFT: its transform size, its depthwise product, and its buffers."""

from __future__ import annotations

import pytest
import torch

import convlens
from convlens.algos import fft
from convlens.spec import ConvSpec
from helpers import allocations, reference_conv2d, tolerances


def is_fast(n: int) -> bool:
    return n % 2 == 0 and all(prime <= 13 for prime in prime_factors(n))


def prime_factors(n: int) -> list[int]:
    factors, divisor = [], 2
    while divisor * divisor <= n:
        while n % divisor == 0:
            factors.append(divisor)
            n //= divisor
        divisor += 1
    return [*factors, n] if n > 1 else factors


@pytest.mark.parametrize("n", range(1, 300))
def test_fft_length_is_the_next_even_13_smooth_number(n: int) -> None:
    length = fft.fft_length(n)
    assert length >= n and is_fast(length)
    assert not any(is_fast(smaller) for smaller in range(n, length))


def test_fft_length_rounds_the_slow_padded_sizes_up() -> None:
    assert [fft.fft_length(n) for n in (62, 34, 17, 63, 64, 66, 1)] == [64, 36, 18, 64, 64, 66, 2]


@pytest.mark.parametrize(
    "options",
    [
        {"padding": 3},  # 56 + 6 = 62 -> 64 rows, 11 + 6 = 17 -> 18 columns: past the padding
        {"padding": "same", "dilation": (2, 1)},  # asymmetric padding; 56 + 12 = 68 -> 70 rows
        {"padding": (0, 5), "stride": (2, 3)},  # 11 + 10 = 21 -> 22 columns; strided picks from them
    ],
)
@pytest.mark.parametrize("groups", [1, 2, 8])  # 8: depthwise, the broadcast product
def test_rounded_transform_size_equals_pytorch(options: dict, groups: int) -> None:
    """Rows and columns past the padded input are zeros, like the padding's bottom and right: the
    correlation of every window is unchanged (float64, against PyTorch)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 56, 11, generator=generator, dtype=torch.float64)
    w = torch.randn(16, 8 // groups, 7, 4, generator=generator, dtype=torch.float64)
    b = torch.randn(16, generator=generator, dtype=torch.float64)
    spec = ConvSpec.from_args(x, w, b, groups=groups, **options)
    assert fft.fft_size(spec) != spec.padded_size  # the case this test is about
    ours = convlens.conv2d(x, w, b, groups=groups, **options, algorithm="fft")
    torch.testing.assert_close(ours, reference_conv2d(x, w, b, groups=groups, **options), **tolerances(torch.float64))


def test_predicted_kernel_spectra_are_the_cached_ones() -> None:
    """The bench's extra-memory figure for FFT comes from ``buffer_bytes``: its kernel spectra
    must be the size of what the cache keeps, at the rounded size, and its other buffers the
    sizes of the tensors the forward really allocates (measured with helpers.allocations)."""
    x, w = torch.randn(4, 6, 13, 9), torch.randn(12, 3, 5, 5)
    spec = ConvSpec.from_args(x, w, None, padding=2, groups=2)
    fft.SPECTRUM_CACHE.clear()
    with torch.no_grad(), allocations() as made:
        convlens.conv2d(x, w, padding=2, groups=2, algorithm="fft")
    [(_, _, cached)] = fft.SPECTRUM_CACHE._entries.values()  # (weight ref, saved copy, spectra)
    predicted = fft.buffer_bytes(spec, convlens.get_workspace_limit())
    assert cached.numel() * cached.element_size() == predicted["kernel spectra"]
    h_f, w_f = fft.fft_size(spec)
    assert (h_f, w_f) == (18, 14)  # 13 + 4 = 17 -> 18, 9 + 4 = 13 -> 14
    # What the forward made: the product of spectra reads the cached kernel spectra and the input's
    # spectra copied by frequency (a copy of the input's rfft2); irfft2 reads the product copied
    # back by image and writes every window position (the full output).
    [full] = [a for a in made if a.op == "_fft_c2r"]
    [product] = [a for a in made if a.op in ("bmm", "mm", "mul")]
    [kernel_read] = [made[i] for i in product.reads if made[i].address == cached.data_ptr()]
    [input_copy] = [made[i] for i in product.reads if made[i] is not kernel_read]
    [input_spectra] = [made[i] for i in input_copy.reads]
    [output_copy] = [made[i] for i in full.reads]
    assert input_spectra.op == "_fft_r2c" and input_spectra.shape[:2] == (4, 6)  # the input's transform
    assert predicted["full output"] == full.nbytes
    assert predicted["input spectra"] == input_spectra.nbytes + input_copy.nbytes
    assert predicted["output spectra"] == product.nbytes + output_copy.nbytes
