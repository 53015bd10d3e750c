"""Every algorithm, on random configurations of every option, against PyTorch."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

import convlens
from convlens import algos
from convlens.spec import ConvSpec
from helpers import Case, assert_same_layout, cases_for, reference_conv2d, tolerances

ALGORITHMS = convlens.algorithms()


def supported(algorithm: str, case: Case) -> bool:
    if algorithm == "auto":
        return True
    x, w, b = case.tensors()
    spec = ConvSpec.from_args(x, w, b, **case.options)
    return algos.get(algorithm).supports(spec) is None


def check_against_pytorch(algorithm: str, case: Case, dtype: torch.dtype) -> None:
    """Values equal PyTorch's (float32, float64) or the exact answer (half types); layout as PyTorch's.

    PyTorch's own float16 / bfloat16 CPU kernel is not a usable reference: for some strided and
    dilated shapes it reads out of bounds (bfloat16, input 6x5, kernel (2, 3), stride (1, 2),
    dilation (1, 2): off by 4 to 16; in CI it once crashed the process). So for the half types the
    values are compared with float64 on the same rounded inputs, and the layout with PyTorch's
    float32 output for inputs of the same strides (PyTorch picks the layout from strides, not dtype).
    """
    x, w, b = case.tensors(dtype)
    ours = convlens.conv2d(x, w, b, **case.options, algorithm=algorithm)
    if dtype in (torch.float16, torch.bfloat16):
        exact = reference_conv2d(*(t.double() if t is not None else None for t in (x, w, b)), **case.options)
        torch.testing.assert_close(ours.double(), exact, **tolerances(dtype), msg=lambda m: f"{case}\n{m}")
        theirs = reference_conv2d(*(t.float() if t is not None else None for t in (x, w, b)), **case.options)
    else:
        theirs = reference_conv2d(x, w, b, **case.options)
        torch.testing.assert_close(ours, theirs, **tolerances(dtype), msg=lambda m: f"{case}\n{m}")
    assert_same_layout(ours, theirs, case)


def cases_checked(algorithm: str, dtype: torch.dtype, examples: int, max_channels_per_group: int = 3) -> int:
    """Check ``examples`` random configurations that ``algorithm`` supports (helpers.cases_for)
    against PyTorch in ``dtype``; the number of cases that really ran the algorithm.

    Each drawn case must be one the algorithm supports: nothing is skipped, so every count is
    a count of real runs (the shared strategy gave Winograd about 1 case in 160)."""
    ran = 0

    @settings(max_examples=examples)
    @given(case=cases_for(algorithm, max_channels_per_group=max_channels_per_group))
    def check(case: Case) -> None:
        nonlocal ran
        assert supported(algorithm, case), f"helpers.cases_for({algorithm!r}) drew a case it does not support: {case}"
        check_against_pytorch(algorithm, case, dtype)
        ran += 1

    check()
    print(f"{algorithm} {dtype}: {ran} cases")  # shown with pytest -s / -rP
    return ran


# Cases per algorithm and dtype; each test requires that at least that many really ran (Hypothesis
# would stop short only if it exhausted the strategy, which these never are).
EXAMPLES = {torch.float64: 120, torch.float32: 80, torch.float16: 15, torch.bfloat16: 15}


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_float64_equals_pytorch(algorithm: str) -> None:
    assert cases_checked(algorithm, torch.float64, EXAMPLES[torch.float64]) >= EXAMPLES[torch.float64]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_float32_close_to_pytorch(algorithm: str) -> None:
    assert cases_checked(algorithm, torch.float32, EXAMPLES[torch.float32]) >= EXAMPLES[torch.float32]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_half_types_close_to_pytorch(algorithm: str, dtype: torch.dtype) -> None:
    assert cases_checked(algorithm, dtype, EXAMPLES[dtype], max_channels_per_group=2) >= EXAMPLES[dtype]


# ---- edge cases named in the issue, for every algorithm ------------------------------------
EDGE_CASES = {
    "empty batch": Case(0, 3, 4, (8, 8), (3, 3), {"padding": 1}),
    "1x1 kernel": Case(2, 5, 7, (6, 9), (1, 1)),
    "1x1 kernel, stride 2": Case(2, 5, 7, (6, 9), (1, 1), {"stride": 2}),
    "kernel equals input": Case(2, 3, 4, (5, 7), (5, 7)),
    "kernel equals padded input": Case(1, 2, 3, (3, 3), (5, 5), {"padding": 1}),
    "stride larger than kernel": Case(2, 3, 2, (17, 13), (2, 3), {"stride": (7, 11)}),
    "stride larger than input": Case(1, 2, 2, (4, 4), (3, 3), {"stride": 9}),
    "asymmetric same, even kernel, dilation": Case(1, 2, 3, (6, 7), (4, 2), {"padding": "same", "dilation": (1, 3)}),
    "same with reflect, even kernel": Case(2, 3, 2, (6, 7), (4, 4), {"padding": "same", "padding_mode": "reflect"}),
    "different (h, w) padding, circular": Case(
        2, 3, 2, (5, 6), (3, 3), {"padding": (2, 1), "padding_mode": "circular"}
    ),
    "replicate, padding larger than input": Case(1, 1, 1, (2, 2), (3, 3), {"padding": 4, "padding_mode": "replicate"}),
    "depthwise": Case(2, 6, 6, (9, 9), (3, 3), {"padding": 1, "groups": 6}),
    "depthwise multiplier 2": Case(2, 4, 8, (9, 9), (3, 3), {"padding": 1, "groups": 4}),
    "zero input channels (PyTorch returns zero output channels)": Case(2, 0, 3, (5, 5), (3, 3)),
}


@pytest.mark.parametrize("name", EDGE_CASES)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_edge_cases(algorithm: str, name: str, layout: str) -> None:
    case = EDGE_CASES[name]
    case.layout = layout
    if supported(algorithm, case):
        check_against_pytorch(algorithm, case, torch.float64)
        check_against_pytorch(algorithm, case, torch.float32)


def test_cross_correlation_not_convolution() -> None:
    """The kernel is not flipped: a kernel with a single 1 in its top-left corner reads the
    top-left of each window, so the output is the input shifted, not mirrored."""
    x = torch.arange(25.0).view(1, 1, 5, 5)
    w = torch.zeros(1, 1, 3, 3)
    w[0, 0, 0, 0] = 1.0
    spec = ConvSpec.from_args(x, w)
    for algorithm in ALGORITHMS:
        if algorithm != "auto" and algos.get(algorithm).supports(spec) is not None:
            continue
        out = convlens.conv2d(x, w, algorithm=algorithm)
        torch.testing.assert_close(out, x[:, :, :3, :3])


def test_seed_shapes_and_difference() -> None:
    """The seed's layer, nn.Conv2d(3, 1, 5) on a 32x32 image: (1, 1, 28, 28), equal to float32 precision."""
    torch.manual_seed(0)
    layer = torch.nn.Conv2d(3, 1, 5)
    x = torch.randn(1, 3, 32, 32)
    spec = ConvSpec.from_args(x, layer.weight, layer.bias)
    for algorithm in ALGORITHMS:
        if algorithm != "auto" and algos.get(algorithm).supports(spec) is not None:
            with pytest.raises(ValueError, match=f"algorithm='{algorithm}' cannot run this convolution"):
                convlens.conv2d(x, layer.weight, layer.bias, algorithm=algorithm)
            continue
        out = convlens.conv2d(x, layer.weight, layer.bias, algorithm=algorithm)
        assert out.shape == (1, 1, 28, 28)
        assert (out - layer(x)).abs().max().item() < 1e-5


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_configuration_that_crashes_pytorchs_fused_bias(algorithm: str) -> None:
    """A channels-last configuration on which PyTorch 2.14.1's CPU kernel crashes the process when
    it adds the bias itself (helpers.conv2d_bias_after): convlens computes it, and the reference,
    with the bias added after the product, survives it."""
    layout = torch.channels_last
    x = torch.randn(3, 6, 7, 1).contiguous(memory_format=layout)
    w, b = torch.randn(6, 2, 2, 1).contiguous(memory_format=layout), torch.randn(6)
    options = {"stride": (2, 3), "padding": (0, 2), "dilation": 3, "groups": 3}
    spec = ConvSpec.from_args(x, w, b, **options)
    if algorithm != "auto" and algos.get(algorithm).supports(spec) is not None:
        pytest.skip(f"{algorithm} does not support this configuration")
    ours = convlens.conv2d(x, w, b, **options, algorithm=algorithm)
    theirs = reference_conv2d(x, w, b, **options)
    torch.testing.assert_close(ours, theirs, **tolerances(torch.float32))
    assert_same_layout(ours, theirs)
