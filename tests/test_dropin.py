"""Drop-in details: what PyTorch accepts and how long it takes are what convlens accepts and takes."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

import convlens
from convlens.algos import auto


@pytest.mark.parametrize("stride", [1000, 4000, 2**31, 2**63 - 1])
@pytest.mark.parametrize("algorithm", convlens.algorithms())
def test_time_grows_with_the_output_not_the_stride(stride: int, algorithm: str) -> None:
    """A stride past the last window start gives one output along that axis; the algorithms see the
    stride clamped to the window starts, so a stride of 2**63 neither takes seconds (stride phases of
    10**6 planes) nor overflows index arithmetic (FFT's slicing, gemm's storage)."""
    x = torch.randn(1, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    spec = convlens.ConvSpec.from_args(x, w, stride=stride, groups=4)
    assert spec.stride == (3, 3) and spec.out_size == (1, 1)
    if algorithm != "auto" and convlens.algos.get(algorithm).supports(spec) is not None:
        return
    ours = convlens.conv2d(x, w, stride=stride, groups=4, algorithm=algorithm)
    theirs = F.conv2d(x, w, stride=stride, groups=4)
    torch.testing.assert_close(ours, theirs)
    grads = torch.autograd.grad(ours.sum(), (x, w))
    expected = torch.autograd.grad(theirs.sum(), (x, w))
    for mine, reference in zip(grads, expected, strict=True):
        torch.testing.assert_close(mine, reference)


def test_a_bool_after_the_first_item_of_a_tuple_is_accepted_as_pytorch_does() -> None:
    x, w = torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3)
    for options in ({"stride": (1, True)}, {"padding": (0, True)}, {"dilation": (2, True)}):
        torch.testing.assert_close(convlens.conv2d(x, w, **options), F.conv2d(x, w, **options))
    with pytest.raises(TypeError, match="got bool stride=True"):
        convlens.conv2d(x, w, stride=(True, 1))  # PyTorch refuses a bool first


def test_autotune_times_only_candidates_within_the_workspace_limit() -> None:
    """FFT keeps its spectra whole; with a workspace smaller than them, autotune must not time it
    (before, it timed FFT anyway and kept it, 1.4 GiB over the limit in the issue's case)."""
    x, w = torch.randn(4, 32, 24, 24), torch.randn(32, 32, 7, 7)
    spec = convlens.ConvSpec.from_args(x, w, padding=3)
    limit = 1 << 20
    assert convlens.algos.get("fft").extra_bytes(spec, limit) > limit
    auto.clear_cache()
    with convlens.settings(autotune=True):
        choice = auto.choose(spec, limit)
        unlimited = auto.choose(spec, 1 << 34)
    auto.clear_cache()
    assert choice.reason.startswith("timed once:") and "fft" not in choice.reason
    assert "im2col" in choice.reason  # the fallback that works in pieces is always a candidate
    assert "fft" in unlimited.reason


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize(("x_layout", "w_layout"), [("nchw", "nchw"), ("cl", "nchw"), ("nchw", "cl"), ("cl", "cl")])
def test_gradients_have_pytorchs_layout(x_layout: str, w_layout: str, padding: int) -> None:
    """Dense gradients in the convolution's layout: channels-last when the input or the weight is
    (before, a channels-last input's padded gradient came back as a non-dense view)."""
    formats = {"nchw": torch.contiguous_format, "cl": torch.channels_last}
    x = torch.randn(2, 8, 16, 16).contiguous(memory_format=formats[x_layout])
    w = torch.randn(8, 8, 3, 3).contiguous(memory_format=formats[w_layout])

    def strides(conv) -> list[tuple[int, ...]]:
        leaves = (x.detach().requires_grad_(), w.detach().requires_grad_())
        out = conv(*leaves, padding=padding)
        return [g.stride() for g in torch.autograd.grad(out, leaves, torch.ones_like(out))]

    assert strides(convlens.conv2d) == strides(F.conv2d)


@pytest.mark.parametrize("layout", ["nchw", "cl"])
@pytest.mark.parametrize(
    ("x_shape", "w_shape", "options"),
    [
        ((0, 3, 8, 8), (4, 3, 3, 3), {}),
        ((0, 4, 8, 8), (4, 1, 3, 3), {"groups": 4, "padding": 1}),  # output the input's shape: its layout kept
        ((0, 1, 1, 1), (1, 1, 1, 1), {}),  # PyTorch's (1, 0, 0, 0)
        ((0, 2, 5, 5), (4, 2, 3, 3), {"padding": 1, "padding_mode": "reflect"}),
    ],
)
@pytest.mark.parametrize("algorithm", ["auto", "im2col", "direct", "gemm", "fft"])
def test_empty_batch_output_has_pytorchs_strides(x_shape, w_shape, options, layout: str, algorithm: str) -> None:
    """Every layout test passes on a tensor with no elements, so the usual layout rule cannot tell;
    convlens copies PyTorch's strides (before, gemm returned a view of a larger padded buffer)."""
    memory_format = torch.channels_last if layout == "cl" else torch.contiguous_format
    x = torch.randn(x_shape).contiguous(memory_format=memory_format)
    w = torch.randn(w_shape)
    ours = convlens.conv2d(x, w, **options, algorithm=algorithm)
    mode = options.get("padding_mode", "zeros")
    module = torch.nn.Conv2d(x_shape[1], w_shape[0], w_shape[2:], bias=False, **options)
    module.weight.data = w
    theirs = module(x) if mode != "zeros" else F.conv2d(x, w, **options)
    assert ours.shape == theirs.shape and ours.stride() == theirs.stride()


def test_batched_gradients_of_a_1x1_convolution() -> None:
    """What PyTorch's test_Conv2d_1x1 checks: gradcheck, batched gradients included (before, the
    backward's in-place col2im sum into a fresh buffer failed under vmap)."""
    layer = convlens.nn.Conv2d(2, 2, 1, bias=False).double()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(convlens.conv2d, (x, layer.weight), check_batched_grad=True)


@pytest.mark.parametrize("algorithm", ["auto", "im2col", "direct"])
def test_batched_double_backward_with_groups(algorithm: str) -> None:
    """What PyTorch's test_conv_double_backward_groups checks: gradgradcheck with batched gradients,
    grouped, padded past the kernel's reach (before: vmap's missing rule for aten::alias)."""
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)

    def conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return convlens.conv2d(x, w, padding=2, groups=2, algorithm=algorithm)

    assert torch.autograd.gradgradcheck(conv, (x, w), check_batched_grad=True)


