"""conv_transpose1d/2d/3d: PyTorch's values, the zero-insertion picture, the adjoint identity, gradients, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convlens

ALGORITHMS = ("auto", "im2col", "direct")
RANKS = (1, 2, 3)
CONV = {1: convlens.conv1d, 2: convlens.conv2d, 3: convlens.conv3d}
OURS = {1: convlens.conv_transpose1d, 2: convlens.conv_transpose2d, 3: convlens.conv_transpose3d}
THEIRS = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


@st.composite
def transposed_cases(draw, rank: int = 2):
    """A valid conv_transpose call over ``rank`` spatial dimensions (smaller sizes in 3-D)."""
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    largest = 3 if rank == 3 else 4
    kernel = tuple(draw(st.integers(1, largest)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True))
    size = tuple(draw(st.integers(1, largest + 2)) for _ in range(rank))
    full = [(n - 1) * s + d * (k - 1) + 1 for n, s, d, k in zip(size, stride, dilation, kernel, strict=True)]
    padding = tuple(draw(st.integers(0, (f + e - 1) // 2)) for f, e in zip(full, output_padding, strict=True))
    batch = draw(st.sampled_from([None, 0, 1, 2]))
    options = {"stride": stride, "padding": padding, "output_padding": output_padding, "groups": groups}
    options["dilation"] = dilation
    shape = (c_in, *size) if batch is None else (batch, c_in, *size)
    return shape, (c_in, c_out // groups, *kernel), draw(st.booleans()), options


def tensors(case, seed: int = 0, dtype=torch.float64, requires_grad: bool = False):
    x_shape, w_shape, with_bias, _ = case
    generator = torch.Generator().manual_seed(seed)
    made = [
        torch.randn(x_shape, generator=generator, dtype=dtype),
        torch.randn(w_shape, generator=generator, dtype=dtype),
    ]
    made.append(torch.randn(w_shape[1] * case[3]["groups"], generator=generator, dtype=dtype) if with_bias else None)
    return [t.requires_grad_() if requires_grad and t is not None else t for t in made]


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=40)
@given(data=st.data())
def test_conv_transpose_equals_pytorch(rank: int, algorithm: str, data) -> None:
    case = data.draw(transposed_cases(rank))
    x, w, b = tensors(case)
    ours = OURS[rank](x, w, b, **case[3], algorithm=algorithm)
    torch.testing.assert_close(ours, THEIRS[rank](x, w, b, **case[3]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rank", RANKS)
@settings(max_examples=30)
@given(data=st.data())
def test_it_is_zero_insertion_then_a_convolution_with_the_flipped_transposed_kernel(rank: int, data) -> None:
    """The other picture: s - 1 zeros between input values, d*(k - 1) - p zeros of padding (a crop
    where negative), output_padding more at the end, then an ordinary convolution with each group's
    kernel block transposed and every kernel turned around (180 degrees in 2-D), along every dimension."""
    case = data.draw(transposed_cases(rank))
    x, w, b = tensors(case)
    options, groups = case[3], case[3]["groups"]
    batched = x.unsqueeze(0) if x.dim() == rank + 1 else x
    sizes = batched.shape[2:]
    spread = batched.new_zeros((*batched.shape[:2], *((n - 1) * s + 1 for n, s in zip(sizes, options["stride"]))))
    spread[(slice(None), slice(None), *(slice(None, None, s) for s in options["stride"]))] = batched
    reach = [d * (k - 1) - p for d, k, p in zip(options["dilation"], w.shape[2:], options["padding"], strict=True)]
    pads = [(r, r + e) for r, e in zip(reach, options["output_padding"], strict=True)]
    padded = F.pad(spread, [amount for pair in reversed(pads) for amount in pair])  # negative values crop
    blocks = w.unflatten(0, (groups, -1))  # (G, C_in/G, C_out/G, *kernel)
    turned = blocks.transpose(1, 2).flatten(0, 1).flip(list(range(2, 2 + rank)))  # (C_out, C_in/G, *kernel)
    expected = CONV[rank](padded, turned, b, dilation=options["dilation"], groups=groups)
    ours = OURS[rank](batched, w, b, **options)
    torch.testing.assert_close(ours, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rank", RANKS)
@settings(max_examples=30)
@given(data=st.data(), seed=st.integers(0, 1000))
def test_adjoint_identity(rank: int, data, seed: int) -> None:
    """<conv(x), y> = <x, conv_transpose(y)> in float64: the transposed convolution is the adjoint.
    (With output_padding >= stride, which the dilation allows, the convolution of the larger x has
    more rows than y: no such pairing.)"""
    case = data.draw(transposed_cases(rank))
    y, w, _ = tensors(case, seed)
    options = dict(case[3])
    assume(all(e < s for e, s in zip(options["output_padding"], options["stride"], strict=True)))
    output_padding = options.pop("output_padding")
    transposed = OURS[rank](y, w, None, output_padding=output_padding, **options)
    x = torch.randn(transposed.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    forward = CONV[rank](x, w, None, **options)
    torch.testing.assert_close((forward * y).sum(), (x * transposed).sum(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=6, deadline=None)
@given(data=st.data())
def test_gradcheck_and_gradgradcheck(rank: int, algorithm: str, data) -> None:
    case = data.draw(transposed_cases(rank))
    leaves = [t for t in tensors(case, requires_grad=True) if t is not None]

    def transposed(x, w, *b):
        return OURS[rank](x, w, b[0] if b else None, **case[3], algorithm=algorithm)

    assert torch.autograd.gradcheck(transposed, leaves, fast_mode=True, check_batched_grad=True)
    assert torch.autograd.gradgradcheck(transposed, leaves, fast_mode=True)


@pytest.mark.parametrize("rank", (2, 3))
@pytest.mark.parametrize("dtype", (torch.float32, torch.float64))
@pytest.mark.parametrize("channels_last", ("input", "weight"))
def test_output_layout_is_pytorchs(rank: int, dtype: torch.dtype, channels_last: str) -> None:
    """Channels-last in, channels-last out where PyTorch's CPU kernel gives it (in 3-D: float32 only)."""
    layout = torch.channels_last if rank == 2 else torch.channels_last_3d
    x, w = torch.randn(2, 4, *(5,) * rank, dtype=dtype), torch.randn(4, 3, *(3,) * rank, dtype=dtype)
    x, w = (x.to(memory_format=layout), w) if channels_last == "input" else (x, w.to(memory_format=layout))
    for algorithm in ALGORITHMS:
        ours = OURS[rank](x, w, stride=2, padding=1, algorithm=algorithm)
        assert ours.stride() == THEIRS[rank](x, w, stride=2, padding=1).stride(), algorithm


