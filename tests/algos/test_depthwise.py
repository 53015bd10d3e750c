"""The depthwise path in pieces of channels: every piece size gives PyTorch's answer."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from hypothesis import given, settings

import convlens
from convlens.algos import depthwise
from convlens.spec import ConvSpec
from helpers import Case, conv_cases, phases_made, reference_conv2d, tolerances


def is_depthwise(case: Case) -> bool:
    x, w, b = case.tensors()
    return ConvSpec.from_args(x, w, b, **case.options).is_depthwise


@pytest.mark.parametrize("pieces", [1, 100, 1 << 30], ids=["one channel each", "a few channels", "one piece"])
@settings(max_examples=40, deadline=None)
@given(case=conv_cases(max_groups=4).filter(is_depthwise))
def test_every_piece_size_matches_pytorch(pieces: int, case: Case) -> None:
    x, w, b = case.tensors(torch.float64)
    with mock.patch.object(depthwise, "PIECE_BYTES", pieces):
        ours = convlens.conv2d(x, w, b, **case.options, algorithm="depthwise")
    theirs = reference_conv2d(x, w, b, **case.options)
    torch.testing.assert_close(ours, theirs, **tolerances(torch.float64), msg=lambda m: f"{case}\n{m}")


@pytest.mark.parametrize("options", [{"padding": 1}, {"stride": 2, "padding": 1}, {"dilation": 2}])
def test_predicted_phases_are_the_ones_the_forward_makes(options: dict) -> None:
    """The bench's extra-memory figure for depthwise comes from ``buffer_bytes``: its phases must be
    the largest piece's phases the forward really makes."""
    x, w = torch.randn(2, 12, 15, 15), torch.randn(12, 1, 3, 3)
    spec = ConvSpec.from_args(x, w, groups=12, **options)
    python_path = mock.patch.object(depthwise, "native", False)  # the compiled kernel makes no phases
    with python_path, mock.patch.object(depthwise, "PIECE_BYTES", 2000), phases_made(depthwise) as made:
        convlens.conv2d(x, w, groups=12, **options, algorithm="depthwise")
        predicted = depthwise.buffer_bytes(spec, convlens.get_workspace_limit())
    assert len(made) > 1  # several pieces of channels
    assert max(made) == predicted["phases"]
    if convlens.native.available():  # the compiled kernel: no phases made, none predicted
        with phases_made(depthwise) as made:
            convlens.conv2d(x, w, groups=12, **options, algorithm="depthwise")
        assert made == [] and depthwise.buffer_bytes(spec, convlens.get_workspace_limit())["phases"] == 0
