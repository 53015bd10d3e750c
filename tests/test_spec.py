"""Argument rules: the same combinations accepted and refused as torch.nn.functional.conv2d,
and every refusal a ValueError/TypeError that names the argument, its value and the rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import event, given, settings
from hypothesis import strategies as st

import convlens
from convlens.spec import ConvSpec, output_size
from helpers import outcome

X = torch.randn(2, 4, 8, 8)
W = torch.randn(6, 2, 3, 3)


# ---- messages --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"stride": 0}, ValueError, r"stride must be positive, got stride=\(0, 0\)"),
        ({"stride": (1, 1, 1)}, ValueError, r"stride must be a single int or a tuple of 2 ints.*stride=\(1, 1, 1\)"),
        ({"stride": 1.5}, TypeError, r"stride must be an int or a tuple of ints, got float stride=1.5"),
        ({"stride": True}, TypeError, r"stride must be an int, got bool stride=True"),
        ({"dilation": torch.tensor([1, 2])}, TypeError, r"a tensor passes only with one integer element"),
        ({"padding": -1}, ValueError, r"padding must be non-negative .*padding=\(-1, -1\)"),
        ({"padding": "SAME"}, ValueError, r"padding must be .*'valid' or 'same', got padding='SAME'"),
        ({"padding": "same", "stride": 2}, ValueError, r"padding='same' requires stride=1, got stride=\(2, 2\)"),
        ({"dilation": (1, 0)}, ValueError, r"dilation must be positive, got dilation=\(1, 0\)"),
        ({"groups": 0}, ValueError, r"groups must be positive, got groups=0"),
        ({"groups": 4}, ValueError, r"out_channels=6.*multiple of groups=4"),
        ({"groups": 1}, ValueError, r"input has 4 channels but weight of shape \(6, 2, 3, 3\) with groups=1 expects"),
        ({"padding_mode": "mirror"}, ValueError, r"padding_mode must be one of .*got padding_mode='mirror'"),
        ({"padding_mode": "reflect", "padding": 8}, ValueError, r"reflect' needs padding < input height"),
        (
            {"bias": torch.randn(5)},
            ValueError,
            r"bias must be 1-D with out_channels=6 elements, got bias of shape \(5,\)",
        ),
        ({"bias": torch.randn(6).double()}, TypeError, r"bias and input must have the same dtype"),
    ],
)
def test_bad_arguments_name_argument_value_and_rule(kwargs, error, pattern) -> None:
    args = {"groups": 2, **kwargs}
    bias = args.pop("bias", None)
    with pytest.raises(error, match=pattern):
        convlens.conv2d(X, W, bias, **args)


def test_kernel_larger_than_input_shows_the_formula_with_the_numbers() -> None:
    with pytest.raises(ValueError) as caught:
        convlens.conv2d(torch.randn(1, 3, 4, 6), torch.randn(1, 3, 5, 3), padding=(0, 1), dilation=(1, 2))
    message = str(caught.value)
    assert "kernel_size=(5, 3) with dilation=(1, 2) spans 5x5, larger than the padded input 4x8" in message
    assert "H_out = floor((H + pad + pad - dilation*(kernel-1) - 1) / stride) + 1" in message
    assert "floor((4 + 0 + 0 - 1*(5-1) - 1) / 1) + 1 = 0" in message
    assert "floor((6 + 1 + 1 - 2*(3-1) - 1) / 1) + 1 = 4" in message


@pytest.mark.parametrize(
    ("x", "w", "error", "pattern"),
    [
        (torch.randn(8, 8), W, ValueError, r"input must be 3-D \(C, H, W\) or 4-D \(N, C, H, W\), got input of shape"),
        (X, torch.randn(6, 2, 3), ValueError, r"weight must be 4-D"),
        (X.long(), W.long(), TypeError, r"input must be a floating-point tensor .* got input.dtype=torch.int64"),
        (X.bool(), W.bool(), TypeError, r"input.dtype=torch.bool"),
        (X.to(torch.complex64), W.to(torch.complex64), TypeError, r"input.dtype=torch.complex64"),
        (X.double(), W, TypeError, r"weight and input must have the same dtype"),
        (torch.randn(1, 4, 0, 5), W, ValueError, r"height and width must be non-zero"),
        (X.numpy(), W, TypeError, r"input must be a torch.Tensor, got ndarray"),
    ],
)
def test_bad_tensors(x, w, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        convlens.conv2d(x, w, groups=2)


def test_checks_run_before_any_allocation() -> None:
    """A huge input with a bad argument fails at once, in the spec, without touching memory."""
    huge = torch.empty(0, 4, 100_000, 100_000)  # no elements, but the sizes would need terabytes of columns
    with pytest.raises(ValueError, match="stride must be positive"):
        convlens.conv2d(huge, W, stride=0, groups=2)


def test_output_size_is_the_formula() -> None:
    assert output_size(32, 5) == (28, 28)
    assert output_size((5, 5), 3, stride=2, padding=1) == (3, 3)
    assert output_size((7, 9), (2, 4), padding="same") == (7, 9)
    assert output_size((10, 11), 3, stride=(2, 3), padding=(1, 0), dilation=2) == (4, 3)
    pytorch_shape = F.conv2d(torch.randn(1, 1, 10, 11), torch.randn(1, 1, 3, 3), None, (2, 3), (1, 0), 2).shape
    assert pytorch_shape[-2:] == (4, 3)
    with pytest.raises(ValueError, match="floor"):
        output_size(4, 5)
    with pytest.raises(ValueError, match="padding='same' requires stride=1"):
        output_size(8, 3, stride=2, padding="same")


def test_cols_bytes_predicts_the_im2col_buffer() -> None:
    spec = ConvSpec.from_args(torch.empty(64, 64, 112, 112), torch.empty(64, 64, 3, 3), padding=1)
    assert spec.cols_bytes() == 64 * (64 * 9) * (112 * 112) * 4  # 1.85 GB
    assert spec.cols_bytes(batch=1) * 64 == spec.cols_bytes()


# ---- acceptance parity with PyTorch, as a property -------------------------------------
INTS = st.sampled_from([-1, 0, 1, 2, 3])
ODD_INTS = st.sampled_from([True, 2.0, "1", None, np.int64(2), torch.tensor(2)])
PAIRS = st.one_of(INTS, st.tuples(INTS), st.tuples(INTS, INTS), st.tuples(INTS, INTS, INTS), ODD_INTS)
PADDINGS = st.one_of(PAIRS, st.sampled_from(["same", "valid", "SAME", "full", ""]))


def is_zero_dilation(dilation) -> bool:
    values = dilation if isinstance(dilation, tuple) else (dilation,)
    return any(isinstance(v, int) and not isinstance(v, bool) and v == 0 for v in values)


def maybe_broken(draw, valid, broken):
    """Mostly the valid value; now and then one of the broken ones."""
    return draw(broken) if draw(st.integers(0, 5)) == 0 else valid


@st.composite
def conv_arguments(draw):
    """A valid conv2d call with, now and then, one or more arguments broken."""
    groups = maybe_broken(draw, draw(st.integers(1, 2)), st.one_of(st.integers(-1, 4), ODD_INTS))
    g = groups if isinstance(groups, int) and not isinstance(groups, bool) and groups > 0 else 1
    channels = maybe_broken(draw, g * draw(st.integers(1, 2)), st.integers(0, 4))
    out_channels = maybe_broken(draw, g * draw(st.integers(1, 2)), st.integers(0, 4))
    weight_in = maybe_broken(draw, max(channels // g, 0), st.integers(0, 4))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    kernel = maybe_broken(draw, kernel, st.tuples(st.integers(0, 4), st.integers(1, 4)))
    height = maybe_broken(draw, draw(st.integers(3, 7)), st.integers(0, 3))
    width = maybe_broken(draw, draw(st.integers(3, 7)), st.integers(1, 3))
    batch = draw(st.sampled_from([None, 0, 1, 2]))
    shape = (channels, height, width) if batch is None else (batch, channels, height, width)
    x = torch.randn(shape, dtype=torch.float64)
    w = torch.randn((out_channels, weight_in, *kernel), dtype=torch.float64)
    bias_size = maybe_broken(draw, draw(st.sampled_from([None, out_channels])), st.sampled_from([0, 1, 5]))
    b = None if bias_size is None else torch.randn(bias_size, dtype=torch.float64)
    stride = maybe_broken(draw, draw(st.sampled_from([1, 2, (1, 2), [2, 1], (1,)])), PAIRS)
    padding = maybe_broken(draw, draw(st.sampled_from([0, 1, (1, 0), "valid", "same"])), PADDINGS)
    dilation = maybe_broken(draw, draw(st.sampled_from([1, 2, (2, 1)])), PAIRS)
    return (x, w, b, stride, padding, dilation, groups)


@settings(max_examples=400)
@given(args=conv_arguments())
def test_accepts_and_refuses_what_pytorch_does(args) -> None:
    theirs, torch_error = outcome(F.conv2d, *args)
    ours, our_error = outcome(convlens.conv2d, *args)
    if torch_error is None and args[0].numel() == 0 and (is_zero_dilation(args[5]) or 0 in args[1].shape[2:]):
        # The one deliberate difference: PyTorch checks dilation > 0 and kernel size > 0 only for
        # inputs with elements, so an empty batch accepts what the next non-empty batch refuses.
        # convlens refuses them always.
        assert isinstance(our_error, ValueError), our_error
        assert "dilation must be positive" in str(our_error) or "kernel size must be positive" in str(our_error)
        event("empty input with dilation 0 or a 0-size kernel: PyTorch accepts, convlens refuses")
        return
    assert (our_error is None) == (torch_error is None), (
        f"PyTorch {'accepted' if torch_error is None else 'refused: ' + str(torch_error)[:200]}; "
        f"convlens {'accepted' if our_error is None else 'refused: ' + str(our_error)}"
    )
    event("both accepted" if our_error is None else "both refused")
    if our_error is not None:
        assert isinstance(our_error, (ValueError, TypeError)), repr(our_error)
    else:
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
