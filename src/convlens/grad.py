"""``torch.nn.grad``'s conv2d helpers by convlens's backward: one gradient without a forward.

    conv2d_input(input_size, weight, grad_output, ...)    dLoss/d x       (N, C_in, H, W)
    conv2d_weight(input, weight_size, grad_output, ...)   dLoss/d weight  (C_out, C_in/G, k_h, k_w)

The convolution is linear in each argument, so its gradient with respect to one of them does not
depend on that argument's values, only on its shape: the missing tensor is a zero expanded to
``input_size`` / ``weight_size`` (no memory), as PyTorch's own helpers do. Both run the shared
backward (:func:`convlens.autograd.conv2d_backward`) for the algorithm ``algorithm=`` names, within
its error bound, exactly as ``torch.autograd.grad`` through ``convlens.conv2d`` would.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from convlens import algos
from convlens.autograd import conv2d_backward
from convlens.config import resolve_workspace
from convlens.errors import ArgumentError
from convlens.spec import ConvSpec, IntOrSizes, check_tensor


def conv2d_input(
    input_size: Sequence[int],
    weight: torch.Tensor,
    grad_output: torch.Tensor,
    stride: IntOrSizes = 1,
    padding: IntOrSizes = 0,
    dilation: IntOrSizes = 1,
    groups: int = 1,
    *,
    algorithm: str = "auto",
) -> torch.Tensor:
    """dLoss/d input of ``conv2d(input, weight, ...)`` for ``grad_output``, as ``torch.nn.grad.conv2d_input``."""
    x = weight.new_zeros(()).expand(*input_size)  # its values do not enter its own gradient
    spec = ConvSpec.from_args(x, weight, None, stride, padding, dilation, groups)
    grad_x, _, _ = gradients(spec, grad_output, x, weight, algorithm, (True, False))
    assert grad_x is not None
    return grad_x


def conv2d_weight(
    input: torch.Tensor,
    weight_size: Sequence[int],
    grad_output: torch.Tensor,
    stride: IntOrSizes = 1,
    padding: IntOrSizes = 0,
    dilation: IntOrSizes = 1,
    groups: int = 1,
    *,
    algorithm: str = "auto",
) -> torch.Tensor:
    """dLoss/d weight of ``conv2d(input, weight, ...)`` for ``grad_output``, as ``torch.nn.grad.conv2d_weight``."""
    weight = input.new_zeros(()).expand(*weight_size)  # its values do not enter its own gradient
    spec = ConvSpec.from_args(input, weight, None, stride, padding, dilation, groups)
    _, grad_weight, _ = gradients(spec, grad_output, input, weight, algorithm, (False, True))
    assert grad_weight is not None
    return grad_weight


def gradients(
    spec: ConvSpec,
    grad_output: object,
    x: torch.Tensor,
    weight: torch.Tensor,
    algorithm: str,
    needs: tuple[bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """The shared backward of the checked convolution ``spec`` for ``grad_output`` (checked here: a
    tensor of the convolution's output shape), by ``algorithm`` within its error bound."""
    grads = check_tensor("grad_output", grad_output)
    expected = spec.output_shape
    if tuple(grads.shape) != expected:
        raise ArgumentError(
            f"grad_output must have the convolution's output shape {expected}, got {tuple(grads.shape)}"
        )
    workspace = resolve_workspace(None)
    bound = algos.resolve(algorithm, spec, workspace).error_bound(spec)
    # as inside autograd's backward: recorded (and so differentiable) only when something requires grad
    recording = torch.is_grad_enabled() and any(t.requires_grad for t in (grads, x, weight))
    with torch.set_grad_enabled(recording):
        return conv2d_backward(grads, x, weight, spec, workspace, (*needs, False), bound)
