"""conv1d and conv3d: one spec for every rank, PyTorch's values, gradients, transforms, layouts, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens.algos import im2col
from convlens.spec import ConvSpec

ALGORITHMS = ("auto", "direct", "im2col")
OURS = {1: convlens.conv1d, 3: convlens.conv3d}
THEIRS = {1: F.conv1d, 3: F.conv3d}
LAYERS = {1: torch.nn.Conv1d, 3: torch.nn.Conv3d}


@st.composite
def conv_cases(draw, rank: int):
    """A valid convolution over ``rank`` spatial dimensions, every option drawn (small sizes in 3-D)."""
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    largest = 3 if rank == 3 else 5
    kernel = tuple(draw(st.integers(1, largest)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    if draw(st.booleans()):
        padding: object = draw(st.sampled_from(["same", "valid"]))
        stride = (1,) * rank
    else:
        padding = tuple(draw(st.integers(0, 2)) for _ in range(rank))
        stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    size = tuple(draw(st.integers(max(span, 3), span + 4)) for span in spans)  # reflect needs padding < size
    batch = draw(st.sampled_from([None, 1, 2]))
    shape = (c_in, *size) if batch is None else (batch, c_in, *size)
    options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return shape, (c_out, c_in // groups, *kernel), draw(st.booleans()), options, mode


def made(case, dtype=torch.float64, requires_grad: bool = False, seed: int = 0):
    shape, w_shape, with_bias, _, _ = case
    generator = torch.Generator().manual_seed(seed)
    tensors = [
        torch.randn(shape, generator=generator, dtype=dtype),
        torch.randn(w_shape, generator=generator, dtype=dtype),
    ]
    tensors.append(torch.randn(w_shape[0], generator=generator, dtype=dtype) if with_bias else None)
    return [t.requires_grad_() if requires_grad and t is not None else t for t in tensors]


def pytorch(rank: int, case, x, w, b):
    """PyTorch's answer as its layer computes it (its padding modes live in nn.ConvNd)."""
    _, w_shape, _, options, mode = case
    layer = LAYERS[rank](w_shape[1] * options["groups"], w_shape[0], w_shape[2:], **options, padding_mode=mode)
    return layer._conv_forward(x, w, b)