def test_batched_gradients_equal_one_backward_per_gradient() -> None:
    """``is_grads_batched``: one vmapped backward gives what a loop of backwards gives."""
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    w = torch.randn(6, 3, 3, 3, requires_grad=True)
    out = convlens.conv2d(x, w, padding=1, stride=2)
    grad_outputs = torch.randn(5, *out.shape)
    batched = torch.autograd.grad(out, (x, w), grad_outputs, retain_graph=True, is_grads_batched=True)
    for index, grad_output in enumerate(grad_outputs):
        one_by_one = torch.autograd.grad(out, (x, w), grad_output, retain_graph=True)
        for together, alone in zip(batched, one_by_one, strict=True):
            torch.testing.assert_close(together[index], alone)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("shape", [(2, 0, 5, 5), (0, 0, 5, 5), (0, 5, 5), (0, 3, 5, 5)])
def test_no_input_channels_with_a_padding_mode_as_nn_conv2d(mode: str, shape: tuple[int, ...]) -> None:
    """nn.Conv2d pads reflect / replicate with F.pad, which refuses an input without channels; circular
    pads by slicing and runs. convlens does the same (before, every mode returned an empty output)."""
    channels = shape[-3]
    theirs = torch.nn.Conv2d(channels, 4, 3, padding=1, padding_mode=mode)
    ours = convlens.nn.Conv2d(channels, 4, 3, padding=1, padding_mode=mode)
    x = torch.randn(shape)
    try:
        expected = theirs(x)
    except RuntimeError as error:
        with pytest.raises(RuntimeError, match=re.escape(str(error))):
            ours(x)
        with pytest.raises(ValueError, match="needs input channels, got in_channels=0"):
            convlens.conv2d(x, torch.randn(4, channels, 3, 3), padding=1, padding_mode=mode)
    else:
        assert ours(x).shape == expected.shape


@pytest.mark.parametrize(
    ("function", "args"),
    [
        (F.unfold, (torch.randn(1, 0, 5, 5), 3)),
        (F.unfold, (torch.randn(0, 5, 5), 3)),
        (F.fold, (torch.randn(2, 0, 9), (5, 5), 3)),
        (F.fold, (torch.randn(2, 18, 0), (5, 5), 3)),
    ],
)
def test_unfold_and_fold_refuse_empty_channels_and_blocks_as_pytorch(function, args) -> None:
    """Only the batch may be empty (before, convlens returned empty results)."""
    ours = {F.unfold: convlens.unfold, F.fold: convlens.fold}[function]
    with pytest.raises(RuntimeError) as theirs:
        function(*args)
    with pytest.raises(RuntimeError, match=re.escape(str(theirs.value))):
        ours(*args)
    batch_empty = (torch.randn(0, 2, 5, 5), 3) if function is F.unfold else (torch.randn(0, 18, 9), (5, 5), 3)
    assert ours(*batch_empty).shape == function(*batch_empty).shape


