"""The weight gradient by Winograd's transforms: PyTorch's in float64, within the forward's error
bounds in float32, and used by the backward exactly where its rule says."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens import native
from convlens.algos import winograd
from convlens.algos.auto import choose
from convlens.algos.winograd import grad as winograd_grad
from convlens.algos.winograd import plan as winograd_plan
from convlens.spec import ConvSpec
from helpers import Case, conv_cases, tolerances, winograd_tiles_of

# 3x3, stride 1 or 2, dilation 1, one group, zero padding: what the backward routes here
DENSE_3X3_CASES = st.one_of(
    *(
        conv_cases(
            kernels=st.just(3),
            strides=st.just(stride),
            dilations=st.just(1),
            max_groups=1,
            modes=st.just("zeros"),
            max_batch=3,
            extra_size=12,
            allow_same=stride == 1,
        )
        for stride in (1, 2)
    )
)


def batched_tensors(case: Case, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, ConvSpec, torch.Tensor]:
    x, w, _ = case.tensors(dtype)
    x = x if case.batched else x.unsqueeze(0)
    spec = ConvSpec.from_args(x, w, None, **case.options)
    grad_output = torch.randn((x.shape[0], w.shape[0], *spec.out_size), dtype=torch.float64).to(dtype)
    return x, w, spec, grad_output


def pytorch_weight_grad(x: torch.Tensor, w: torch.Tensor, grad_output: torch.Tensor, options: dict) -> torch.Tensor:
    w = w.detach().requires_grad_()
    zero_padding_options = {name: value for name, value in options.items() if name != "padding_mode"}
    return torch.autograd.grad(F.conv2d(x, w, **zero_padding_options), w, grad_output)[0]


@pytest.mark.parametrize("piece_bytes", [1, 1 << 30], ids=["one tile row per piece", "whole batch"])
@pytest.mark.parametrize("precision", ["highest", "high"])
@settings(max_examples=40, deadline=None)
@given(case=DENSE_3X3_CASES)
def test_float64_equals_pytorch(piece_bytes: int, precision: str, case: Case) -> None:
    x, w, spec, grad_output = batched_tensors(case, torch.float64)
    sizes = dict.fromkeys(("PIECE_BYTES", "LARGE_IMAGE_BYTES", "BAND_BYTES"), piece_bytes)
    with winograd_tiles_of(precision), mock.patch.multiple(winograd_plan, **sizes):
        ours = winograd_grad.weight_grad(grad_output, x, spec)
    theirs = pytorch_weight_grad(x, w, grad_output, case.options)
    assert ours.shape == w.shape and ours.dtype == w.dtype
    torch.testing.assert_close(ours, theirs, **tolerances(torch.float64), msg=lambda m: f"{case}\n{m}")


@pytest.mark.parametrize("precision", ["highest", "high"])
@settings(max_examples=40, deadline=None)
@given(case=DENSE_3X3_CASES)
def test_float32_error_within_the_forward_bounds(precision: str, case: Case) -> None:
    """Against float64: F(2x2) within 2x PyTorch's own float32 error, F(4x4) within 50x (the
    forward's documented bounds), both above a floor of 4 float32 ulps of the gradient's scale."""
    x, w, spec, grad_output = batched_tensors(case, torch.float32)
    truth = pytorch_weight_grad(x.double(), w.double(), grad_output.double(), case.options)
    with winograd_tiles_of(precision):
        ours = winograd_grad.weight_grad(grad_output, x, spec)
    theirs = pytorch_weight_grad(x, w, grad_output, case.options)
    floor = 4 * torch.finfo(torch.float32).eps * max(1.0, truth.abs().max().item() if truth.numel() else 0.0)
    our_error = (ours.double() - truth).abs().max().item() if truth.numel() else 0.0
    their_error = (theirs.double() - truth).abs().max().item() if truth.numel() else 0.0
    assert our_error <= (2 if precision == "highest" else 50) * max(their_error, floor), (case, our_error, their_error)


@pytest.mark.parametrize("piece_bytes", [1, 1 << 30], ids=["one tile row per piece", "whole batch"])
@pytest.mark.parametrize("precision", ["highest", "high"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["NCHW", "channels-last"])
@pytest.mark.parametrize("stride", [1, 2])
def test_float32_takes_v_from_the_compiled_input_pass(
    piece_bytes: int, precision: str, channels_last: bool, stride: int
) -> None:
    """A float32 CPU layer at stride 1 or 2 gets V from winograd.c's input pass (padding, gather and
    transform in one), piece by piece; its weight gradient is the torch-op pipeline's within rounding,
    and within the forward's bound of float64."""
    if not native.available():
        pytest.skip(native.reason())
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(3, 24, 13, 11, generator=generator)  # tiles overhang the output on both sides
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    w = torch.randn(32, 24, 3, 3, generator=generator)
    spec = ConvSpec.from_args(x, w, None, stride=stride, padding=1)
    grad_output = torch.randn(3, 32, *spec.out_size, generator=generator)
    sizes = dict.fromkeys(("PIECE_BYTES", "LARGE_IMAGE_BYTES", "BAND_BYTES"), piece_bytes)
    with winograd_tiles_of(precision), mock.patch.multiple(winograd_plan, **sizes):
        with mock.patch.object(native, "winograd_input", wraps=native.winograd_input) as compiled:
            ours = winograd_grad.weight_grad(grad_output, x, spec)
        assert compiled.called
        with mock.patch.object(native, "runs_winograd", lambda *args: False):
            pipeline = winograd_grad.weight_grad(grad_output, x, spec)
    options = {"stride": stride, "padding": 1}
    truth = pytorch_weight_grad(x.double(), w.double(), grad_output.double(), options)
    scale = truth.abs().max().item()
    torch.testing.assert_close(ours, pipeline, rtol=0, atol=1e-5 * scale)
    theirs = pytorch_weight_grad(x, w, grad_output, options)
    floor = 4 * torch.finfo(torch.float32).eps * scale
    bound = 2 if precision == "highest" or stride == 2 else 50  # stride 2: F(2x2) at either precision
    assert (ours.double() - truth).abs().max().item() <= bound * max(
        (theirs.double() - truth).abs().max().item(), floor
    )


