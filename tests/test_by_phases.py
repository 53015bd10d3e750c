"""The input gradient of a strided convolution phase by phase (``autograd/by_phases.py``): the
torch-op reference and gemm.c's route against float64 and PyTorch, gemm.c's phase rows against
the torch ops, and where the backward takes it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens import native
from convlens.algos import gemm
from convlens.autograd import by_phases
from convlens.spec import ConvSpec
from convlens.verify import allowed_error

WORKSPACE = 1 << 28

needs_kernels = pytest.mark.skipif(not native.available(), reason="the compiled core is not built")


def pytorch_grad_input(grad_output, x, w, stride, padding, dilation, dtype=torch.float64):
    """PyTorch's dLoss/d x (in ``dtype``)."""
    return torch.ops.aten.convolution_backward(
        grad_output.to(dtype), x.to(dtype), w.to(dtype), None, list(stride), list(padding), list(dilation),
        False, [0, 0], 1, [True, False, False],
    )[0]  # fmt: skip


SMALL_CHANNELS = st.integers(1, 5)


@st.composite
def strided_layers(draw, channels=SMALL_CHANNELS):
    """(x, w, stride, padding, dilation), at least one stride above 1, the window fitting."""
    k = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(2, 3)))
    stride = stride if draw(st.booleans()) else stride[::-1]
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 4)), draw(st.integers(0, 4)))
    reach = [d * (kk - 1) + 1 for d, kk in zip(dilation, k)]
    size = [draw(st.integers(max(1, r - 2 * p), r + 9)) for r, p in zip(reach, padding)]
    c_in, c_out, n = draw(channels), draw(channels), draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c_in, *size, generator=generator, dtype=torch.float64)
    w = torch.randn(c_out, c_in, *k, generator=generator, dtype=torch.float64)
    return x, w, stride, padding, dilation


@settings(max_examples=150, deadline=None)
@given(layer=strided_layers())
def test_the_phases_are_the_input_gradient(layer) -> None:
    """The torch-op reference, any kernel, stride, dilation and padding (taps that reach only the
    padding, phases no tap reaches): PyTorch's input gradient, in float64."""
    x, w, stride, padding, dilation = layer
    spec = ConvSpec.from_args(x, w, None, stride, padding, dilation)
    grad_output = torch.randn(spec.output_shape, dtype=torch.float64)
    with torch.no_grad():
        ours = by_phases.grad_input_by_phases(grad_output, w, spec, WORKSPACE, compiled=False)
    torch.testing.assert_close(ours, pytorch_grad_input(grad_output, x, w, stride, padding, dilation))


def test_the_phases_of_resnets_strided_layer() -> None:
    """The module docstring's example: 3x3, stride 2, padding 1 at 56x56 has phases of 1 and 2 taps
    per axis, in reverse, the two-tap phase padded by one after."""
    rows = by_phases.axis_phases(3, 1, 2, 1, 56, 28)
    assert [(p.start, p.count, p.taps, p.padding, p.reads) for p in rows] == [
        (0, 28, (1,), (0, 0), slice(0, 28)),
        (1, 28, (2, 0), (0, 1), slice(0, 28)),
    ]


def test_a_phase_no_tap_reaches_is_zero() -> None:
    """Dilation 2 at stride 2 reaches only the even positions of the padded input: with padding 0
    the odd input positions get no gradient, and the route writes zeros there."""
    x, w = torch.randn(1, 2, 9, 9, dtype=torch.float64), torch.randn(3, 2, 3, 3, dtype=torch.float64)
    spec = ConvSpec.from_args(x, w, None, 2, 0, 2)
    assert [p.taps for p in by_phases.axis_phases(3, 2, 2, 0, 9, spec.out_size[0])] == [(2, 1, 0), ()]
    grad_output = torch.randn(spec.output_shape, dtype=torch.float64)
    with torch.no_grad():
        ours = by_phases.grad_input_by_phases(grad_output, w, spec, WORKSPACE, compiled=False)
    assert ours[:, :, 1::2].eq(0).all() and ours[:, :, :, 1::2].eq(0).all()
    torch.testing.assert_close(ours, pytorch_grad_input(grad_output, x, w, (2, 2), (0, 0), (2, 2)))


@needs_kernels
@settings(max_examples=60, deadline=None)
@given(layer=strided_layers(channels=st.sampled_from([16, 32])), threads=st.integers(1, 3))
def test_gemm_c_runs_the_phases_within_the_exact_bound(layer, threads) -> None:
    """gemm.c's route, float32: within the exact algorithms' bound (twice PyTorch's error against
    float64), the same bits whatever the number of threads."""
    x64, w64, stride, padding, dilation = layer
    x, w = x64.float(), w64.float()
    spec = ConvSpec.from_args(x, w, None, stride, padding, dilation)
    grad_output = torch.randn(spec.output_shape)
    if not by_phases.runs_compiled(grad_output, w, spec):
        return  # every phase one tap by one: the route is not taken
    before = torch.get_num_threads()
    try:
        results = []
        for count in (1, threads):
            torch.set_num_threads(count)
            with torch.no_grad():
                results.append(by_phases.grad_input_by_phases(grad_output, w, spec, WORKSPACE))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(results[0], results[1])
    truth = pytorch_grad_input(grad_output, x, w, stride, padding, dilation)
    theirs = pytorch_grad_input(grad_output, x, w, stride, padding, dilation, torch.float32)
    scale = truth.abs().max().item()
    allowed = allowed_error((theirs.double() - truth).abs().max().item(), scale, convlens.algos.EXACT_BOUND)
    assert (results[0].double() - truth).abs().max().item() <= allowed


