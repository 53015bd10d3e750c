"""Winograd F(2x2,3x3) and F(4x4,3x3): derived transforms, accuracy against float64, a cache that is never stale."""

from __future__ import annotations

import re
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens.algos import winograd
from convlens.algos.scratch import Scratch
from convlens.algos.winograd import forward as winograd_forward
from convlens.algos.winograd import plan as winograd_plan
from convlens.algos.winograd import transforms as winograd_transforms
from convlens.algos.winograd.forward import SCRATCH, channels_last_tiled
from convlens.algos.winograd.transforms import WEIGHT_CACHE, transforms
from convlens.spec import ConvSpec
from helpers import Case, conv_cases, reference_conv2d, tolerances, winograd_tiles_of

WINOGRAD_CASES = st.one_of(
    conv_cases(kernels=st.just(3), strides=st.just(1), dilations=st.just(1), extra_size=12),
    conv_cases(kernels=st.just(3), strides=st.just(2), dilations=st.just(1), extra_size=12, allow_same=False),
)


PRECISIONS = pytest.mark.parametrize("precision", ["highest", "high"])


@pytest.mark.parametrize("m", [2, 4])
def test_transforms_compute_correlation_exactly(m: int) -> None:
    a_t, g, b_t = transforms(m)
    t = m + 2
    assert a_t.shape == (m, t) and g.shape == (t, 3) and b_t.shape == (t, t)
    d = torch.randn(t, dtype=torch.float64)
    kernel = torch.randn(3, dtype=torch.float64)
    correlation = torch.stack([(d[i : i + 3] * kernel).sum() for i in range(m)])  # no flip
    torch.testing.assert_close(a_t @ ((g @ kernel) * (b_t @ d)), correlation, rtol=1e-13, atol=1e-13)


def test_stride_2_transforms_compute_strided_correlation_exactly() -> None:
    """F(2, 3) at stride 2: two outputs two inputs apart from 5 inputs, with 5 products, no flip."""
    a_t, g, b_t = winograd.STRIDED
    assert a_t.shape == (2, 5) and g.shape == (5, 3) and b_t.shape == (5, 5)
    assert set(torch.cat([a_t.flatten(), g.flatten(), b_t.flatten()]).tolist()) == {-1.0, 0.0, 1.0}
    d = torch.randn(5, dtype=torch.float64)
    kernel = torch.randn(3, dtype=torch.float64)
    correlation = torch.stack([(d[2 * i : 2 * i + 3] * kernel).sum() for i in range(2)])
    torch.testing.assert_close(a_t @ ((g @ kernel) * (b_t @ d)), correlation, rtol=1e-13, atol=1e-13)
    with pytest.raises(AssertionError, match="stride 1 do not reproduce"):  # not the stride-1 correlation
        winograd_transforms.check_correlation(a_t, g, b_t, stride=1)


