"""PyTorch's own test inputs for every convolution, through convlens: the OpInfo samples and error
inputs of ``torch.testing._internal.common_methods_invocations`` for conv1d/2d/3d and
conv_transpose1d/2d/3d, and ``common_modules``' module_db cases for the six layers. Forward in
float32 (per element against float64, within the accuracy rule of ``convlens verify``) and
float64 (equal to PyTorch's), gradients in float64, for auto, direct and im2col."""

from __future__ import annotations

import re

import pytest
import torch

import convlens
from convlens.algos import EXACT_BOUND
from convlens.verify import allowed_error

common_methods = pytest.importorskip("torch.testing._internal.common_methods_invocations")
common_modules = pytest.importorskip("torch.testing._internal.common_modules")

ALGORITHMS = ("auto", "direct", "im2col")
FUNCTIONS = {
    f"nn.functional.{name}": getattr(convlens, name)
    for name in ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
}
OPS = {op.name: op for op in common_methods.op_db if op.name in FUNCTIONS}
LAYERS = {
    getattr(torch.nn, name): getattr(convlens.nn, name)
    for name in ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")
}
MODULES = {info.module_cls: info for info in common_modules.module_db if info.module_cls in LAYERS}


def test_every_kind_has_pytorchs_inputs() -> None:
    assert set(OPS) == set(FUNCTIONS) and set(MODULES) == set(LAYERS)


def widened(value: object) -> object:
    """A float32 tensor as float64 (the ground truth's inputs), anything else as it is."""
    return value.detach().double() if isinstance(value, torch.Tensor) else value


def leaves(sample) -> list[torch.Tensor]:
    tensors = [sample.input, *sample.args, *sample.kwargs.values()]
    return [t for t in tensors if isinstance(t, torch.Tensor) and t.requires_grad]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_opinfo_samples(name: str, algorithm: str) -> None:
    op, ours = OPS[name], FUNCTIONS[name]
    for dtype in (torch.float32, torch.float64):
        for sample in op.sample_inputs("cpu", dtype, requires_grad=dtype == torch.float64):
            expected = op(sample.input, *sample.args, **sample.kwargs)
            got = ours(sample.input, *sample.args, **sample.kwargs, algorithm=algorithm)
            context = f"{name} {dtype} input {tuple(sample.input.shape)} args {sample.args} kwargs {sample.kwargs}"
            if dtype == torch.float32:  # the accuracy rule, per element against float64 (convlens verify's)
                truth = op(*(widened(value) for value in (sample.input, *sample.args)), **sample.kwargs)
                ours_error, theirs_error = (float((result.double() - truth).abs().max()) for result in (got, expected))
                scale = float(truth.abs().max()) if truth.numel() else 0.0
                assert ours_error <= allowed_error(theirs_error, scale, EXACT_BOUND), (
                    ours_error,
                    theirs_error,
                    context,
                )
                continue
            torch.testing.assert_close(got, expected, msg=lambda text, context=context: f"{context}: {text}")
            if got.numel():
                inputs = leaves(sample)
                grad_output = torch.randn_like(expected)
                theirs = torch.autograd.grad(expected, inputs, grad_output)
                for mine, reference in zip(torch.autograd.grad(got, inputs, grad_output), theirs, strict=True):
                    torch.testing.assert_close(mine, reference, msg=lambda text, context=context: f"{context}: {text}")


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_opinfo_error_inputs(name: str) -> None:
    """Every error input PyTorch lists is refused with its error type, and a message its regex finds
    (convlens's messages open with PyTorch's wording, then explain)."""
    op = OPS[name]
    if op.error_inputs_func is None:
        pytest.skip(f"PyTorch's OpInfo for {name} lists no error inputs (tests/test_transposed.py has its errors)")
    errors = list(op.error_inputs("cpu"))
    assert errors
    for error in errors:
        sample = error.sample_input
        with pytest.raises(error.error_type) as raised:
            FUNCTIONS[name](sample.input, *sample.args, **sample.kwargs)
        assert re.search(error.error_regex, str(raised.value)), (error.error_regex, str(raised.value))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("layer", sorted(LAYERS, key=lambda kind: kind.__name__), ids=lambda kind: kind.__name__)
def test_module_db_cases(layer: type[torch.nn.Module], algorithm: str) -> None:
    info = MODULES[layer]
    for dtype in (torch.float32, torch.float64):
        cases = info.module_inputs_func(
            info, device="cpu", dtype=dtype, requires_grad=dtype == torch.float64, training=True
        )
        for case in cases:
            if case.forward_input is None:
                continue
            arguments, options = case.constructor_input.args, case.constructor_input.kwargs
            theirs = layer(*arguments, **options).to(dtype)
            ours = LAYERS[layer](*arguments, **options, algorithm=algorithm).to(dtype)
            ours.load_state_dict(theirs.state_dict())
            inputs, keywords = case.forward_input.args, case.forward_input.kwargs
            expected, got = theirs(*inputs, **keywords), ours(*inputs, **keywords)
            torch.testing.assert_close(got, expected)
            if dtype == torch.float64:
                wrt = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
                reference = torch.autograd.grad(expected.sum(), [*wrt, *theirs.parameters()])
                for mine, wanted in zip(
                    torch.autograd.grad(got.sum(), [*wrt, *ours.parameters()]), reference, strict=True
                ):
                    torch.testing.assert_close(mine, wanted)
