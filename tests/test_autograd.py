"""The shared backward: gradcheck, gradgradcheck, and gradients equal to PyTorch's.

Every gradcheck and gradgradcheck also checks batched gradients (``check_batched_grad=True``, a
backward run under vmap), as PyTorch's own conv tests do: the backward must be vmap-clean."""

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


def batched_check(case: Case) -> bool:
    """Whether gradcheck also checks batched gradients: everywhere but a circularly padded empty
    batch, where PyTorch's own nn.Conv2d fails the check (F.pad's circular backward takes an
    as_strided that vmap refuses)."""
    return not (case.batch == 0 and case.options.get("padding_mode") == "circular")


def inputs(case: Case):
    x, w, b = case.tensors(torch.float64, requires_grad=True)
    return (x, w) if b is None else (x, w, b)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=40)
@given(case=small_cases())
def test_gradcheck(algorithm: str, case: Case) -> None:
    if runs(algorithm, case):
        assert torch.autograd.gradcheck(
            conv_of(case, algorithm), inputs(case), fast_mode=True, check_batched_grad=batched_check(case)
        )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=15)
@given(case=small_cases())
def test_gradgradcheck(algorithm: str, case: Case) -> None:
    if runs(algorithm, case):
        assert torch.autograd.gradgradcheck(
            conv_of(case, algorithm), inputs(case), fast_mode=True, check_batched_grad=batched_check(case)
        )


# Small shapes, every feature kept: the full (not fast-mode) gradcheck and gradgradcheck build the whole
# Jacobian, one forward per input element, so their cost grows with the square of the sizes.
FIXED = {
    "strided, grouped, dilated, asymmetric padding": Case(
        1, 4, 4, (6, 7), (3, 2), {"stride": (2, 3), "padding": (1, 2), "dilation": (2, 1), "groups": 2}
    ),
    "same, even kernel, reflect": Case(1, 2, 2, (4, 5), (2, 4), {"padding": "same", "padding_mode": "reflect"}),
    "depthwise, stride 2, circular": Case(
        2, 3, 3, (5, 5), (3, 3), {"stride": 2, "padding": 1, "groups": 3, "padding_mode": "circular"}
    ),
    "non-contiguous input, replicate": Case(
        1, 2, 2, (4, 4), (3, 3), {"padding": 2, "padding_mode": "replicate"}, layout="strided"
    ),
    "stride 1, grouped, dilated, same with an even kernel": Case(
        1, 4, 4, (5, 6), (2, 3), {"padding": "same", "dilation": (3, 2), "groups": 2}
    ),
    "stride 1, padding past the kernel's reach": Case(1, 2, 2, (3, 4), (2, 2), {"padding": 2}),
    # channels-last: the backward's positions-as-rows products and channels-last col2im
    "channels-last, strided, grouped, padded": Case(
        2, 4, 4, (5, 5), (3, 3), {"stride": 2, "padding": 1, "groups": 2}, layout="channels_last"
    ),
    "channels-last 1x1": Case(2, 3, 4, (4, 4), (1, 1), {}, layout="channels_last"),
}


@pytest.mark.parametrize("algorithm", ["im2col", "winograd", "auto"])
def test_gradcheck_where_the_input_gradient_is_a_convolution(algorithm: str) -> None:
    """Large enough (30x33, padded 1.13x) that the backward convolves grad_output; grouped, dilated, asymmetric."""
    kernel = (3, 3) if algorithm == "winograd" else (2, 3)
    options = {"padding": "same", "dilation": (1, 1) if algorithm == "winograd" else (2, 1), "groups": 2}
    case = Case(1, 4, 6, (30, 33), kernel, options)
    assert torch.autograd.gradcheck(
        conv_of(case, algorithm), inputs(case), fast_mode=True, check_batched_grad=batched_check(case)
    )
    assert torch.autograd.gradgradcheck(
        conv_of(case, algorithm), inputs(case), fast_mode=True, check_batched_grad=batched_check(case)
    )


@pytest.mark.parametrize("name", FIXED)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_full_gradcheck_on_fixed_cases(algorithm: str, name: str) -> None:
    case = FIXED[name]
    if runs(algorithm, case):
        assert torch.autograd.gradcheck(conv_of(case, algorithm), inputs(case), check_batched_grad=True)


