"""Fuzzing bad arguments. Each example is a valid call with one or two of its arguments replaced
by junk (another value, a tensor of another shape or dtype, a float, None, a string, an object...),
and the test knows which. Then:

- PyTorch refuses the call: convlens refuses it too, with an ArgumentError / ArgumentTypeError
  (ValueError / TypeError) whose message names one of the arguments that were replaced (or one
  they break: conv2d_breaks), never just "input" unless the input was replaced;
- PyTorch accepts it: convlens accepts it too and gives PyTorch's result, but for the known
  differences listed in KNOWN_DIFFERENCES (each named, with its reason), where the refusal must
  still name the argument.

Nothing crashes, hangs (each example has a deadline) or allocates without bound (sizes stay
small; huge requests are refused before allocating)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import event, given, settings
from hypothesis import strategies as st

import convlens
from convlens import algos
from convlens.spec import ConvSpec
from helpers import PADDING_MODES, outcome, reference_conv2d

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
JUNK_PADDINGS = st.one_of(JUNK_PAIRS, st.sampled_from(["same", "valid", "full"]))
DTYPES = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int64, torch.bool, torch.complex64])


@st.composite
def tensors(draw, max_rank: int = 5):
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=max_rank))
    return torch.zeros(shape, dtype=draw(DTYPES)) + (1 if draw(st.booleans()) else 0)


@st.composite
def near(draw, t: torch.Tensor):
    """``t`` nearly: another dtype, one dimension of another size, or one dimension more or less."""
    how = draw(st.sampled_from(["dtype", "size", "rank"]))
    if how == "dtype":
        return t.to(draw(DTYPES))
    if how == "size":
        shape = list(t.shape)
        shape[draw(st.integers(0, len(shape) - 1))] = draw(st.integers(0, 5))
        return torch.randn(shape, dtype=torch.float64).to(t.dtype)
    return t[0] if t.dim() > 1 and t.shape[0] > 0 and draw(st.booleans()) else t.unsqueeze(0)


def junk_tensors(t: torch.Tensor, max_rank: int = 5):
    return st.one_of(near(t), tensors(max_rank), JUNK_SCALARS)


def broken_call(draw, valid: dict, junk: dict) -> tuple[dict, frozenset[str]]:
    """``valid`` with one or two of its arguments replaced by a draw from ``junk``; and which."""
    broken = frozenset(draw(st.sets(st.sampled_from(sorted(junk)), min_size=1, max_size=2)))
    return {name: draw(junk[name]) if name in broken else value for name, value in valid.items()}, broken


def names(message: str, name: str) -> bool:
    """Whether ``message`` names the argument ``name`` as a word: "padding" is not in "padding_mode",
    nor "input" in "input_size"."""
    return re.search(rf"(?<!\w){re.escape(name)}(?!\w)", message) is not None


def assert_names_a_broken_argument(error: Exception, broken: frozenset[str], context: str) -> None:
    """A convlens argument error (ValueError / TypeError, and RuntimeError like PyTorch's) whose message
    names one of the arguments that were replaced (``broken``, with what they break): the valid ones
    cannot be what is wrong."""
    assert isinstance(error, (convlens.ArgumentError, convlens.ArgumentTypeError)), f"{error!r}\n{context}"
    assert any(names(str(error), name) for name in broken), (
        f"the message names none of the broken arguments {sorted(broken)}: {error}\n{context}"
    )


def describe(call: dict) -> str:
    return ", ".join(
        f"{name}={tuple(v.shape)} {v.dtype}" if isinstance(v, torch.Tensor) and v.dim() > 1 else f"{name}={v!r}"
        for name, v in call.items()
    )


WINDOW_ARGUMENTS = ("kernel_size", "dilation", "padding", "stride")


def has_bool(value) -> bool:
    return any(isinstance(v, bool) for v in (value if isinstance(value, (list, tuple)) else (value,)))


def is_zero(value) -> bool:
    values = value if isinstance(value, (list, tuple)) else (value,)
    return any(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v == 0 for v in values)


def is_dilated(value) -> bool:
    values = value if isinstance(value, (list, tuple)) else (value,)
    return any(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 1 for v in values)


def is_pair_tensor(value) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() == 1 and len(value) == 2 and not value.is_floating_point()


def is_one_value(value) -> bool:
    """A 1-element sequence, or a 0-d tensor: one value where PyTorch's unfold wants two."""
    if isinstance(value, torch.Tensor):
        return value.dim() == 0
    return isinstance(value, (list, tuple)) and len(value) == 1


def only_f_pad_takes(padding) -> bool:
    """More than two values, or a negative one: a padding F.pad takes and F.conv2d refuses."""
    values = padding if isinstance(padding, (list, tuple)) else (padding,)
    return len(values) > 2 or any(isinstance(v, (int, np.integer)) and v < 0 for v in values)


def empty_call(call: dict) -> bool:
    return isinstance(call.get("input"), torch.Tensor) and call["input"].numel() == 0 and "weight" in call


@dataclass(frozen=True)
class Difference:
    """A known difference from PyTorch: in which fuzz ``tests``, what convlens does ("refuses" what
    PyTorch accepts, "accepts" what PyTorch refuses, "differs": both accept, with different results,
    or "misnames": its refusal does not name the broken argument), on which calls
    (``applies(call, broken, error)``), and why."""

    tests: tuple[str, ...]
    convlens: str
    applies: Callable[[dict, frozenset[str], Exception | None], bool]
    reason: str


# Every case where convlens and PyTorch differ that the fuzz tests have met, each named, with its
# reason; any other difference fails them.
KNOWN_DIFFERENCES: dict[str, Difference] = {
    "a bool as a size or channel count": Difference(
        ("output_size", "nn.Conv2d"),
        "refuses",
        lambda call, broken, error: any(
            has_bool(call.get(name)) for name in ("input_size", "kernel_size", "in_channels", "out_channels")
        ),
        "nn.Conv2d takes kernel_size=True or (True, 2), in_channels=True, as 1 (torch.empty's sizes accept "
        "bools); convlens refuses a bool as a size, as F.conv2d does for stride=True",
    ),
    "a dilated convolution of 8-, 16- or 32-bit integers": Difference(
        ("conv2d",),
        "accepts",
        lambda call, broken, error: (
            isinstance(call.get("input"), torch.Tensor)
            and call["input"].dtype in (torch.int8, torch.int16, torch.int32, torch.uint8)
            and is_dilated(call.get("dilation"))
        ),
        "PyTorch's CPU kernel for dilated convolutions has no such integer types ('slow_conv_dilated<>' not "
        "implemented for 'Int'), while its undilated one and its int64 kernels run them; a missing kernel, not a "
        "rule: convlens's exact algorithms run every integer type alike",
    ),
    "a meta weight or bias with a real input": Difference(
        ("conv2d",),
        "refuses",
        lambda call, broken, error: (
            isinstance(call.get("input"), torch.Tensor)
            and call["input"].device.type != "meta"
            and any(isinstance(call.get(name), torch.Tensor) and call[name].is_meta for name in ("weight", "bias"))
        ),
        "PyTorch's CPU kernel takes a meta weight (or bias) beside a CPU input and returns a CPU tensor of "
        "uninitialised memory; convlens refuses the mix (a meta input runs on meta, as PyTorch's does)",
    ),
    "complex32 tensors": Difference(
        ("conv2d",),
        "refuses",
        lambda call, broken, error: (
            isinstance(call.get("input"), torch.Tensor) and call["input"].dtype == torch.complex32
        ),
        "PyTorch's CPU conv2d runs a complex32 forward, but nothing can be done with its result's gradient "
        "(its sum is not implemented for ComplexHalf); convlens refuses the dtype",
    ),
    "a bias of another dtype, with padding 'same' or 'valid'": Difference(
        ("conv2d",),
        "refuses",
        lambda call, broken, error: (
            isinstance(call["bias"], torch.Tensor)
            and call["bias"].dtype != call["input"].dtype
            and isinstance(call["padding"], str)
        ),
        "F.conv2d's string-padding path does not check the bias dtype (float64 input, int64 or float32 bias: "
        "accepted, a float64 result); its integer-padding path refuses the same call, and so does convlens",
    ),
    "empty input with a weight or bias of another dtype": Difference(
        ("conv2d",),
        "refuses",
        lambda call, broken, error: (
            empty_call(call)
            and any(
                isinstance(t, torch.Tensor) and t.dtype != call["input"].dtype for t in (call["weight"], call["bias"])
            )
        ),
        "PyTorch returns an empty output before it checks the weight's and bias's dtypes (a float32 or bool "
        "weight for a float64 input: accepted); convlens checks them for every input",
    ),
    "empty input with dilation 0 or a 0-size kernel": Difference(
        ("conv2d", "nn.Conv2d"),
        "refuses",
        lambda call, broken, error: (
            (empty_call(call) and (is_zero(call["dilation"]) or 0 in call["weight"].shape[2:]))
            or (is_zero(call.get("in_channels")) and (is_zero(call["dilation"]) or is_zero(call["kernel_size"])))
        ),
        "PyTorch checks dilation > 0 and kernel size > 0 only for inputs with elements, so an empty batch "
        "(or a layer with no input channels) accepts what the next batch refuses; convlens refuses them "
        "always (tests/test_spec.py)",
    ),
    "a 1-D tensor of two ints as a window argument or output_size": Difference(
        ("unfold", "fold", "nn.Conv2d"),
        "refuses",
        lambda call, broken, error: any(is_pair_tensor(call.get(name)) for name in (*WINDOW_ARGUMENTS, "output_size")),
        "F.unfold, F.fold and nn.Conv2d take kernel_size=torch.tensor([2, 2]) (they iterate it into two "
        "0-d tensors); convlens applies F.conv2d's rule, which refuses it: a tensor only with one element",
    ),
    "one value where PyTorch's unfold and fold want two": Difference(
        ("unfold", "fold", "output_size"),
        "accepts",
        lambda call, broken, error: any(
            is_one_value(call.get(name)) for name in (*WINDOW_ARGUMENTS, "input_size", "output_size")
        ),
        "F.unfold and F.fold refuse stride=[2], kernel_size=(2,) ('expected stride equals to 2') and a 0-d "
        "tensor ('iteration over a 0-d tensor'), and a 1-element input_size makes no 4-D input; convlens "
        "expands one value to a pair, as F.conv2d does for its stride, padding and dilation, and takes a "
        "kernel_size (or an output_size's input_size) of one value as 1-D windows: its unfold, fold and "
        "output_size work along 1, 2 or 3 dimensions",
    ),
    "three values for kernel_size or input_size": Difference(
        ("unfold", "fold", "output_size"),
        "accepts",
        lambda call, broken, error: any(
            isinstance(call.get(name), (list, tuple)) and len(call[name]) == 3 for name in ("kernel_size", "input_size")
        ),
        "F.unfold and F.fold are 2-D only; convlens's take 3-D windows where kernel_size has three values "
        "(over an (N, C, D, H, W) input), and its output_size 3-D sizes",
    ),
    "one value for nn.Conv2d's padding or dilation, with a padding mode": Difference(
        ("nn.Conv2d",),
        "accepts",
        lambda call, broken, error: (
            call["padding_mode"] != "zeros" and any(is_one_value(call[name]) for name in ("padding", "dilation"))
        ),
        "nn.Conv2d pads reflect / replicate / circular itself, from the padding as given: padding=(2,) makes "
        "F.pad's size 2, which a 4-D input refuses; convlens expands (2,) to (2, 2), as F.conv2d does",
    ),
    "one dilation value for nn.Conv2d's padding='same', with a padding mode": Difference(
        ("nn.Conv2d",),
        "differs",
        lambda call, broken, error: (
            call["padding_mode"] != "zeros" and call["padding"] == "same" and is_one_value(call["dilation"])
        ),
        "nn.Conv2d computes the 'same' padding with zip(kernel_size, dilation), so dilation=(2,) pads the "
        "height only and the output is narrower than the input; convlens pads both sides (dilation (2, 2))",
    ),
    "a 0-d tensor for nn.Conv2d's kernel_size, stride, padding or dilation": Difference(
        ("nn.Conv2d",),
        "misnames",
        lambda call, broken, error: (
            any(isinstance(call[name], torch.Tensor) and call[name].dim() == 0 for name in WINDOW_ARGUMENTS)
            and "iteration over a 0-d tensor" in str(error)
        ),
        "convlens.nn.Conv2d(2, 1, kernel_size=torch.tensor(1)) (or dilation=torch.tensor(1), ...) raises "
        "torch.nn.Conv2d's bare TypeError 'iteration over a 0-d tensor', not an ArgumentTypeError naming it",
    ),
    "nn.Conv2d's padding with a padding mode: what F.pad takes": Difference(
        ("nn.Conv2d",),
        "refuses",
        lambda call, broken, error: call["padding_mode"] != "zeros" and only_f_pad_takes(call["padding"]),
        "with reflect / replicate / circular, nn.Conv2d hands its padding to F.pad as given: 3 values pad the "
        "channels too, and negative ones crop (padding=-3, circular: accepted); convlens takes F.conv2d's "
        "padding rules for every mode: 1 or 2 values, non-negative",
    ),
    "a bool in nn.Conv2d's padding, with a padding mode": Difference(
        ("nn.Conv2d",),
        "accepts",
        lambda call, broken, error: call["padding_mode"] != "zeros" and has_bool(call["padding"]),
        "nn.Conv2d hands its padding to F.pad for reflect / replicate / circular, and F.pad refuses a bool "
        "(padding=(1, False)); convlens takes the padding as F.conv2d does, which accepts a bool after the "
        "first value",
    ),
    "a non-bool bias flag": Difference(
        ("nn.Conv2d",),
        "refuses",
        lambda call, broken, error: not isinstance(call["bias"], bool),
        "nn.Conv2d reads bias with `if bias:`, so 1, 'x', tensor(1) or 2.5 mean True and None, '' or 0.0 "
        "False; convlens wants a bool",
    ),
    "a size too small for the window, called the input": Difference(
        ("fold", "output_size"),
        "misnames",
        lambda call, broken, error: (
            bool(broken & {"output_size", "input_size"}) and "larger than the padded input" in str(error)
        ),
        "fold's output_size and output_size's input_size too small for the kernel: the message is conv2d's, "
        "'larger than the padded input 3x1 (input 1x1, ...)', and does not name output_size / input_size",
    ),
}


def known_difference(test: str, convlens_does: str, call: dict, broken: frozenset[str], error=None) -> str | None:
    for name, difference in KNOWN_DIFFERENCES.items():
        if (
            test in difference.tests
            and difference.convlens == convlens_does
            and difference.applies(call, broken, error)
        ):
            return name
    return None


def agrees_with_pytorch(
    test: str,
    error: Exception | None,
    torch_error: Exception | None,
    broken: frozenset[str],
    call: dict,
    own_refusal: str | None = None,
) -> bool:
    """Whether both accepted the call (the caller then compares the results). Else checks that both
    refused it, or that the difference is a known one or ``own_refusal`` (why convlens must refuse
    an argument PyTorch does not have); and that every refusal names a broken argument (``broken``:
    those replaced, with what they break)."""
    context = f"broken: {sorted(broken)}; {describe(call)}"
    if torch_error is not None and error is None:
        difference = known_difference(test, "accepts", call, broken)
        assert difference, f"convlens accepted what PyTorch refuses ({torch_error}); {context}"
        event(f"known difference: {difference}")
        return False
    if torch_error is None and own_refusal is not None:
        assert error is not None, f"convlens should refuse: {own_refusal}; {context}"
    if error is None:
        difference = known_difference(test, "differs", call, broken)
        event(f"both accepted; known difference: {difference}" if difference else "both accepted")
        return difference is None
    if torch_error is None:
        difference = known_difference(test, "refuses", call, broken)
        assert difference or own_refusal, f"convlens refused what PyTorch accepts: {error!r}; {context}"
        event(f"PyTorch accepted, convlens refused: {difference or 'the algorithm (convlens only)'}")
    else:
        event("both refused")
    if known_difference(test, "misnames", call, broken, error):
        assert isinstance(error, (ValueError, TypeError)), f"{error!r}\n{context}"
        event("known difference: misnamed")
        return False
    assert_names_a_broken_argument(error, broken, context)
    return False


# ---- conv2d ------------------------------------------------------------------------------
CONV2D_ARGUMENTS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups", "padding_mode", "algorithm")


@st.composite
def conv2d_calls(draw) -> tuple[dict, frozenset[str]]:
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = draw(st.sampled_from([1, 2, (1, 2)]))
    d = (dilation, dilation) if isinstance(dilation, int) else dilation
    padding = draw(st.sampled_from([0, 1, (1, 0), "valid", "same"]))
    stride = 1 if padding == "same" else draw(st.sampled_from([1, 2, (1, 2), [2, 1]]))
    spans = [d[i] * (kernel[i] - 1) + 1 for i in (0, 1)]
    size = [draw(st.integers(max(3, span), max(3, span) + 3)) for span in spans]  # fits, and reflect's pad < size
    batch = draw(st.sampled_from([None, 0, 1, 2]))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    x = torch.randn((c_in, *size) if batch is None else (batch, c_in, *size), dtype=torch.float64).to(dtype)
    w = torch.randn(c_out, c_in // groups, *kernel, dtype=torch.float64).to(dtype)
    b = torch.randn(c_out, dtype=torch.float64).to(dtype)
    valid = {
        "input": x,
        "weight": w,
        "bias": draw(st.sampled_from([None, b])),
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
        "padding_mode": draw(st.sampled_from(PADDING_MODES)),
        "algorithm": "auto",
    }
    junk = {
        "input": junk_tensors(x),
        "weight": junk_tensors(w),
        "bias": st.one_of(near(b), tensors(2), JUNK_SCALARS),
        "stride": JUNK_PAIRS,
        "padding": JUNK_PADDINGS,
        "dilation": JUNK_PAIRS,
        "groups": JUNK_SCALARS,
        "padding_mode": st.one_of(st.sampled_from(PADDING_MODES), JUNK_SCALARS),
        "algorithm": st.one_of(st.sampled_from(convlens.algorithms()), JUNK_SCALARS),
    }
    return broken_call(draw, valid, junk)


def conv2d_breaks(broken: frozenset[str], call: dict) -> frozenset[str]:
    """The arguments the broken ones break, which a refusal may name: themselves; for a broken weight,
    its kernel size (messages about the window call it kernel_size) and the bias, whose length must
    be its out_channels; and with padding='same' the padding, computed from the kernel size and the
    dilation: larger ones can make it too large for a reflect or circular padding mode."""
    breaks = set(broken)
    if "weight" in broken:
        breaks |= {"kernel_size", "bias"} if isinstance(call["bias"], torch.Tensor) else {"kernel_size"}
    if call["padding"] == "same" and broken & {"weight", "dilation"}:
        breaks.add("padding")
    if "algorithm" in broken and refused_algorithm(call) is None:
        breaks.discard("algorithm")  # a valid algorithm: not what is wrong
    return frozenset(breaks)


def pair(value):
    """A padding or dilation PyTorch accepted, as the (h, w) pair (or string) nn.Conv2d makes of it."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        values = tuple(int(v) for v in value)
        return values * 2 if len(values) == 1 else values
    return int(value), int(value)


def pytorch_conv2d(call: dict):
    """(result, None) or (None, error): what PyTorch does with the call. The convolution is
    F.conv2d's; a padding mode is nn.Conv2d's (one of its four names, else its ValueError), applied
    as nn.Conv2d does, with F.pad (which refuses, say, reflect padding as large as the input)."""
    mode = call["padding_mode"]
    if not (isinstance(mode, str) and mode in PADDING_MODES):
        return None, ValueError(f"padding_mode must be one of {PADDING_MODES}, but got padding_mode={mode!r}")
    args = [call[name] for name in ("input", "weight", "bias", "stride", "padding", "dilation", "groups")]
    _, error = outcome(F.conv2d, *args)
    if error is not None:
        return None, error
    x, w, b, stride, padding, dilation, groups = args
    return outcome(reference_conv2d, x, w, b, stride, pair(padding), pair(dilation), groups, mode)


def refused_algorithm(call: dict) -> str | None:
    """Why convlens must refuse the call's ``algorithm`` (an argument PyTorch does not have), or None."""
    algorithm = call["algorithm"]
    if not (isinstance(algorithm, str) and algorithm in convlens.algorithms()):
        return "not an algorithm's name"
    if algorithm == "auto":
        return None
    spec, error = outcome(ConvSpec.from_args, *(call[name] for name in CONV2D_ARGUMENTS[:-1]))
    return None if error is not None else algos.get(algorithm).supports(spec)  # (a refused spec: checked as such)


@settings(max_examples=300, deadline=5000)
@given(drawn=conv2d_calls())
def test_conv2d(drawn) -> None:
    call, broken = drawn
    ours, error = outcome(convlens.conv2d, **call)
    theirs, torch_error = pytorch_conv2d(call)
    algorithm = refused_algorithm(call)  # an argument PyTorch does not have
    if agrees_with_pytorch("conv2d", error, torch_error, conv2d_breaks(broken, call), call, algorithm):
        tolerance = {"rtol": 1e-3, "atol": 1e-3} if theirs.dtype == torch.float16 else {}
        torch.testing.assert_close(
            ours, theirs, **tolerance, msg=lambda m: f"{m}\nbroken: {sorted(broken)}; {describe(call)}"
        )


# ---- unfold and fold ---------------------------------------------------------------------
WINDOW = {
    "kernel_size": st.tuples(st.integers(1, 3), st.integers(1, 3)),
    "dilation": st.sampled_from([1, 2, (2, 1)]),
    "padding": st.sampled_from([0, 1, (1, 0)]),
    "stride": st.sampled_from([1, 2, (1, 2)]),
}
WINDOW_JUNK = {"kernel_size": JUNK_PAIRS, "dilation": JUNK_PAIRS, "padding": JUNK_PAIRS, "stride": JUNK_PAIRS}


def fitting_size(draw, window: dict) -> tuple[int, int]:
    d = (window["dilation"],) * 2 if isinstance(window["dilation"], int) else window["dilation"]
    spans = [d[i] * (window["kernel_size"][i] - 1) + 1 for i in (0, 1)]
    return tuple(draw(st.integers(span, span + 4)) for span in spans)


@st.composite
def unfold_calls(draw) -> tuple[dict, frozenset[str]]:
    window = {name: draw(strategy) for name, strategy in WINDOW.items()}
    size = fitting_size(draw, window)
    batch = draw(st.sampled_from([None, 1, 2]))
    channels = draw(st.integers(1, 3))
    x = torch.randn((channels, *size) if batch is None else (batch, channels, *size), dtype=torch.float64)
    return broken_call(draw, {"input": x, **window}, {"input": junk_tensors(x), **WINDOW_JUNK})


@settings(max_examples=200, deadline=5000)
@given(drawn=unfold_calls())
def test_unfold(drawn) -> None:
    call, broken = drawn
    args = [call[name] for name in ("input", "kernel_size", "dilation", "padding", "stride")]
    ours, error = outcome(convlens.unfold, *args)
    theirs, torch_error = outcome(F.unfold, *args)
    if agrees_with_pytorch("unfold", error, torch_error, broken, call):
        torch.testing.assert_close(ours, theirs)


@st.composite
def fold_calls(draw) -> tuple[dict, frozenset[str]]:
    window = {name: draw(strategy) for name, strategy in WINDOW.items()}
    size = fitting_size(draw, window)
    channels = draw(st.integers(1, 2))
    blocks = F.unfold(torch.zeros(1, 1, *size), **window).shape[-1]  # the windows PyTorch finds in that size
    rows = channels * window["kernel_size"][0] * window["kernel_size"][1]
    batch = draw(st.sampled_from([None, 1, 2]))
    cols = torch.randn((rows, blocks) if batch is None else (batch, rows, blocks), dtype=torch.float64)
    valid = {"input": cols, "output_size": size, **window}
    return broken_call(draw, valid, {"input": junk_tensors(cols, 4), "output_size": JUNK_PAIRS, **WINDOW_JUNK})


@settings(max_examples=200, deadline=5000)
@given(drawn=fold_calls())
def test_fold(drawn) -> None:
    call, broken = drawn
    args = [call[name] for name in ("input", "output_size", "kernel_size", "dilation", "padding", "stride")]
    ours, error = outcome(convlens.fold, *args)
    theirs, torch_error = outcome(F.fold, *args)
    if agrees_with_pytorch("fold", error, torch_error, broken, call):
        torch.testing.assert_close(ours, theirs)


# ---- output_size -------------------------------------------------------------------------
@st.composite
def output_size_calls(draw) -> tuple[dict, frozenset[str]]:
    window = {name: draw(strategy) for name, strategy in WINDOW.items()}
    if draw(st.booleans()):
        window["padding"], window["stride"] = "same", 1
    valid = {"input_size": fitting_size(draw, window), **window}
    return broken_call(draw, valid, {"input_size": JUNK_PAIRS, **WINDOW_JUNK, "padding": JUNK_PADDINGS})


def pytorch_output_size(call: dict):
    """The (H_out, W_out) of what F.conv2d returns for an input of ``input_size`` (an int or a pair,
    as conv2d takes its sizes), or PyTorch's error."""

    def conv(input_size, kernel_size, stride, padding, dilation):
        sizes = [tuple(v) if isinstance(v, (list, tuple)) else (v, v) for v in (input_size, kernel_size)]
        if any(len(size) != 2 for size in sizes):  # nn.Conv2d's weight, or the input, would not be 4-D
            raise ValueError(f"not a (height, width) size: {sizes}")
        x, w = (torch.zeros(1, 1, *size) for size in sizes)
        return tuple(F.conv2d(x, w, None, stride, padding, dilation).shape[-2:])

    return outcome(conv, *(call[name] for name in ("input_size", "kernel_size", "stride", "padding", "dilation")))


@settings(max_examples=200, deadline=5000)
@given(drawn=output_size_calls())
def test_output_size(drawn) -> None:
    call, broken = drawn
    ours, error = outcome(convlens.output_size, **call)
    theirs, torch_error = pytorch_output_size(call)
    if agrees_with_pytorch("output_size", error, torch_error, broken, call):
        assert ours == theirs, describe(call)  # the size of the tensor PyTorch really returns


# ---- nn.Conv2d ---------------------------------------------------------------------------
@st.composite
def constructor_calls(draw) -> tuple[dict, frozenset[str]]:
    groups = draw(st.integers(1, 2))
    valid = {
        "in_channels": groups * draw(st.integers(1, 2)),
        "out_channels": groups * draw(st.integers(1, 2)),
        **{name: draw(strategy) for name, strategy in WINDOW.items()},
        "groups": groups,
        "bias": draw(st.booleans()),
        "padding_mode": draw(st.sampled_from(PADDING_MODES)),
    }
    if draw(st.booleans()):
        valid["padding"], valid["stride"] = draw(st.sampled_from(["same", "valid"])), 1
    junk = {
        "in_channels": JUNK_SCALARS,
        "out_channels": JUNK_SCALARS,
        **WINDOW_JUNK,
        "padding": st.one_of(JUNK_PAIRS, st.sampled_from(["same", "valid"])),
        "groups": JUNK_SCALARS,
        "bias": JUNK_SCALARS,
        "padding_mode": st.one_of(st.sampled_from(PADDING_MODES), JUNK_SCALARS),
    }
    return broken_call(draw, valid, junk)


def built_and_run(conv2d_class: type, call: dict):
    """(module, None) or (None, error): the layer built from the call and run once on a 32x32 input.
    torch.nn.Conv2d's constructor stores stride, padding and dilation unchecked (stride='x' passes)
    and its forward refuses them, so what PyTorch accepts is what also runs; convlens checks them
    when the layer is built."""

    def build_and_run():
        module = conv2d_class(**call)
        with torch.no_grad():
            module(torch.zeros(1, module.in_channels, 32, 32))
        return module

    return outcome(build_and_run)


@settings(max_examples=200, deadline=5000)
@given(drawn=constructor_calls())
def test_nn_conv2d_constructor(drawn) -> None:
    call, broken = drawn
    ours, error = built_and_run(convlens.nn.Conv2d, call)
    theirs, torch_error = built_and_run(torch.nn.Conv2d, call)
    # kernel_size makes the weight's shape: (2,) gives a 3-D weight, refused as the weight's at the first forward
    breaks = broken | {"weight"} if "kernel_size" in broken else broken
    if agrees_with_pytorch("nn.Conv2d", error, torch_error, breaks, call):
        assert repr(ours) == repr(theirs)
        assert ours.weight.shape == theirs.weight.shape
        ours.load_state_dict(theirs.state_dict())
        x = torch.randn(2, theirs.in_channels, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), theirs(x), msg=lambda m: f"{m}\n{describe(call)}")


@pytest.mark.parametrize("padding", [10**6, (10**5, 10**5)])  # 14,901 GiB and 149 GiB padded inputs
def test_a_huge_request_is_refused_before_allocating(padding) -> None:
    with pytest.raises(ValueError, match="padding"):
        convlens.conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 3, 3), padding=padding)


