"""Fuzzing bad arguments: every case either gives PyTorch's result or raises ValueError / TypeError
whose message names an argument. Nothing crashes, hangs (each example has a deadline) or
allocates without bound (sizes stay small; huge requests are refused before allocating)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import event, given, settings
from hypothesis import strategies as st

import convlens
from helpers import outcome, reference_conv2d

JUNK_SCALARS = st.one_of(
    st.integers(-3, 6),
    st.floats(allow_nan=True),
    st.none(),
    st.booleans(),
    st.text(max_size=6),
    st.sampled_from([np.int64(2), torch.tensor(1), torch.tensor([1, 2]), torch.tensor(1.5), 2 + 1j, object()]),
)
JUNK_PAIRS = st.one_of(
    JUNK_SCALARS, st.lists(JUNK_SCALARS, max_size=4).map(tuple), st.lists(st.integers(-2, 4), max_size=3)
)
DTYPES = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64, torch.bool, torch.complex64])


@st.composite
def tensors(draw, max_rank: int = 5):
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=max_rank))
    return torch.zeros(shape, dtype=draw(DTYPES)) + (1 if draw(st.booleans()) else 0)


ARGUMENT_NAMES = (
    "input",
    "weight",
    "bias",
    "stride",
    "padding",
    "dilation",
    "groups",
    "padding_mode",
    "algorithm",
    "kernel_size",
    "output_size",
    "in_channels",
    "out_channels",
    "workspace_limit",
    "input_size",
)


def assert_named_refusal(error: Exception) -> None:
    assert isinstance(error, (ValueError, TypeError)), f"{type(error).__name__}: {error}"
    assert any(name in str(error) for name in ARGUMENT_NAMES), f"message names no argument: {error}"


@settings(max_examples=300, deadline=5000)
@given(
    x=st.one_of(tensors(), JUNK_SCALARS),
    w=st.one_of(tensors(), JUNK_SCALARS),
    b=st.one_of(st.none(), tensors(2)),
    stride=JUNK_PAIRS,
    padding=st.one_of(JUNK_PAIRS, st.sampled_from(["same", "valid", "full"])),
    dilation=JUNK_PAIRS,
    groups=JUNK_SCALARS,
    mode=st.one_of(st.sampled_from(["zeros", "reflect", "replicate", "circular"]), JUNK_SCALARS),
    algorithm=st.one_of(st.sampled_from(convlens.algorithms()), JUNK_SCALARS),
)
def test_conv2d(x, w, b, stride, padding, dilation, groups, mode, algorithm) -> None:
    ours, error = outcome(
        convlens.conv2d, x, w, b, stride, padding, dilation, groups, padding_mode=mode, algorithm=algorithm
    )
    if error is not None:
        event("refused")
        assert_named_refusal(error)
        return
    event("accepted")
    theirs, torch_error = outcome(reference_conv2d, x, w, b, stride, padding, dilation, groups, mode)
    assert torch_error is None, f"convlens accepted what PyTorch refuses: {torch_error}"
    tolerance = {"rtol": 1e-3, "atol": 1e-3} if x.dtype == torch.float16 else {}
    torch.testing.assert_close(ours, theirs, **tolerance)


@settings(max_examples=200, deadline=5000)
@given(
    x=st.one_of(tensors(), JUNK_SCALARS), kernel=JUNK_PAIRS, dilation=JUNK_PAIRS, padding=JUNK_PAIRS, stride=JUNK_PAIRS
)
def test_unfold(x, kernel, dilation, padding, stride) -> None:
    ours, error = outcome(convlens.unfold, x, kernel, dilation, padding, stride)
    if error is not None:
        assert_named_refusal(error)
        return
    theirs, torch_error = outcome(F.unfold, x, kernel, dilation, padding, stride)
    assert torch_error is None, torch_error
    torch.testing.assert_close(ours, theirs)


@settings(max_examples=200, deadline=5000)
@given(
    cols=st.one_of(tensors(4), JUNK_SCALARS),
    size=JUNK_PAIRS,
    kernel=JUNK_PAIRS,
    dilation=JUNK_PAIRS,
    padding=JUNK_PAIRS,
    stride=JUNK_PAIRS,
)
def test_fold(cols, size, kernel, dilation, padding, stride) -> None:
    ours, error = outcome(convlens.fold, cols, size, kernel, dilation, padding, stride)
    if error is not None:
        assert_named_refusal(error)
        return
    theirs, torch_error = outcome(F.fold, cols, size, kernel, dilation, padding, stride)
    assert torch_error is None, torch_error
    torch.testing.assert_close(ours, theirs)


@settings(max_examples=200, deadline=5000)
@given(
    size=JUNK_PAIRS,
    kernel=JUNK_PAIRS,
    stride=JUNK_PAIRS,
    padding=st.one_of(JUNK_PAIRS, st.just("same")),
    dilation=JUNK_PAIRS,
)
def test_output_size(size, kernel, stride, padding, dilation) -> None:
    ours, error = outcome(convlens.output_size, size, kernel, stride, padding, dilation)
    if error is not None:
        assert_named_refusal(error)
        return
    assert isinstance(ours, tuple) and len(ours) == 2 and min(ours) >= 1
    # The formula agrees with what PyTorch computes for a real tensor of that size.
    x = torch.zeros(1, 1, *convlens.spec.to_pair("input_size", size))
    w = torch.zeros(1, 1, *convlens.spec.to_pair("kernel_size", kernel))
    assert tuple(F.conv2d(x, w, None, stride, padding, dilation).shape[-2:]) == ours


@settings(max_examples=200, deadline=5000)
@given(
    in_channels=JUNK_SCALARS,
    out_channels=JUNK_SCALARS,
    kernel=JUNK_PAIRS,
    stride=JUNK_PAIRS,
    padding=st.one_of(JUNK_PAIRS, st.sampled_from(["same", "valid"])),
    dilation=JUNK_PAIRS,
    groups=JUNK_SCALARS,
    bias=st.one_of(st.booleans(), JUNK_SCALARS),
    mode=st.one_of(st.sampled_from(["zeros", "circular"]), JUNK_SCALARS),
)
def test_nn_conv2d_constructor(
    in_channels, out_channels, kernel, stride, padding, dilation, groups, bias, mode
) -> None:
    args = (in_channels, out_channels, kernel, stride, padding, dilation, groups, bias, mode)
    ours, error = outcome(convlens.nn.Conv2d, *args)
    if error is not None:
        assert_named_refusal(error)
        return
    theirs, torch_error = outcome(torch.nn.Conv2d, *args)
    assert torch_error is None, torch_error
    assert repr(ours) == repr(theirs)
    assert ours.weight.shape == theirs.weight.shape


@pytest.mark.parametrize("padding", [10**6, (10**5, 10**5)])  # 14,901 GiB and 149 GiB padded inputs
def test_a_huge_request_is_refused_before_allocating(padding) -> None:
    with pytest.raises(ValueError, match="padding"):
        convlens.conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 3, 3), padding=padding)