# The double backward differentiates the backward, and the backward is shared: it depends on the
# forward's algorithm only through that algorithm's error bound (autograd/function.py), so every exact
# algorithm's double backward is the same computation as im2col's. The test below checks that they
# agree bit for bit; the full gradgradcheck then runs once per distinct backward.
EXACT = [name for name in ALGORITHMS if name not in ("auto", "winograd")]


@pytest.mark.parametrize("name", FIXED)
@pytest.mark.parametrize("algorithm", ["im2col", "winograd", "auto"])
def test_full_gradgradcheck_on_fixed_cases(algorithm: str, name: str) -> None:
    case = FIXED[name]
    if runs(algorithm, case):
        assert torch.autograd.gradgradcheck(conv_of(case, algorithm), inputs(case), check_batched_grad=True)


@pytest.mark.parametrize("name", FIXED)
def test_every_exact_algorithm_has_im2cols_double_backward(name: str) -> None:
    case = FIXED[name]
    results = {}
    for algorithm in EXACT:
        if not runs(algorithm, case):
            continue
        leaves = inputs(case)
        out = conv_of(case, algorithm)(*leaves)
        grad_output = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
        grads = torch.autograd.grad(out, leaves, grad_output, create_graph=True)
        differentiable = [g for g in grads if g.requires_grad]  # the bias gradient is a sum of grad_output alone
        weights = [
            torch.randn(g.shape, generator=torch.Generator().manual_seed(2), dtype=g.dtype) for g in differentiable
        ]
        second = torch.autograd.grad(differentiable, leaves, weights, allow_unused=True)
        results[algorithm] = [*grads, *second]
    assert "im2col" in results and len(results) > 1
    for algorithm, values in results.items():
        for ours, reference in zip(values, results["im2col"], strict=True):
            assert (ours is None and reference is None) or torch.equal(ours, reference), (algorithm, name)


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