# ---- the known differences are real ------------------------------------------------------
RUNS = {  # fuzz test -> (convlens's outcome, PyTorch's outcome) of a call
    "conv2d": lambda call: (outcome(convlens.conv2d, **call), pytorch_conv2d(call)),
    "unfold": lambda call: (outcome(convlens.unfold, **call), outcome(F.unfold, **call)),
    "fold": lambda call: (outcome(convlens.fold, **call), outcome(F.fold, **call)),
    "output_size": lambda call: (outcome(convlens.output_size, **call), pytorch_output_size(call)),
    "nn.Conv2d": lambda call: (built_and_run(convlens.nn.Conv2d, call), built_and_run(torch.nn.Conv2d, call)),
}
X, W = torch.randn(2, 3, 5, 6, dtype=torch.float64), torch.randn(4, 3, 3, 3, dtype=torch.float64)
CONV = {"input": X, "weight": W, "bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
CONV |= {"padding_mode": "zeros", "algorithm": "auto"}
LAYER = {"in_channels": 1, "out_channels": 1, "kernel_size": 3, "stride": 1, "padding": 0, "dilation": 1}
LAYER |= {"groups": 1, "bias": True, "padding_mode": "zeros"}
WINDOW_CALL = {"kernel_size": 2, "dilation": 1, "padding": 0, "stride": 1}
# One call per known difference, and the arguments broken in it.
DIFFERENCE_EXAMPLES = {
    "a bool as a size or channel count": ("nn.Conv2d", LAYER | {"kernel_size": True}, {"kernel_size"}),
    "a dilated convolution of 8-, 16- or 32-bit integers": (
        "conv2d",
        CONV | {"input": X.int(), "weight": W.int(), "bias": None, "dilation": 2},
        {"dilation"},
    ),
    "a meta weight or bias with a real input": (
        "conv2d",
        CONV | {"weight": W.to("meta")},
        {"weight"},
    ),
    "complex32 tensors": (
        "conv2d",
        CONV | {"input": X.to(torch.complex32), "weight": W.to(torch.complex32), "bias": None},
        {"input"},
    ),
    "a bias of another dtype, with padding 'same' or 'valid'": (
        "conv2d",
        CONV | {"bias": torch.ones(4, dtype=torch.float32), "padding": "valid"},
        {"bias"},
    ),
    "empty input with a weight or bias of another dtype": (
        "conv2d",
        CONV | {"input": X[:0], "weight": W.float()},
        {"weight"},
    ),
    "empty input with dilation 0 or a 0-size kernel": ("conv2d", CONV | {"input": X[:0], "dilation": 0}, {"dilation"}),
    "a 1-D tensor of two ints as a window argument or output_size": (
        "unfold",
        {"input": X, **WINDOW_CALL, "kernel_size": torch.tensor([2, 2])},
        {"kernel_size"},
    ),
    "one value where PyTorch's unfold and fold want two": (
        "unfold",
        {"input": X, **WINDOW_CALL, "stride": [2]},
        {"stride"},
    ),
    "three values for kernel_size or input_size": (
        "unfold",
        {"input": torch.randn(1, 2, 4, 5, 6), **WINDOW_CALL, "kernel_size": (2, 3, 2)},
        {"kernel_size"},
    ),
    "one value for nn.Conv2d's padding or dilation, with a padding mode": (
        "nn.Conv2d",
        LAYER | {"padding": (2,), "padding_mode": "circular"},
        {"padding"},
    ),
    "one dilation value for nn.Conv2d's padding='same', with a padding mode": (
        "nn.Conv2d",
        LAYER | {"padding": "same", "dilation": (2,), "padding_mode": "circular"},
        {"dilation"},
    ),
    "a 0-d tensor for nn.Conv2d's kernel_size, stride, padding or dilation": (
        "nn.Conv2d",
        LAYER | {"kernel_size": torch.tensor(1)},
        {"kernel_size"},
    ),
    "nn.Conv2d's padding with a padding mode: what F.pad takes": (
        "nn.Conv2d",
        LAYER | {"padding": -1, "padding_mode": "circular"},
        {"padding"},
    ),
    "a bool in nn.Conv2d's padding, with a padding mode": (
        "nn.Conv2d",
        LAYER | {"padding": (1, False), "padding_mode": "reflect"},
        {"padding"},
    ),
    "a non-bool bias flag": ("nn.Conv2d", LAYER | {"bias": 1}, {"bias"}),
    "a size too small for the window, called the input": (
        "output_size",
        {"input_size": 2, **WINDOW_CALL, "kernel_size": 3},
        {"input_size"},
    ),
}


def test_every_known_difference_has_an_example() -> None:
    assert set(DIFFERENCE_EXAMPLES) == set(KNOWN_DIFFERENCES)


@pytest.mark.parametrize("name", DIFFERENCE_EXAMPLES)
def test_the_known_differences_are_real(name: str) -> None:
    """Each allowed difference still happens, on its example: one that stops happening (convlens or
    PyTorch changed) must leave KNOWN_DIFFERENCES, so that the fuzz tests check those calls again."""
    test, call, broken = DIFFERENCE_EXAMPLES[name]
    difference = KNOWN_DIFFERENCES[name]
    (ours, error), (theirs, torch_error) = RUNS[test](call)
    assert test in difference.tests
    assert known_difference(test, difference.convlens, call, frozenset(broken), error) == name
    if difference.convlens == "refuses":
        assert torch_error is None and error is not None, (torch_error, error)
    elif difference.convlens == "accepts":
        assert torch_error is not None and error is None, (torch_error, error)
    elif difference.convlens == "differs":
        x = torch.randn(1, theirs.in_channels, 8, 8)
        assert ours(x).shape != theirs(x).shape
    else:  # misnames
        assert error is not None and not any(names(str(error), argument) for argument in broken), error
