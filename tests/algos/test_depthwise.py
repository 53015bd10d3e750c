"""The depthwise path in pieces of channels: every piece size gives PyTorch's answer."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from hypothesis import given, settings

import convlens
from convlens.algos import depthwise
from convlens.spec import ConvSpec
from helpers import Case, conv_cases, reference_conv2d, tolerances


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
