"""The compiled core (src/convlens/native/): each kernel against PyTorch, against float64 and
against its Python sibling on random configurations; the fallback when it is not built."""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens import native
from convlens.algos import depthwise, direct, gemm
from convlens.algos.winograd import MATRICES, STRIDED, plan
from convlens.benchmark.timing import with_attributes
from convlens.unfold import im2col, zero_pad
from convlens.verify import allowed_error


def test_the_install_builds_the_kernels() -> None:
    """CI's fresh install has gcc: the kernels must be there (elsewhere they may be missing)."""
    if not os.environ.get("CI") and not native.available():
        pytest.skip(f"no compiled kernels here: {native.reason()}")
    assert native.available() and native.reason() == ""


# The flags of each x86-64 level the kernels' loops are built for (GCC's -march=x86-64-v3 / -v4).
X86_64_V3 = {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "xsave"}
X86_64_V4 = X86_64_V3 | {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"}


def cpu_flags() -> set[str]:
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in info.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def test_the_kernels_run_the_widest_loops_the_cpu_has() -> None:
    if not native.available():
        assert native.instruction_set() == ""
        pytest.skip(native.reason())
    flags = cpu_flags()
    if "avx2" not in flags and "avx512f" not in flags:
        pytest.skip("not an x86-64 CPU with AVX2")
    expected = "AVX-512" if flags >= X86_64_V4 else "AVX2" if flags >= X86_64_V3 else "baseline"
    assert native.instruction_set() == expected


WINOGRAD_LAYER = ((2, 64, 12, 12), (64, 64, 3, 3), {"padding": 1})
GEMM_LAYER = ((2, 32, 11, 13), (48, 32, 3, 3), {"padding": 1, "stride": 2})
ONE_ARCH_SCRIPT = """
import sys, torch, convlens
from convlens import native
assert native.instruction_set() == "AVX2", native.instruction_set()
five = convlens.ConvSpec.from_args(torch.empty(1, 16, 28, 28), torch.empty(16, 1, 5, 5), None, padding=2, groups=16)
assert native.direct_loop(five) == "blocks", native.direct_loop(five)  # 8-lane blocks take 5x5 rows
outputs = []
for x_shape, w_shape, options, algorithm in eval(sys.argv[2]):
    generator = torch.Generator().manual_seed(5)
    x, w = torch.randn(*x_shape, generator=generator), torch.randn(*w_shape, generator=generator)
    if options.pop("channels_last", False):
        x = x.contiguous(memory_format=torch.channels_last)
    outputs.append(convlens.conv2d(x, w, torch.randn(w_shape[0], generator=generator), **options, algorithm=algorithm))
torch.save(outputs, sys.argv[1])
"""


def test_a_build_for_avx2_alone_runs_avx2_loops_with_the_same_bits(tmp_path: Path) -> None:
    """setup.py's CONVLENS_NATIVE_ARCH=x86-64-v3 (benchmarks/as_avx2.sh) builds every loop for AVX2
    alone, without warnings: its kernels say AVX2 and give the bits of the dispatched build."""
    if not native.available() or not cpu_flags() >= X86_64_V3:
        pytest.skip("needs the kernels built and a CPU with x86-64-v3 (AVX2, FMA)")
    specs = [
        convlens.ConvSpec.from_args(torch.randn(x), torch.randn(w), None, **o)
        for x, w, o in (WINOGRAD_LAYER, GEMM_LAYER)
    ]
    assert plan.uses_fused(specs[0]) and gemm.uses_native(specs[1])  # the layers run the products' loops
    root = Path(__file__).parents[1]
    for name in ("src", "setup.py", "pyproject.toml", "README.md"):
        copy = shutil.copytree if (root / name).is_dir() else shutil.copy
        copy(root / name, tmp_path / name)
    for built in (tmp_path / "src").rglob("_kernels*.so"):
        built.unlink()
    environment = {**os.environ, "CONVLENS_NATIVE_ARCH": "x86-64-v3"}
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=tmp_path,
                           env=environment, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert build.returncode == 0, build.stderr
    assert "warning" not in build.stderr, build.stderr
    # depthwise through the sliding rows: 6 outputs at a time, rows 7 wide, a last block of 8, channels-last
    layers = [(*WINOGRAD_LAYER, "winograd"), (*GEMM_LAYER, "gemm"), ((2, 16, 9, 9), (16, 1, 5, 5),
              {"padding": 2, "groups": 16}, "direct"), ((1, 32, 7, 7), (32, 1, 7, 7), {"padding": 3, "groups": 32},
              "direct"), ((2, 24, 14, 14), (24, 1, 3, 3), {"padding": 1, "groups": 24}, "direct"),
              ((2, 40, 9, 9), (40, 1, 5, 5), {"padding": 2, "groups": 40, "channels_last": 1}, "direct")]  # fmt: skip
    saved = tmp_path / "outputs.pt"
    environment = {**os.environ, "PYTHONPATH": str(tmp_path / "src")}
    run = subprocess.run([sys.executable, "-c", ONE_ARCH_SCRIPT, str(saved), repr(layers)], env=environment,
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stderr
    for (x_shape, w_shape, options, algorithm), theirs in zip(layers, torch.load(saved), strict=True):
        generator = torch.Generator().manual_seed(5)
        x, w = torch.randn(*x_shape, generator=generator), torch.randn(*w_shape, generator=generator)
        if options.pop("channels_last", False):
            x = x.contiguous(memory_format=torch.channels_last)
        ours = convlens.conv2d(x, w, torch.randn(w_shape[0], generator=generator), **options, algorithm=algorithm)
        assert torch.equal(ours, theirs), algorithm


def pairs(low: int, high: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(low, high), st.integers(low, high))


configurations = st.fixed_dictionaries({
    "batch": st.integers(1, 3), "groups": st.integers(1, 6), "in_per_group": st.sampled_from([1, 1, 2, 3]),
    "out_per_group": st.integers(1, 3), "size": pairs(1, 13), "kernel": pairs(1, 5), "stride": pairs(1, 3),
    "padding": pairs(0, 3), "dilation": pairs(1, 3), "bias": st.booleans(), "threads": st.integers(1, 3),
    "channels_last": st.booleans(),
})  # fmt: skip


@settings(max_examples=120, deadline=None)
@given(configurations)
def test_direct_kernel_matches_pytorch_float64_and_python(c: dict) -> None:
    """direct.c through both algorithms that use it: depthwise (one input channel per group, any
    channel multiplier) and direct (any groups), against float64 by verify's rule and against the
    Python path; the same bits whatever the number of threads."""
    if not native.available():
        pytest.skip(native.reason())
    span = [d * (k - 1) + 1 for d, k in zip(c["dilation"], c["kernel"])]
    if any(n + 2 * p < s for n, p, s in zip(c["size"], c["padding"], span)):
        return  # the window does not fit: conv2d's own error, tested elsewhere
    generator = torch.Generator().manual_seed(0)
    groups = c["groups"]
    x = torch.randn(c["batch"], groups * c["in_per_group"], *c["size"], generator=generator)
    w = torch.randn(groups * c["out_per_group"], c["in_per_group"], *c["kernel"], generator=generator)
    b = torch.randn(w.shape[0], generator=generator) if c["bias"] else None
    if c["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    options = {"stride": c["stride"], "padding": c["padding"], "dilation": c["dilation"], "groups": groups}
    spec = convlens.ConvSpec.from_args(x, w, b, **options)
    name, module = ("depthwise", depthwise) if spec.is_depthwise else ("direct", direct)
    # NCHW for any groups; channels-last for depthwise layers with one filter per channel
    assert native.runs_direct(x, w, b, spec) is (
        not spec.channels_last or (c["out_per_group"] == 1 and spec.is_depthwise)
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(c["threads"])
    try:
        ours = convlens.conv2d(x, w, b, **options, algorithm=name)
        torch.set_num_threads(1)
        assert torch.equal(convlens.conv2d(x, w, b, **options, algorithm=name), ours)  # whatever the threads
        module.native = False
        python = convlens.conv2d(x, w, b, **options, algorithm=name)
    finally:
        module.native = True
        torch.set_num_threads(threads)
    exact, theirs = pytorch_references(x, w, b, options)
    # against float64 by verify's rule: the algorithm's bound times PyTorch's own error (or 4 ulps of the output)
    bound = convlens.algos.get(name).error_bound(spec)
    allowed = allowed_error(float((theirs.double() - exact).abs().max()), float(exact.abs().max()), bound)
    assert float((ours.double() - exact).abs().max()) <= allowed
    assert float((python.double() - exact).abs().max()) <= allowed
    layout = torch.channels_last if spec.channels_last else torch.contiguous_format  # PyTorch's layout rule
    assert ours.is_contiguous(memory_format=layout)


def pytorch_references(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, options: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """F.conv2d in float64 and in float32, from an NCHW copy of x: PyTorch 2.14.1's CPU kernel
    crashes (segmentation fault) on some channels-last inputs with strides, dilations and padding
    (e.g. x (1, 6, 3, 2) channels-last, weight (6, 2, 1, 1), stride 3, padding 1, dilation 3,
    groups 3), and the values do not depend on the layout."""
    x = x.contiguous()
    exact = F.conv2d(x.double(), w.double(), None if b is None else b.double(), **options)
    return exact, F.conv2d(x, w, b, **options)


loop_configurations = st.fixed_dictionaries({
    "batch": st.integers(1, 2), "groups": st.integers(1, 3), "in_per_group": st.integers(1, 5),
    "out_per_group": st.integers(1, 20), "size": st.tuples(st.integers(1, 12), st.integers(1, 70)),
    "kernel": pairs(1, 4), "stride": pairs(1, 3),
    "padding": pairs(0, 2), "dilation": pairs(1, 2), "bias": st.booleans(),
})  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(loop_configurations)
def test_every_loop_of_the_direct_kernel_gives_the_same_bits(c: dict) -> None:
    """direct.c's loops (planes; output blocks for several input channels per group, channel blocks
    for one; row vectors for one at stride 1 along the row) add each output's terms in the same
    order: asked for by name, each gives the bits of the kernel's own pick, within verify's rule of
    float64. Up to 20 outputs per group, so blocks of 16 lanes come full, partial and split; rows up
    to 70 wide, so row vectors come 4 at a time, one at a time and overlapping (on AVX-512, 16
    outputs per vector, 2 and 4 at a time)."""
    if not native.available():
        pytest.skip(native.reason())
    span = [d * (k - 1) + 1 for d, k in zip(c["dilation"], c["kernel"])]
    if any(n + 2 * p < s for n, p, s in zip(c["size"], c["padding"], span)):
        return
    generator = torch.Generator().manual_seed(1)
    groups = c["groups"]
    x = torch.randn(c["batch"], groups * c["in_per_group"], *c["size"], generator=generator)
    w = torch.randn(groups * c["out_per_group"], c["in_per_group"], *c["kernel"], generator=generator)
    b = torch.randn(w.shape[0], generator=generator) if c["bias"] else None
    options = {"stride": c["stride"], "padding": c["padding"], "dilation": c["dilation"], "groups": groups}
    spec = convlens.ConvSpec.from_args(x, w, b, **options)
    picked = native.direct_forward(x, w, b, spec)
    loops = ["planes"]
    if spec.in_per_group > 1 or spec.in_size[0] * spec.in_size[1] <= 16384:  # channel blocks copy a plane
        loops.append("blocks")
    if spec.in_per_group == 1 and spec.stride[1] == 1:
        loops.append("row vectors")
    for loop in loops:
        assert torch.equal(native.direct_forward(x, w, b, spec, loop=loop), picked), loop
    exact, theirs = pytorch_references(x, w, b, options)
    bound = convlens.algos.get("direct").error_bound(spec)
    allowed = allowed_error(float((theirs.double() - exact).abs().max()), float(exact.abs().max()), bound)
    assert float((picked.double() - exact).abs().max()) <= allowed


def test_the_direct_kernel_refuses_a_loop_it_cannot_run() -> None:
    """Channel blocks copy an NCHW plane into a buffer of MAX_BLOCK_PLANE = 16384 positions, row
    vectors need stride 1 along the row: a layer that cannot go the way asked is refused, not left
    uncomputed."""
    if not native.available():
        pytest.skip(native.reason())
    x, w = torch.randn(1, 2, 130, 130), torch.randn(2, 1, 3, 3)
    spec = convlens.ConvSpec.from_args(x, w, None, groups=2)
    with pytest.raises(ValueError, match="loop='blocks'"):
        native.direct_forward(x, w, None, spec, loop="blocks")
    strided = convlens.ConvSpec.from_args(x, w, None, groups=2, stride=(1, 2))
    with pytest.raises(ValueError, match="loop='row vectors'"):  # row vectors read contiguous input columns
        native.direct_forward(x, w, None, strided, loop="row vectors")
    torch.testing.assert_close(native.direct_forward(x, w, None, spec, loop="planes"), F.conv2d(x, w, groups=2))


@pytest.mark.parametrize("groups", [1, 4])
def test_the_direct_kernel_reads_strided_weights_and_biases(groups: int) -> None:
    """A transposed weight and a strided bias (a backward's flipped filters, a slice of a larger
    bias) are copied before the kernel reads them, and the copies held until it is done: a copy
    freed as soon as its address was taken gave garbage once its memory was reused."""
    if not native.available():
        pytest.skip(native.reason())
    torch.manual_seed(3)
    for _ in range(20):  # each round allocates, so a freed copy's memory is reused
        x = torch.randn(2, 8, 9, 9)
        w = torch.randn(8 // groups, 8, 3, 3).transpose(0, 1)  # (8, 8/groups, 3, 3), not contiguous
        b = torch.randn(16)[::2]
        assert not (w.is_contiguous() or b.is_contiguous())
        spec = convlens.ConvSpec.from_args(x, w, b, padding=1, groups=groups)
        torch.testing.assert_close(native.direct_forward(x, w, b, spec), F.conv2d(x, w, b, padding=1, groups=groups))


@pytest.mark.parametrize("multiplier", [1, 2])
def test_direct_kernel_picks_by_width_give_the_same_bits(multiplier: int) -> None:
    """direct.c takes depthwise stride-1 outputs up to 16 columns wide LANES channels at a time,
    wider ones 32 outputs of a row at a time (row vectors): the same sums in the same order, so the
    same bits. An output 40 wide and its first 14 columns (from the first 16 input columns; no
    padding across) must agree, through the public conv2d."""
    if not native.available():
        pytest.skip(native.reason())
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(2, 20, 9, 42, generator=generator)
    w = torch.randn(20 * multiplier, 1, 3, 3, generator=generator)
    b = torch.randn(20 * multiplier, generator=generator)
    options = {"padding": (1, 0), "groups": 20}
    wide = convlens.conv2d(x, w, b, **options, algorithm="depthwise")  # 40 columns: row vectors
    narrow = convlens.conv2d(x[..., :16].contiguous(), w, b, **options, algorithm="depthwise")  # 14: blocks
    spec = convlens.ConvSpec.from_args(x[..., :16], w, b, **options)
    assert native.direct_loop(spec) == "blocks"
    assert torch.equal(wide[..., :14], narrow)


@pytest.mark.parametrize(
    ("kernel", "size", "loop"),
    [(3, 28, "row vectors"), (5, 56, "5x5"), (5, 28, "5x5"), (7, 28, "blocks"), (7, 56, "blocks"),
     (7, 130, "row vectors"), (7, 14, "blocks"), (5, 130, "row vectors")],
)  # fmt: skip
def test_wide_stride_1_depthwise_rows_go_by_row_vectors_unless_the_kernel_is_wide(
    kernel: int, size: int, loop: str
) -> None:
    """Row vectors load k_h*k_w input vectors per output vector, the blocks share each load between
    outputs: 7x7 rows go through the blocks wherever they take the plane (up to 16384 padded
    values: 130 + 6 = 136 columns squared do not fit), and 5x5 rows too where the blocks run 8
    lanes at a time (no AVX-512 loops: half_outputs); narrower kernels' wide rows by row vectors."""
    if not native.available():
        pytest.skip(native.reason())
    if loop == "5x5":
        loop = "row vectors" if native.instruction_set() == "AVX-512" else "blocks"
    spec = convlens.ConvSpec.from_args(
        torch.empty(1, 16, size, size), torch.empty(16, 1, kernel, kernel), None, padding=kernel // 2, groups=16
    )
    assert native.direct_loop(spec) == loop


@pytest.mark.parametrize("width", [5, 21, 40])
def test_every_depthwise_loop_puts_nan_and_inf_where_the_plane_loop_does(width: int) -> None:
    """Row vectors mask the terms that read the zero margin instead of skipping them; a NaN or Inf
    weight times a margin zero must not reach the output. Planted in input and weights, every loop
    gives the plane loop's bits, NaN for NaN."""
    if not native.available():
        pytest.skip(native.reason())
    generator = torch.Generator().manual_seed(width)
    x, w = torch.randn(2, 6, 7, width, generator=generator), torch.randn(6, 1, 3, 3, generator=generator)
    x[0, 1, 3, 0], x[1, 2, 0, width - 1], x[0, 3, 6, width // 2] = float("nan"), float("inf"), -float("inf")
    w[4, 0, 0, 0], w[5, 0, 2, 2] = float("nan"), float("inf")
    spec = convlens.ConvSpec.from_args(x, w, None, padding=1, groups=6)
    planes = native.direct_forward(x, w, None, spec, loop="planes")
    assert planes[1, 4].isnan().any() and not planes[1, 4].isnan().all()  # the NaN tap skips the padding
    for loop in ("blocks", "row vectors"):
        torch.testing.assert_close(
            native.direct_forward(x, w, None, spec, loop=loop), planes, rtol=0, atol=0, equal_nan=True
        )


def test_what_the_kernel_does_not_take_goes_to_python() -> None:
    x, w = torch.randn(2, 4, 9, 9), torch.randn(4, 1, 3, 3)
    spec = convlens.ConvSpec.from_args(x, w, None, groups=4)
    assert native.runs_direct(x, w, None, spec) is native.available()
    assert not native.runs_direct(x.double(), w.double(), None, spec)  # float64: the Python path
    channels_last = x.contiguous(memory_format=torch.channels_last)
    dense = torch.randn(4, 4, 3, 3)  # channels-last takes depthwise layers only
    dense_spec = convlens.ConvSpec.from_args(channels_last, dense, None)
    assert not native.runs_direct(channels_last, dense, None, dense_spec)
    volume = torch.randn(1, 4, 3, 9, 9)  # 3-D: the Python path, which autograd differentiates step by step
    assert not native.takes(convlens.ConvSpec.from_args(volume, torch.randn(4, 1, 3, 3, 3), None, groups=4, rank=3))
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


def test_winograd_tables_are_the_python_transforms() -> None:
    if not native.available():
        pytest.skip(native.reason())
    for (m, stride), (a_t, _, b_t) in [*(((m, 1), mats) for m, mats in MATRICES.items()), ((2, 2), STRIDED)]:
        c_b_t, c_a_t = native.winograd_tables(m, stride)
        assert torch.equal(c_b_t.double(), b_t) and torch.equal(c_a_t.double(), a_t)
    for m, stride in ((3, 1), (4, 2), (2, 3)):
        with pytest.raises(ValueError, match="m = 2 and 4 at stride 1, m = 2 at stride 2"):
            native.winograd_tables(m, stride)


winograd_configurations = st.fixed_dictionaries({
    "batch": st.integers(1, 3), "groups": st.sampled_from([1, 2]), "in_per_group": st.integers(1, 20),
    "out_per_group": st.integers(1, 20), "size": pairs(1, 15), "padding": pairs(0, 2), "bias": st.booleans(),
    "channels_last": st.booleans(), "precision": st.sampled_from(["highest", "high"]), "threads": st.integers(1, 3),
})  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(winograd_configurations)
def test_winograd_passes_match_pytorch_float64_and_python(c: dict) -> None:
    """winograd.c's passes (input any layout, any padding, channels not a multiple of 16, groups,
    F(2x2) and F(4x4)) against float64 by verify's rule and against the Python path; the passes
    give the same bits whatever the number of threads (the products between them are torch's
    BLAS, whose sums may split differently by thread count)."""
    if not native.available():
        pytest.skip(native.reason())
    if any(n + 2 * p < 3 for n, p in zip(c["size"], c["padding"])):
        return  # the window does not fit: conv2d's own error, tested elsewhere
    generator = torch.Generator().manual_seed(1)
    groups = c["groups"]
    x = torch.randn(c["batch"], groups * c["in_per_group"], *c["size"], generator=generator)
    if c["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(groups * c["out_per_group"], c["in_per_group"], 3, 3, generator=generator)
    b = torch.randn(w.shape[0], generator=generator) if c["bias"] else None
    options = {"padding": c["padding"], "groups": groups}
    threads, precision = torch.get_num_threads(), convlens.get_precision()
    torch.set_num_threads(c["threads"])
    convlens.set_precision(c["precision"])
    try:
        plan.native, plan.fused = True, False  # the two passes around torch's products (the fused pass: below)
        spec = convlens.ConvSpec.from_args(x, w, b, **options)
        assert plan.uses_native(spec)
        ours = convlens.conv2d(x, w, b, **options, algorithm="winograd")
        assert passes_agree_across_threads(x, spec, c["threads"])
        plan.native = False
        python = convlens.conv2d(x, w, b, **options, algorithm="winograd")
        bound = convlens.algos.get("winograd").error_bound(spec)
    finally:
        plan.native, plan.fused = False, True
        torch.set_num_threads(threads)
        convlens.set_precision(precision)
    exact, theirs = pytorch_references(x, w, b, options)
    assert ours.shape == theirs.shape
    layout = torch.channels_last if spec.channels_last else torch.contiguous_format  # PyTorch's layout rule
    assert ours.is_contiguous(memory_format=layout)
    # verify's rule, with the floor of 4 ulps taken of the terms' magnitude (conv of |x| and |w|) rather
    # than of the output's: a one-output layer whose terms cancel has a small output and no small error
    magnitude = F.conv2d(
        x.abs().contiguous().double(), w.abs().double(), None if b is None else b.abs().double(), **options
    )
    allowed = allowed_error(float((theirs.double() - exact).abs().max()), float(magnitude.max()), bound)
    assert float((ours.double() - exact).abs().max()) <= allowed
    assert float((python.double() - exact).abs().max()) <= allowed


def passes_agree_across_threads(x: torch.Tensor, spec: convlens.ConvSpec, threads: int) -> bool:
    """Both passes of the whole batch as one piece, with 1 and with ``threads`` threads: the same bits."""
    m = plan.tile_size(spec)
    tiles_h, tiles_w = plan.tile_grid(spec, m)
    piece, t = (0, spec.batch, 0, tiles_h, tiles_w), m + 2
    results = []
    for count in (1, threads):
        torch.set_num_threads(count)
        v = torch.empty(t * t, spec.batch * tiles_h * tiles_w, spec.in_channels)
        native.winograd_input(x, spec, m, piece, v)
        out = torch.empty(spec.batch, spec.in_channels, *spec.out_size)
        native.winograd_output(v, None, out, m, piece)  # V's channels stand in for products
        results.append((v, out))
    return all(torch.equal(a, b) for a, b in zip(*results))


def test_winograd_passes_take_only_plain_float32_cpu_calls(monkeypatch) -> None:
    x, w = torch.randn(2, 4, 9, 9), torch.randn(4, 4, 3, 3)
    spec = convlens.ConvSpec.from_args(x, w, None, padding=1)
    monkeypatch.setattr(plan, "native", True)
    assert plan.uses_native(spec) is native.available()
    assert native.runs_winograd(x, None, spec) is native.available()
    assert not plan.uses_native(convlens.ConvSpec.from_args(x.double(), w.double(), None, padding=1))
    wide = torch.randn(1, 1, 3, 600)  # wider than one band of the passes: the Python path
    assert not plan.uses_native(convlens.ConvSpec.from_args(wide, torch.randn(1, 1, 3, 3), None))
    out = convlens.conv2d(wide, torch.ones(1, 1, 3, 3), algorithm="winograd")
    torch.testing.assert_close(out, F.conv2d(wide, torch.ones(1, 1, 3, 3)), rtol=1e-5, atol=1e-4)
    # the native path's buffers are V and M only (with the cached weight transform), and the
    # scratch it leaves behind is what buffer_bytes predicts
    if native.available():
        predicted = convlens.algos.get("winograd").buffer_bytes(spec, convlens.get_workspace_limit())
        taken = {name for name, size in predicted.items() if size}
        assert taken == {"v", "products", "transformed weight", "saved weight"}
        from convlens.algos.winograd import SCRATCH

        SCRATCH.clear()
        convlens.conv2d(x, w, None, padding=1, algorithm="winograd")
        assert SCRATCH.bytes() == predicted["v"] + predicted["products"]


fused_configurations = st.fixed_dictionaries({
    "batch": st.integers(1, 3), "in_channels": st.integers(1, 40), "out_channels": st.sampled_from([16, 32, 80]),
    "size": pairs(1, 20), "padding": pairs(0, 2), "bias": st.booleans(), "channels_last": st.booleans(),
    "precision": st.sampled_from(["highest", "high"]), "threads": st.integers(1, 3), "band_rows": st.integers(1, 4),
    "images": st.integers(1, 3), "stride": st.sampled_from([1, 2]),
})  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(fused_configurations)
def test_fused_winograd_matches_pytorch_float64_and_python(c: dict) -> None:
    """winograd.c's fused pass (input any layout, any padding, any C_in, C_out in blocks of 64 and
    16, bands of 1 to 4 tile rows, F(2x2) and F(4x4) at stride 1, F(2x2) at stride 2) against
    float64 by verify's rule and against the Python path; the same bits whatever the bands, the
    threads, and the width of the products' vectors (AVX-512's 16 lanes or 8)."""
    if not native.available():
        pytest.skip(native.reason())
    if any(n + 2 * p < 3 for n, p in zip(c["size"], c["padding"])):
        return  # the window does not fit: conv2d's own error, tested elsewhere
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(c["batch"], c["in_channels"], *c["size"], generator=generator)
    if c["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(c["out_channels"], c["in_channels"], 3, 3, generator=generator)
    b = torch.randn(w.shape[0], generator=generator) if c["bias"] else None
    threads = torch.get_num_threads()
    options = {"padding": c["padding"], "stride": c["stride"]}
    with convlens.settings(precision=c["precision"]):
        spec = convlens.ConvSpec.from_args(x, w, b, **options)
        assert plan.uses_fused(spec)
        ours = convlens.conv2d(x, w, b, **options, algorithm="winograd")
        m = plan.tile_size(spec)
        u = convlens.algos.winograd.transforms.cached_panels(w, m, plan.tiling_stride(spec))
        others = []
        try:
            tiles_h = plan.tile_grid(spec, m)[0]
            for rows, images, count, wide in (
                (c["band_rows"], 1, c["threads"], True),
                (1, 1, 1, False),
                (tiles_h, c["images"], c["threads"], True),  # pieces of several whole images
            ):
                torch.set_num_threads(count)
                out = torch.full_like(ours, float("nan"))
                native.winograd_fused(x, u, b, out, spec, m, rows, wide=wide, images=images)
                others.append(out)
        finally:
            torch.set_num_threads(threads)
        with_attributes(lambda: others.append(convlens.conv2d(x, w, b, **options, algorithm="winograd")),
                        plan, fused=False)()  # fmt: skip
        bound = convlens.algos.get("winograd").error_bound(spec)
    assert all(torch.equal(ours, other) for other in others[:3])
    exact, theirs = pytorch_references(x, w, b, options)
    layout = torch.channels_last if spec.channels_last else torch.contiguous_format  # PyTorch's layout rule
    assert ours.shape == theirs.shape and ours.is_contiguous(memory_format=layout)
    magnitude = F.conv2d(x.abs().contiguous().double(), w.abs().double(), None if b is None else b.abs().double(),
                         **options)  # fmt: skip
    allowed = allowed_error(float((theirs.double() - exact).abs().max()), float(magnitude.max()), bound)
    assert float((ours.double() - exact).abs().max()) <= allowed
    assert float((others[3].double() - exact).abs().max()) <= allowed


@pytest.mark.parametrize(
    ("k", "c", "m", "stride"),
    [(64, 64, 4, 1), (80, 36, 2, 1), (20, 7, 2, 2), (130, 9, 4, 1), (16, 200, 2, 1), (3, 1, 4, 1)],
)
def test_the_weight_transform_writes_u_in_the_products_panels(k: int, c: int, m: int, stride: int) -> None:
    """winograd_weight.c: U = G g G^T straight into ``native.panels``'s layout, for a weight and for it
    turned (transposed, kernels flipped: the input gradient's convolution), against the same sums in
    float64 (with G as the kernel reads it, in float32): 64-wide panels and their rest, filters past
    whole vectors, channels past whole chunks. The same bits on one thread and two, and into a buffer
    given."""
    if not native.available():
        pytest.skip(native.reason())
    generator = torch.Generator().manual_seed(k + c)
    w = torch.randn(k, c, 3, 3, generator=generator)
    g = MATRICES[m][1] if stride == 1 else STRIDED[1]
    g64 = g.float().double()
    t = g.shape[0]
    threads = torch.get_num_threads()
    for turned in (False, True):
        source = w.double().transpose(0, 1).flip(-2, -1) if turned else w.double()  # (filters, channels, 3, 3)
        u = torch.einsum("ai,fcij,bj->abcf", g64, source, g64)  # U[a, b, c, f] = (G g G^T)[a, b] of filter f, channel c
        truth = native.panels(u.reshape(t * t, source.shape[1], source.shape[0]))
        results = []
        try:
            for count in (1, 2):
                torch.set_num_threads(count)
                results.append(native.winograd_weight(w, g, turned))
        finally:
            torch.set_num_threads(threads)
        buffer = torch.full_like(results[0], float("nan"))
        assert native.winograd_weight(w, g, turned, out=buffer).data_ptr() == buffer.data_ptr()
        assert torch.equal(results[0], results[1]) and torch.equal(results[0], buffer)
        assert results[0].shape == truth.shape
        torch.testing.assert_close(results[0].double(), truth, rtol=1e-6, atol=4e-6 * w.abs().max().item())


@pytest.mark.parametrize("turned", [False, True])
def test_the_kept_panels_of_u_are_the_references_with_or_without_the_kernels(monkeypatch, turned: bool) -> None:
    """``cached_panels`` makes U by winograd_weight.c where the kernels are built and by the torch ops
    (transform_weight on the turned weight, then panels) where they are not: the same values either
    way, for the weight and turned."""
    if not native.available():
        pytest.skip(native.reason())
    from convlens.algos.winograd import transforms

    w = torch.randn(32, 48, 3, 3, generator=torch.Generator().manual_seed(4))
    compiled = transforms.cached_panels(w.clone(), 4, 1, turned)
    monkeypatch.setattr(native, "available", lambda: False)
    by_torch = transforms.cached_panels(w.clone(), 4, 1, turned)
    assert compiled.shape == by_torch.shape == (36, 32 * 48)
    torch.testing.assert_close(compiled, by_torch, rtol=1e-5, atol=1e-5 * w.abs().max().item())


def test_the_weight_transform_makes_the_nans_and_infinities_of_the_reference() -> None:
    """An infinite tap: every entry of U whose coefficient of that tap is 0 is NaN (0 * Inf), the others
    infinite, as the reference's product makes them (auto's NaN/Inf guard then sees a non-finite output)."""
    if not native.available():
        pytest.skip(native.reason())
    w = torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(3))
    w[5, 2, 0, 1] = float("inf")
    for m in (2, 4):
        truth = native.panels(convlens.algos.winograd.transforms.transform_weight(w.double(), m, 1, torch.float64)[0])
        ours = native.winograd_weight(w, MATRICES[m][1])
        assert torch.equal(ours.isnan(), truth.isnan()) and torch.equal(ours.isinf(), truth.isinf())
        assert ours.isnan().any() and ours.isinf().any()


@pytest.mark.parametrize(("c", "k", "p"), [(1, 16, 1), (20, 32, 13), (130, 80, 7), (64, 128, 12)])
def test_the_products_register_block_is_a_matrix_product(c: int, k: int, p: int) -> None:
    """winograd_products.c alone (what benchmarks/products.py times): bmm's values, 64-wide panels and
    their rest, channels past one pass of 128, rows past one block of 6; the same bits at 8 and 16 lanes."""
    if not native.available():
        pytest.skip(native.reason())
    generator = torch.Generator().manual_seed(6)
    v, u = torch.randn(3, p, c, generator=generator), torch.randn(3, c, k, generator=generator)
    wide, narrow = torch.empty(3, p, k), torch.empty(3, p, k)
    native.winograd_products(v, native.panels(u), wide, wide=True)
    native.winograd_products(v, native.panels(u), narrow, wide=False)
    assert torch.equal(wide, narrow)
    torch.testing.assert_close(wide, torch.bmm(v.double(), u.double()).float(), rtol=1e-5, atol=1e-5 * c)


@pytest.mark.parametrize("size", [1, 3, 1 << 18, (1 << 18) + 5, 3 << 20])
def test_same_bytes_finds_one_changed_byte_anywhere(size: int) -> None:
    """compare.c (the weight caches' check): equal bytes, and a difference in the first, a middle
    and the last byte of buffers within one share and over several; -0.0 is not 0.0."""
    if not native.available():
        pytest.skip(native.reason())
    a = torch.randint(0, 255, (size,), dtype=torch.uint8)
    assert native.same_bytes(a, a.clone()) is True
    for index in {0, size // 2, size - 1}:
        b = a.clone()
        b[index] ^= 1
        assert native.same_bytes(a, b) is False
    assert native.same_bytes(torch.zeros(4), -torch.zeros(4)) is False
    assert native.same_bytes(a, a[:-1]) is None  # sizes differ: torch.equal's to say
    assert native.same_bytes(torch.zeros(4, 4).t(), torch.zeros(4, 4)) is None  # not contiguous


def test_fused_winograd_takes_one_group_and_whole_vectors_only() -> None:
    x = torch.randn(2, 32, 12, 12)
    for w, groups, takes in ((torch.randn(32, 32, 3, 3), 1, True), (torch.randn(24, 32, 3, 3), 1, False),
                             (torch.randn(32, 16, 3, 3), 2, False)):  # fmt: skip
        spec = convlens.ConvSpec.from_args(x, w, None, padding=1, groups=groups)
        assert plan.uses_fused(spec) is (takes and native.available())
        out = convlens.conv2d(x, w, padding=1, groups=groups, algorithm="winograd")
        torch.testing.assert_close(out, F.conv2d(x, w, padding=1, groups=groups), rtol=1e-4, atol=1e-4)
    assert not plan.uses_fused(convlens.ConvSpec.from_args(x.double(), torch.randn(32, 32, 3, 3).double(), None))
    wide = convlens.ConvSpec.from_args(torch.randn(8, 512, 8, 8), torch.randn(512, 512, 3, 3), None, padding=1)
    with convlens.settings(precision="high"):
        assert plan.tile_size(wide) == 4 and plan.uses_fused(wide) is native.available()  # U of 36 MiB
    widest = convlens.ConvSpec.from_args(torch.randn(8, 1024, 8, 8), torch.randn(1024, 1024, 3, 3), None, padding=1)
    with convlens.settings(precision="high"):
        assert not plan.uses_fused(widest)  # U of 144 MiB: past FUSED_MAX_U_BYTES
    if native.available():
        with pytest.raises(ValueError, match="multiple of 16"):
            w = torch.randn(24, 32, 3, 3)
            spec = convlens.ConvSpec.from_args(x, w, None, padding=1)
            native.winograd_fused(x, torch.zeros(16, 32, 24), None, torch.empty(2, 24, 12, 12), spec, 2, 1)


def test_fused_winograd_pieces_are_bands_or_whole_images_by_the_size_of_u(monkeypatch) -> None:
    """Bands of one image where U is smaller than an image's V and M (ResNet-50's 64@56: U 256 KiB,
    an image's V and M 6.4 MiB); whole images, one piece per thread, where it is not (512@7: U 16 MiB)."""
    monkeypatch.setattr(plan, "threads", lambda: 2)
    small = convlens.ConvSpec.from_args(torch.empty(8, 64, 56, 56), torch.empty(64, 64, 3, 3), padding=1)
    rows, images = plan.fused_pieces(small, 2)
    assert images == 1 and rows == 4  # 28 tile rows of 229,376 bytes: 4 fit 1 MiB, 7 bands of 4
    large = convlens.ConvSpec.from_args(torch.empty(8, 512, 7, 7), torch.empty(512, 512, 3, 3), padding=1)
    assert plan.fused_pieces(large, 2) == (4, 4)  # 4 tile rows (the whole image), 4 images a piece
    one = convlens.ConvSpec.from_args(torch.empty(1, 512, 7, 7), torch.empty(512, 512, 3, 3), padding=1)
    assert plan.fused_pieces(one, 2) == (2, 1)  # one image: a band per thread


def test_fused_winograd_buffers_are_what_buffer_bytes_predicts() -> None:
    """The fused pass allocates V and M of one band per thread in C (not in scratch); buffer_bytes
    says so, and the forward leaves no scratch behind."""
    if not native.available():
        pytest.skip(native.reason())
    from convlens.algos.winograd import SCRATCH

    x, w = torch.randn(2, 32, 30, 30), torch.randn(32, 32, 3, 3)
    spec = convlens.ConvSpec.from_args(x, w, None, padding=1)
    predicted = convlens.algos.get("winograd").buffer_bytes(spec, convlens.get_workspace_limit())
    rows, images = plan.fused_pieces(spec, 2)
    assert images == 1
    assert rows == 15  # tiles_h: a row of 15 tiles is 15 * 16 * 64 * 4 = 61,440 bytes, 17 of them fit 1 MiB
    threads = torch.get_num_threads()
    assert predicted == {
        "v": threads * 16 * (rows * 15 * 32 + 16) * 4,
        "products": threads * 16 * (rows * 15 * 32 + 16) * 4,
        "transformed weight": 16 * 32 * 32 * 4,
        "saved weight": 32 * 32 * 9 * 4,
    }
    SCRATCH.clear()
    convlens.conv2d(x, w, None, padding=1, algorithm="winograd")
    assert SCRATCH.bytes() == 0


@pytest.mark.parametrize("precision", ["highest", "high"])
def test_fused_winograd_gives_the_same_bits_on_two_threads_as_on_one(precision: str) -> None:
    if not native.available():
        pytest.skip(native.reason())
    generator = torch.Generator().manual_seed(5)
    x, w = torch.randn(2, 32, 24, 24, generator=generator), torch.randn(32, 32, 3, 3, generator=generator)
    threads = torch.get_num_threads()
    results = []
    with convlens.settings(precision=precision):
        spec = convlens.ConvSpec.from_args(x, w, None, padding=1)
        m = plan.tile_size(spec)
        assert spec.batch * 24 * 24 * 32 * 32 * (m + 2) ** 2 // (m * m) >= 2 * 2**18  # the work estimate: two threads
        u = convlens.algos.winograd.transforms.cached_panels(w, m)
        try:
            for count in (1, 2):
                torch.set_num_threads(count)
                out = torch.empty(2, 32, 24, 24)
                native.winograd_fused(x, u, None, out, spec, m, 1)
                results.append(out)
        finally:
            torch.set_num_threads(threads)
    assert torch.equal(*results)


gemm_configurations = st.fixed_dictionaries({
    "batch": st.integers(1, 3), "in_channels": st.integers(1, 40), "out_channels": st.sampled_from([16, 32, 80]),
    "size": pairs(1, 16), "kernel": pairs(1, 4), "stride": pairs(1, 3), "dilation": pairs(1, 2),
    "padding": pairs(0, 2), "bias": st.booleans(), "threads": st.integers(1, 3), "band_rows": st.integers(1, 5),
    "images": st.integers(1, 3),
})  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(gemm_configurations)
def test_gemm_kernel_matches_pytorch_float64_and_python(c: dict) -> None:
    """gemm.c (any kernel, stride, dilation and padding, any C_in, C_out in blocks of 64 and 16)
    against float64 by verify's rule and against the Python path; the same bits whatever the pieces
    (bands of rows, several images), the threads, and the width of the products' vectors."""
    if not native.available():
        pytest.skip(native.reason())
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(c["batch"], c["in_channels"], *c["size"], generator=generator)
    w = torch.randn(c["out_channels"], c["in_channels"], *c["kernel"], generator=generator)
    b = torch.randn(w.shape[0], generator=generator) if c["bias"] else None
    options = {"stride": c["stride"], "padding": c["padding"], "dilation": c["dilation"]}
    try:
        spec = convlens.ConvSpec.from_args(x, w, b, **options)
    except ValueError:
        return  # the window does not fit: conv2d's own error, tested elsewhere
    assert gemm.uses_native(spec)
    ours = convlens.conv2d(x, w, b, **options, algorithm="gemm")
    h_out = spec.out_size[0]
    rows = min(c["band_rows"], h_out)
    pieces = [(rows, 1), (h_out, c["images"])]
    threads = torch.get_num_threads()
    others = []
    try:
        for (band_rows, images), count, wide in zip(pieces, (c["threads"], 1), (True, False), strict=True):
            torch.set_num_threads(count)
            others.append(native.gemm_forward(x, gemm.weight_rows(w), b, spec, (band_rows, images), wide=wide))
    finally:
        torch.set_num_threads(threads)
    python = with_attributes(lambda: convlens.conv2d(x, w, b, **options, algorithm="gemm"), gemm, native=False)()
    assert torch.equal(ours, others[0]) and torch.equal(ours, others[1])
    exact, theirs = pytorch_references(x, w, b, options)
    assert ours.shape == theirs.shape
    magnitude = F.conv2d(x.abs().double(), w.abs().double(), None if b is None else b.abs().double(), **options)
    allowed = allowed_error(float((theirs.double() - exact).abs().max()), float(magnitude.max()), 2.0)
    assert float((ours.double() - exact).abs().max()) <= allowed
    assert float((python.double() - exact).abs().max()) <= allowed


@pytest.mark.parametrize(("k", "c", "kernel"), [(512, 40, (3, 3)), (64, 3, (7, 7)), (80, 33, (3, 3)), (7, 5, (1, 2))])
def test_gemm_weight_rows_are_the_permuted_weight_in_panels(k: int, c: int, kernel: tuple[int, int]) -> None:
    """gemm.c's weight rows (taps then channels as rows, output channels in 64-wide panels) are the
    reference's bits (a permuting copy, then ``panels``): whole panels and a narrower last one,
    filters past whole blocks of 16, channels past whole chunks; on one thread and two, and into a
    buffer given."""
    if not native.available():
        pytest.skip(native.reason())
    w = torch.randn(k, c, *kernel, generator=torch.Generator().manual_seed(k))
    reference = native.panels(w.permute(2, 3, 1, 0).reshape(1, -1, k))
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append(native.gemm_weight_rows(w))
    finally:
        torch.set_num_threads(threads)
    buffer = torch.full_like(reference, float("nan"))
    assert native.gemm_weight_rows(w, out=buffer).data_ptr() == buffer.data_ptr()
    assert all(torch.equal(rows, reference) for rows in (*results, buffer))


def test_gemm_kernel_takes_plain_nchw_float32_with_whole_vectors_only() -> None:
    x, w = torch.randn(2, 8, 10, 10), torch.randn(16, 8, 3, 3)
    spec = convlens.ConvSpec.from_args(x, w, None, padding=1)
    assert gemm.uses_native(spec) is native.available()
    assert native.runs_gemm(x, None, spec) is native.available()
    assert not native.runs_gemm(x[:, :, :, ::2].contiguous().transpose(2, 3), None, spec)  # not contiguous
    for other in (
        convlens.ConvSpec.from_args(x, torch.randn(24, 8, 3, 3), None, padding=1),  # C_out % 16
        convlens.ConvSpec.from_args(x, torch.randn(16, 4, 3, 3), None, padding=1, groups=2),
        convlens.ConvSpec.from_args(x.double(), w.double(), None, padding=1),
        convlens.ConvSpec.from_args(x.contiguous(memory_format=torch.channels_last), w, None, padding=1),
    ):
        assert not gemm.uses_native(other)
        assert not native.runs_gemm_spec(other)
    if native.available():
        with pytest.raises(ValueError, match="does not take"):
            native.gemm_forward(x, gemm.weight_rows(w), None, spec, (0, 1))


def test_gemm_pieces_keep_a_large_weight_to_whole_images_at_a_small_batch(monkeypatch) -> None:
    """Each band reads all of the weight rows: 9.4 MB of them (512 channels, 3x3) at batch 1 go in
    one whole image, whose panels gemm.c splits between the threads; a 0.6 MB weight or a batch of
    two images per thread keeps bands of rows / images per piece by the cache."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)

    def pieces(batch: int, channels: int, size: int) -> tuple[int, int]:
        x, w = torch.empty(batch, channels, size, size), torch.empty(channels, channels, 3, 3)
        return gemm.pieces(convlens.ConvSpec.from_args(x, w, None, stride=2, padding=1))

    assert pieces(1, 512, 14) == (7, 1) and pieces(3, 512, 14) == (7, 1)  # whole 7-row images
    assert pieces(4, 512, 14) == (7, 1)  # two images per thread: pieces by the cache (one image fits 1 MiB)
    assert pieces(1, 128, 56)[0] < 28  # a small weight: bands, at least two per thread
    assert pieces(1, 512, 112)[0] < 56  # an image too large for a band: bands


def test_gemm_pieces_of_whole_images_share_out_evenly_between_the_threads(monkeypatch) -> None:
    """512@7 fits three images in a piece: a batch of 4 goes as 2 + 2 (3 + 1 left one thread idle
    for most of the layer), 8 as four pieces of two, 5 as 3 + 2; one thread takes up to as many as fit."""
    x_of = {batch: torch.empty(batch, 512, 7, 7) for batch in (3, 4, 5, 8)}
    w = torch.empty(512, 512, 3, 3)

    def images(batch: int, threads: int) -> int:
        monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
        rows, per_piece = gemm.pieces_by_cache(convlens.ConvSpec.from_args(x_of[batch], w, None, padding=1))
        assert rows == 7
        return per_piece

    assert images(3, 1) == 3 and images(8, 1) == 3  # what fits
    assert images(4, 2) == 2 and images(8, 2) == 2 and images(5, 2) == 3
    assert images(8, 4) == 2


def test_gemm_kernel_takes_a_strided_nchw_input_through_one_copy(monkeypatch) -> None:
    if not native.available():
        pytest.skip(native.reason())
    calls = []
    kernel = native.gemm_forward
    monkeypatch.setattr(native, "gemm_forward", lambda *args, **kwargs: calls.append(1) or kernel(*args, **kwargs))
    x, w = torch.randn(2, 16, 20, 40)[:, :, :, ::2], torch.randn(32, 16, 3, 3)  # every other column: strided
    out = convlens.conv2d(x, w, padding=1, algorithm="gemm")
    assert calls == [1]
    torch.testing.assert_close(out, F.conv2d(x, w, padding=1), rtol=1e-4, atol=1e-4)


# Layers with at least 2 * 2^18 multiply-adds (parallel.h's MIN_THREAD_WORK, the larger of its two), so that two threads
# really start: the random configurations above are small enough to run on one whatever is asked.
THREADED = {
    "direct, planes": ((2, 32, 40, 40), (32, 1, 3, 3), {"padding": 1, "groups": 32}),  # 40 wide: row loop
    "direct, channel blocks": ((4, 64, 20, 20), (64, 1, 3, 3), {"padding": 1, "groups": 64}),
    "direct, channels-last": ((4, 64, 20, 20), (64, 1, 3, 3), {"padding": 1, "groups": 64, "channels_last": True}),
    "direct, dense": ((1, 16, 20, 20), (16, 16, 3, 3), {"padding": 1}),
}


@pytest.mark.parametrize("case", THREADED)
def test_direct_kernel_gives_the_same_bits_on_two_threads_as_on_one(case: str) -> None:
    if not native.available():
        pytest.skip(native.reason())
    x_shape, w_shape, options = THREADED[case]
    options = dict(options)
    generator = torch.Generator().manual_seed(3)
    x, w = torch.randn(x_shape, generator=generator), torch.randn(w_shape, generator=generator)
    if options.pop("channels_last", False):
        x = x.contiguous(memory_format=torch.channels_last)
    spec = convlens.ConvSpec.from_args(x, w, None, **options)
    assert spec.flops // 2 >= 2 * 2**18 and native.runs_direct(x, w, None, spec)
    threads = torch.get_num_threads()
    try:
        outputs = []
        for count, openmp in ((1, True), (2, True), (2, False)):  # 2 threads: torch's OpenMP team, then our own
            torch.set_num_threads(count)
            native.use_openmp(openmp)
            outputs.append(native.direct_forward(x, w, None, spec))
    finally:
        torch.set_num_threads(threads)
        native.use_openmp(True)
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])
    torch.testing.assert_close(outputs[0], F.conv2d(x.contiguous(), w, None, **options), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the loaded libraries from /proc (Linux)")
def test_the_kernels_run_on_torchs_openmp_team_and_load_no_runtime_of_their_own() -> None:
    if not native.available():
        pytest.skip(native.reason())
    x, w = torch.randn(2, 32, 40, 40), torch.randn(32, 1, 3, 3)
    spec = convlens.ConvSpec.from_args(x, w, None, padding=1, groups=32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        F.conv2d(x, w, None, padding=1, groups=32)  # torch's team exists
        native.direct_forward(x, w, None, spec)
    finally:
        torch.set_num_threads(threads)
    mapped = {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if "/" in line}
    runtimes = {path for path in mapped if re.search(r"lib(gomp|iomp5|omp)[^/]*\.so", Path(path).name)}
    assert len(runtimes) <= 1, runtimes  # one OpenMP runtime in the process: torch's
    if torch.backends.openmp.is_available():
        assert native.threads().startswith("torch's OpenMP team") and len(runtimes) == 1
    else:
        assert native.threads() == "threads started per call (POSIX)"


@pytest.mark.parametrize("precision", ["highest", "high"])
def test_winograd_passes_give_the_same_bits_on_two_threads_as_on_one(precision: str) -> None:
    if not native.available():
        pytest.skip(native.reason())
    generator = torch.Generator().manual_seed(4)
    x, w = torch.randn(4, 64, 24, 24, generator=generator), torch.randn(64, 64, 3, 3, generator=generator)
    with convlens.settings(precision=precision):
        spec = convlens.ConvSpec.from_args(x, w, None, padding=1)
        m = plan.tile_size(spec)
        tiles = spec.batch * plan.tile_grid(spec, m)[0] * plan.tile_grid(spec, m)[1]
        assert tiles * spec.in_channels * (m + 2) ** 2 * 4 >= 2 * 2**18  # winograd.c's work estimate: two threads
        threads = torch.get_num_threads()
        try:
            assert passes_agree_across_threads(x, spec, 2)
        finally:
            torch.set_num_threads(threads)


@settings(max_examples=60)
@given(
    channels=st.integers(1, 40), kernel=st.sampled_from([1, 3, 5, 7]), width=st.integers(1, 40),
    height=st.integers(1, 14), bias=st.booleans(), stride=st.sampled_from([(1, 1), (2, 1), (1, 2)]),
)  # fmt: skip
def test_depthwise_loops_give_the_plane_loops_bits(channels, kernel, width, height, bias, stride) -> None:
    """Every depthwise loop sums each output's terms in the plane loop's order, for kernels up to 7x7:
    NCHW channel blocks (on AVX-512, 8 outputs x 16 channels of the copy at a time), row vectors
    (on AVX-512, 4 output rows at a time where all their kernel rows read inside), and channels-last
    layers, a row at a time (on AVX-512, 8 outputs of a row at a time): the bits of the NCHW plane
    loop on the same values."""
    if not native.available():
        pytest.skip(native.reason())
    generator = torch.Generator().manual_seed(channels * 1000 + width)
    x = torch.randn(2, channels, height, width, generator=generator)
    w = torch.randn(channels, 1, kernel, kernel, generator=generator)
    b = torch.randn(channels, generator=generator) if bias else None
    options = {"padding": kernel // 2, "groups": channels, "stride": stride}
    nchw = convlens.ConvSpec.from_args(x, w, b, **options)
    planes = native.direct_forward(x, w, b, nchw, loop="planes")
    assert torch.equal(native.direct_forward(x, w, b, nchw, loop="blocks"), planes)  # planes of at most 560
    if stride[1] == 1:
        assert torch.equal(native.direct_forward(x, w, b, nchw, loop="row vectors"), planes)
    channels_last = x.contiguous(memory_format=torch.channels_last)
    spec = convlens.ConvSpec.from_args(channels_last, w, b, **options)
    rows = native.direct_forward(channels_last, w, b, spec)
    assert rows.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(rows, planes)


gather_configurations = st.fixed_dictionaries({
    "batch": st.integers(1, 3), "channels": st.integers(1, 5), "size": pairs(1, 13), "kernel": pairs(1, 5),
    "stride": pairs(1, 3), "padding": pairs(0, 3), "dilation": pairs(1, 3), "batch_last": st.booleans(),
    "threads": st.integers(1, 3), "pieces": st.tuples(st.integers(0, 2), st.integers(0, 12), st.integers(0, 12)),
})  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(gather_configurations)
def test_im2col_gather_writes_the_python_columns(c: dict) -> None:
    """im2col.c's columns of a piece (images n0..n1, output rows y0..y1) of the unpadded input are,
    bit for bit, unfold's columns of the zero-padded band: every position, padding and stride, in
    both layouts (batch first, and batch folded into the positions), on any number of threads."""
    if not native.available():
        pytest.skip(native.reason())
    span = [d * (k - 1) + 1 for d, k in zip(c["dilation"], c["kernel"])]
    if any(n + 2 * p < s for n, p, s in zip(c["size"], c["padding"], span)):
        return
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(c["batch"], c["channels"], *c["size"], generator=generator)
    w = torch.randn(2, c["channels"], *c["kernel"], generator=generator)
    spec = convlens.ConvSpec.from_args(x, w, None, stride=c["stride"], padding=c["padding"], dilation=c["dilation"])
    n0 = min(c["pieces"][0], spec.batch - 1)
    y0 = min(c["pieces"][1], spec.out_size[0] - 1)
    y1 = y0 + 1 + min(c["pieces"][2], spec.out_size[0] - y0 - 1)
    band = zero_pad(x, spec.padding)[n0:, :, y0 * spec.stride[0] : (y1 - 1) * spec.stride[0] + span[0]]
    expected = im2col(band, spec.kernel_size, spec.dilation, spec.stride, (y1 - y0, spec.out_size[1]), c["batch_last"])
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(c["threads"])
        cols = torch.full((expected.numel(),), float("nan"))  # every element must be written
        native.im2col_columns(x, spec, (n0, spec.batch), (y0, y1), c["batch_last"], cols)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(cols.view(expected.shape), expected)


def test_the_kernels_run_from_several_python_threads_at_once() -> None:
    """ctypes lets go of the GIL for the call, so two Python threads can be inside the kernels
    together, each the master of its own OpenMP team (as two threads calling torch are): both
    finish, with the bits of a call made alone."""
    if not native.available():
        pytest.skip(native.reason())
    x, w = torch.randn(4, 64, 28, 28), torch.randn(64, 1, 3, 3)
    spec = convlens.ConvSpec.from_args(x, w, None, padding=1, groups=64)
    alone = native.direct_forward(x, w, None, spec)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda _: [native.direct_forward(x, w, None, spec) for _ in range(20)], range(2)))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(out, alone) for outputs in results for out in outputs)
