import dataclasses
from unittest import mock

import pytest
import torch

import convlens
from convlens import algos, native, tune
from convlens.algos import auto
from convlens.algos.auto import choose
from convlens.algos.winograd import plan as winograd_plan
from convlens.spec import ConvSpec


def test_algorithms_lists_auto_first_and_every_registered_one() -> None:
    names = convlens.algorithms()
    assert names[0] == "auto"
    assert {"direct", "im2col"} <= set(names)
    assert [a.name for a in algos.concrete()] == sorted(names[1:])


def test_unknown_algorithm_names_the_choices() -> None:
    x, w = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3)
    with pytest.raises(ValueError, match=r"algorithm must be one of .*'direct'.*got algorithm='fastest'"):
        convlens.conv2d(x, w, algorithm="fastest")
    with pytest.raises(TypeError, match="algorithm must be a str"):
        convlens.conv2d(x, w, algorithm=None)


# What auto gives a dense 3x3 layer that Winograd does not take (rule 6, or 8 without the kernels)
NOT_WINOGRAD = "gemm" if native.available() else "im2col"

# One layer auto gives each algorithm (as in the rule tests below), and what its reason must name:
# the properties of the layer that made the choice.
PICKS = {
    "winograd": (((1, 128, 14, 14), (128, 128, 3, 3), {"padding": 1}), ("3x3", "stride 1", "channels", "tiles")),
    # float64: a depthwise layer the compiled kernel does not take (it takes every float32 one)
    "banded": (
        ((8, 96, 20, 32), (96, 1, 9, 9), {"padding": 4, "groups": 96, "dtype": torch.float64}),
        ("depthwise", "5x5", "narrow output"),
    ),
    # 60 filters: a dense layer gemm.c does not take (C_out not a multiple of 16)
    "fft": (((8, 64, 28, 28), (60, 64, 7, 7), {"padding": 3}), ("stride 1", "large kernel")),
    "depthwise": (((8, 96, 28, 28), (96, 1, 3, 3), {"padding": 1, "groups": 96}), ("depthwise",)),
    "im2col": (((1, 256, 56, 56), (64, 256, 1, 1), {}), ("general case",)),
}
if native.available():  # rule 5: a layer of at most 2^22 multiply-adds goes to the compiled direct kernel
    PICKS["direct"] = (((1, 16, 14, 14), (16, 16, 3, 3), {"padding": 1}), ("small layer", "compiled"))
    PICKS["gemm"] = (((1, 32, 56, 56), (32, 32, 3, 3), {"padding": 1}), ("dense layer", "deep", "in place"))


def test_auto_gives_a_reason() -> None:
    """Each rule's pick comes with its own reason, naming what made the choice."""
    reasons = {}
    for expected, ((x_shape, w_shape, options), phrases) in PICKS.items():
        options = dict(options)
        dtype = options.pop("dtype", torch.float32)
        spec = ConvSpec.from_args(torch.empty(x_shape, dtype=dtype), torch.empty(w_shape, dtype=dtype), **options)
        with convlens.settings(precision="high", autotune=False):
            choice = choose(spec)
        assert choice.algorithm.name == expected, (spec.describe(), choice)
        missing = [phrase for phrase in phrases if phrase not in choice.reason]
        assert not missing, f"{expected}: reason {choice.reason!r} does not name {missing}"
        reasons[expected] = choice.reason
    assert len(set(reasons.values())) == len(PICKS), reasons  # one reason per rule, not a shared one


