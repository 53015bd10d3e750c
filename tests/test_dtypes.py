"""Every dtype PyTorch's CPU kernels take: complex64 and complex128, and integers.

conv2d also runs int8, int16, int32, int64 and uint8 (no gradients; sums wrap around as the integer
type does, so every exact algorithm gives PyTorch's result bit for bit whatever its order), and
unfold and fold take bool instead of integers, as PyTorch's do.

A complex convolution is the same sums with complex products; its gradients are PyTorch's
(conjugate Wirtinger): dLoss/d x correlates grad_output back with conj(weight), dLoss/d weight
with conj(x). Winograd, FFT and banded are built on real transforms and refuse complex tensors;
auto never picks them for one."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings

import convlens
from convlens import algos
from convlens.algos import auto
from helpers import Case, conv_cases, reference_conv2d, small_cases

COMPLEX_ALGORITHMS = ("auto", "direct", "gemm", "im2col", "depthwise")
REAL_ONLY = ("winograd", "fft", "banded")
TOLERANCES = {torch.complex64: {"rtol": 1.3e-6, "atol": 1e-5}, torch.complex128: {"rtol": 1e-12, "atol": 1e-12}}


def complex_tensors(case: Case, dtype: torch.dtype, requires_grad: bool = False):
    """The case's tensors with an imaginary part of their own (the real tensors of another seed)."""
    real = case.tensors(torch.float64)
    imaginary = Case(**{**vars(case), "seed": case.seed + 1}).tensors(torch.float64)
    made = []
    for re, im in zip(real, imaginary, strict=True):
        if re is None:
            made.append(None)
            continue
        value = torch.complex(re.contiguous(), im.contiguous()).to(dtype)
        made.append(value.detach().requires_grad_() if requires_grad else value)
    return tuple(made)


def runs(algorithm: str, x: torch.Tensor, w: torch.Tensor, b, options: dict) -> bool:
    if algorithm == "auto":
        return True
    return algos.get(algorithm).supports(convlens.ConvSpec.from_args(x, w, b, **options)) is None


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize("algorithm", COMPLEX_ALGORITHMS)
@settings(max_examples=30)
@given(case=conv_cases())
def test_complex_forward_equals_pytorch(algorithm: str, dtype: torch.dtype, case: Case) -> None:
    x, w, b = complex_tensors(case, dtype)
    if not runs(algorithm, x, w, b, case.options):
        return
    ours = convlens.conv2d(x, w, b, **case.options, algorithm=algorithm)
    torch.testing.assert_close(ours, reference_conv2d(x, w, b, **case.options), **TOLERANCES[dtype])


@pytest.mark.parametrize("algorithm", ["auto", "im2col", "direct"])
@settings(max_examples=15)
@given(case=small_cases())
def test_complex_gradcheck_and_gradgradcheck(algorithm: str, case: Case) -> None:
    x, w, b = complex_tensors(case, torch.complex128, requires_grad=True)
    if not runs(algorithm, x, w, b, case.options):
        return
    inputs = (x, w) if b is None else (x, w, b)

    def conv(x, w, *b):
        return convlens.conv2d(x, w, b[0] if b else None, **case.options, algorithm=algorithm)

    batched = not (case.batch == 0 and case.options.get("padding_mode") == "circular")  # test_autograd says why
    assert torch.autograd.gradcheck(conv, inputs, fast_mode=True, check_batched_grad=batched)
    assert torch.autograd.gradgradcheck(conv, inputs, fast_mode=True, check_batched_grad=batched)


@pytest.mark.parametrize("algorithm", COMPLEX_ALGORITHMS)
@settings(max_examples=20)
@given(case=conv_cases())
def test_complex_gradients_equal_pytorch(algorithm: str, case: Case) -> None:
    x, w, b = complex_tensors(case, torch.complex64)
    if not runs(algorithm, x, w, b, case.options):
        return
    leaves = [t.detach().requires_grad_() for t in (x, w, b) if t is not None]
    ours = convlens.conv2d(*leaves[:2], leaves[2] if b is not None else None, **case.options, algorithm=algorithm)
    theirs = reference_conv2d(*leaves[:2], leaves[2] if b is not None else None, **case.options)
    grad_output = torch.randn(theirs.shape, dtype=theirs.dtype, generator=torch.Generator().manual_seed(7))
    for mine, reference in zip(
        torch.autograd.grad(ours, leaves, grad_output), torch.autograd.grad(theirs, leaves, grad_output), strict=True
    ):
        torch.testing.assert_close(mine, reference, **TOLERANCES[torch.complex64])


