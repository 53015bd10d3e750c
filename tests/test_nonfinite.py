"""auto never changes what a result means: with NaN or Inf in the input, its output has
PyTorch's NaN and Inf positions, whichever algorithm it picks (Winograd, FFT and banded mix values, so
auto checks their output and computes again exactly where it is not finite)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens import native
from convlens.algos.auto import choose
from convlens.algos.winograd import plan as winograd_plan
from convlens.algos.winograd.transforms import cached_panels

# (input shape, weight shape, options): layers auto gives to each of its algorithms (float32 unless
# options say "dtype")
LAYERS = {
    "winograd": ((2, 128, 8, 8), (128, 128, 3, 3), {"padding": 1}),
    "fft": ((4, 40, 10, 10), (40, 40, 7, 7), {"padding": 3}),  # 40 filters: not gemm.c's (C_out % 16)
    # float64: the compiled depthwise kernel, which takes every float32 one, does not take it
    "banded": ((1, 8, 12, 12), (8, 1, 9, 9), {"padding": 4, "groups": 8, "dtype": torch.float64}),
    "depthwise": ((2, 8, 9, 9), (8, 1, 3, 3), {"stride": 2, "padding": 1, "groups": 8}),
    "im2col": ((2, 32, 65, 65), (40, 32, 3, 3), {"stride": 2}),  # 24 million multiply-adds: not a small layer
}
if native.available():  # auto's rule 5: a small layer goes to the compiled direct kernel; rule 6: gemm.c
    LAYERS["direct"] = ((2, 4, 9, 9), (6, 4, 3, 3), {"stride": 2, "padding": 1})
    LAYERS["gemm"] = ((2, 32, 65, 65), (64, 32, 3, 3), {"stride": 2})


def layer(picked: str) -> tuple[tuple[int, ...], tuple[int, ...], dict, torch.dtype]:
    """LAYERS[picked]: input shape, weight shape, the convolution's options, dtype."""
    x_shape, w_shape, options = LAYERS[picked]
    options = dict(options)
    return x_shape, w_shape, options, options.pop("dtype", torch.float32)


@pytest.mark.parametrize("picked", LAYERS)
def test_auto_picks_what_the_layer_is_meant_to_exercise(picked: str) -> None:
    x_shape, w_shape, options, dtype = layer(picked)
    spec = convlens.ConvSpec.from_args(torch.empty(x_shape, dtype=dtype), torch.empty(w_shape, dtype=dtype), **options)
    assert choose(spec).algorithm.name == picked


@pytest.mark.parametrize("picked", LAYERS)
@settings(max_examples=8)
@given(data=st.data())
def test_nan_and_inf_land_where_pytorchs_do(picked: str, data: st.DataObject) -> None:
    x_shape, w_shape, options, dtype = layer(picked)
    generator = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16), label="seed"))
    x = torch.randn(x_shape, generator=generator, dtype=dtype)
    w = torch.randn(w_shape, generator=generator, dtype=dtype)
    # In the input only: a NaN weight tap meets the zero padding, which PyTorch's CPU kernel skips
    # (no 0 * NaN) and im2col, like PyTorch's own reference path, multiplies; that is no mixing.
    for _ in range(data.draw(st.integers(1, 3), label="planted")):
        flat_index = data.draw(st.integers(0, x.numel() - 1), label="index")
        x.view(-1)[flat_index] = data.draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
    ours = convlens.conv2d(x, w, **options)
    theirs = F.conv2d(x, w, **options)
    assert torch.equal(ours.isnan(), theirs.isnan())
    assert torch.equal(ours.isposinf(), theirs.isposinf()) and torch.equal(ours.isneginf(), theirs.isneginf())
    finite = theirs.isfinite()
    torch.testing.assert_close(ours[finite], theirs[finite], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("fused", [False, True])
def test_explicit_mixing_algorithms_keep_their_documented_spread(fused: bool, monkeypatch) -> None:
    """An explicit ``algorithm="winograd"`` is not guarded: it mixes the values of a tile, as
    documented. The torch-op pipeline spreads a NaN over its tile (its transforms are matrix
    products: 0 * NaN is NaN); winograd.c's transforms skip their zero coefficients, so there one
    Inf becomes NaN (Inf - Inf in the products' sums) where PyTorch has +-Inf."""
    monkeypatch.setattr(winograd_plan, "fused", fused)
    x_shape, w_shape, options = LAYERS["winograd"]
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    assert winograd_plan.uses_fused(convlens.ConvSpec.from_args(x, w, **options)) is (fused and native.available())
    for planted in (float("nan"), float("inf")) if not fused else (float("inf"),):
        x[0, 0, 3, 3] = planted
        ours, theirs = convlens.conv2d(x, w, **options, algorithm="winograd"), F.conv2d(x, w, **options)
        assert ours.isnan().sum() > theirs.isnan().sum()


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("planted", ["none", "nan", "inf", "-inf", "inf bias", "overflow"])
def test_the_fused_winograd_pass_says_whether_its_output_is_finite(planted: str, channels_last: bool) -> None:
    """winograd.c's output pass looks at every value it writes (auto's guard then needs no sum):
    False from one NaN or infinity in the output, whatever put it there, True for a finite one."""
    if not native.available():
        pytest.skip(native.reason())
    generator = torch.Generator().manual_seed(3)
    x, w = torch.randn(2, 24, 9, 9, generator=generator), torch.randn(32, 24, 3, 3, generator=generator)
    b = torch.randn(32, generator=generator)
    if planted in ("nan", "inf", "-inf"):
        x[1, 5, 8, 0] = float(planted)  # a corner: its tile is the last of its row and column
    elif planted == "inf bias":
        b[7] = float("inf")
    elif planted == "overflow":
        x = x * 1e38  # finite inputs, sums beyond float32
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    spec = convlens.ConvSpec.from_args(x, w, b, padding=1)
    out = torch.empty(2, 32, 9, 9).contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
    finite = native.winograd_fused(x, cached_panels(w, 2), b, out, spec, 2, 2)
    assert finite == bool(out.isfinite().all()) == (planted == "none")


def test_auto_takes_the_fused_passs_word_for_it_and_sums_the_output_otherwise(monkeypatch) -> None:
    """No sum over the output where the fused Winograd has looked at every value; one where the
    layer goes through the Python pipeline, whose output nothing has looked at."""
    x_shape, w_shape, options = LAYERS["winograd"]
    x, w = torch.randn(x_shape), torch.randn(w_shape)
    sums = []
    original = torch.Tensor.sum
    monkeypatch.setattr(
        torch.Tensor, "sum", lambda self, *args, **kwargs: sums.append(1) or original(self, *args, **kwargs)
    )
    fused = native.available() and winograd_plan.uses_fused(convlens.ConvSpec.from_args(x, w, **options))
    convlens.conv2d(x, w, **options)
    assert len(sums) == (0 if fused else 1)
    monkeypatch.setattr(winograd_plan, "fused", False)
    monkeypatch.setattr(winograd_plan, "native", False)
    sums.clear()
    convlens.conv2d(x, w, **options)
    assert len(sums) == 1