@pytest.mark.parametrize(
    ("channels", "size", "stride", "uses_col2im"),
    [
        (256, 24, 1, False),  # Winograd F(2x2) (128 channels per group), 288 tiles for 256 channels
        (128, 16, 1, True),  # 64 per group: auto's im2col under F(2x2); padding 16x16 to 18x18 is 1.27x
        (6, 24, 1, False),  # im2col: padding grows 24x24 to 26x26, 1.17x
        (6, 9, 1, True),  # 9x9 to 11x11, 1.49x: the scatter-add is cheaper
        (6, 24, 2, True),  # stride 2: no such convolution
    ],
)
def test_which_way_the_input_gradient_goes(monkeypatch, channels, size, stride, uses_col2im) -> None:
    """dLoss/dx is a convolution of grad_output (no col2im scatter-add) where that is the faster way."""
    from convlens.autograd import products

    calls = []
    real_col2im = products.col2im
    monkeypatch.setattr(products, "col2im", lambda *a, **k: calls.append(1) or real_col2im(*a, **k))
    x = torch.randn(2, channels, size, size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(channels, channels // 2, 3, 3, dtype=torch.float64)
    out = convlens.conv2d(x, w, stride=stride, padding=1, groups=2)
    grad_output = torch.randn_like(out)
    (grad_x,) = torch.autograd.grad(out, x, grad_output)
    expected_x = x.detach().requires_grad_()
    (expected,) = torch.autograd.grad(F.conv2d(expected_x, w, stride=stride, padding=1, groups=2), expected_x,
                                      grad_output)  # fmt: skip
    torch.testing.assert_close(grad_x, expected)
    assert bool(calls) == uses_col2im


@pytest.mark.parametrize("few_positions", [0, 1 << 30], ids=["P columns", "P rows"])
def test_the_products_input_gradient_either_way_round(monkeypatch, few_positions) -> None:
    """dLoss/d cols = w_rows^T @ grad_rows taken as it reads or, with few positions, as the transposed
    product (``input_grad_columns``): PyTorch's input gradient either way, in float64, grouped and
    strided; with few positions a transposed view (the P axis is the product's rows)."""
    from convlens.autograd import products

    monkeypatch.setattr(products, "FEW_POSITIONS", few_positions)
    w_rows, grad_rows = torch.randn(2, 3, 12), torch.randn(2, 3, 5)
    transposed = products.input_grad_columns(w_rows, grad_rows).stride(-1) != 1
    assert transposed == (few_positions > 0)
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64, requires_grad=True)
    w = torch.randn(6, 2, 3, 3, dtype=torch.float64)
    out = convlens.conv2d(x, w, stride=2, padding=1, groups=2, algorithm="im2col")
    grad_output = torch.randn_like(out)
    (grad_x,) = torch.autograd.grad(out, x, grad_output)
    x_theirs = x.detach().requires_grad_()
    (expected,) = torch.autograd.grad(F.conv2d(x_theirs, w, stride=2, padding=1, groups=2), x_theirs, grad_output)
    torch.testing.assert_close(grad_x, expected)


def test_the_input_gradients_winograd_takes_u_of_the_turned_weight_from_the_weight(monkeypatch) -> None:
    """Where winograd.c's fused pass runs the input gradient's convolution, U of the turned weight is
    made from the weight itself and kept under it in the weight cache: a second backward with the
    same weight reuses it, one after the weight changed in place (an optimizer step) makes it again,
    and each gradient is within Winograd's bound of float64 (PyTorch's error times the bound)."""
    from convlens import native
    from convlens.algos.winograd import WEIGHT_CACHE
    from convlens.algos.winograd import forward as winograd_forward
    from convlens.verify import allowed_error

    if not native.available():
        pytest.skip(native.reason())
    turned_calls = []
    real_fused = winograd_forward.forward_fused

    def spy(*args, **kwargs):
        turned_calls.append(kwargs.get("turned", False))
        return real_fused(*args, **kwargs)

    monkeypatch.setattr(winograd_forward, "forward_fused", spy)
    generator = torch.Generator().manual_seed(11)
    x = torch.randn(2, 64, 20, 20, generator=generator)  # 200 F(2x2) tiles for 64 filters: auto's Winograd
    w = torch.randn(64, 64, 3, 3, generator=generator) / 24
    grad_output = torch.randn(2, 64, 20, 20, generator=generator)
    x_ours = x.clone().requires_grad_()
    misses = []
    for step in range(3):
        if step == 2:
            w.mul_(-0.5)  # new values in the same tensor: its U must be made again
        before = WEIGHT_CACHE.misses
        (grad_x,) = torch.autograd.grad(convlens.conv2d(x_ours, w, padding=1), x_ours, grad_output)
        misses.append(WEIGHT_CACHE.misses - before)
        x64 = x.double().requires_grad_()
        (truth,) = torch.autograd.grad(F.conv2d(x64, w.double(), padding=1), x64, grad_output.double())
        x32 = x.clone().requires_grad_()
        (theirs,) = torch.autograd.grad(F.conv2d(x32, w, padding=1), x32, grad_output)
        spec = ConvSpec.from_args(x, w, None, padding=1)
        bound = algos.get("winograd").error_bound(spec)
        allowed = allowed_error((theirs.double() - truth).abs().max().item(), truth.abs().max().item(), bound)
        assert (grad_x.double() - truth).abs().max().item() <= allowed
    assert turned_calls == [False, True] * 3  # the forward, then the input gradient, each step
    assert misses == [2, 0, 2]  # U and the turned U made, then both reused, then both made again


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("piece_bytes", [1, 1 << 30], ids=["one channel per piece", "one piece"])
def test_depthwise_gradients_tap_by_tap(layout: str, piece_bytes: int) -> None:
    """Depthwise (one filter per channel) takes its own backward, one scaled add per tap, in pieces
    of channels: PyTorch's gradients whatever the pieces and the layout."""
    from unittest import mock

    from convlens.algos import depthwise

    case = Case(2, 5, 5, (9, 8), (3, 3), {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 5})
    case.layout = layout
    ours_in, theirs_in = (
        case.tensors(torch.float64, requires_grad=True),
        case.tensors(torch.float64, requires_grad=True),
    )
    import convlens.autograd
    from convlens.autograd import function

    spy = mock.patch.object(function, "depthwise_grads", wraps=function.depthwise_grads)
    with mock.patch.object(depthwise, "PIECE_BYTES", piece_bytes), spy as depthwise_grads:
        ours = convlens.conv2d(*ours_in, **case.options)
        grad_output = torch.randn_like(ours)
        ours_grads = torch.autograd.grad(ours, ours_in, grad_output)
    depthwise_grads.assert_called_once()  # its own backward, not the im2col products
    theirs_grads = torch.autograd.grad(reference_conv2d(*theirs_in, **case.options), theirs_in, grad_output)
    for mine, expected in zip(ours_grads, theirs_grads, strict=True):
        torch.testing.assert_close(mine, expected)
