"""Argument rules: the same combinations accepted and refused as torch.nn.functional.conv2d,
and every refusal a ValueError/TypeError that names the argument, its value and the rule."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import event, given, settings
from hypothesis import strategies as st

import convlens
from convlens.spec import ConvSpec, output_size
from helpers import conv_cases, outcome

X = torch.randn(2, 4, 8, 8)
W = torch.randn(6, 2, 3, 3)


# ---- messages --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (
            {"stride": 0},
            ValueError,
            r"^non-positive stride is not supported: stride must be positive, got stride=\(0, 0\)",
        ),
        (
            {"stride": (1, 1, 1)},
            ValueError,
            r"^expected stride to be a single integer value or a list of 2 values to match the convolution dimensions, "
            r"but got stride=\[1, 1, 1\]: stride must be a single int or a tuple of 2 ints \(height, width\)",
        ),
        ({"stride": 1.5}, TypeError, r"stride must be an int or a tuple of ints, got a float: stride=1.5"),
        ({"stride": True}, TypeError, r"stride must be an int or a tuple of ints, got bool stride=True"),
        ({"stride": (True, 1)}, TypeError, r"got bool stride=True"),  # PyTorch refuses a bool first in a tuple only
        ({"groups": 2.0}, TypeError, r"groups must be an int, got a float: groups=2.0"),
        ({"dilation": torch.tensor([1, 2])}, TypeError, r"a tensor passes only with one integer element"),
        (
            {"padding": -1},
            ValueError,
            r"^negative padding is not supported: padding must be non-negative, got padding=\(-1, -1\)",
        ),
        ({"padding": "SAME"}, ValueError, r"^Invalid padding string: 'SAME': padding must be .*'valid' or 'same'"),
        (
            {"padding": "same", "stride": 2},
            ValueError,
            r"^padding='same' is not supported for strided convolutions: "
            r"padding='same' requires stride=1, got stride=\(2, 2\)",
        ),
        (
            {"dilation": (1, 0)},
            ValueError,
            r"^non-positive dilation is not supported: dilation must be positive, got dilation=\(1, 0\)",
        ),
        ({"groups": 0}, ValueError, r"^non-positive groups is not supported: groups must be positive, got groups=0"),
        (
            {"groups": 4},
            ValueError,
            r"^Given groups=4, expected weight to be divisible by 4 at dimension 0, "
            r"but got weight of size \[6, 2, 3, 3\] instead: "
            r"weight.shape\[0\] \(out_channels=6\) must be a positive multiple of groups=4",
        ),
        (
            {"groups": 1},
            ValueError,
            r"^Given groups=1, weight of size \[6, 2, 3, 3\], expected input\[2, 4, 8, 8\] to have 2 channels, "
            r"but got 4 channels instead: "
            r"the weight with groups=1 expects weight.shape\[1\] \* groups = 2 input channels",
        ),
        ({"padding_mode": "mirror"}, ValueError, r"padding_mode must be one of .*got padding_mode='mirror'"),
        ({"padding_mode": "reflect", "padding": 8}, ValueError, r"reflect' needs padding < input height"),
        (
            {"bias": torch.randn(5)},
            ValueError,
            r"^Given weight of size \[6, 2, 3, 3\], expected bias to be 1-dimensional with 6 elements, but got bias of "
            r"size \[5\] instead: bias must be 1-D with out_channels=6 elements",
        ),
        (
            {"bias": torch.randn(6).double()},
            TypeError,
            r"^Input type \(float\) and bias type \(double\) should be the same: "
            r"bias and input must have the same dtype",
        ),
    ],
)
def test_bad_arguments_name_argument_value_and_rule(kwargs, error, pattern) -> None:
    """PyTorch's own wording for the check first (code written against PyTorch matches on it), then
    convlens's explanation naming the argument, the value and the rule; and what PyTorch raises."""
    args = {"groups": 2, **kwargs}
    bias = args.pop("bias", None)
    with pytest.raises(error, match=pattern) as raised:
        convlens.conv2d(X, W, bias, **args)
    assert isinstance(raised.value, RuntimeError) and isinstance(raised.value, convlens.ConvlensError)
    if error is ValueError and "padding_mode" not in args:  # PyTorch's message opens ours (F.conv2d has no modes)
        with pytest.raises(RuntimeError) as theirs:
            torch.nn.functional.conv2d(X, W, bias, **args)
        assert str(raised.value).startswith(str(theirs.value).split("\n")[0].replace("[[", "[").replace("]]", "]"))


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
        (
            torch.randn(8, 8),
            W,
            ValueError,
            r"^Expected 3D \(unbatched\) or 4D \(batched\) input to conv2d, but got input of size: \[8, 8\]: "
            r"input must be 3-D \(C, H, W\) or 4-D \(N, C, H, W\)",
        ),
        (X, torch.randn(6, 2, 3), ValueError, r"weight must be 4-D"),
        (
            X.bool(),
            W.bool(),
            TypeError,
            r"input must be a tensor of one of \(float16, .*, uint8\), got input.dtype=torch.bool",
        ),
        (X.to(torch.complex32), W.to(torch.complex32), TypeError, r"input.dtype=torch.complex32"),
        (X.to(torch.uint16), W.to(torch.uint16), TypeError, r"input.dtype=torch.uint16"),
        (X.double(), W, TypeError, r"^Input type \(double\) and weight type \(float\) should be the same: weight and"),
        (
            torch.randn(1, 4, 0, 5),
            W,
            ValueError,
            r"^Calculated padded input size per channel: \(0 x 5\). Kernel size: ",
        ),
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


