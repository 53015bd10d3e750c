"""The compiled core (src/convlens/native/): each kernel against PyTorch, against float64 and
against its Python sibling on random configurations; the fallback when it is not built."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens import native
from convlens.algos import depthwise
from convlens.verify import allowed_error


def test_the_install_builds_the_kernels() -> None:
    """CI's fresh install has gcc: the kernels must be there (elsewhere they may be missing)."""
    if not os.environ.get("CI") and not native.available():
        pytest.skip(f"no compiled kernels here: {native.reason()}")
    assert native.available() and native.reason() == ""


def pairs(low: int, high: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(low, high), st.integers(low, high))


configurations = st.fixed_dictionaries({
    "batch": st.integers(1, 3), "channels": st.integers(2, 9), "size": pairs(1, 13), "kernel": pairs(1, 5),
    "stride": pairs(1, 3), "padding": pairs(0, 3), "dilation": pairs(1, 3), "bias": st.booleans(),
    "threads": st.integers(1, 3),
})  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(configurations)
def test_depthwise_kernel_matches_pytorch_float64_and_python(c: dict) -> None:
    if not native.available():
        pytest.skip(native.reason())
    span = [d * (k - 1) + 1 for d, k in zip(c["dilation"], c["kernel"])]
    if any(n + 2 * p < s for n, p, s in zip(c["size"], c["padding"], span)):
        return  # the window does not fit: conv2d's own error, tested elsewhere
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(c["batch"], c["channels"], *c["size"], generator=generator)
    w = torch.randn(c["channels"], 1, *c["kernel"], generator=generator)
    b = torch.randn(c["channels"], generator=generator) if c["bias"] else None
    options = {"stride": c["stride"], "padding": c["padding"], "dilation": c["dilation"], "groups": c["channels"]}
    threads = torch.get_num_threads()
    torch.set_num_threads(c["threads"])
    try:
        ours = convlens.conv2d(x, w, b, **options, algorithm="depthwise")
        depthwise.native = False
        python = convlens.conv2d(x, w, b, **options, algorithm="depthwise")
    finally:
        depthwise.native = True
        torch.set_num_threads(threads)
    exact = F.conv2d(x.double(), w.double(), None if b is None else b.double(), **options)
    theirs = F.conv2d(x, w, b, **options)
    # against float64 by verify's rule: the algorithm's bound times PyTorch's own error (or 4 ulps of the output)
    bound = convlens.algos.get("depthwise").error_bound(convlens.ConvSpec.from_args(x, w, b, **options))
    allowed = allowed_error(float((theirs.double() - exact).abs().max()), float(exact.abs().max()), bound)
    assert float((ours.double() - exact).abs().max()) <= allowed
    assert float((python.double() - exact).abs().max()) <= allowed
    # the same bits whatever the number of threads
    torch.set_num_threads(1)
    try:
        assert torch.equal(convlens.conv2d(x, w, b, **options, algorithm="depthwise"), ours)
    finally:
        torch.set_num_threads(threads)


def test_what_the_kernel_does_not_take_goes_to_python() -> None:
    x, w = torch.randn(2, 4, 9, 9), torch.randn(4, 1, 3, 3)
    spec = convlens.ConvSpec.from_args(x, w, None, groups=4)
    assert native.runs_depthwise(x, w, None, spec) is native.available()
    assert not native.runs_depthwise(x.double(), w.double(), None, spec)  # float64: the Python path
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert not native.runs_depthwise(channels_last, w, None, spec)
    doubled = torch.randn(8, 1, 3, 3)  # a channel multiplier of 2
    assert not native.runs_depthwise(x, doubled, None, convlens.ConvSpec.from_args(x, doubled, None, groups=4))
    for dtype in (torch.float64, torch.bfloat16):
        out = convlens.conv2d(x.to(dtype), w.to(dtype), groups=4, algorithm="depthwise")
        torch.testing.assert_close(out, F.conv2d(x.to(dtype), w.to(dtype), groups=4), rtol=2e-2, atol=2e-2)


def test_without_the_kernels_convlens_says_so_once_and_runs_python(monkeypatch) -> None:
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_reason", "no compiled kernels (test)")
    monkeypatch.setattr(native, "_warned", False)
    with pytest.warns(RuntimeWarning, match="Python algorithms only: no compiled kernels"):
        assert not native.available()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not native.available()  # said once only
    assert caught == []
    x, w = torch.randn(1, 3, 8, 8), torch.randn(3, 1, 3, 3)
    torch.testing.assert_close(convlens.conv2d(x, w, groups=3, algorithm="depthwise"), F.conv2d(x, w, groups=3))