X, W = torch.randn(1, 4, 5, 5), torch.randn(4, 2, 3, 3)


@pytest.mark.parametrize(
    ("call", "error", "pattern"),
    [
        ({"stride": 1, "output_padding": 1}, ValueError, r"^output padding must be smaller than either stride or"),
        ({"input": torch.randn(1, 3, 5, 5)}, ValueError, r"^Given transposed=1, weight of size \[4, 2, 3, 3\], exp"),
        ({"groups": 3}, ValueError, r"^Given groups=3, expected weight to be divisible by 3 at dimension 0"),
        ({"input": torch.randn(1, 4, 1, 1), "padding": 2}, ValueError, r"too small: H_out = .* = \(1 - 1\)\*1 - 2\*2"),
        ({"bias": torch.randn(3)}, ValueError, r"expected bias to be 1-dimensional with 2 elements"),
        ({"padding": "same"}, TypeError, r"argument 'padding' must be tuple of ints, not str"),
        (
            {"input": torch.randn(1, 1, 4, 5, 5)},
            ValueError,
            r"^Expected 3D \(unbatched\) or 4D \(batched\) input to co",
        ),
        ({"output_padding": -1, "stride": 2}, ValueError, r"^negative output_padding is not supported"),
        ({"stride": 0}, ValueError, r"^non-positive stride is not supported"),
    ],
)
def test_bad_arguments_are_refused_as_pytorch_refuses_them(call, error, pattern) -> None:
    arguments = {"input": X, "weight": W, **call}
    with pytest.raises(TypeError if error is TypeError else RuntimeError):  # PyTorch refuses it too
        F.conv_transpose2d(**arguments)
    with pytest.raises(error, match=pattern):
        convlens.conv_transpose2d(**arguments)
    with pytest.raises(RuntimeError):  # also PyTorch's type
        convlens.conv_transpose2d(**arguments)