def test_a_meta_input_makes_a_shapes_only_call_and_a_meta_weight_beside_a_real_input_is_refused() -> None:
    """As PyTorch: a meta input runs on meta whatever the weight's device. A CPU input with a meta
    weight or bias is refused: PyTorch's CPU kernel returns uninitialised memory for it."""
    x, w, b = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3), torch.randn(4)
    for weight, bias in ((w, b), (w.to("meta"), b), (w, b.to("meta"))):
        out = convlens.conv2d(x.to("meta"), weight, bias, padding=1)
        assert out.is_meta and out.shape == F.conv2d(x.to("meta"), weight, bias, padding=1).shape
    for weight, bias, name in ((w.to("meta"), b, "weight"), (w, b.to("meta"), "bias")):
        with pytest.raises(RuntimeError, match=f"{name}.device=meta and input.device=cpu .*uninitialised"):
            convlens.conv2d(x, weight, bias, padding=1)


GRAD_CASES = [
    ((4, 8, 16, 16), (16, 8, 3, 3), {"stride": 2, "padding": 1}),
    ((2, 8, 12, 12), (8, 2, 5, 5), {"padding": 2, "dilation": 2, "groups": 4}),
    ((2, 6, 10, 10), (6, 1, 3, 3), {"padding": 1, "groups": 6}),  # depthwise
    ((2, 64, 14, 14), (64, 64, 3, 3), {"padding": 1}),  # auto's Winograd: its weight gradient too
]


@pytest.mark.parametrize("layout", ["nchw", "cl"])
@pytest.mark.parametrize(("x_shape", "w_shape", "options"), GRAD_CASES)
def test_grad_helpers_are_the_backward_of_conv2d(x_shape, w_shape, options, layout: str) -> None:
    """convlens.grad.conv2d_input / conv2d_weight (torch.nn.grad's signatures) give what autograd gives
    through convlens.conv2d, bit for bit, and PyTorch's values and layouts. Except dLoss/d x of a
    channels-last input: conv2d_input is given the input's shape, not its layout, so it takes the
    products in NCHW order where autograd's backward of a channels-last input takes them with the
    positions as rows (``grads_channels_last``); a BLAS may sum those in another order (with AVX2
    loops they differed in the last bits), so there the two agree to rounding."""
    memory_format = torch.channels_last if layout == "cl" else torch.contiguous_format
    x = torch.randn(x_shape).contiguous(memory_format=memory_format).requires_grad_()
    w = torch.randn(w_shape).requires_grad_()
    out = convlens.conv2d(x, w, **options)
    grad_output = torch.randn(out.shape)
    grad_x, grad_w = torch.autograd.grad(out, (x, w), grad_output)
    with torch.no_grad():
        ours_x = convlens.grad.conv2d_input(x.shape, w, grad_output, **options)
        ours_w = convlens.grad.conv2d_weight(x, w.shape, grad_output, **options)
    theirs_x = torch.nn.grad.conv2d_input(x.shape, w, grad_output, **options)
    assert ours_x.stride() == theirs_x.stride()  # only x's shape is given
    if layout == "nchw":
        assert torch.equal(ours_x, grad_x)
    else:
        torch.testing.assert_close(ours_x, grad_x, rtol=1e-5, atol=1e-6)
    assert torch.equal(ours_w, grad_w) and ours_w.stride() == grad_w.stride()
    torch.testing.assert_close(ours_x, theirs_x, rtol=1e-4, atol=1e-4)  # sums of up to 576 products
    torch.testing.assert_close(
        ours_w, torch.nn.grad.conv2d_weight(x, w.shape, grad_output, **options), rtol=1e-4, atol=1e-4
    )


def test_grad_helpers_are_differentiable_and_check_grad_outputs_shape() -> None:
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    grad_output = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    options = {"stride": 2, "padding": 1, "groups": 2}
    assert torch.autograd.gradcheck(lambda w, g: convlens.grad.conv2d_input(x.shape, w, g, **options), (w, grad_output))
    assert torch.autograd.gradcheck(
        lambda x, g: convlens.grad.conv2d_weight(x, w.shape, g, **options), (x, grad_output)
    )
    with pytest.raises(ValueError, match=r"grad_output must have the convolution's output shape \(2, 4, 3, 3\)"):
        convlens.grad.conv2d_input(x.shape, w, torch.randn(2, 4, 4, 4, dtype=torch.float64), **options)
