"""The gradients of an explicitly chosen algorithm stay within that algorithm's documented error bound:
the backward's faster ways (Winograd's weight gradient, the input gradient as a convolution) are taken
only where their own bound is within the forward algorithm's."""

from __future__ import annotations

import dataclasses
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

import convlens
from convlens import algos
from convlens.algos.winograd import grad as winograd_grad
from convlens.algos.winograd import plan as winograd_plan

# 64 channels at 14x14, batch 4: auto's rule gives the layer to Winograd, F(4x4) at precision "high"
SHAPES = ((4, 64, 14, 14), (64, 64, 3, 3))


def gradients(algorithm: str, x: torch.Tensor, w: torch.Tensor, grad_output: torch.Tensor):
    x, w = x.detach().requires_grad_(), w.detach().requires_grad_()
    out = convlens.conv2d(x, w, padding=1, algorithm=algorithm)
    return torch.autograd.grad(out, (x, w), grad_output)


@pytest.mark.parametrize(("algorithm", "winograd_weight_grad"), [("direct", False), ("im2col", False),
                                                                 ("winograd", True), ("auto", True)])  # fmt: skip
def test_an_exact_algorithm_never_gets_f4x4_gradients(algorithm: str, winograd_weight_grad: bool) -> None:
    torch.manual_seed(0)
    x, w = torch.randn(SHAPES[0]), torch.randn(SHAPES[1]) / 24
    grad_output = torch.randn(SHAPES[0][0], SHAPES[1][0], 14, 14)
    winograd = algos.get("winograd")
    winograd_runs = mock.Mock(wraps=winograd.forward)
    with (
        convlens.settings(precision="high"),
        mock.patch.object(winograd_grad, "weight_grad", wraps=winograd_grad.weight_grad) as weight_grad,
        mock.patch.dict(algos._REGISTRY, {"winograd": dataclasses.replace(winograd, forward=winograd_runs)}),
    ):
        spec = convlens.ConvSpec.from_args(x, w, padding=1)
        assert winograd_plan.tile_size(spec) == 4 and algos.get("winograd").error_bound(spec) == 50.0
        grad_x, grad_w = gradients(algorithm, x, w, grad_output)
    assert weight_grad.called == winograd_weight_grad
    if algorithm in ("direct", "im2col"):
        assert not winograd_runs.called  # neither the forward nor the input gradient's convolution
    # and the gradients are within the algorithm's own bound of PyTorch's float32 error against float64
    x64, w64 = x.double().requires_grad_(), w.double().requires_grad_()
    truth = torch.autograd.grad(F.conv2d(x64, w64, padding=1), (x64, w64), grad_output.double())
    theirs = torch.autograd.grad(F.conv2d(x.requires_grad_(), w.requires_grad_(), padding=1), (x, w), grad_output)
    bound = 50.0 if winograd_weight_grad else algos.EXACT_BOUND
    for ours, pytorch, true in zip((grad_x, grad_w), theirs, truth):
        floor = 4 * torch.finfo(torch.float32).eps * true.abs().max().item()  # PyTorch's own error may be ~0
        our_error = (ours.double() - true).abs().max().item()
        pytorch_error = (pytorch.double() - true).abs().max().item()
        assert our_error <= bound * max(pytorch_error, floor), (algorithm, our_error, pytorch_error)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("algorithm", ["im2col", "direct", "auto"])
def test_a_long_weight_gradient_sum_is_as_precise_as_pytorchs(algorithm: str, layout: str) -> None:
    """grad_weight of a 1x1 layer on (4, 8, 32, 32) sums 4,096 products per weight. Taken as one
    matrix product its error against float64 was 2.5x PyTorch's, past the exact algorithms' 2x;
    in runs of positions (products.sum_over_positions) it is within the bound, no floor needed."""
    memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    for seed in range(3):
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(4, 8, 32, 32, generator=generator).contiguous(memory_format=memory_format)
        w = torch.randn(8, 8, 1, 1, generator=generator)
        grad_output = torch.randn(4, 8, 32, 32, generator=generator)
        x64, w64 = x.double(), w.double().requires_grad_()
        (truth,) = torch.autograd.grad(F.conv2d(x64, w64), w64, grad_output.double())
        w_ours, w_theirs = w.clone().requires_grad_(), w.clone().requires_grad_()
        (ours,) = torch.autograd.grad(convlens.conv2d(x, w_ours, algorithm=algorithm), w_ours, grad_output)
        (theirs,) = torch.autograd.grad(F.conv2d(x, w_theirs), w_theirs, grad_output)
        our_error = (ours.double() - truth).abs().max().item()
        pytorch_error = (theirs.double() - truth).abs().max().item()
        assert our_error <= algos.EXACT_BOUND * pytorch_error, (seed, our_error, pytorch_error)


