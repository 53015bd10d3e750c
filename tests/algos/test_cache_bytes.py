"""Every kept cache of transformed weights is bounded in bytes (convlens.set_cache_limit), and the
algorithms' buffer_bytes count what it keeps."""

from __future__ import annotations

import torch

import convlens
from convlens.algos import fft


def test_one_weight_at_many_input_sizes_stays_within_the_byte_limit() -> None:
    """The issue's case, scaled down: one weight, batch 4, many input sizes: one spectra entry per
    size. Before, only the entry count (64) bounded it: 19 sizes kept 1.77 GiB."""
    weight = torch.randn(16, 16, 7, 7)
    sizes = range(12, 40, 3)
    largest = convlens.ConvSpec.from_args(torch.empty(4, 16, sizes[-1], sizes[-1]), weight, padding=3)
    predicted = fft.buffer_bytes(largest, convlens.get_workspace_limit())
    limit = 2 * (predicted["kernel spectra"] + predicted["saved weight"])  # room for the two largest entries
    fft.SPECTRUM_CACHE.clear()
    with convlens.settings(cache_limit=limit):
        for size in sizes:
            convlens.conv2d(torch.randn(4, 16, size, size), weight, padding=3, algorithm="fft")
            assert fft.SPECTRUM_CACHE.nbytes <= limit
        assert len(fft.SPECTRUM_CACHE) >= 2  # still a cache: the recent sizes are kept
        assert len(fft.SPECTRUM_CACHE) < len(sizes)  # and the older ones went
    fft.SPECTRUM_CACHE.clear()


def test_a_transform_larger_than_the_limit_is_used_but_not_kept() -> None:
    fft.SPECTRUM_CACHE.clear()
    x, weight = torch.randn(1, 8, 20, 20), torch.randn(8, 8, 5, 5)
    with convlens.settings(cache_limit=1024):
        out = convlens.conv2d(x, weight, padding=2, algorithm="fft")
    torch.testing.assert_close(out, torch.nn.functional.conv2d(x, weight, padding=2), rtol=1e-4, atol=1e-4)
    assert len(fft.SPECTRUM_CACHE) == 0 and fft.SPECTRUM_CACHE.nbytes == 0


def test_buffer_bytes_counts_what_the_cache_keeps() -> None:
    fft.SPECTRUM_CACHE.clear()
    x, weight = torch.randn(2, 8, 16, 16), torch.randn(8, 8, 5, 5)
    convlens.conv2d(x, weight, padding=2, algorithm="fft")
    spec = convlens.ConvSpec.from_args(x, weight, padding=2)
    predicted = fft.buffer_bytes(spec, convlens.get_workspace_limit())
    assert fft.SPECTRUM_CACHE.nbytes == predicted["kernel spectra"] + predicted["saved weight"]
    fft.SPECTRUM_CACHE.clear()