@needs_kernels
@pytest.mark.parametrize(
    ("c_out", "c_in", "kernel", "stride"),
    [(16, 16, (3, 3), 2), (40, 80, (3, 3), 2), (24, 144, (5, 4), 3), (16, 64, (1, 3), 2)],
)
def test_gemm_c_lays_out_each_phases_rows_as_the_torch_ops(c_out, c_in, kernel, stride) -> None:
    """native.gemm_phase_rows: each phase's block is its turned sub-kernel as gemm.c reads a weight,
    (taps*C_out, C_in) rows in panels of 64 input channels, bit for bit; on 1 and 2 threads."""
    generator = torch.Generator().manual_seed(5)
    w = torch.randn(c_out, c_in, *kernel, generator=generator)
    x = torch.randn(1, c_in, 11, 11, generator=generator)
    spec = ConvSpec.from_args(x, w, None, stride, 1)
    found = by_phases.phases(spec)
    places, spans, size = by_phases.placements(w.shape, found)
    expected = torch.cat([
        native.panels(by_phases.phase_weight(w, p).permute(2, 3, 1, 0).reshape(1, -1, c_in)).view(-1)
        for p in found if p.spec is not None
    ])  # fmt: skip
    blocks = [span for span in spans if span is not None]  # one after the other, covering the rows
    assert size == expected.numel() and [b.start for b in blocks] == [0] + [b.stop for b in blocks[:-1]]
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            assert torch.equal(native.gemm_phase_rows(w, places, size).view(-1), expected)
    finally:
        torch.set_num_threads(before)


@needs_kernels
@pytest.mark.parametrize(
    ("batch", "c_in", "kernel", "phases_taken"),
    [
        (8, 32, 3, True),  # 8 * 8 * 8 = 512 positions
        (7, 32, 3, False),  # 448 positions: col2im
        (8, 24, 3, False),  # C_in not a multiple of 16: gemm.c cannot write the phases
        (8, 32, 1, False),  # a 1x1 kernel: one tap per phase, col2im's product and nothing to add
    ],
)
def test_which_strided_layers_take_the_phases(monkeypatch, batch, c_in, kernel, phases_taken) -> None:
    """The backward takes the phases where ``pays``: from MIN_POSITIONS positions of grad_output,
    gemm.c running every phase; the gradient is PyTorch's either way."""
    calls = []
    real = by_phases.grad_input_by_phases
    monkeypatch.setattr(by_phases, "grad_input_by_phases", lambda *a, **k: calls.append(1) or real(*a, **k))
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(batch, c_in, 16, 16, generator=generator, requires_grad=True)
    w = torch.randn(16, c_in, kernel, kernel, generator=generator) / (c_in * kernel * kernel) ** 0.5
    out = convlens.conv2d(x, w, stride=2, padding=kernel // 2)
    grad_output = torch.randn(out.shape, generator=generator)
    (grad_x,) = torch.autograd.grad(out, x, grad_output)
    x_theirs = x.detach().clone().requires_grad_()
    (expected,) = torch.autograd.grad(F.conv2d(x_theirs, w, stride=2, padding=kernel // 2), x_theirs, grad_output)
    torch.testing.assert_close(grad_x, expected)
    assert bool(calls) == phases_taken


@needs_kernels
def test_the_phase_rows_are_kept_under_the_weight_until_it_changes() -> None:
    """A second backward with the same weight reuses its phase rows; after an in-place change (an
    optimizer step) they are made again, into the same buffer, and the gradient follows the new
    values."""
    generator = torch.Generator().manual_seed(9)
    x = torch.randn(8, 32, 16, 16, generator=generator, requires_grad=True)
    w = torch.randn(32, 32, 3, 3, generator=generator) / 17
    grad_output = torch.randn(8, 32, 8, 8, generator=generator)
    misses, pointers = [], []
    for step in range(3):
        if step == 2:
            w.mul_(-0.5)
        before = gemm.WEIGHT_ROWS.misses
        (grad_x,) = torch.autograd.grad(convlens.conv2d(x, w, stride=2, padding=1), x, grad_output)
        misses.append(gemm.WEIGHT_ROWS.misses - before)
        spec = ConvSpec.from_args(x, w, None, 2, 1)
        with torch.no_grad():
            pointers.append(by_phases.phase_rows(w, spec)[0].data_ptr())
        x_theirs = x.detach().clone().requires_grad_()
        (expected,) = torch.autograd.grad(F.conv2d(x_theirs, w, stride=2, padding=1), x_theirs, grad_output)
        torch.testing.assert_close(grad_x, expected)
    # the forward's rows (gemm.c runs it: auto's pick for this layer) or none, and the phase rows
    assert misses[1] == 0 and misses[2] == misses[0] >= 1
    assert pointers[0] == pointers[1] == pointers[2]
