"""im2col's workspace pieces and batch folding: any split of the batch and of the output rows, folded or
not, gives the same answer."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens import native
from convlens.algos import im2col
from convlens.algos.cache import TransformCache
from convlens.algos.im2col import folds_batch, plan_pieces
from convlens.spec import ConvSpec
from convlens.unfold import zero_pad
from convlens.verify import allowed_error
from helpers import Case, assert_same_layout, conv_cases, reference_conv2d


@settings(max_examples=100)
@given(case=conv_cases(), workspace=st.integers(1, 4000))
def test_any_workspace_gives_the_same_result(case: Case, workspace: int) -> None:
    x, w, b = case.tensors(torch.float64)
    ours = convlens.conv2d(x, w, b, **case.options, algorithm="im2col", workspace_limit=workspace)
    torch.testing.assert_close(ours, reference_conv2d(x, w, b, **case.options), rtol=1e-12, atol=1e-12)


@settings(max_examples=100)
@given(case=conv_cases(), workspace=st.integers(1, 4000), fold=st.booleans())
def test_folded_and_per_image_products_agree(case: Case, workspace: int, fold: bool) -> None:
    x, w, b = case.tensors(torch.float64)
    with mock.patch.object(im2col, "folds_batch", lambda spec: fold):
        ours = convlens.conv2d(x, w, b, **case.options, algorithm="im2col", workspace_limit=workspace)
    expected = reference_conv2d(x, w, b, **case.options)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)
    assert_same_layout(ours, expected, case)  # the layout PyTorch gives, folded or not


def test_folding_rule() -> None:
    def spec(size: int, kernel: int, stride: int = 1, batch: int = 8) -> ConvSpec:
        x, w = torch.empty(batch, 16, size, size), torch.empty(16, 16, kernel, kernel)
        return ConvSpec.from_args(x, w, stride=stride)

    assert folds_batch(spec(8, 1))  # 64 positions per image: too few columns for one product each
    assert folds_batch(spec(16, 3, stride=2))  # 49 positions
    assert not folds_batch(spec(8, 1, batch=1))  # one image: nothing to fold
    assert not folds_batch(spec(14, 1))  # 196 positions: each image's product is wide enough
    assert not folds_batch(spec(58, 3))  # 3136 positions


def test_plan_splits_images_first_then_rows() -> None:
    spec = ConvSpec.from_args(torch.empty(8, 4, 10, 10), torch.empty(2, 4, 3, 3))  # 8x8 outputs
    row_bytes = 4 * 9 * 8 * 4  # C_in*k*k * W_out * 4 bytes
    assert plan_pieces(spec, 10**9) == (8, 8)  # everything fits: one shot
    assert plan_pieces(spec, 3 * 8 * row_bytes) == (3, 8)  # three images at a time
    assert plan_pieces(spec, 5 * row_bytes) == (1, 5)  # one image is too big: bands of 5 rows
    assert plan_pieces(spec, 1) == (1, 1)  # never less than one row
    big = ConvSpec.from_args(torch.empty(8, 64, 58, 58), torch.empty(64, 64, 3, 3))  # 7 MiB of columns per image
    assert plan_pieces(big, 10**12) == (2, 56)  # pieces stay cache-sized (16 MiB) however large the workspace


def test_workspace_limit_setting() -> None:
    before = convlens.get_workspace_limit()
    try:
        convlens.set_workspace_limit(1024)
        assert convlens.get_workspace_limit() == 1024
        with pytest.raises(ValueError, match="limit_bytes must be positive, got limit_bytes=0"):
            convlens.set_workspace_limit(0)
        with pytest.raises(TypeError, match="limit_bytes must be an int"):
            convlens.set_workspace_limit(1.5)  # type: ignore[arg-type]
    finally:
        convlens.set_workspace_limit(before)
    with pytest.raises(ValueError, match="workspace_limit must be positive"):
        convlens.conv2d(torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3), workspace_limit=-5)


def test_columns_that_are_the_input_go_in_one_piece() -> None:
    """A 1x1 stride-1 kernel without padding: the columns are a view, so no workspace limit cuts them."""
    spec = ConvSpec.from_args(torch.empty(8, 64, 56, 56), torch.empty(128, 64, 1, 1))
    assert im2col.columns_are_input(spec)
    assert plan_pieces(spec, 1) == (8, 56)
    for other in ({"stride": 2}, {"padding": 1}):
        spec = ConvSpec.from_args(torch.empty(8, 64, 56, 56), torch.empty(128, 64, 1, 1), **other)
        assert not im2col.columns_are_input(spec)
        assert plan_pieces(spec, 1) == (1, 1)


@pytest.mark.parametrize("workspace", [10**9, 3000])  # whole images, and bands of rows through the products buffer
@pytest.mark.parametrize("fold", [False, True])
def test_kept_buffers_never_leak_between_calls(workspace: int, fold: bool) -> None:
    """Columns and products live in buffers kept between calls: whatever a buffer held before, each
    call's answer is its own and complete."""
    w, b = torch.randn(6, 4, 3, 3, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    first_x, second_x = torch.randn(2, 4, 9, 9, dtype=torch.float64), torch.randn(2, 4, 9, 9, dtype=torch.float64)
    with mock.patch.object(im2col, "folds_batch", lambda spec: fold):
        for buffer in im2col.SCRATCH.buffers.values():
            buffer.fill_(float("nan"))
        first = convlens.conv2d(first_x, w, b, stride=2, algorithm="im2col", workspace_limit=workspace)
        kept = {name: buffer.data_ptr() for name, buffer in im2col.SCRATCH.buffers.items()}
        second = convlens.conv2d(second_x, w, b, stride=2, algorithm="im2col", workspace_limit=workspace)
    assert {name: buffer.data_ptr() for name, buffer in im2col.SCRATCH.buffers.items()} == kept  # reused
    torch.testing.assert_close(first, reference_conv2d(first_x, w, b, stride=2), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(second, reference_conv2d(second_x, w, b, stride=2), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "kernel", "options", "workspace"),
    [
        ((3, 4, 9, 9), 3, {"padding": 1}, 12000),  # one image per piece
        ((2, 4, 9, 9), 3, {"stride": 2}, 600),  # bands of rows: the products go through their buffer
        ((8, 6, 5, 5), 1, {}, 10**9),  # 25 positions: the batch is folded, the columns copied
        ((2, 6, 12, 12), 1, {}, 1),  # 1x1 stride 1: the columns are the input, nothing is taken
        ((2, 6, 12, 12), 1, {"stride": (2, 3)}, 10**9),  # 1x1 strided: one copy of what it reads, one product
        ((2, 6, 12, 12), 1, {"stride": 2}, 300),  # 1x1 strided, too large for one piece: the pieces
    ],
)
@pytest.mark.parametrize("gather", [True, False])
def test_predicted_buffers_are_the_ones_the_forward_takes(
    shape, kernel: int, options: dict, workspace: int, gather: bool
) -> None:
    """The bench's extra-memory figure for im2col is ``buffer_bytes``: it must be what a call really
    holds, with the compiled gather (no padded copy: the padding goes into the columns) and without."""
    x, w = torch.randn(shape), torch.randn(5, shape[1], kernel, kernel)
    spec = ConvSpec.from_args(x, w, **options)
    padded = []
    with (
        mock.patch.object(im2col, "SCRATCH", im2col.Scratch()),
        mock.patch.object(im2col, "native", gather),
        mock.patch.object(im2col, "zero_pad", lambda x, padding: padded.append(any(padding)) or zero_pad(x, padding)),
    ):
        convlens.conv2d(x, w, **options, algorithm="im2col", workspace_limit=workspace)
        taken = {
            name: buffer.numel() * buffer.element_size() for (name, _, _), buffer in im2col.SCRATCH.buffers.items()
        }
        predicted = im2col.buffer_bytes(spec, workspace)
    assert taken == {name: size for name, size in predicted.items() if name != "padded input" and size}
    gathered = gather and native.available() and not im2col.columns_are_input(spec)  # im2col.c, as gathers()
    pointwise = im2col.one_product(spec, workspace)
    # a 1x1 unpadded layer in one piece: ``pointwise`` (or ``pointwise_folded``), no padding step at all
    assert padded == ([] if gathered or pointwise else [bool(options.get("padding"))])
    expected = shape[0] * shape[1] * 11 * 11 * 4 if "padding" in options and not gathered else 0
    assert predicted["padded input"] == expected


@pytest.mark.parametrize(("groups", "kernel"), [(1, 1), (1, 3), (2, 3)])
def test_predicted_buffers_for_a_channels_last_input(groups: int, kernel: int) -> None:
    """Channels-last: no buffer for a 1x1 kernel (the input is the columns), columns for a 3x3 one,
    and products as well when there are groups; and for a kernel larger than 1x1 the cached weight
    columns with the copy of the weight they are checked against (a 1x1 weight's are a view of it)."""
    x = torch.randn(2, 4, 9, 9).contiguous(memory_format=torch.channels_last)
    w = torch.randn(6, 4 // groups, kernel, kernel)
    options = {"padding": kernel // 2, "groups": groups}
    spec = ConvSpec.from_args(x, w, **options)
    with (
        mock.patch.object(im2col, "SCRATCH", im2col.Scratch()),
        mock.patch.object(im2col, "WEIGHT_COLUMNS", TransformCache()),
    ):
        out = convlens.conv2d(x, w, **options, algorithm="im2col")
        taken = {
            name: buffer.numel() * buffer.element_size() for (name, _, _), buffer in im2col.SCRATCH.buffers.items()
        }
        if im2col.WEIGHT_COLUMNS.nbytes:
            taken["cached weight"] = im2col.WEIGHT_COLUMNS.nbytes
        second = convlens.conv2d(x, w, **options, algorithm="im2col")
        assert im2col.WEIGHT_COLUMNS.hits == (kernel > 1)  # the same weight: its columns from the cache
        torch.testing.assert_close(second, out, rtol=0, atol=0)
        changing = w.clone()
        for _ in range(2):  # the same tensor, new values the second time: new columns
            torch.testing.assert_close(
                convlens.conv2d(x, changing, **options, algorithm="im2col"), F.conv2d(x, changing, **options)
            )
            changing.mul_(2)
    predicted = im2col.buffer_bytes(spec, convlens.get_workspace_limit())
    assert taken == {name: size for name, size in predicted.items() if name != "padded input" and size}
    torch.testing.assert_close(out, F.conv2d(x, w, **options))
    # the algorithm itself writes a channels-last output (no transposing copy afterwards)
    assert im2col.forward(x, w, None, spec, convlens.get_workspace_limit()).is_contiguous(
        memory_format=torch.channels_last
    )


@pytest.mark.parametrize(("batch", "groups", "bias"), [(1, 1, True), (3, 1, False), (3, 2, True)])
def test_a_1x1_stride_1_layer_is_one_product(batch: int, groups: int, bias: bool) -> None:
    """Its columns are the input: ``pointwise``, not the pieces, with one group, unless the batch is
    folded or the input is not contiguous NCHW; the same answer as PyTorch's either way, with a
    weight that requires grad too (torch.matmul would copy the input for it)."""
    x = torch.randn(batch, 8, 10, 12, dtype=torch.float64)
    w = torch.nn.Parameter(torch.randn(12, 8 // groups, 1, 1, dtype=torch.float64))
    b = torch.randn(12, dtype=torch.float64) if bias else None
    pieces = mock.Mock(side_effect=im2col.forward_in_pieces)
    with mock.patch.object(im2col, "forward_in_pieces", pieces), torch.no_grad():
        out = convlens.conv2d(x, w, b, groups=groups, algorithm="im2col")
        assert pieces.call_count == (groups > 1)
        last = convlens.conv2d(x.contiguous(memory_format=torch.channels_last), w, b, groups=groups, algorithm="im2col")
        assert pieces.call_count == (groups > 1) + 1
    for result in (out, last):
        torch.testing.assert_close(result, reference_conv2d(x, w, b, groups=groups), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bias", [True, False])
def test_a_1x1_layer_with_its_batch_folded_is_one_product_too(bias: bool) -> None:
    """Few positions per image (``folds_batch``): ``pointwise_folded``, one product over every image's
    positions, not the pieces; PyTorch's answer in PyTorch's layout, forward (kept buffers) and
    backward (fresh tensors while autograd records), the weight a Parameter."""
    x = torch.randn(4, 8, 5, 6, dtype=torch.float64, requires_grad=True)
    w = torch.nn.Parameter(torch.randn(12, 8, 1, 1, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(12, dtype=torch.float64)) if bias else None
    assert im2col.folds_batch(ConvSpec.from_args(x, w, b))
    pieces = mock.Mock(side_effect=im2col.forward_in_pieces)
    folded = mock.Mock(side_effect=im2col.pointwise_folded)
    with mock.patch.object(im2col, "forward_in_pieces", pieces), mock.patch.object(im2col, "pointwise_folded", folded):
        with torch.no_grad():
            out = convlens.conv2d(x, w, b, algorithm="im2col")
        assert (folded.call_count, pieces.call_count) == (1, 0)
        assert out.is_contiguous()
        torch.testing.assert_close(out, reference_conv2d(x, w, b), rtol=1e-12, atol=1e-12)
        inputs = (x, w) if b is None else (x, w, b)
        assert torch.autograd.gradcheck(lambda *args: convlens.conv2d(*args, algorithm="im2col"), inputs)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_a_strided_1x1_layer_is_one_product_of_what_it_reads(batch: int, bias: bool) -> None:
    """Every s-th row and column of the input, copied once, times the weight rows, bias in the
    product (per image, or folded: 8 images of 16 positions); PyTorch's answer; the pieces once
    that copy would not fit the workspace."""
    x = torch.randn(batch, 8, 10, 12, dtype=torch.float64)
    w = torch.nn.Parameter(torch.randn(12, 8, 1, 1, dtype=torch.float64))
    b = torch.randn(12, dtype=torch.float64) if bias else None
    spec = ConvSpec.from_args(x, w, b, stride=(3, 3))
    assert im2col.one_product(spec, 10**9) and not im2col.one_product(spec, 8)
    pieces = mock.Mock(side_effect=im2col.forward_in_pieces)
    with mock.patch.object(im2col, "forward_in_pieces", pieces), torch.no_grad():
        out = convlens.conv2d(x, w, b, stride=(3, 3), algorithm="im2col")
        assert pieces.call_count == 0
        small = convlens.conv2d(x, w, b, stride=(3, 3), algorithm="im2col", workspace_limit=8)
        assert pieces.call_count == 1
    for result in (out, small):
        torch.testing.assert_close(result, reference_conv2d(x, w, b, stride=(3, 3)), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda x, w: convlens.conv2d(x, w, stride=(3, 3), algorithm="im2col"),
        (x[:2].clone().requires_grad_(), w),
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("batch", "channels", "kernel", "bias"), [(1, 32, (2, 2), True), (3, 32, (3, 2), False)])
def test_non_overlapping_windows_of_a_channels_last_input_are_read_in_place(
    batch: int, channels: int, kernel: tuple[int, int], bias: bool, dtype: torch.dtype
) -> None:
    """kernel == stride, no padding, one group, a channels-last input (ConvNeXt's downsampling): no
    columns copied, k_h products over the rows of windows, read in place; PyTorch's answer, in its
    layout (channels-last)."""
    generator = torch.Generator().manual_seed(batch)
    h, w_in = 14 * kernel[0], 16 * kernel[1]  # W_out 16 >= PATCH_MIN_WIDTH
    x = torch.randn(batch, channels, h, w_in, generator=generator, dtype=torch.float64).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(24, channels, *kernel, generator=generator, dtype=torch.float64).to(dtype)
    b = torch.randn(24, generator=generator, dtype=torch.float64).to(dtype) if bias else None
    spec = ConvSpec.from_args(x, w, b, stride=kernel)
    assert im2col.patchifies(spec) and im2col.buffer_bytes(spec, 10**9)["cols"] == 0
    with (
        mock.patch.object(im2col, "patches", wraps=im2col.patches) as spy,
        mock.patch.object(im2col, "SCRATCH", im2col.Scratch()),
    ):
        out = convlens.conv2d(x, w, b, stride=kernel, algorithm="im2col")
        assert spy.call_count == 1 and not im2col.SCRATCH.buffers  # no columns
    expected = F.conv2d(x, w, b, stride=kernel)
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
    tolerance = {torch.float64: 1e-12, torch.float32: 1e-5}[dtype]
    torch.testing.assert_close(out, expected, rtol=tolerance, atol=tolerance)
    if dtype == torch.float64:
        torch.testing.assert_close(out, reference_conv2d(x, w, b, stride=kernel), rtol=1e-12, atol=1e-12)


F32, BF16 = torch.float32, torch.bfloat16


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "channels", "channels_last", "groups", "dtype"),
    [
        ((28, 28), 2, 2, 0, 32, False, 1, F32),  # NCHW: gemm.c's or the columns
        ((14, 14), 2, 2, 0, 32, True, 1, F32),  # W_out 7 < PATCH_MIN_WIDTH
        ((29, 28), 2, 2, 0, 32, True, 1, F32),  # a row no window reads
        ((28, 28), 2, 2, 1, 32, True, 1, F32),  # padding
        ((28, 28), 3, 2, 0, 32, True, 1, F32),  # overlapping windows
        ((28, 28), 2, 2, 0, 32, True, 2, F32),  # groups
        ((56, 56), 4, 4, 0, 3, True, 1, F32),  # a 12-deep product (a stem's): < PATCH_MIN_DEPTH
        ((28, 28), 2, 2, 0, 32, True, 1, BF16),  # each product's sum would round to bfloat16
    ],
)
def test_other_layers_do_not_take_the_patches(
    size: tuple[int, int],
    kernel: int,
    stride: int,
    padding: int,
    channels: int,
    channels_last: bool,
    groups: int,
    dtype: torch.dtype,
) -> None:
    x = torch.randn(2, channels, *size, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(16, channels // groups, kernel, kernel, dtype=dtype)
    options = {"stride": stride, "padding": padding, "groups": groups}
    spec = ConvSpec.from_args(x, w, **options)
    assert not im2col.patchifies(spec)
    with mock.patch.object(im2col, "patches", wraps=im2col.patches) as spy:
        out = convlens.conv2d(x, w, **options, algorithm="im2col")
    assert not spy.called
    # against float64, within im2col's bound of PyTorch's own error (a 128-deep float32 sum of random
    # values passed torch.testing's default 1e-5 now and then, PyTorch's too)
    exact = F.conv2d(x.double(), w.double(), **options)
    theirs = float((F.conv2d(x, w, **options).double() - exact).abs().max())
    allowed = allowed_error(theirs, float(exact.abs().max()), im2col.ALGORITHM.error_bound(spec))
    assert float((out.double() - exact).abs().max()) <= allowed


def test_a_strided_view_of_a_channels_last_tensor_takes_the_columns() -> None:
    """patches reads x through a view: an input that is not dense channels-last (a slice of one)
    goes through the columns, with the same answer."""
    x = torch.randn(2, 64, 28, 40).contiguous(memory_format=torch.channels_last)[..., :28]
    w = torch.randn(16, 64, 2, 2)
    assert im2col.patchifies(ConvSpec.from_args(x, w, stride=2)) and not im2col.dense_channels_last(x)
    with mock.patch.object(im2col, "patches", wraps=im2col.patches) as spy:
        out = convlens.conv2d(x, w, stride=2, algorithm="im2col")
    assert not spy.called
    torch.testing.assert_close(out, F.conv2d(x, w, stride=2))


def test_the_patches_gradients_are_pytorchs() -> None:
    x = torch.randn(1, 4, 28, 28, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    w = torch.randn(3, 4, 2, 2, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64)
    spec = ConvSpec.from_args(x, w, b, stride=2)
    with mock.patch.object(im2col, "PATCH_MIN_DEPTH", 8):  # 2 columns x 4 channels
        assert im2col.patchifies(spec)
        assert torch.autograd.gradcheck(
            lambda x, w, b: convlens.conv2d(x, w, b, stride=2, algorithm="im2col"),
            (x.requires_grad_(), w.requires_grad_(), b.requires_grad_()),
        )
