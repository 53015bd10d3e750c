"""NaN and Inf propagation, determinism, and many threads at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import torch.nn.functional as F

import convlens

EXACT = ["direct", "im2col", "gemm"]  # each output is its own dot product, as in PyTorch
MIXING = ["winograd", "fft"]  # transforms mix a tile (Winograd) or a whole image (FFT)


def nonfinite_input(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 12, 12, generator=generator)
    x[0, 1, 3, 4] = float("nan")
    x[1, 2, 8, 1] = float("inf")
    x[1, 0, 0, 11] = float("-inf")
    return x


@pytest.mark.parametrize("algorithm", EXACT)
@pytest.mark.parametrize("padding", [0, 1, "same"])
def test_nan_and_inf_propagate_exactly_as_in_pytorch(algorithm: str, padding) -> None:
    x = nonfinite_input(0)
    w = torch.randn(3, 4, 3, 3)
    ours = convlens.conv2d(x, w, padding=padding, algorithm=algorithm)
    theirs = F.conv2d(x, w, padding=padding)
    assert torch.equal(torch.isnan(ours), torch.isnan(theirs))
    assert torch.equal(torch.isposinf(ours), torch.isposinf(theirs))
    assert torch.equal(torch.isneginf(ours), torch.isneginf(theirs))
    finite = torch.isfinite(theirs)
    torch.testing.assert_close(ours[finite], theirs[finite])


@pytest.mark.parametrize("algorithm", MIXING)
def test_nan_and_inf_spread_no_less_than_in_pytorch(algorithm: str) -> None:
    """Documented: Winograd and FFT mix values inside a tile or image, so a non-finite input makes
    every output it touches in PyTorch non-finite, and possibly more; finite outputs stay right."""
    x = nonfinite_input(1)
    w = torch.randn(3, 4, 3, 3)
    ours = convlens.conv2d(x, w, padding=1, algorithm=algorithm)
    theirs = F.conv2d(x, w, padding=1)
    assert not torch.isfinite(ours[~torch.isfinite(theirs)]).any()
    both_finite = torch.isfinite(ours) & torch.isfinite(theirs)
    torch.testing.assert_close(ours[both_finite], theirs[both_finite], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("algorithm", convlens.algorithms())
def test_repeated_calls_are_bitwise_identical(algorithm: str) -> None:
    torch.manual_seed(0)
    groups = 16 if algorithm in ("depthwise", "banded") else 1
    filters = 16 if algorithm == "banded" else 32  # banded: one filter per channel
    x, w, b = torch.randn(4, 16, 20, 20), torch.randn(filters, 16 // groups, 3, 3), torch.randn(filters)
    first = convlens.conv2d(x, w, b, padding=1, groups=groups, algorithm=algorithm)
    for _ in range(4):
        assert torch.equal(convlens.conv2d(x, w, b, padding=1, groups=groups, algorithm=algorithm), first)


def test_many_threads_share_the_caches_and_get_correct_results() -> None:
    """Eight threads, many shapes and weights, Winograd's and FFT's caches and autotuned auto shared."""
    from convlens.algos import auto

    torch.manual_seed(0)
    jobs = []
    for index in range(24):
        channels = 8 * (1 + index % 3)
        x = torch.randn(2, channels, 10 + index % 4, 12)
        w = torch.randn(channels, channels, 3, 3) / channels
        algorithm = ["winograd", "fft", "auto", "im2col"][index % 4]
        jobs.append((x, w, algorithm, F.conv2d(x, w, padding=1)))

    def run(job):
        x, w, algorithm, expected = job
        results = [convlens.conv2d(x, w, padding=1, algorithm=algorithm) for _ in range(3)]
        return all(torch.allclose(r, expected, rtol=1e-4, atol=1e-5) for r in results)

    auto.clear_cache()
    convlens.set_autotune(True)
    threads_before = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = list(pool.map(run, jobs * 2))
        choices = {key: choice.algorithm.name for key, choice in auto._timed.items()}
    finally:
        convlens.set_autotune(False)
        torch.set_num_threads(threads_before)
    assert all(outcomes)
    assert len(choices) == 3  # one timed choice per distinct shape, kept however many threads asked
    auto.clear_cache()