def test_the_layer_is_torchs_with_convlens_inside() -> None:
    torch.manual_seed(0)
    theirs = torch.nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, groups=2, dilation=1)
    ours = convlens.nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, groups=2, algorithm="direct")
    ours.load_state_dict(theirs.state_dict())
    assert isinstance(ours, torch.nn.ConvTranspose2d) and "algorithm='direct'" in repr(ours)
    x = torch.randn(2, 6, 7, 7)
    torch.testing.assert_close(ours(x), theirs(x))
    for size in ([13, 13], [14, 14], [2, 4, 14, 13]):  # output_size picks output_padding, as torch's forward
        torch.testing.assert_close(ours(x, output_size=size), theirs(x, output_size=size))
    with pytest.raises(ValueError, match="algorithm must be one of"):
        ours.algorithm = "nope"
    reflecting = convlens.nn.ConvTranspose2d(2, 2, 3)
    reflecting.padding_mode = "reflect"
    with pytest.raises(ValueError, match="Only 'zeros' padding mode is supported"):
        reflecting(torch.randn(1, 2, 4, 4))


def test_convert_swaps_transposed_layers_in_place() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ConvTranspose2d(8, 3, 3, stride=2))
    x = torch.randn(2, 3, 9, 9)
    expected = model(x)
    layer = model[1]
    calls = []
    layer.register_forward_hook(lambda *args: calls.append(1))
    convlens.nn.convert(model, algorithm="im2col")
    assert model[1] is layer and type(layer) is convlens.nn.ConvTranspose2d and layer.algorithm == "im2col"
    torch.testing.assert_close(model(x), expected)
    assert calls == [1]


@settings(max_examples=40, deadline=None)
@given(case=transposed_cases(), data=st.data())
def test_explain_transposed_by_hand_equals_pytorch_and_the_gather_view(case, data) -> None:
    """The scatter sum, the zero-insertion convolution and PyTorch agree on any output value."""
    from convlens.explain.transposed import explain_transposed

    x, w, b = tensors(case)
    x = x if x.dim() == 3 else x[0] if x.shape[0] else None
    assume(x is not None)
    output = F.conv_transpose2d(x, w, b, **case[3])
    at = (data.draw(st.integers(0, output.shape[1] - 1)), data.draw(st.integers(0, output.shape[2] - 1)))
    channel = data.draw(st.integers(0, output.shape[0] - 1))
    e = explain_transposed(x, w, b, channel, at, **case[3])
    assert e.value == pytest.approx(output[channel, at[0], at[1]].item(), abs=1e-9)
    assert e.gather_value == pytest.approx(e.value, abs=1e-9) and e.torch_value == pytest.approx(e.value, abs=1e-9)
    if e.beyond_full:  # a row or column output_padding adds past every window: the bias alone
        assert not e.landings


def test_convlens_explain_transposed_from_the_command_line(tmp_path) -> None:
    import matplotlib.image

    from convlens.cli import main

    code = main(["explain", "--transposed", "--size", "3", "--stride", "2", "--output-padding", "1", "--at", "7,7",
                 "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    figure = matplotlib.image.imread(tmp_path / "explain-transposed.png")
    assert figure.shape[0] > 200 and figure.shape[1] > 600
    assert main(["explain", "--transposed", "--im2col", "--out", str(tmp_path)]) == 0  # the matrix picture
    figure = matplotlib.image.imread(tmp_path / "im2col-transposed.png")
    assert figure.shape[0] > 600 and figure.shape[1] > 1000


def test_explain_transposed_text_tells_where_output_padding_comes_from(capsys, tmp_path) -> None:
    from convlens.cli import main

    main(["explain", "--transposed", "--size", "3", "--stride", "2", "--output-padding", "1", "--at", "7,7",
          "--out", str(tmp_path)])  # fmt: skip
    text = capsys.readouterr().out
    assert "lies past the full 7x7 output: it is a row / column that output_padding=(1, 1) adds" in text
    assert "H_out = (H - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1 = (3 - 1)*2" in text
    assert "check: convlens.conv_transpose2d gives 0, torch gives 0" in text