@pytest.mark.parametrize("rank", (1, 3))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_equals_pytorch_in_float64(rank: int, algorithm: str, data) -> None:
    case = data.draw(conv_cases(rank))
    x, w, b = made(case)
    ours = OURS[rank](x, w, b, **case[3], padding_mode=case[4], algorithm=algorithm)
    torch.testing.assert_close(ours, pytorch(rank, case, x, w, b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rank", (1, 3))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=5, deadline=None)
@given(data=st.data())
def test_gradcheck_and_gradgradcheck(rank: int, algorithm: str, data) -> None:
    case = data.draw(conv_cases(rank))
    leaves = [t for t in made(case, requires_grad=True) if t is not None]

    def conv(x, w, *b):
        return OURS[rank](x, w, b[0] if b else None, **case[3], padding_mode=case[4], algorithm=algorithm)

    assert torch.autograd.gradcheck(conv, leaves, fast_mode=True, check_batched_grad=case[4] != "circular")
    assert torch.autograd.gradgradcheck(conv, leaves, fast_mode=True)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_torch_func_transforms_in_3d(algorithm: str) -> None:
    """vmap over a batch of weights, grad and jvp: the same numbers as PyTorch's conv3d and conv_transpose3d."""
    torch.manual_seed(0)
    x, weights = torch.randn(2, 4, 5, 5, 5, dtype=torch.float64), torch.randn(3, 6, 2, 3, 2, 3, dtype=torch.float64)
    ours = torch.func.vmap(lambda w: convlens.conv3d(x, w, groups=2, padding=1, algorithm=algorithm))(weights)
    torch.testing.assert_close(ours, torch.stack([F.conv3d(x, w, groups=2, padding=1) for w in weights]))
    grad_ours = torch.func.grad(
        lambda w: convlens.conv_transpose3d(x, w[:4], stride=2, algorithm=algorithm).square().sum()
    )
    grad_theirs = torch.func.grad(lambda w: F.conv_transpose3d(x, w[:4], stride=2).square().sum())
    torch.testing.assert_close(grad_ours(weights[0]), grad_theirs(weights[0]))
    tangent = torch.randn_like(x)
    _, jvp_ours = torch.func.jvp(
        lambda v: convlens.conv3d(v, weights[0], groups=2, algorithm=algorithm), (x,), (tangent,)
    )
    torch.testing.assert_close(jvp_ours, F.conv3d(tangent, weights[0], groups=2))


def test_torch_compile_fullgraph_every_kind() -> None:
    torch.manual_seed(0)
    x1, x3 = torch.randn(2, 4, 16), torch.randn(1, 4, 4, 6, 6)
    w1, w3 = torch.randn(6, 4, 3), torch.randn(4, 3, 3, 3, 3)

    def every_kind(x1, x3):
        return (
            convlens.conv1d(x1, w1, padding=1),
            convlens.conv3d(x3, w3.transpose(0, 1), stride=2),
            convlens.conv_transpose1d(x1, w1.transpose(0, 1), stride=2),
            convlens.conv_transpose3d(x3, w3, stride=2, output_padding=1, algorithm="direct"),
        )

    compiled = torch.compile(every_kind, fullgraph=True, backend="aot_eager")
    expected = (
        F.conv1d(x1, w1, padding=1),
        F.conv3d(x3, w3.transpose(0, 1), stride=2),
        F.conv_transpose1d(x1, w1.transpose(0, 1), stride=2),
        F.conv_transpose3d(x3, w3, stride=2, output_padding=1),
    )
    for ours, theirs in zip(compiled(x1, x3), expected, strict=True):
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
@pytest.mark.parametrize("channels_last", ("input", "weight", None))
def test_3d_output_layout_is_pytorchs(dtype: torch.dtype, channels_last: str | None) -> None:
    """PyTorch's CPU conv3d keeps channels-last-3d for float32 only (its oneDNN path); convlens returns its layout."""
    x, w = torch.randn(2, 4, 5, 6, 7, dtype=dtype), torch.randn(3, 4, 3, 3, 3, dtype=dtype)
    if channels_last == "input":
        x = x.to(memory_format=torch.channels_last_3d)
    if channels_last == "weight":
        w = w.to(memory_format=torch.channels_last_3d)
    for algorithm in ALGORITHMS:
        assert convlens.conv3d(x, w, padding=1, algorithm=algorithm).stride() == F.conv3d(x, w, padding=1).stride()


def test_1d_output_is_contiguous_as_pytorchs() -> None:
    x = torch.randn(2, 7, 4).transpose(1, 2)  # (N, C, L) with channels innermost in memory
    w = torch.randn(3, 4, 3)
    for algorithm in ALGORITHMS:
        assert convlens.conv1d(x, w, algorithm=algorithm).stride() == F.conv1d(x, w).stride()
        ours = convlens.conv_transpose1d(x, w.transpose(0, 1), stride=2, algorithm=algorithm)
        assert ours.stride() == F.conv_transpose1d(x, w.transpose(0, 1), stride=2).stride()


def test_3d_im2col_stays_within_the_workspace() -> None:
    """A layer whose one-shot columns would be 108 MiB runs in pieces of at most 2 MiB of columns (one
    output plane, 1.7 MiB, is the smallest piece) and still gives PyTorch's values (the >1 GB case is
    measured by ``python benchmarks/memory.py --depth``)."""
    x, w = torch.randn(2, 16, 16, 32, 32), torch.randn(8, 16, 3, 3, 3)
    spec = ConvSpec.from_args(x, w, padding=1, rank=3)
    assert spec.cols_bytes() == 2 * 16 * 27 * 16 * 32 * 32 * 4
    assert im2col.buffer_bytes(spec, 2**21)["cols"] <= 2**21 < spec.cols_bytes()
    torch.testing.assert_close(
        convlens.conv3d(x, w, padding=1, algorithm="im2col", workspace_limit=2**21), F.conv3d(x, w, padding=1),
        rtol=1e-4, atol=1e-4,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        ({"weight": torch.randn(2, 3, 6)}, r"^Calculated padded input size per channel: \(5\)\. Kernel size: \(6\)"),
        ({"input": torch.randn(1, 3, 5, 4)}, r"^Expected 2D \(unbatched\) or 3D \(batched\) input to conv1d"),
        ({"weight": torch.randn(2, 3, 2, 2)}, r"^Expected 4-dimensional input for 4-dimensional weight \[2, 3, 2, 2\]"),
        ({"stride": (1, 2)}, r"stride to be a single integer value or a list of 1 values"),
        ({"padding": "same", "stride": 2}, r"padding='same' requires stride=1, got stride=\(2,\)"),
    ],
)
def test_conv1d_refuses_as_pytorch(call, pattern) -> None:
    arguments = {"input": torch.randn(1, 3, 5), "weight": torch.randn(2, 3, 3), **call}
    with pytest.raises(RuntimeError):
        F.conv1d(**arguments)
    with pytest.raises(ValueError, match=pattern):
        convlens.conv1d(**arguments)


def test_a_3d_kernel_too_large_shows_the_formula_per_dimension() -> None:
    x, w = torch.randn(1, 2, 5, 5, 5), torch.randn(3, 2, 6, 1, 1)
    with pytest.raises(RuntimeError) as theirs:
        F.conv3d(x, w)
    with pytest.raises(ValueError) as ours:
        convlens.conv3d(x, w)
    message = str(ours.value)
    assert message.startswith(str(theirs.value).split(" size: ")[0])
    assert (
        "D_out = floor((D + pad + pad - dilation*(kernel-1) - 1) / stride) + 1 = floor((5 + 0 + 0 - 1*(6-1) - 1) / 1)"
        in message
    )
    assert "padding (before, after per D, H, W)=(0, 0, 0, 0, 0, 0)" in message


def test_2d_only_algorithms_say_which_run_3d() -> None:
    with pytest.raises(ValueError, match=r"a 3-D convolution takes 'auto', 'direct', 'im2col'"):
        convlens.conv3d(torch.randn(1, 2, 4, 4, 4), torch.randn(2, 2, 3, 3, 3), algorithm="winograd")
    with pytest.raises(ValueError, match=r"cannot run a Conv3d layer"):  # at construction, not at the first forward
        convlens.nn.Conv3d(2, 2, 3, algorithm="fft")
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3), torch.nn.Conv3d(2, 2, 3))
    with pytest.raises(ValueError, match=r"cannot run 1 \(Conv3d\)"):  # the whole model, or nothing
        convlens.nn.convert(model, algorithm="winograd")
    assert type(model[0]) is torch.nn.Conv2d
    # 1-D runs as a one-row image: every algorithm that supports that image serves it
    x, w = torch.randn(2, 8, 64), torch.randn(8, 8, 9)
    torch.testing.assert_close(convlens.conv1d(x, w, algorithm="fft"), F.conv1d(x, w), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rank", (1, 3))
def test_layers_are_torchs_with_convlens_inside(rank: int) -> None:
    torch.manual_seed(0)
    theirs = LAYERS[rank](4, 6, 3, stride=2, padding=1, groups=2, padding_mode="replicate")
    ours = getattr(convlens.nn, f"Conv{rank}d")(4, 6, 3, stride=2, padding=1, groups=2, padding_mode="replicate",
                                               algorithm="direct")  # fmt: skip
    ours.load_state_dict(theirs.state_dict())
    assert isinstance(ours, LAYERS[rank]) and "algorithm='direct'" in repr(ours)
    x = torch.randn(2, 4, *(7,) * rank)
    torch.testing.assert_close(ours(x), theirs(x))
    with pytest.raises(ValueError, match=f"a tuple of {rank} ints"):
        getattr(convlens.nn, f"Conv{rank}d")(4, 6, (3, 3) if rank != 2 else 3)


def test_convert_swaps_every_kind() -> None:
    torch.manual_seed(0)
    model = torch.nn.ModuleDict(
        {
            "audio": torch.nn.Sequential(
                torch.nn.Conv1d(2, 4, 3, dilation=2), torch.nn.ConvTranspose1d(4, 2, 4, stride=2)
            ),
            "video": torch.nn.Sequential(torch.nn.Conv3d(2, 4, 3), torch.nn.ConvTranspose3d(4, 2, 2, stride=2)),
        }
    )
    audio, video = torch.randn(1, 2, 20), torch.randn(1, 2, 6, 6, 6)
    expected = model["audio"](audio), model["video"](video)
    convlens.nn.convert(model, algorithm="im2col")
    kinds = [type(layer).__name__ for layer in model.modules() if isinstance(layer, convlens.nn.ChosenAlgorithm)]
    assert kinds == ["Conv1d", "ConvTranspose1d", "Conv3d", "ConvTranspose3d"]
    assert all(type(layer).__module__ == "convlens.nn" for layer in model.modules() if "Conv" in type(layer).__name__)
    torch.testing.assert_close((model["audio"](audio), model["video"](video)), expected)


def test_output_size_covers_every_kind() -> None:
    assert convlens.output_size((16,), 4, stride=2, padding=1, transposed=True) == (32,)
    assert convlens.output_size((4, 8, 8), (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3)) == (4, 4, 4)
    assert convlens.output_size(8, 4, stride=2, padding=1, output_padding=1, transposed=True) == (17, 17)
    for size, kernel, options in [((9,), 3, {"stride": 2}), ((5, 6, 7), (2, 3, 1), {"dilation": (2, 1, 3)})]:
        rank = len(size)
        x, w = torch.zeros(1, 1, *size), torch.zeros(1, 1, *((kernel,) * rank if isinstance(kernel, int) else kernel))
        assert convlens.output_size(size, kernel, **options) == tuple(THEIRS[rank](x, w, **options).shape[2:])
    with pytest.raises(ValueError, match=r"output padding must be smaller than either stride or dilation, but got "
                                         r"output_padding_width: 2 stride_width: 2"):  # fmt: skip
        convlens.output_size((5,), 3, stride=2, output_padding=2, transposed=True)
    with pytest.raises(ValueError, match="must give the same number of spatial dimensions"):
        convlens.output_size((5, 5), (3, 3, 3))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_3d_depthwise_layer_and_integers(algorithm: str) -> None:
    x = torch.randint(-3, 4, (2, 4, 5, 5, 5))
    w = torch.randint(-2, 3, (4, 1, 3, 3, 3))
    assert torch.equal(
        convlens.conv3d(x, w, groups=4, padding=1, algorithm=algorithm), F.conv3d(x, w, groups=4, padding=1)
    )