@pytest.mark.parametrize("channels_last", [False, True], ids=["NCHW", "channels-last"])
@pytest.mark.parametrize(
    ("channels", "groups", "create_graph", "by_winograd"),
    [(64, 1, False, True), (16, 1, False, False), (128, 2, False, False), (64, 1, True, False)],
    ids=["64 channels", "16 channels (auto: im2col)", "2 groups of 64", "recorded backward"],
)
def test_the_backward_takes_it_where_auto_picks_winograd(
    channels: int, groups: int, create_graph: bool, by_winograd: bool, channels_last: bool
) -> None:
    """The backward's weight gradient goes through Winograd where auto's rule picks Winograd for the layer,
    with one group, and not while the backward is itself recorded; PyTorch's gradient either way. The
    forward runs Winograd too: at precision "high" its F(4x4) weight gradient (50x) serves only a
    forward whose own bound allows it (``tests/test_backward_bounds.py``)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, channels, 24, 24, dtype=torch.float64).contiguous(memory_format=layout)
    w = torch.randn(channels, channels // groups, 3, 3, dtype=torch.float64).contiguous(memory_format=layout)
    x.requires_grad_(), w.requires_grad_()
    with (
        convlens.settings(precision="high"),
        mock.patch.object(winograd_grad, "weight_grad", wraps=winograd_grad.weight_grad) as spy,
    ):
        out = convlens.conv2d(x, w, padding=1, groups=groups, algorithm="winograd")
        grad_output = torch.randn_like(out)
        ours = torch.autograd.grad(out, (x, w), grad_output, create_graph=create_graph)
    theirs = torch.autograd.grad(F.conv2d(x, w, padding=1, groups=groups), (x, w), grad_output)
    assert spy.called == by_winograd
    # The input gradient goes by Winograd F(4x4) here: its transforms' rounding in float64 reaches
    # about 1e-12 on these gradients of magnitude ~30 (seen: 1.35e-12), over the usual 1e-12.
    for mine, expected in zip(ours, theirs, strict=True):
        torch.testing.assert_close(mine, expected, rtol=1e-12, atol=1e-10)


def test_a_stride_2_layer_auto_runs_by_winograd_gets_its_weight_gradient_by_winograd(monkeypatch) -> None:
    """Where auto picks the fused stride-2 Winograd (float32, an image per thread), the backward's
    weight gradient goes through the same stride-2 transforms, within 2x PyTorch's own float32 error
    against float64 (or 4 ulps of the gradient's scale)."""
    if not native.available():
        pytest.skip(native.reason())
    monkeypatch.setattr(winograd_plan, "threads", lambda: 2)
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(2, 64, 24, 24, generator=generator, requires_grad=True)
    w = torch.randn(64, 64, 3, 3, generator=generator, requires_grad=True)
    assert choose(ConvSpec.from_args(x, w, stride=2, padding=1)).algorithm.name == "winograd"
    with mock.patch.object(winograd_grad, "weight_grad", wraps=winograd_grad.weight_grad) as spy:
        out = convlens.conv2d(x, w, stride=2, padding=1)
        grad_output = torch.randn(out.shape, generator=generator)
        ours = torch.autograd.grad(out, w, grad_output)[0]
    assert spy.called
    truth = pytorch_weight_grad(x.double(), w.double(), grad_output.double(), {"stride": 2, "padding": 1})
    theirs = pytorch_weight_grad(x, w, grad_output, {"stride": 2, "padding": 1})
    floor = 4 * torch.finfo(torch.float32).eps * truth.abs().max().item()
    their_error = (theirs.double() - truth).abs().max().item()
    assert (ours.double() - truth).abs().max().item() <= 2 * max(their_error, floor)


@pytest.mark.parametrize(("channels", "by_winograd"), [(32, True), (256, False)], ids=["a tile per channel", "1/8"])
def test_a_stride_2_layer_run_otherwise_gets_winograds_weight_gradient_where_its_tiles_pay(
    channels: int, by_winograd: bool
) -> None:
    """A 3x3 stride-2 layer that auto runs by another algorithm still gets its weight gradient by
    Winograd where it has at least one tile per output channel (it reads no transformed weight),
    within 2x PyTorch's own float32 error against float64; by the products where it has fewer."""
    if not native.available():
        pytest.skip(native.reason())
    generator = torch.Generator().manual_seed(8)
    x = torch.randn(2, channels, 16, 16, generator=generator, requires_grad=True)  # 2 x 16 F(2x2) tiles at stride 2
    w = torch.randn(channels, channels, 3, 3, generator=generator, requires_grad=True)
    assert choose(ConvSpec.from_args(x, w, stride=2, padding=1)).algorithm.name != "winograd"
    with mock.patch.object(winograd_grad, "weight_grad", wraps=winograd_grad.weight_grad) as spy:
        out = convlens.conv2d(x, w, stride=2, padding=1)
        grad_output = torch.randn(out.shape, generator=generator)
        ours = torch.autograd.grad(out, w, grad_output)[0]
    assert spy.called == by_winograd
    truth = pytorch_weight_grad(x.double(), w.double(), grad_output.double(), {"stride": 2, "padding": 1})
    theirs = pytorch_weight_grad(x, w, grad_output, {"stride": 2, "padding": 1})
    floor = 4 * torch.finfo(torch.float32).eps * truth.abs().max().item()
    their_error = (theirs.double() - truth).abs().max().item()
    assert (ours.double() - truth).abs().max().item() <= 2 * max(their_error, floor)


def test_an_empty_batch_has_a_zero_weight_gradient() -> None:
    """No tiles to sum over: zeros, not whatever the kept grad_U buffer held."""
    x, grad_output = torch.randn(0, 4, 6, 6), torch.randn(0, 5, 6, 6)
    spec = ConvSpec.from_args(x, torch.empty(5, 4, 3, 3), padding=1)
    winograd.SCRATCH.take("grad_u", (16, 5, 4), torch.float32, x.device).fill_(float("nan"))
    assert torch.equal(winograd_grad.weight_grad(grad_output, x, spec), torch.zeros(5, 4, 3, 3))
