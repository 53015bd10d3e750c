"""convlens.conv2d under torch.func: grad, vmap, per-sample gradients, jvp, jacrev, jacfwd, hessian,
each against the same transform of PyTorch's convolution, in float64."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call, grad, hessian, jacfwd, jacrev, jvp, vmap

import convlens
from convlens import autograd, func
from helpers import Case, reference_conv2d, small_cases, tolerances

TIGHT = tolerances(torch.float64)


def convs(case: Case):
    """(convlens's, PyTorch's) conv of (x, w, b) with the case's options."""
    ours = lambda x, w, b: convlens.conv2d(x, w, b, **case.options)  # noqa: E731
    theirs = lambda x, w, b: reference_conv2d(x, w, b, **case.options)  # noqa: E731
    return ours, theirs


@settings(max_examples=40, deadline=None)
@given(case=small_cases(), argnum=st.integers(0, 2))
def test_grad_matches_pytorch(case: Case, argnum: int) -> None:
    x, w, b = case.tensors()
    if b is None and argnum == 2:
        argnum = 0
    ours, theirs = convs(case)
    cotangent = torch.randn(theirs(x, w, b).shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = grad(lambda *args: (ours(*args) * cotangent).sum(), argnums=argnum)(x, w, b)
    want = grad(lambda *args: (theirs(*args) * cotangent).sum(), argnums=argnum)(x, w, b)
    torch.testing.assert_close(got, want, **TIGHT, msg=lambda m: f"{case}, argument {argnum}: {m}")


@settings(max_examples=40, deadline=None)
@given(case=small_cases(), mapped=st.sampled_from(["x", "w", "w b", "x w b"]), size=st.integers(1, 3))
def test_vmap_matches_pytorch(case: Case, mapped: str, size: int) -> None:
    """The mapped dimension at a different place in each argument: 0 for w, 1 for b, the last for x."""
    x, w, b = case.tensors()
    if b is None:
        mapped = mapped.replace("b", "").strip() or "x"
    generator = torch.Generator().manual_seed(2)
    in_dims = []
    args = []
    for name, tensor, dim in (("x", x, x.dim()), ("w", w, 0), ("b", b, 1)):
        if tensor is not None and name in mapped.split():
            stacked = torch.stack(
                [tensor]
                + [torch.randn(tensor.shape, dtype=tensor.dtype, generator=generator) for _ in range(size - 1)],
                dim=dim,
            )
            args.append(stacked)
            in_dims.append(dim)
        else:
            args.append(tensor)
            in_dims.append(None)
    ours, theirs = convs(case)
    got = vmap(ours, in_dims=tuple(in_dims))(*args)
    want = vmap(theirs, in_dims=tuple(in_dims))(*args)
    torch.testing.assert_close(got, want, **TIGHT, msg=lambda m: f"{case}, mapped {mapped} x{size}: {m}")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"stride": 2, "padding": 1},
        {"groups": 3, "padding": 1},
        {"stride": (2, 1), "dilation": (1, 2), "padding": "valid"},
    ],
)
def test_per_sample_gradients_of_a_module(options: dict) -> None:
    """The torch.func recipe for per-sample gradients, vmap(grad(functional_call(...))), on a
    convlens layer gives what ordinary autograd gives on PyTorch's layer one sample at a time."""
    torch.manual_seed(0)
    ours = convlens.nn.Conv2d(6, 3, 3, **options, dtype=torch.float64)
    theirs = torch.nn.Conv2d(6, 3, 3, **options, dtype=torch.float64)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(4, 6, 8, 9, dtype=torch.float64)
    params = {name: p.detach() for name, p in ours.named_parameters()}

    def loss(params: dict, sample: torch.Tensor) -> torch.Tensor:
        return functional_call(ours, params, (sample.unsqueeze(0),)).pow(2).sum()

    per_sample = vmap(grad(loss), in_dims=(None, 0))(params, x)
    for i in range(x.shape[0]):
        theirs.zero_grad()
        theirs(x[i : i + 1]).pow(2).sum().backward()
        for name, p in theirs.named_parameters():
            torch.testing.assert_close(per_sample[name][i], p.grad, **TIGHT)


CASE = Case(2, 4, 6, (7, 8), (3, 2), {"stride": (2, 3), "padding": (1, 2), "dilation": (2, 1), "groups": 2})


def test_jvp_matches_pytorch() -> None:
    x, w, b = CASE.tensors()
    tangents = tuple(torch.randn_like(t) for t in (x, w, b))
    ours, theirs = convs(CASE)
    got_out, got_tangent = jvp(ours, (x, w, b), tangents)
    want_out, want_tangent = jvp(theirs, (x, w, b), tangents)
    torch.testing.assert_close(got_out, want_out, **TIGHT)
    torch.testing.assert_close(got_tangent, want_tangent, **TIGHT)


@pytest.mark.parametrize("transform", [jacrev, jacfwd])
@pytest.mark.parametrize("argnum", [0, 1, 2])
def test_jacobians_match_pytorch(transform, argnum: int) -> None:
    case = Case(1, 2, 2, (5, 6), (3, 3), {"stride": 2, "padding": 1})
    x, w, b = case.tensors()
    ours, theirs = convs(case)
    torch.testing.assert_close(
        transform(ours, argnums=argnum)(x, w, b), transform(theirs, argnums=argnum)(x, w, b), **TIGHT
    )


def test_hessian_matches_pytorch() -> None:
    """Second derivatives: jacfwd of jacrev, through the backward's own convolutions."""
    case = Case(1, 2, 1, (5, 5), (2, 2), {"padding": 1, "dilation": 2})
    x, w, b = case.tensors()
    ours, theirs = convs(case)
    torch.testing.assert_close(
        hessian(lambda w: ours(x, w, b).pow(3).sum())(w), hessian(lambda w: theirs(x, w, b).pow(3).sum())(w), **TIGHT
    )


def test_the_transform_form_is_used_only_under_a_transform() -> None:
    """Ordinary calls keep autograd.Conv2dFunction (cheaper to call); under a transform,
    func.FuncConv2dFunction (the only form torch.func accepts)."""
    x, w, b = CASE.tensors()
    refuse = mock.Mock(side_effect=AssertionError("the wrong Function was used"))
    with mock.patch.object(func.FuncConv2dFunction, "apply", refuse):
        convlens.conv2d(x, w, b, **CASE.options)
    with mock.patch.object(autograd.Conv2dFunction, "apply", refuse):
        grad(lambda w: convlens.conv2d(x, w, b, **CASE.options).sum())(w)