def test_gemm_takes_shallower_layers_where_the_kernels_run_avx2_loops(monkeypatch) -> None:
    """Rule 6's depth by the loops the kernels run: 4608 with AVX-512, 1152 with AVX2 (without a
    calibration of this machine)."""
    if not native.available():
        pytest.skip(native.reason())
    monkeypatch.setattr(tune, "stored", lambda: None)
    monkeypatch.setattr(auto, "STRIDED_MAX_U_BYTES", 0)  # rule 1 at stride 2 aside
    layers = {1152: (128, 56), 2304: (256, 28), 4608: (512, 14), 9216: (1024, 14)}  # depth: channels, size; 3x3 s2
    for loops, deepest in (("AVX-512", 4608), ("AVX2", 1152)):
        monkeypatch.setattr(native, "instruction_set", lambda loops=loops: loops)
        for depth, (channels, size) in layers.items():
            # batch 16: 784 positions at 512@14 stride 2, so the depth alone decides (not rule 6's exception)
            x, w = torch.empty(16, channels, size, size), torch.empty(channels, channels, 3, 3)
            picked = choose(ConvSpec.from_args(x, w, stride=2, padding=1)).algorithm.name
            assert picked == ("gemm" if depth <= deepest else "im2col"), (loops, depth, picked)


@pytest.mark.parametrize(
    ("batch", "channels", "size", "stride", "expected"),
    [
        (1, 512, 7, 1, "im2col"),  # 9.4 MB of weight, 49 positions
        (1, 512, 14, 2, "im2col"),  # the same weight, 49 positions
        (16, 512, 14, 2, "gemm"),  # 784 positions
        (1, 256, 28, 2, "gemm"),  # 196 positions, 2.4 MB of weight
    ],
)
def test_gemm_leaves_a_large_weight_with_few_positions_to_im2col(batch, channels, size, stride, expected, monkeypatch):
    """Rule 6's exception: inside a model a weight over 4 MiB comes from memory, which im2col's product
    reads once and gemm.c's kept rows three times; at fewer than 512 output positions that is the time."""
    if not native.available():
        pytest.skip(native.reason())
    monkeypatch.setattr(tune, "stored", lambda: None)
    monkeypatch.setattr(native, "instruction_set", lambda: "AVX-512")  # rule 6's depth of 4608
    x, w = torch.empty(batch, channels, size, size), torch.empty(channels, channels, 3, 3)
    choice = auto.rule(ConvSpec.from_args(x, w, stride=stride, padding=1))
    assert choice.algorithm.name == expected
    assert ("passes 4 MiB" in choice.reason) == (expected == "im2col")


def test_auto_rule_picks_winograd_for_wide_3x3_and_im2col_otherwise() -> None:
    wide = ConvSpec.from_args(torch.empty(1, 128, 14, 14), torch.empty(128, 128, 3, 3), padding=1)
    assert choose(wide).algorithm.name == "winograd"
    compiled = native.available()
    narrow = ConvSpec.from_args(torch.empty(1, 32, 56, 56), torch.empty(32, 32, 3, 3), padding=1)
    assert choose(narrow).algorithm.name == ("gemm" if compiled else "im2col")  # rule 6: 288 deep
    uneven = ConvSpec.from_args(torch.empty(1, 32, 56, 56), torch.empty(24, 32, 3, 3), padding=1)
    assert choose(uneven).algorithm.name == "im2col"  # C_out not a multiple of 16: not gemm.c's
    small = ConvSpec.from_args(torch.empty(1, 16, 14, 14), torch.empty(16, 16, 3, 3), padding=1)  # 451,584 MACs
    assert choose(small).algorithm.name == ("direct" if compiled else "im2col")
    strided = ConvSpec.from_args(torch.empty(1, 128, 28, 28), torch.empty(128, 128, 3, 3), stride=2)
    assert choose(strided).algorithm.name == ("gemm" if compiled else "im2col")  # 22 million multiply-adds, 1152 deep
    deep = ConvSpec.from_args(torch.empty(1, 1024, 14, 14), torch.empty(512, 1024, 3, 3), stride=2)
    assert choose(deep).algorithm.name == "im2col"  # 9216 deep: past GEMM_MAX_ROWS


