"""Banded: depthwise as one product per kernel row, against PyTorch; its cached bands and buffers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens.algos import banded
from convlens.spec import ConvSpec
from helpers import Case, assert_same_layout, conv_cases, phases_made, reference_conv2d, tolerances


def runs_banded(case: Case) -> bool:
    x, w, b = case.tensors()
    return banded.supports(ConvSpec.from_args(x, w, b, **case.options)) is None


@settings(max_examples=60, deadline=None)
@given(case=conv_cases(strides=st.just(1), max_channels_per_group=1, max_groups=4).filter(runs_banded))
def test_matches_pytorch_on_random_depthwise_layers(case: Case) -> None:
    """Every padding, padding mode, dilation, layout and batch size that a stride-1, one-filter-per-
    channel depthwise layer can have (float64)."""
    x, w, b = case.tensors(torch.float64)
    ours = convlens.conv2d(x, w, b, **case.options, algorithm="banded")
    theirs = reference_conv2d(x, w, b, **case.options)
    torch.testing.assert_close(ours, theirs, **tolerances(torch.float64), msg=lambda m: f"{case}\n{m}")
    assert_same_layout(ours, theirs, case)


@pytest.mark.parametrize(
    "options",
    [
        {"padding": 3},  # ConvNeXt's 7x7
        {"padding": "same", "dilation": (2, 3)},  # asymmetric padding, dilated taps along both axes
        {"padding": (0, 4)},  # rows of every image past H_out, read across the image's edge
    ],
)
@pytest.mark.parametrize("batch", [1, 3])
def test_large_kernels_equal_pytorch(options: dict, batch: int) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 6, 9, 11, generator=generator, dtype=torch.float64)
    w = torch.randn(6, 1, 7, 5, generator=generator, dtype=torch.float64)
    b = torch.randn(6, generator=generator, dtype=torch.float64)
    ours = convlens.conv2d(x, w, b, groups=6, **options, algorithm="banded")
    theirs = reference_conv2d(x, w, b, groups=6, **options)
    torch.testing.assert_close(ours, theirs, **tolerances(torch.float64))


def test_a_weight_changed_in_place_gets_new_bands() -> None:
    x, w = torch.randn(2, 4, 8, 8), torch.randn(4, 1, 7, 7)
    before = convlens.conv2d(x, w, padding=3, groups=4, algorithm="banded")
    with torch.no_grad():
        w.mul_(2)
    after = convlens.conv2d(x, w, padding=3, groups=4, algorithm="banded")
    torch.testing.assert_close(after, 2 * before)


def test_predicted_buffers_are_the_ones_the_forward_takes() -> None:
    """The bench's extra-memory figure comes from ``buffer_bytes``: its bands must be the size of
    what the cache keeps, its phases the copy of the input the forward makes."""
    x, w = torch.randn(2, 5, 10, 12), torch.randn(5, 1, 7, 3)
    spec = ConvSpec.from_args(x, w, None, padding=(3, 1), groups=5)
    banded.BAND_CACHE.clear()
    with phases_made(banded) as made:
        convlens.conv2d(x, w, padding=(3, 1), groups=5, algorithm="banded")
    [(_, _, bands)] = banded.BAND_CACHE._entries.values()  # (weight ref, saved copy, bands)
    predicted = banded.buffer_bytes(spec, convlens.get_workspace_limit())
    assert bands.shape == (7, 5, 14, 12)  # (k_h, C, W_pad, W_out)
    assert bands.numel() * bands.element_size() == predicted["bands"]
    assert made == [predicted["phases"]]


@pytest.mark.parametrize(
    ("options", "reason"),
    [({"stride": 2}, "stride 1 only"), ({}, "one filter per channel")],
)
def test_refuses_what_it_cannot_run(options: dict, reason: str) -> None:
    x = torch.randn(1, 4, 8, 8)
    w = torch.randn(8 if not options else 4, 1, 3, 3)  # 8 filters for 4 channels: a channel multiplier of 2
    with pytest.raises(ValueError, match=reason):
        convlens.conv2d(x, w, groups=4, **options, algorithm="banded")
