"""The transform cache's check that a weight still holds what its transform was computed from."""

from __future__ import annotations

import pytest
import torch

from convlens.algos.cache import TransformCache, memory_words, same_bits

LAYOUTS = ["contiguous", "channels_last", "transposed", "sliced", "odd bytes"]


def weight_in(layout: str, dtype: torch.dtype) -> torch.Tensor:
    if layout == "channels_last":
        return torch.randn(6, 4, 3, 3, dtype=dtype).to(memory_format=torch.channels_last)
    if layout == "transposed":
        return torch.randn(4, 6, 3, 3, dtype=dtype).transpose(0, 1)
    if layout == "sliced":  # gaps in memory: every other filter of a larger tensor
        return torch.randn(12, 4, 3, 3, dtype=dtype)[::2]
    if layout == "odd bytes":  # 3 elements: no whole 64-bit words
        return torch.randn(3, 1, 1, 1, dtype=dtype)
    return torch.randn(6, 4, 3, 3, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_one_ulp_anywhere_is_a_change(layout: str, dtype: torch.dtype) -> None:
    weight = weight_in(layout, dtype)
    saved = weight.clone()
    assert same_bits(saved, weight)
    for index in [(0, 0, 0, 0), tuple(size - 1 for size in weight.shape)]:
        changed = weight.clone()
        changed[index] = torch.nextafter(changed[index], torch.tensor(float("inf"), dtype=dtype))
        assert not same_bits(saved, changed), index


def test_bits_not_values() -> None:
    zeros = torch.zeros(4, 2)
    assert not same_bits(zeros, -zeros)  # equal values, different bits: transformed again, harmlessly
    nans = torch.full((4, 2), float("nan"))
    assert same_bits(nans, nans.clone())  # same bits, same transform: no need to recompute


def test_dense_weights_are_compared_as_64_bit_words() -> None:
    assert memory_words(torch.randn(6, 4, 3, 3)).dtype == torch.int64
    assert memory_words(torch.randn(6, 4, 3, 3).to(memory_format=torch.channels_last)).dtype == torch.int64
    assert memory_words(torch.randn(3, dtype=torch.float16)).dtype == torch.int16
    assert memory_words(torch.randn(12, 4)[::2]) is None  # gaps: compared by value instead


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cache_sees_writes_in_every_layout(layout: str) -> None:
    cache = TransformCache()
    weight = weight_in(layout, torch.float32)
    compute = lambda buffer: weight.clone()  # noqa: E731 - a stand-in transform: the values it saw
    cache.get(weight, (), compute)
    assert torch.equal(cache.get(weight, (), compute), weight) and cache.hits == 1
    weight.numpy()[0, 0, 0, 0] += 1.0  # through NumPy: autograd's version counter does not move
    assert torch.equal(cache.get(weight, (), compute), weight)
    assert cache.misses == 2
