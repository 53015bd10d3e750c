"""The shared backward: gradcheck, gradgradcheck, and gradients equal to PyTorch's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings

import convlens
from convlens import algos
from convlens.spec import ConvSpec
from helpers import Case, reference_conv2d, small_cases, tolerances

ALGORITHMS = convlens.algorithms()


def runs(algorithm: str, case: Case) -> bool:
    if algorithm == "auto":
        return True
    x, w, b = case.tensors()
    return algos.get(algorithm).supports(ConvSpec.from_args(x, w, b, **case.options)) is None


def conv_of(case: Case, algorithm: str):
    return lambda x, w, *b: convlens.conv2d(x, w, b[0] if b else None, **case.options, algorithm=algorithm)


def inputs(case: Case):
    x, w, b = case.tensors(torch.float64, requires_grad=True)
    return (x, w) if b is None else (x, w, b)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=40)
@given(case=small_cases())
def test_gradcheck(algorithm: str, case: Case) -> None:
    if runs(algorithm, case):
        assert torch.autograd.gradcheck(conv_of(case, algorithm), inputs(case), fast_mode=True)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=15)
@given(case=small_cases())
def test_gradgradcheck(algorithm: str, case: Case) -> None:
    if runs(algorithm, case):
        assert torch.autograd.gradgradcheck(conv_of(case, algorithm), inputs(case), fast_mode=True)


FIXED = {
    "strided, grouped, dilated, asymmetric padding": Case(
        2, 4, 6, (7, 8), (3, 2), {"stride": (2, 3), "padding": (1, 2), "dilation": (2, 1), "groups": 2}
    ),
    "same, even kernel, reflect": Case(1, 2, 2, (5, 6), (2, 4), {"padding": "same", "padding_mode": "reflect"}),
    "depthwise, stride 2, circular": Case(
        2, 3, 3, (6, 6), (3, 3), {"stride": 2, "padding": 1, "groups": 3, "padding_mode": "circular"}
    ),
    "non-contiguous input, replicate": Case(
        1, 2, 3, (5, 5), (3, 3), {"padding": 2, "padding_mode": "replicate"}, layout="strided"
    ),
    # stride 1: the input gradient is itself a convolution (grouped, dilated, asymmetric padding)
    "stride 1, grouped, dilated, same with an even kernel": Case(
        2, 4, 6, (7, 8), (2, 3), {"padding": "same", "dilation": (3, 2), "groups": 2}
    ),
    # more padding than the kernel reaches (3 > 1): the col2im path
    "stride 1, padding past the kernel's reach": Case(1, 2, 3, (4, 5), (2, 2), {"padding": 3}),
}


@pytest.mark.parametrize("name", FIXED)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_full_gradcheck_on_fixed_cases(algorithm: str, name: str) -> None:
    case = FIXED[name]
    if runs(algorithm, case):
        assert torch.autograd.gradcheck(conv_of(case, algorithm), inputs(case))
        assert torch.autograd.gradgradcheck(conv_of(case, algorithm), inputs(case))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=40)
@given(case=small_cases())
def test_gradients_equal_pytorch(algorithm: str, dtype: torch.dtype, case: Case) -> None:
    if not runs(algorithm, case):
        return
    ours_in = case.tensors(dtype, requires_grad=True)
    theirs_in = case.tensors(dtype, requires_grad=True)
    ours = convlens.conv2d(*ours_in, **case.options, algorithm=algorithm)
    theirs = reference_conv2d(*theirs_in, **case.options)
    grad_output = torch.randn_like(theirs)
    ours.backward(grad_output)
    theirs.backward(grad_output)
    for name, mine, reference in zip(("input", "weight", "bias"), ours_in, theirs_in):
        if mine is None:
            continue
        torch.testing.assert_close(
            mine.grad, reference.grad, **tolerances(dtype), msg=lambda m, name=name: f"{name}: {case}\n{m}"
        )


def test_only_requested_gradients_are_computed() -> None:
    x = torch.randn(2, 3, 8, 8)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    convlens.conv2d(x, w, padding=1).sum().backward()
    assert x.grad is None
    assert w.grad is not None


@pytest.mark.parametrize("algorithm", ["im2col", "winograd", "gemm"])
def test_backward_keeps_the_input_not_a_padded_copy(algorithm) -> None:
    """As PyTorch does: the graph holds the input itself; the backward pads it again when it needs it."""
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    out = convlens.conv2d(x, w, padding=2, algorithm=algorithm)
    node = out.grad_fn  # through the layout fix-up (a copy, for some algorithms) to the convolution's node
    while type(node).__name__ != "Conv2dFunctionBackward":
        node = node.next_functions[0][0]
    saved_input, _weight = node.saved_tensors
    assert saved_input.shape == x.shape and saved_input.data_ptr() == x.data_ptr()
    out.backward(torch.ones_like(out))
    expected_x, expected_w = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    F.conv2d(expected_x, expected_w, padding=2).backward(torch.ones_like(out))
    torch.testing.assert_close(x.grad, expected_x.grad)
    torch.testing.assert_close(w.grad, expected_w.grad)


@pytest.mark.parametrize(("stride", "uses_col2im"), [(1, False), (2, True)])
def test_stride_1_input_gradient_is_a_convolution(monkeypatch, stride, uses_col2im) -> None:
    """With stride 1, dLoss/dx is computed as a convolution of grad_output (no col2im scatter-add)."""
    import convlens.autograd

    calls = []
    real_col2im = convlens.autograd.col2im
    monkeypatch.setattr(convlens.autograd, "col2im", lambda *a, **k: calls.append(1) or real_col2im(*a, **k))
    x = torch.randn(2, 6, 9, 9, requires_grad=True)
    w = torch.randn(4, 3, 3, 3)
    out = convlens.conv2d(x, w, stride=stride, padding=1, groups=2)
    (grad_x,) = torch.autograd.grad(out, x, torch.ones_like(out))
    expected_x = x.detach().requires_grad_()
    (expected,) = torch.autograd.grad(F.conv2d(expected_x, w, stride=stride, padding=1, groups=2), expected_x,
                                      torch.ones_like(out))  # fmt: skip
    torch.testing.assert_close(grad_x, expected)
    assert bool(calls) == uses_col2im