def test_f2_transforms_are_the_textbook_ones() -> None:
    """Up to the sign and scale a row of G may carry, F(2, 3) with points 0, 1, -1 is Lavin & Gray's."""
    a_t, g, b_t = transforms(2)
    torch.testing.assert_close(a_t, torch.tensor([[1.0, 1, 1, 0], [0, 1, -1, 1]], dtype=torch.float64))
    torch.testing.assert_close(
        b_t, torch.tensor([[-1.0, 0, 1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]], dtype=torch.float64)
    )
    # Row 0 of G and of B^T both carry a sign flip relative to the paper; their product does not.
    torch.testing.assert_close(
        g, torch.tensor([[-1.0, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=torch.float64)
    )


@PRECISIONS
@settings(max_examples=80)
@given(case=WINOGRAD_CASES)
def test_float64_equals_pytorch(precision: str, case: Case) -> None:
    x, w, b = case.tensors(torch.float64)
    with winograd_tiles_of(precision):
        ours = convlens.conv2d(x, w, b, **case.options, algorithm="winograd")
    torch.testing.assert_close(ours, reference_conv2d(x, w, b, **case.options), **tolerances(torch.float64))


@PRECISIONS
@settings(max_examples=60)
@given(case=WINOGRAD_CASES)
def test_float32_error_within_documented_bound(precision: str, case: Case) -> None:
    """Within the documented bound, ``error_bound(spec)`` times PyTorch's own error against float64
    (plus a float32 ulp floor): 2x for F(2x2,3x3), 50x for F(4x4,3x3), allowed only at precision "high"."""
    x, w, b = case.tensors(torch.float32)
    truth = reference_conv2d(*(t.double() if t is not None else None for t in (x, w, b)), **case.options)
    spec = ConvSpec.from_args(x, w, b, **case.options)
    documented = convlens.algos.get("winograd")
    with winograd_tiles_of(precision):
        ours = convlens.conv2d(x, w, b, **case.options, algorithm="winograd")
        multiple = documented.error_bound(spec)  # for the tile size this call used
    theirs = reference_conv2d(x, w, b, **case.options)
    floor = 4 * torch.finfo(torch.float32).eps * max(1.0, truth.abs().max().item() if truth.numel() else 0.0)
    our_error = (ours.double() - truth).abs().max().item() if truth.numel() else 0.0
    their_error = (theirs.double() - truth).abs().max().item() if truth.numel() else 0.0
    bound = multiple * max(their_error, floor)
    assert our_error <= bound, (case, our_error, their_error, multiple)


def test_cache_reused_while_the_weight_is_unchanged() -> None:
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 4, 3, 3)
    convlens.conv2d(x, w, algorithm="winograd")
    hits = WEIGHT_CACHE.hits
    convlens.conv2d(x, w, algorithm="winograd")
    assert WEIGHT_CACHE.hits == hits + 1


def test_a_changed_weight_is_transformed_again_into_the_same_buffer() -> None:
    weight = torch.randn(8, 8, 3, 3)
    first = winograd_transforms.cached_weight_transform(weight, 4, 1, torch.float32)
    address = first.data_ptr()
    weight.add_(1.0)  # an optimizer step
    again = winograd_transforms.cached_weight_transform(weight, 4, 1, torch.float32)
    assert again.data_ptr() == address  # no fresh allocation (no page faults) on every step
    assert torch.equal(again, winograd_transforms.transform_weight(weight, 4, 1, torch.float32))


@pytest.mark.parametrize("groups", [1, 2])
def test_the_weight_transform_in_chunks_of_filters(groups) -> None:
    """U[g, xi, c, o] = sum_k kron(G, G)[xi, k] * weight[g*C_out/G + o, c, k], whatever the chunk size."""
    weight = torch.randn(10, 3, 3, 3, dtype=torch.float64)
    g = transforms(4)[1]
    expected = torch.einsum("xk,gock->gxco", torch.kron(g, g), weight.reshape(groups, 10 // groups, 3, 9))
    for filters in (1, 3, 64):
        with mock.patch.object(winograd_transforms, "TRANSFORM_FILTERS", filters):
            u = winograd_transforms.transform_weight(weight, 4, groups, torch.float64)
        torch.testing.assert_close(u, expected)


def test_cache_entries_die_with_their_weight() -> None:
    """Weights used once (as the backward's turned weights are) must not pile up transforms in the cache."""
    x = torch.randn(1, 4, 8, 8)
    held = len(WEIGHT_CACHE)
    for _ in range(5):
        convlens.conv2d(x, torch.randn(4, 4, 3, 3), algorithm="winograd")
    assert len(WEIGHT_CACHE) == held
    kept = torch.randn(4, 4, 3, 3)
    convlens.conv2d(x, kept, algorithm="winograd")
    assert len(WEIGHT_CACHE) == held + 1
    del kept
    assert len(WEIGHT_CACHE) == held


@pytest.mark.parametrize("change", ["add_", "data", "copy_", "optimizer", "requires_grad parameter"])
def test_cache_is_never_stale(change: str) -> None:
    torch.manual_seed(0)
    layer = convlens.nn.Conv2d(4, 4, 3, padding=1, algorithm="winograd")
    x = torch.randn(2, 4, 8, 8)
    before = layer(x).detach()  # fills the cache
    with torch.no_grad():
        if change == "add_":
            layer.weight.add_(1.0)
        elif change == "data":
            layer.weight.data[0, 0, 0, 0] += 5.0  # .data writes bypass autograd's version counter
        elif change == "copy_":
            layer.weight.copy_(torch.randn_like(layer.weight))
    if change == "optimizer":
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
        layer(x).square().sum().backward()
        optimizer.step()
    misses = WEIGHT_CACHE.misses
    if change == "requires_grad parameter":
        # values no other case produces: the cache is keyed by values, so equal values may rightly hit
        layer.weight = torch.nn.Parameter(layer.weight.detach() * -2.0)
    expected = torch.nn.functional.conv2d(x, layer.weight, layer.bias, padding=1)
    scale = expected.abs().max().item()
    tolerance = 1e-5 * max(1.0, scale)  # float32 rounding at the output's size
    assert (expected - before).abs().max().item() > 1000 * tolerance  # the change is visible: a stale cache would fail
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=tolerance)
    assert WEIGHT_CACHE.misses == misses + 1  # the changed (or new) weight was transformed afresh


def test_unsupported_configurations_say_what_is_supported() -> None:
    with pytest.raises(ValueError, match=r"only 3x3 kernels with stride 1 or 2 and dilation 1, got kernel \(5, 5\)"):
        convlens.conv2d(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 5, 5), algorithm="winograd")
    for stride in ((1, 2), (3, 3)):
        with pytest.raises(ValueError, match=rf"stride {re.escape(str(stride))}"):
            convlens.conv2d(torch.randn(1, 1, 8, 8), torch.randn(1, 1, 3, 3), stride=stride, algorithm="winograd")


@pytest.mark.parametrize(
    ("batch", "size", "precision", "m"),
    [
        (1, 7, "high", 2),  # 4 F(4x4) tiles: the products would only stream U
        (4, 7, "high", 2),  # 16
        (8, 7, "high", 4),  # 32 = F4_MIN_TILES
        (1, 28, "high", 4),  # 49
        (8, 5, "high", 2),  # no room for 4x4 tiles
        (8, 28, "highest", 2),  # F(4x4) only where precision "high" allows it
    ],
)
def test_tile_size_follows_precision_and_tile_count(batch: int, size: int, precision: str, m: int) -> None:
    spec = ConvSpec.from_args(torch.empty(batch, 8, size, size), torch.empty(8, 8, 3, 3), padding=1)
    with convlens.settings(precision=precision):
        assert winograd.tile_size(spec) == m
        assert winograd.error_bound(spec) == (50.0 if m == 4 else 2.0)


def test_precision_setting() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        convlens.set_precision("medium")


@settings(max_examples=40, deadline=None)
@given(
    padding=st.tuples(*[st.integers(0, 3)] * 4),
    size=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    extension=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    channels_last=st.booleans(),
)
def test_the_channels_last_copy_writes_the_padding_zeros(padding, size, extension, channels_last) -> None:
    """Only the padding and extension strips are zeroed in the kept buffer: what a previous call
    left there (NaN here) must not show through."""
    x = torch.randn(2, 3, *size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    top, bottom, left, right = padding
    target = (size[0] + top + bottom + extension[0], size[1] + left + right + extension[1])
    SCRATCH.take("x", (2, *target, 3), torch.float32, x.device).fill_(float("nan"))
    padded = channels_last_tiled(x, padding, target, torch.float32)
    expected = F.pad(x, (left, right + extension[1], top, bottom + extension[0])).permute(0, 2, 3, 1)
    assert padded.shape == expected.shape and padded.is_contiguous()
    assert torch.equal(padded, expected)


@pytest.mark.parametrize("piece_bytes", [1, 1 << 12], ids=["one tile row per piece", "a few rows or images"])
@PRECISIONS
@settings(max_examples=30, deadline=None)
@given(case=WINOGRAD_CASES)
def test_pieces_of_images_and_tile_rows_match_pytorch(piece_bytes: int, precision: str, case: Case) -> None:
    x, w, b = case.tensors(torch.float64)
    sizes = dict.fromkeys(("PIECE_BYTES", "LARGE_IMAGE_BYTES", "BAND_BYTES"), piece_bytes)
    with mock.patch.multiple(winograd_plan, **sizes), winograd_tiles_of(precision):
        ours = convlens.conv2d(x, w, b, **case.options, algorithm="winograd")
    theirs = reference_conv2d(x, w, b, **case.options)
    torch.testing.assert_close(ours, theirs, **tolerances(torch.float64), msg=lambda m: f"{case}\n{m}")


@pytest.mark.parametrize(("precision", "m"), [("highest", 2), ("high", 4)], ids=["F(2x2)", "F(4x4)"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["NCHW", "channels-last"])
@pytest.mark.parametrize("width", [7, 14, 17, 28], ids=lambda w: f"width {w}")
def test_the_output_is_its_own_contiguous_tensor_in_the_input_layout(
    width: int, channels_last: bool, precision: str, m: int
) -> None:
    """Narrow NCHW outputs (tiles spanning at most NARROW_WIDTH columns) go through channels-last scratch
    and are copied out cropped; wider ones are written in place. Either way the caller gets a
    tensor of its own, equal to PyTorch's: a second call, which reuses the scratch, leaves the
    first result as it was."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 6, 9, width, dtype=torch.float64).contiguous(memory_format=layout)
    w, b = torch.randn(5, 6, 3, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    with winograd_tiles_of(precision), mock.patch.object(winograd_forward, "SCRATCH", Scratch()):
        first = convlens.conv2d(x, w, b, padding=1, algorithm="winograd")
        kept = first.clone()
        convlens.conv2d(torch.randn_like(x), w, b, padding=1, algorithm="winograd")
        through_scratch = any(name == "out" for name, _, _ in winograd_forward.SCRATCH.buffers)
    assert first.is_contiguous(memory_format=layout)
    assert torch.equal(first, kept)
    torch.testing.assert_close(first, F.conv2d(x, w, b, padding=1), **tolerances(torch.float64))
    tiled_width = -(-width // m) * m  # whole tiles of m columns
    assert through_scratch == (tiled_width <= winograd_plan.NARROW_WIDTH and not channels_last)


def test_a_large_image_goes_in_bands_of_tile_rows() -> None:
    """VGG-16's 64-channel layer at 224x224: one image's F(4x4) tiles are 29 MiB, so a piece is a band;
    ResNet-50's 128-channel layer at 28x28 (0.9 MiB per image) goes in whole images."""
    spec = ConvSpec.from_args(torch.empty(2, 64, 224, 224), torch.empty(64, 64, 3, 3), padding=1)
    images, rows = winograd_plan.pieces(spec, 4, (56, 56), u_bytes=36 * 64 * 64 * 4)
    assert images == 1 and rows == winograd_plan.BAND_BYTES // (36 * 56 * 64 * 4) < 56
    small = ConvSpec.from_args(torch.empty(8, 128, 28, 28), torch.empty(128, 128, 3, 3), padding=1)
    assert winograd_plan.pieces(small, 4, (7, 7), u_bytes=36 * 128 * 128 * 4) == (8, 7)


@pytest.mark.parametrize(
    ("batch", "channels", "size", "bands"),
    # several pieces of images (4 tiles across: the output through channels-last scratch, or 7: not); bands of tile rows
    [(3, 16, 13, False), (8, 8, 28, False), (1, 8, 30, True)],
)
def test_predicted_buffers_are_the_ones_the_forward_takes(batch: int, channels: int, size: int, bands: bool) -> None:
    """The bench's extra-memory figure for Winograd is ``buffer_bytes``: it must be what a call really holds.
    (The Python path's; tests/test_native.py checks the compiled passes'.)"""
    x, w = torch.randn(batch, channels, size, size), torch.randn(channels * 2, channels, 3, 3)
    spec = ConvSpec.from_args(x, w, padding=1)
    limits = {"PIECE_BYTES": 64 * 1024, "LARGE_IMAGE_BYTES": 32 * 1024 if bands else 1 << 30, "BAND_BYTES": 8 * 1024}
    limits["native"] = limits["fused"] = False  # the Python path
    with (
        winograd_tiles_of("high"),
        mock.patch.multiple(winograd_plan, **limits),
        mock.patch.object(winograd_forward, "SCRATCH", Scratch()),
    ):
        convlens.conv2d(x, w, padding=1, algorithm="winograd")
        predicted = winograd.buffer_bytes(spec, convlens.get_workspace_limit())
        taken = {
            name: buffer.numel() * buffer.element_size()
            for (name, _, _), buffer in winograd_forward.SCRATCH.buffers.items()
        }
        m = winograd.tile_size(spec)
        u = winograd_transforms.cached_weight_transform(w, m, 1, torch.float32)
    tiles_h, tiles_w = winograd_plan.tile_grid(spec, m)
    via_hwc = tiles_w * m <= winograd_plan.NARROW_WIDTH
    scratch_names = ("x", "tiles", "v", "products", "y") + (("out",) if via_hwc else ())
    assert taken == {name: predicted[name] for name in scratch_names}
    assert u.numel() * u.element_size() == predicted["transformed weight"]
    assert predicted["saved weight"] == w.numel() * 4
    overhang = batch * 2 * channels * (tiles_h * tiles_w * m * m - size * size) * 4
    assert (predicted["out"], predicted["overhang"]) == (
        (overhang + x.numel() * 2 * 4, 0) if via_hwc else (0, overhang)
    )
