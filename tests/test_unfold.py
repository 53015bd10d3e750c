"""unfold (im2col) and fold (col2im) against torch.nn.functional.unfold / fold."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens.unfold import sliding_windows, sliding_windows_by_unfold, unpad, zero_pad
from helpers import in_layout


@st.composite
def windows(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
    size = tuple(max(1, s - 2 * p) + draw(st.integers(0, 6)) for s, p in zip(span, padding))
    # Write the options the way users do: sometimes an int, sometimes a pair.
    args = {}
    for name, pair in (("kernel_size", kernel), ("dilation", dilation), ("padding", padding), ("stride", stride)):
        args[name] = pair[0] if pair[0] == pair[1] and draw(st.booleans()) else pair
    return size, args


@settings(max_examples=150)
@given(
    window=windows(),
    batch=st.sampled_from([None, 0, 1, 3]),
    channels=st.integers(1, 3),
    layout=st.sampled_from(["contiguous", "channels_last", "strided", "transposed"]),
)
def test_unfold_equals_pytorch(window, batch, channels, layout) -> None:
    size, args = window
    shape = (channels, *size) if batch is None else (batch, channels, *size)
    x = in_layout(torch.randn(shape, dtype=torch.float64), layout)
    torch.testing.assert_close(convlens.unfold(x, **args), F.unfold(x, **args), rtol=0, atol=0)


@settings(max_examples=100)
@given(window=windows(), layout=st.sampled_from(["contiguous", "channels_last", "strided", "transposed"]))
def test_windows_built_by_unfold_are_the_as_strided_windows(window, layout) -> None:
    """The torch.compile path (Tensor.unfold + slicing) is the same view as the eager one (as_strided)."""
    size, args = window
    pair = {name: (value, value) if isinstance(value, int) else value for name, value in args.items()}
    x = in_layout(torch.randn((2, 3, *size), dtype=torch.float64), layout)
    top, left = pair["padding"]
    x_pad = F.pad(x, (left, left, top, top))
    out_size = tuple(
        (p - d * (k - 1) - 1) // s + 1
        for p, d, k, s in zip(x_pad.shape[2:], pair["dilation"], pair["kernel_size"], pair["stride"], strict=True)
    )
    eager = sliding_windows(x_pad, pair["kernel_size"], pair["dilation"], pair["stride"], out_size)
    compiled_path = sliding_windows_by_unfold(x_pad, pair["kernel_size"], pair["dilation"], pair["stride"], out_size)
    torch.testing.assert_close(compiled_path, eager, rtol=0, atol=0)


@settings(max_examples=150)
@given(window=windows(), batch=st.sampled_from([None, 0, 1, 3]), channels=st.integers(1, 3))
def test_fold_equals_pytorch(window, batch, channels) -> None:
    size, args = window
    shape = (channels, *size) if batch is None else (batch, channels, *size)
    cols = F.unfold(torch.randn(shape, dtype=torch.float64), **args)
    cols = torch.randn_like(cols)  # any columns, not only ones that came from an image
    ours = convlens.fold(cols, size, **args)
    torch.testing.assert_close(ours, F.fold(cols, size, **args), rtol=1e-12, atol=1e-12)


def test_fold_sums_overlaps() -> None:
    """fold(unfold(x)) is x times the number of windows covering each pixel: overlaps add up."""
    x = torch.ones(1, 1, 4, 4)
    coverage = convlens.fold(convlens.unfold(x, 3), (4, 4), 3)
    expected = torch.tensor([[1.0, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])
    torch.testing.assert_close(coverage[0, 0], expected)


@settings(max_examples=100)
@given(window=windows(), batch=st.sampled_from([None, 0, 2]), channels=st.integers(1, 3))
def test_mean_fold_gives_unfolds_input_back_where_windows_cover_it(window, batch, channels) -> None:
    """reduce="mean": fold(unfold(x)) is x on every covered pixel and 0 elsewhere (a stride longer
    than the window leaves gaps); the sum divided by the coverage that PyTorch's own fold counts."""
    size, args = window
    shape = (channels, *size) if batch is None else (batch, channels, *size)
    x = torch.randn(shape, dtype=torch.float64)
    back = convlens.fold(convlens.unfold(x, **args), size, **args, reduce="mean")
    covered = F.fold(F.unfold(torch.ones(1, 1, *size, dtype=torch.float64), **args), size, **args)[0, 0] > 0
    torch.testing.assert_close(back[..., covered], x[..., covered], rtol=1e-12, atol=1e-12)
    assert (back[..., ~covered] == 0).all()