def pytorch_output_size(size, kernel, stride=1, padding=0, dilation=1) -> tuple[int, int]:
    """(H_out, W_out) of the tensor F.conv2d really returns for an input of ``size``: measured."""
    size, kernel = ((s, s) if isinstance(s, int) else s for s in (size, kernel))
    x, w = torch.zeros(1, 1, *size), torch.zeros(1, 1, *kernel)
    with warnings.catch_warnings():  # "same" with an even kernel: PyTorch warns it copies the input
        warnings.simplefilter("ignore")
        return tuple(F.conv2d(x, w, None, stride, padding, dilation).shape[-2:])


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((32, 5), {}, (28, 28)),  # the seed's CIFAR-10 layer
        (((5, 5), 3), {"stride": 2, "padding": 1}, (3, 3)),  # the CS231n demo
        (((7, 9), (2, 4)), {"padding": "same"}, (7, 9)),
        (((10, 11), 3), {"stride": (2, 3), "padding": (1, 0), "dilation": 2}, (4, 3)),
        (((6, 13), (4, 2)), {"padding": "same", "dilation": (1, 3)}, (6, 13)),  # asymmetric 'same'
        (((9, 8), (3, 2)), {"stride": (3, 1), "padding": "valid", "dilation": (4, 1)}, (1, 7)),
    ],
)
def test_output_size_is_the_formula(args, kwargs, expected) -> None:
    assert output_size(*args, **kwargs) == expected
    assert pytorch_output_size(*args, **kwargs) == expected


@settings(max_examples=150)
@given(case=conv_cases())
def test_output_size_is_the_size_pytorch_returns(case) -> None:
    options = {key: case.options[key] for key in ("stride", "padding", "dilation")}
    assert output_size(case.size, case.kernel, **options) == pytorch_output_size(case.size, case.kernel, **options)


def test_output_size_refusals() -> None:
    with pytest.raises(ValueError, match="floor"):
        output_size(4, 5)
    with pytest.raises(RuntimeError):  # PyTorch refuses it too
        pytorch_output_size(4, 5)
    with pytest.raises(ValueError, match="padding='same' requires stride=1"):
        output_size(8, 3, stride=2, padding="same")


def test_cols_bytes_predicts_the_im2col_buffer() -> None:
    """cols_bytes is the size of the columns F.unfold really returns: measured on one image of the
    layer (64 channels, 112x112, 3x3, padding 1; 29 MB), as the whole batch would need 1.85 GB."""
    spec = ConvSpec.from_args(torch.empty(64, 64, 112, 112), torch.empty(64, 64, 3, 3), padding=1)
    one_image = F.unfold(torch.zeros(1, 64, 112, 112), 3, padding=1)  # (1, C_in*k_h*k_w, H_out*W_out)
    assert spec.cols_bytes(batch=1) == one_image.numel() * one_image.element_size()
    assert spec.cols_bytes() == 64 * spec.cols_bytes(batch=1)  # one image's columns per image of the batch
    # and on a whole small batch, with stride, dilation, groups and a float64 input
    x, w = torch.zeros(3, 4, 11, 9, dtype=torch.float64), torch.zeros(6, 2, 2, 3, dtype=torch.float64)
    small = ConvSpec.from_args(x, w, stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2)
    cols = F.unfold(x, (2, 3), dilation=(2, 1), padding=(1, 2), stride=(2, 1))
    assert small.cols_bytes() == cols.numel() * cols.element_size()


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


def test_an_empty_image_is_refused_as_pytorch_refuses_it() -> None:
    """With padding the kernel fits an input of no rows, and the rule is PyTorch's: only an empty
    batch or no channels may make an input empty."""
    x = torch.randn(1, 4, 0, 5)
    with pytest.raises(RuntimeError) as theirs:
        torch.nn.functional.conv2d(x, W, padding=2, groups=2)
    with pytest.raises(ValueError, match="height and width must be non-zero") as ours:
        convlens.conv2d(x, W, padding=2, groups=2)
    assert str(ours.value).startswith(str(theirs.value))