def test_a_1x1_weight_gradient_goes_image_by_image_from_two_runs_per_image() -> None:
    """From 8 runs of positions per image (8 x 256) a 1x1 layer's grad_weight is taken image by
    image, read in place; below, as one folded product. Either way the gradient of float64's
    within the exact bound of PyTorch's, and the image-by-image one twice differentiable."""
    from convlens.autograd import products

    calls = mock.Mock(side_effect=products.grad_weight_image_by_image)
    for size, image_by_image in ((48, True), (44, False)):  # 2,304 and 1,936 positions per image
        generator = torch.Generator().manual_seed(size)
        x = torch.randn(3, 8, size, size, generator=generator)
        w = torch.randn(16, 8, 1, 1, generator=generator)
        grad_output = torch.randn(3, 16, size, size, generator=generator)
        w64 = w.double().requires_grad_()
        (truth,) = torch.autograd.grad(F.conv2d(x.double(), w64), w64, grad_output.double())
        w_ours, w_theirs = w.clone().requires_grad_(), w.clone().requires_grad_()
        calls.reset_mock()
        with mock.patch.object(products, "grad_weight_image_by_image", calls):
            (ours,) = torch.autograd.grad(convlens.conv2d(x, w_ours, algorithm="im2col"), w_ours, grad_output)
        assert calls.called is image_by_image
        (theirs,) = torch.autograd.grad(F.conv2d(x, w_theirs), w_theirs, grad_output)
        our_error = (ours.double() - truth).abs().max().item()
        pytorch_error = (theirs.double() - truth).abs().max().item()
        assert our_error <= algos.EXACT_BOUND * pytorch_error, (size, our_error, pytorch_error)
    x = torch.randn(2, 2, 48, 48, dtype=torch.float64)  # fixed: the check differentiates grad_weight by
    w = torch.randn(2, 2, 1, 1, dtype=torch.float64, requires_grad=True)  # w and by the grad_output it is given
    assert torch.autograd.gradgradcheck(lambda w: convlens.conv2d(x, w, algorithm="im2col"), (w,))


@pytest.mark.parametrize("groups", [1, 2])
def test_a_1x1_layers_backward_at_batch_1_reads_its_weight_and_input_in_place(groups: int) -> None:
    """One image of a 1x1 stride-1 layer: grad_weight's columns are the input itself (no im2col
    copy), and grad_x's convolution takes the weight's transposed blocks as a view (nothing to
    turn in a 1x1 kernel). The gradients are PyTorch's within the exact bound, and twice
    differentiable."""
    from convlens.algos import im2col
    from convlens.autograd import by_convolution

    generator = torch.Generator().manual_seed(groups)
    x = torch.randn(1, 8, 20, 20, generator=generator)  # 400 positions: the folded product, not image by image
    w = torch.randn(16, 8 // groups, 1, 1, generator=generator)
    grad_output = torch.randn(1, 16, 20, 20, generator=generator)
    turned = by_convolution.turned_weight(w, groups)
    assert (turned.untyped_storage().data_ptr() == w.untyped_storage().data_ptr()) is (groups == 1)
    torch.testing.assert_close(turned, w.unflatten(0, (groups, -1)).transpose(1, 2).flatten(0, 1))
    x_ours, w_ours = x.clone().requires_grad_(), w.clone().requires_grad_()
    with mock.patch.object(im2col, "column_buffer", wraps=im2col.column_buffer) as copies:  # a buffer: a copy
        out = convlens.conv2d(x_ours, w_ours, groups=groups, algorithm="im2col")
        ours = torch.autograd.grad(out, (x_ours, w_ours), grad_output)
    assert not copies.called
    x64, w64 = x.double().requires_grad_(), w.double().requires_grad_()
    truth = torch.autograd.grad(F.conv2d(x64, w64, groups=groups), (x64, w64), grad_output.double())
    x_theirs, w_theirs = x.clone().requires_grad_(), w.clone().requires_grad_()
    theirs = torch.autograd.grad(F.conv2d(x_theirs, w_theirs, groups=groups), (x_theirs, w_theirs), grad_output)
    for mine, pytorch, true in zip(ours, theirs, truth, strict=True):
        floor = 4 * torch.finfo(torch.float32).eps * true.abs().max().item()
        our_error, pytorch_error = (
            (mine.double() - true).abs().max().item(),
            (pytorch.double() - true).abs().max().item(),
        )
        assert our_error <= algos.EXACT_BOUND * max(pytorch_error, floor), (our_error, pytorch_error)
    x_small = torch.randn(1, 4, 5, 5, dtype=torch.float64, requires_grad=True)
    w_small = torch.randn(6, 4 // groups, 1, 1, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(
        lambda x, w: convlens.conv2d(x, w, groups=groups, algorithm="im2col"), (x_small, w_small)
    )