@pytest.mark.parametrize(
    ("batch", "channels", "out_channels", "size", "expected"),
    [
        (8, 128, 128, 56, "winograd"),  # ResNet-50's: U 1.56 MiB
        (2, 64, 128, 56, "winograd"),  # ResNet-18's, an image per thread
        (8, 256, 256, 28, "gemm"),  # U 6.25 MiB: past STRIDED_MAX_U_BYTES
        (1, 128, 128, 56, "gemm"),  # fewer images than threads: bands, each reading all of U
        (8, 128, 120, 56, "im2col"),  # C_out not a multiple of 16: not the fused pass's (nor gemm.c's)
        (8, 32, 32, 56, "gemm"),  # too few channels
    ],
)
def test_auto_takes_stride_2_winograd_where_its_transformed_weight_is_small(
    monkeypatch, batch: int, channels: int, out_channels: int, size: int, expected: str
) -> None:
    """Rule 1 at stride 2 (F(2x2, 3x3) at stride 2): the fused pass, a U of at most 2 MiB (read from
    memory on every call inside a model), an image for every thread; else rule 6 (gemm.c) or 8."""
    if not native.available():
        pytest.skip(native.reason())
    monkeypatch.setattr(tune, "stored", lambda: None)
    monkeypatch.setattr(native, "instruction_set", lambda: "AVX-512")
    monkeypatch.setattr(winograd_plan, "threads", lambda: 2)
    x, w = torch.empty(batch, channels, size, size), torch.empty(out_channels, channels, 3, 3)
    spec = ConvSpec.from_args(x, w, stride=2, padding=1)
    assert algos.get("winograd").supports(spec) is None
    choice = choose(spec)
    assert choice.algorithm.name == expected, choice
    if expected == "winograd":
        assert all(phrase in choice.reason for phrase in ("3x3", "stride 2", "images", "2 MiB"))