@pytest.mark.parametrize("name", REAL_ONLY)
def test_real_transform_algorithms_refuse_complex_and_auto_avoids_them(name: str) -> None:
    """Shapes where auto picks Winograd, FFT and banded for float32 inputs: for complex ones it picks
    an exact algorithm, and the named algorithm refuses with its reason."""
    shapes = {
        "winograd": ((8, 128, 24, 24), (128, 128, 3, 3), {"padding": 1}),
        "fft": ((8, 32, 40, 40), (32, 32, 11, 11), {"padding": 5}),
        "banded": ((8, 64, 14, 14), (64, 1, 7, 7), {"padding": 3, "groups": 64}),
    }
    x_shape, w_shape, options = shapes[name]
    real = convlens.ConvSpec.from_args(
        torch.empty(x_shape, device="meta"), torch.empty(w_shape, device="meta"), **options
    )
    assert auto.rule(real).algorithm.name == name
    x = torch.randn(x_shape[0] // 4, *x_shape[1:], dtype=torch.complex64)
    w = torch.randn(w_shape, dtype=torch.complex64)
    spec = convlens.ConvSpec.from_args(x, w, **options)
    assert auto.choose(spec).algorithm.name in COMPLEX_ALGORITHMS
    with pytest.raises(ValueError, match="real floating-point tensors only"):
        convlens.conv2d(x, w, **options, algorithm=name)
    theirs = F.conv2d(x, w, **options)  # sums of up to 1,152 complex products: outputs up to ~200
    torch.testing.assert_close(convlens.conv2d(x, w, **options), theirs, rtol=1e-5, atol=1e-3)


def test_complex_layer_and_unfold_fold_equal_pytorchs() -> None:
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect", dtype=torch.complex64)
    ours = convlens.nn.Conv2d(4, 6, 3, padding=1, padding_mode="reflect", dtype=torch.complex64)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 4, 9, 9, dtype=torch.complex64)
    torch.testing.assert_close(ours(x), theirs(x), **TOLERANCES[torch.complex64])
    cols = convlens.unfold(x, 3, padding=1, stride=2)
    torch.testing.assert_close(cols, F.unfold(x, 3, padding=1, stride=2))
    torch.testing.assert_close(
        convlens.fold(cols, (9, 9), 3, padding=1, stride=2), F.fold(cols, (9, 9), 3, padding=1, stride=2)
    )


def test_complex_under_torch_func() -> None:
    """vmap and vjp run the transforms' Function (func.py), whose backward conjugates too."""
    x = torch.randn(3, 2, 2, 7, 7, dtype=torch.complex128)
    w = torch.randn(4, 2, 3, 3, dtype=torch.complex128)
    mapped = torch.func.vmap(lambda x: convlens.conv2d(x, w, padding=1))(x)
    torch.testing.assert_close(mapped, torch.stack([F.conv2d(image, w, padding=1) for image in x]))
    out, pullback = torch.func.vjp(lambda x, w: convlens.conv2d(x, w, stride=2), x[0], w)
    grad_output = torch.randn_like(out)
    expected = torch.func.vjp(lambda x, w: F.conv2d(x, w, stride=2), x[0], w)[1](grad_output)
    for mine, reference in zip(pullback(grad_output), expected, strict=True):
        torch.testing.assert_close(mine, reference)


INTEGERS = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


@pytest.mark.parametrize("dtype", INTEGERS)
@pytest.mark.parametrize("algorithm", COMPLEX_ALGORITHMS)
@settings(max_examples=25)
@given(case=conv_cases())
def test_integer_convolutions_equal_pytorchs_bit_for_bit(algorithm: str, dtype: torch.dtype, case: Case) -> None:
    """Values up to the type's range, so products and sums wrap around (uint8: 255 * 255)."""
    generator = torch.Generator().manual_seed(case.seed)
    low, high = (0, 256) if dtype == torch.uint8 else (-100, 100)
    x, w, b = case.tensors(torch.float64)
    x, w = (torch.randint(low, high, t.shape, generator=generator).to(dtype) for t in (x, w))
    b = None if b is None else torch.randint(low, high, b.shape, generator=generator).to(dtype)
    if not runs(algorithm, x, w, b, case.options):
        return
    if dtype != torch.int64 and case.options["dilation"] != (1, 1):
        return  # PyTorch's dilated kernel lacks these types (tests/test_fuzz.py's known differences)
    ours = convlens.conv2d(x, w, b, **case.options, algorithm=algorithm)
    theirs = reference_conv2d(x, w, b, **case.options)
    assert ours.dtype == dtype and torch.equal(ours, theirs)


def test_unfold_and_fold_take_bool_and_refuse_integers_as_pytorch() -> None:
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(0)) > 0.5
    cols = convlens.unfold(x, 3, stride=2)
    assert torch.equal(cols, F.unfold(x, 3, stride=2))
    assert torch.equal(convlens.fold(cols, (6, 6), 3, stride=2), F.fold(cols, (6, 6), 3, stride=2))
    for function, tensor in ((convlens.unfold, x.long()), (convlens.fold, cols.long())):
        with pytest.raises(TypeError, match=r"input\.dtype=torch\.int64"):
            function(tensor, *(((6, 6),) if function is convlens.fold else ()), 3)