def test_mean_fold_of_any_columns_is_the_sum_over_the_coverage() -> None:
    cols = torch.randn(2, 3 * 9, 16, dtype=torch.float64)
    total = convlens.fold(cols, (6, 6), 3)
    coverage = convlens.fold(torch.ones(1, 9, 16, dtype=torch.float64), (6, 6), 3)
    torch.testing.assert_close(convlens.fold(cols, (6, 6), 3, reduce="mean"), total / coverage)


@pytest.mark.parametrize(
    ("cols", "reduce", "error", "pattern"),
    [
        (torch.randn(1, 9, 16), "max", ValueError, "reduce must be 'sum' or 'mean', got reduce='max'"),
        (torch.randn(1, 9, 16) > 0, "mean", TypeError, "reduce='mean' needs floating-point or complex input"),
    ],
)
def test_mean_fold_refuses_what_it_cannot_average(cols, reduce, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        convlens.fold(cols, (6, 6), 3, reduce=reduce)


def test_unfold_is_the_seed_shape() -> None:
    assert convlens.unfold(torch.randn(1, 3, 32, 32), 5).shape == (1, 75, 784)


def test_unfold_does_not_call_pytorch_unfold(monkeypatch) -> None:
    """im2col is ours: PyTorch's unfold/fold and conv ops are not used behind the scenes."""

    def forbidden(*args, **kwargs):
        raise AssertionError("convlens must not call torch's unfold/fold/conv")

    for name in ("unfold", "fold", "conv2d"):
        monkeypatch.setattr(F, name, forbidden)
    monkeypatch.setattr(torch, "conv2d", forbidden)
    x = torch.randn(2, 3, 9, 9)
    cols = convlens.unfold(x, 3, padding=1, stride=2)
    convlens.fold(cols, (9, 9), 3, padding=1, stride=2)
    for algorithm in ("depthwise", "banded"):  # the depthwise-only algorithms
        convlens.conv2d(x, torch.randn(3, 1, 3, 3), padding=1, groups=3, algorithm=algorithm)
    for algorithm in convlens.algorithms():
        if algorithm not in ("depthwise", "banded"):
            convlens.conv2d(x, torch.randn(4, 3, 3, 3), padding=1, algorithm=algorithm)


@pytest.mark.parametrize(
    ("call", "pattern"),
    [
        (
            lambda: convlens.unfold(torch.randn(1, 1, 4, 4), 5),
            r"floor\(\(4 \+ 0 \+ 0 - 1\*\(5-1\) - 1\) / 1\) \+ 1 = 0",
        ),
        (lambda: convlens.unfold(torch.randn(4, 4), 3), r"input must be 3-D \(C, H, W\) or 4-D"),
        (lambda: convlens.unfold(torch.randn(1, 1, 4, 4), 0), r"kernel_size must be positive"),
        (lambda: convlens.unfold(torch.randn(1, 1, 4, 4), 2, padding=-1), r"padding must be non-negative"),
        (
            lambda: convlens.fold(torch.randn(1, 10, 4), (3, 3), 2),
            r"input.shape\[-2\]=10 must be divisible by k_h\*k_w=4",
        ),
        (
            lambda: convlens.fold(torch.randn(1, 4, 5), (3, 3), 2),
            r"input.shape\[-1\]=5 must equal the number of sliding blocks 2\*2=4",
        ),
        (lambda: convlens.fold(torch.randn(4, 4, 4, 4), (3, 3), 2), r"input must be 2-D .* or 3-D"),
    ],
)
def test_bad_window_arguments(call, pattern) -> None:
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()


@given(padding=st.tuples(*[st.integers(0, 3)] * 4), size=st.tuples(st.integers(1, 5), st.integers(1, 5)))
def test_unpad_undoes_zero_pad(padding, size) -> None:
    x = torch.randn(2, 3, *size)
    padded = zero_pad(x, padding)
    top, bottom, left, right = padding
    assert padded.shape[-2:] == (size[0] + top + bottom, size[1] + left + right)
    assert torch.equal(unpad(padded, padding), x)
    border = padded.clone()
    border[..., top : top + size[0], left : left + size[1]] = 0
    assert not border.any()  # everything outside the input is zero


# ---- 1-D and 3-D windows -----------------------------------------------------------------
@st.composite
def volume_windows(draw, rank: int):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    size = tuple(
        draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 6)) for k, d, p in zip(kernel, dilation, padding, strict=True)
    )
    return size, {"kernel_size": kernel, "dilation": dilation, "padding": padding, "stride": stride}