@pytest.mark.parametrize(
    ("channels", "out_channels", "kernel", "stride", "expected"),
    [
        (3, 64, 7, 2, "gemm"),  # ResNet's stem: rule 6
        (3, 64, 11, 4, "gemm"),  # AlexNet's
        (4, 64, 5, 2, "gemm"),
        (8, 64, 7, 2, "gemm"),
        (3, 24, 7, 2, "direct"),  # C_out not a multiple of 16, not gemm.c's: rule 7
        (3, 64, 3, 1, "im2col"),  # a stem under 5x5: neither, with AVX2 loops (gemm.c with AVX-512 ones)
        (3, 96, 4, 4, "im2col"),  # ConvNeXt's patchify
    ],
)
@pytest.mark.parametrize("loops", ["AVX-512", "AVX2"])
def test_auto_rule_sends_stems_to_a_compiled_kernel(
    monkeypatch, channels, out_channels, kernel, stride, expected, loops
) -> None:
    """Rules 6 and 7: a stem of at least 5x5 goes to gemm.c, or, where gemm.c does not take it,
    to direct.c; 3x3 and 4x4 stems go to gemm.c where the kernels run AVX-512 loops, and stay with
    im2col where they run AVX2 ones. Without the compiled kernels, im2col."""
    monkeypatch.setattr(tune, "stored", lambda: None)
    monkeypatch.setattr(native, "instruction_set", lambda: loops)
    x, w = torch.empty(8, channels, 224, 224), torch.empty(out_channels, channels, kernel, kernel)
    spec = ConvSpec.from_args(x, w, stride=stride, padding=kernel // 2)
    choice = choose(spec)
    if expected == "im2col" and loops == "AVX-512":
        expected = "gemm"
    expected = expected if native.available() else "im2col"
    assert choice.algorithm.name == expected, choice
    assert ("stem" in choice.reason) is (expected == "direct")


@pytest.mark.parametrize(
    ("size", "kernel", "padding", "expected"),
    [(8, 1, 0, "direct"), (14, 1, 0, "im2col"), (14, 1, 1, "direct"), (8, 3, 1, "direct")],
)
def test_auto_rule_keeps_larger_pointwise_layers_on_the_one_product(size, kernel, padding, expected) -> None:
    """Rule 5 for a 1x1 unpadded layer, whose columns are its input: direct.c only up to 2^19
    multiply-adds. 64->64 at 14x14 is 0.8e6 of them (im2col: one product), at 8x8 0.26e6; a padded
    1x1 at 14x14 (1.0e6) or a 3x3 at 8x8 (2.4e6) stays within the 2^22 of other layers."""
    x, w = torch.empty(1, 64, size, size), torch.empty(64, 64, kernel, kernel)
    choice = choose(ConvSpec.from_args(x, w, padding=padding))
    assert choice.algorithm.name == (expected if native.available() else "im2col"), choice


@pytest.mark.parametrize(
    ("channels", "precision", "fused", "expected"),
    [
        (64, "high", False, "winograd"),
        (64, "highest", False, "other"),
        (128, "highest", False, "winograd"),
        (64, "highest", True, "winograd"),
        (32, "highest", True, "other"),
    ],
)
def test_auto_rule_wants_more_channels_for_the_smaller_tiles(
    channels: int, precision: str, fused: bool, expected: str, monkeypatch
) -> None:
    """F(2x2) (precision "highest") saves less than F(4x4): through the torch-op pipeline it pays
    from 128 channels, not 64; through winograd.c's fused pass (where it runs) from 64 either way."""
    monkeypatch.setattr(winograd_plan, "fused", fused)
    spec = ConvSpec.from_args(torch.empty(8, channels, 56, 56), torch.empty(channels, channels, 3, 3), padding=1)
    if expected == "other" or (fused and not native.available()):
        expected = NOT_WINOGRAD
    with convlens.settings(precision=precision):
        assert choose(spec).algorithm.name == expected


def test_auto_remembers_its_choice_per_spec_workspace_and_precision(monkeypatch) -> None:
    """One spec object, asked again under another precision, workspace or fused switch, gets that
    setting's choice, not the one remembered first; asked again under the same, the same choice object."""
    spec = ConvSpec.from_args(torch.empty(8, 64, 56, 56), torch.empty(64, 64, 3, 3), padding=1)
    monkeypatch.setattr(winograd_plan, "fused", False)
    for _ in range(2):
        with convlens.settings(precision="high"):
            first = choose(spec)
            assert first.algorithm.name == "winograd" and choose(spec) is first
        with convlens.settings(precision="highest"):
            assert choose(spec).algorithm.name == NOT_WINOGRAD
            monkeypatch.setattr(winograd_plan, "fused", True)
            assert choose(spec).algorithm.name == ("winograd" if native.available() else "im2col")
            monkeypatch.setattr(winograd_plan, "fused", False)
    # 60 filters: a layer gemm.c does not take (C_out not a multiple of 16), so FFT's, within its workspace
    fft_spec = ConvSpec.from_args(torch.empty(8, 64, 56, 56), torch.empty(60, 64, 7, 7), padding=3)
    assert [choose(fft_spec, workspace=w).algorithm.name for w in (1 << 30, 1, 1 << 30)] == ["fft", "im2col", "fft"]


@pytest.mark.parametrize(("batch", "expected"), [(1, "not winograd"), (8, "winograd")])
def test_auto_rule_wants_enough_winograd_tiles(batch, expected, monkeypatch) -> None:
    """ResNet-50's 512->512 layer at 7x7: 4 F(4x4) tiles per image, too few rows for Winograd at
    batch 1, where the layer goes to im2col (its 9.4 MB weight with 49 output positions: rule 6's
    exception; without the compiled core, rule 8)."""
    monkeypatch.setattr(tune, "stored", lambda: None)
    spec = ConvSpec.from_args(torch.empty(batch, 512, 7, 7), torch.empty(512, 512, 3, 3), padding=1)
    if expected == "not winograd":
        expected = "im2col"
    with convlens.settings(precision="high"):
        assert choose(spec).algorithm.name == expected


@pytest.mark.parametrize(
    ("channels", "kernel", "batch", "options", "expected"),
    [
        (64, 7, 8, "dense", "fft"),
        (64, 5, 8, "dense", "fft"),  # 25 taps x 64 channels = 1600 >= 1500
        (32, 5, 8, "dense", "im2col"),  # 800: the two FFTs are not paid for
        (32, 7, 8, "dense", "fft"),  # 1568
        (16, 11, 8, "dense", "fft"),  # 1936
        (3, 11, 8, "dense", "im2col"),  # a stem: 3 channels
        (64, 3, 8, "dense", "winograd"),  # 3x3 stays Winograd's
        (64, 7, 1, "dense", "im2col"),  # one image streams the kernel spectra
        (64, 7, 8, "stride 2", "im2col"),  # FFT would compute every position and keep a quarter
        (96, 7, 1, "depthwise", "banded"),  # ConvNeXt's 7x7 depthwise layers: 28 columns, narrow
        (96, 5, 8, "depthwise", "banded"),  # 5x5 on 28 columns: narrow
        (96, 3, 8, "depthwise", "depthwise"),
    ],
)
def test_auto_rule_takes_fft_for_large_kernels(channels, kernel, batch, options, expected, monkeypatch) -> None:
    monkeypatch.setattr(native, "takes", lambda spec: False)  # layers the compiled kernel does not take
    groups = channels if options == "depthwise" else 1
    stride = 2 if options == "stride 2" else 1
    x = torch.empty(batch, channels, 28, 28)
    w = torch.empty(channels, channels // groups, kernel, kernel)
    spec = ConvSpec.from_args(x, w, padding=kernel // 2, stride=stride, groups=groups)
    with convlens.settings(precision="high"):
        assert choose(spec).algorithm.name == expected


@pytest.mark.parametrize(
    ("kernel", "width", "expected"),
    [(7, 32, "banded"), (7, 33, "fft"), (5, 32, "banded"), (5, 33, "depthwise"), (3, 14, "depthwise")],
)
def test_auto_rule_takes_banded_for_narrow_depthwise_outputs(
    kernel: int, width: int, expected: str, monkeypatch
) -> None:
    """Each banded product does W_pad / k_w times the band's work: wide outputs stay with FFT (7x7)
    or the depthwise path (5x5), and 3x3 kernels with the depthwise path. (Layers the compiled
    kernel does not take: float64, channels-last, or no build; the next test has those it takes.)"""
    monkeypatch.setattr(native, "takes", lambda spec: False)
    x, w = torch.empty(8, 96, 20, width), torch.empty(96, 1, kernel, kernel)
    spec = ConvSpec.from_args(x, w, padding=kernel // 2, groups=96)
    assert choose(spec).algorithm.name == expected


@pytest.mark.parametrize("loops", ["AVX-512", "AVX2"])
def test_gemm_takes_large_kernels_at_any_depth_and_fft_s_up_to_7x7_with_avx512(loops: str, monkeypatch) -> None:
    """Rule 6: a dense layer gemm.c takes with a kernel larger than 3x3 goes to it at any depth
    (im2col's columns grow with the taps); rule 3: with AVX-512 loops, gemm.c also takes FFT's
    dense layers up to 7x7. The built-in rules (no calibration)."""
    if not native.available():
        pytest.skip(native.reason())
    monkeypatch.setattr(tune, "stored", lambda: None)
    monkeypatch.setattr(native, "instruction_set", lambda: loops)

    def picked(batch: int, channels: int, kernel: int, out_channels: int | None = None) -> str:
        x, w = torch.empty(batch, channels, 28, 28), torch.empty(out_channels or channels, channels, kernel, kernel)
        return choose(ConvSpec.from_args(x, w, padding=kernel // 2)).algorithm.name

    assert picked(1, 128, 7) == "gemm"  # 6,272 deep, batch 1 (no FFT): past GEMM_MAX_ROWS, a 7x7 kernel
    assert picked(1, 128, 11) == "gemm"  # 15,488 deep
    assert picked(8, 128, 5) == ("gemm" if loops == "AVX-512" else "fft")  # FFT's, up to 7x7
    assert picked(8, 32, 7) == ("gemm" if loops == "AVX-512" else "fft")
    assert picked(8, 32, 11) == "fft"  # past 7x7: FFT's either way
    assert picked(8, 128, 5, out_channels=120) == "fft"  # 120 filters: not gemm.c's
    assert picked(1, 128, 5, out_channels=120) == "im2col"


@pytest.mark.parametrize("kernel", [3, 5, 7, 9, 11])
def test_auto_rule_keeps_every_compiled_depthwise_layer(kernel: int) -> None:
    """Rule 2: where direct.c takes a depthwise layer (float32 on the CPU, NCHW or channels-last),
    it stays with the depthwise algorithm whatever its kernel, ahead of banded and FFT; the layers
    it does not take (float64 here) keep rules 2-3."""
    if not native.available():
        pytest.skip(native.reason())
    x, w = torch.empty(8, 96, 20, 28), torch.empty(96, 1, kernel, kernel)
    spec = ConvSpec.from_args(x, w, padding=kernel // 2, groups=96)
    assert choose(spec).algorithm.name == "depthwise"
    channels_last = ConvSpec.from_args(x.to(memory_format=torch.channels_last), w, padding=kernel // 2, groups=96)
    assert choose(channels_last).algorithm.name == "depthwise"
    wide = ConvSpec.from_args(x.double(), w.double(), padding=kernel // 2, groups=96)
    assert choose(wide).algorithm.name == ("banded" if kernel >= 5 else "depthwise")


def test_auto_rule_keeps_fft_within_the_workspace_limit() -> None:
    """FFT does not work in pieces: where its buffers would pass the limit, im2col (which does) runs.
    (Layers of 60 filters, which gemm.c does not take: C_out not a multiple of 16.)"""
    from convlens.algos import fft

    spec = ConvSpec.from_args(torch.empty(8, 64, 56, 56), torch.empty(60, 64, 7, 7), padding=3)
    needed = sum(fft.buffer_bytes(spec, convlens.get_workspace_limit()).values())
    assert choose(spec, workspace=needed).algorithm.name == "fft"
    assert choose(spec, workspace=needed - 1).algorithm.name == "im2col"
    large = ConvSpec.from_args(torch.empty(8, 64, 224, 224), torch.empty(60, 64, 11, 11), padding=5)
    assert choose(large).algorithm.name == "im2col"  # 850 MB of kernel spectra alone, past the default 256 MiB
    x, w = torch.randn(4, 64, 12, 12), torch.randn(60, 64, 7, 7)
    small = ConvSpec.from_args(x, w, padding=3)
    assert choose(small).algorithm.name == "fft"
    convlens.conv2d(x, w, padding=3)  # auto's choice for this call's spec is now remembered (ConvSpec.memo)
    refusing = dataclasses.replace(fft.ALGORITHM, forward=mock.Mock(side_effect=AssertionError("FFT ran")))
    with mock.patch.dict(algos._REGISTRY, {"fft": refusing}):
        with pytest.raises(AssertionError, match="FFT ran"):  # the check sees the registry
            convlens.conv2d(x, w, padding=3)
        limit = sum(fft.buffer_bytes(small, convlens.get_workspace_limit()).values()) - 1
        convlens.conv2d(x, w, padding=3, workspace_limit=limit)  # conv2d hands its limit to auto


def test_autotune_times_once_and_keeps_its_choice() -> None:
    from convlens.algos import auto

    auto.clear_cache()
    convlens.set_autotune(True)
    try:
        spec = ConvSpec.from_args(torch.empty(2, 8, 10, 10), torch.empty(8, 8, 3, 3), padding=1)
        first = choose(spec)
        assert first.reason.startswith("timed once:")
        assert all(name in first.reason for name in ("direct", "im2col", "winograd"))
        for _ in range(3):
            assert choose(spec) is first  # stable once made, not timed again
        x, w = torch.randn(2, 8, 10, 10), torch.randn(8, 8, 3, 3)
        torch.testing.assert_close(convlens.conv2d(x, w, padding=1), torch.nn.functional.conv2d(x, w, padding=1))
    finally:
        convlens.set_autotune(False)
        auto.clear_cache()
    with pytest.raises(TypeError, match="enabled must be a bool"):
        convlens.set_autotune("yes")