@settings(max_examples=30)
@given(case=volume_windows(3), channels=st.integers(1, 3), batch=st.sampled_from([None, 1, 2]))
def test_3d_unfold_is_the_index_formula(case, channels: int, batch) -> None:
    """cols[n, (c, i, j, t), (z, y, v)] = x_pad[n, c, z*s_d + i*d_d, y*s_h + j*d_h, v*s_w + t*d_w]."""
    size, window = case
    x = torch.randn((channels, *size) if batch is None else (batch, channels, *size), dtype=torch.float64)
    cols = convlens.unfold(x, **window)
    batched = x if batch is not None else x.unsqueeze(0)
    x_pad = F.pad(batched, [p for p in reversed(window["padding"]) for _ in range(2)])
    out = convlens.output_size(size, window["kernel_size"], window["stride"], window["padding"], window["dilation"])
    (k_d, k_h, k_w), (d_d, d_h, d_w), (s_d, s_h, s_w) = window["kernel_size"], window["dilation"], window["stride"]
    expected = torch.stack(
        [
            x_pad[:, c, z * s_d + i * d_d, y * s_h + j * d_h, v * s_w + t * d_w]
            for c in range(channels) for i in range(k_d) for j in range(k_h) for t in range(k_w)
            for z in range(out[0]) for y in range(out[1]) for v in range(out[2])
        ],
        dim=1,
    ).view(batched.shape[0], channels * k_d * k_h * k_w, -1)  # fmt: skip
    torch.testing.assert_close(cols, expected if batch is not None else expected.squeeze(0), rtol=0, atol=0)


@settings(max_examples=30)
@given(case=volume_windows(1), channels=st.integers(1, 3))
def test_1d_unfold_and_fold_are_2d_ones_on_a_one_row_image(case, channels: int) -> None:
    size, window = case
    x = torch.randn(2, channels, *size, dtype=torch.float64)
    as_row = {
        name: (1 if name in ("kernel_size", "dilation", "stride") else 0, *value) for name, value in window.items()
    }
    cols = convlens.unfold(x, **window)
    torch.testing.assert_close(cols, F.unfold(x.unsqueeze(-2), **as_row), rtol=0, atol=0)
    torch.testing.assert_close(convlens.fold(cols, size, **window), F.fold(cols, (1, *size), **as_row).squeeze(-2))


@pytest.mark.parametrize("rank", (1, 3))
@settings(max_examples=20)
@given(data=st.data())
def test_nd_fold_is_the_adjoint_and_mean_the_inverse(rank: int, data) -> None:
    """<unfold(x), cols> = <x, fold(cols)> in float64, and fold(unfold(x), reduce="mean") gives x back
    wherever a window covers it."""
    size, window = data.draw(volume_windows(rank))
    x = torch.randn(2, 2, *size, dtype=torch.float64)
    unfolded = convlens.unfold(x, **window)
    cols = torch.randn_like(unfolded)
    torch.testing.assert_close((unfolded * cols).sum(), (x * convlens.fold(cols, size, **window)).sum())
    covered = convlens.fold(convlens.unfold(torch.ones_like(x), **window), size, **window) > 0
    rebuilt = convlens.fold(unfolded, size, **window, reduce="mean")
    torch.testing.assert_close(rebuilt[covered], x[covered])
    assert not rebuilt[~covered].any()


def test_nd_windows_explain_where_their_rank_comes_from() -> None:
    with pytest.raises(ValueError, match=r"stride=\[1, 2\].*\(kernel_size=\(2, 2, 2\) makes it 3-D\)"):
        convlens.unfold(torch.randn(1, 2, 4, 4, 4), (2, 2, 2), stride=[1, 2])
    with pytest.raises(ValueError, match=r"input must be 2-D \(C, L\) or 3-D \(N, C, L\) for kernel_size=\(3,\)"):
        convlens.unfold(torch.randn(1, 2, 4, 4), (3,))
