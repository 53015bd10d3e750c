"""auto: pick an algorithm for a configuration, and say why.

Without autotuning, a cost rule set from this project's CPU benchmarks (``convlens bench``),
first match wins:

1. 3x3, stride 1, dilation 1, enough input and output channels per group and at least
   MIN_TILES = 32 tiles over the batch: ``winograd`` — 2.25x (F(2x2,3x3)) or 4x (F(4x4,3x3),
   precision "high") fewer multiplications, which pays once the channel products dominate its
   transforms. Enough channels (MIN_CHANNELS) is 64 for F(4x4) and 128 for F(2x2), whose
   transforms save less; FUSED_MIN_CHANNELS = 64 for either where winograd.c's fused pass runs the
   layer (``winograd.plan.uses_fused``: its transforms cost no trip to memory; ResNet-50's 64@56 at
   batch 8, F(2x2): 1.31x-1.43x of PyTorch fused, 0.68x-0.74x through im2col; benchmarks/RESULTS.md,
   fifteenth session, ``python benchmarks/winograd_native.py`` and ``convlens bench``). Each of its
   t*t products reads all of the transformed weight U for as many rows as there are tiles, so with
   few tiles the products only stream U. Below 32 F(4x4) tiles Winograd uses F(2x2) even at
   precision "high" (``winograd.tile_size``); the tiles
   counted here are those of the tile size used (ResNet-50's 512 channels at 7x7, batch 1: 4
   F(4x4) tiles, 16 F(2x2) tiles). Why: from these channel and tile counts Winograd overtakes im2col;
   evidence: ``convlens bench`` (ResNet-50, ``--kernel 3 --precision highest`` for F(2x2); benchmarks/RESULTS.md).
   At stride 2 (F(2x2, 3x3) at stride 2, 1.44x fewer multiplications) the same counts, and only
   where the fused pass runs the layer, its U (25*C_in*C_out floats, 25/9 of the weight) is at most
   STRIDED_MAX_U_BYTES = 2 MiB (ResNet-50's 128 channels, not 256) and the batch has an image for
   every thread (fewer, and an image goes in bands, each reading all of U). Why: inside a model U
   comes from memory on every call. With the caches cold, ResNet-50's 128@56 stride-2 layer at
   batch 8 ran 1.13x-1.19x of PyTorch against gemm.c's 1.10x-1.15x (held to AVX2: 1.08x against
   0.94x); its 256@28 layer (6.25 MiB of U) 0.80x-0.86x against 0.91x-0.93x (held to AVX2: 0.80x
   against im2col's 0.85x), though ahead with U warm (1.01x-1.18x against 0.88x-0.95x). At batch 1
   gemm.c ran level or ahead. Evidence: ``python benchmarks/cold_cache.py``, ``python
   benchmarks/winograd_strided.py``, ``python benchmarks/model_layers.py --batch 8``, each also
   through ``benchmarks/as_avx2.sh`` (benchmarks/RESULTS.md, eighteenth session);
2. a depthwise layer the compiled kernel takes (float32 on the CPU, NCHW, or channels-last with
   one filter per channel; ``native.takes``), whatever its kernel: ``depthwise``, which then runs
   direct.c. Why: on ConvNeXt-T's four 7x7 depthwise layers at batch 1 and 8 it leads FFT and
   banded by 1.4x to 18x (NCHW) and 3x to 18x (channels-last); evidence: ``python
   benchmarks/depthwise_rule.py [--channels-last]`` (benchmarks/RESULTS.md, eleventh session); and
   on 5x5, 7x7 and 11x11 depthwise layers of 32 and 128 channels at 28x28 and 56x56, batch 1 and 8,
   it was the fastest of the three on all 24, 11x11 included (2.2x to 6.7x ahead of banded and
   FFT there, with AVX-512 loops and held to AVX2); evidence: ``python benchmarks/fft_rule.py
   --kernels 5,7,11 --channels 32,128 --sizes 28,56``, also through ``benchmarks/as_avx2.sh``
   (benchmarks/RESULTS.md, nineteenth session). Otherwise,
   depthwise with one filter per channel, stride 1, a kernel of at least BANDED_MIN_TAPS = 25
   taps (5x5) and an output at most BANDED_MAX_WIDTH = 32 columns wide: ``banded``, one
   product per kernel row with banded matrices, where the depthwise path makes k_h*k_w passes.
   Each product does W_pad / k_w times the band's work, so wide outputs and small kernels stay
   with the others. Why: banded leads FFT and the depthwise path on ConvNeXt-T's 7x7 depthwise
   layers at 28x28 and below, not on MobileNetV2's 3x3 ones; evidence: ``convlens bench --suite
   convnext_tiny`` and ``convlens bench --suite mobilenet_v2 --algorithms depthwise,banded``
   (benchmarks/RESULTS.md);
3. stride 1 and a large kernel: ``fft``, whose work does not grow with the kernel while
   im2col's grows with its k_h*k_w taps. Dense layers (several channels per group) need at
   least FFT_MIN_TAPS = 25 taps (5x5), taps x channels per group >= FFT_MIN_TAP_CHANNELS = 1500
   (the two FFTs cost about the same per channel whatever the kernel, so few channels or few
   taps leave them unpaid: 5x5 needs 60 channels, 7x7 31, 11x11 14) and a batch of at least
   FFT_MIN_BATCH = 4 (its per-frequency products read all of the cached kernel spectra once per
   call, as Winograd's read U, so a single image streams them). Depthwise layers (wider than
   banded takes), whose products are one multiply per frequency, need FFT_MIN_TAPS_DEPTHWISE =
   49 taps (7x7). Both rules 2 and 3 measured with ``python benchmarks/fft_rule.py``, which
   sweeps kernels 3-11, channels 3-128, sizes 14-112 and batch 1 and 8 and prints auto's pick
   against the fastest candidate; the figures are in benchmarks/RESULTS.md. Neither is taken
   where its buffers, kept transforms included, would pass the workspace limit. Where the kernels
   run AVX-512 loops and gemm.c takes the layer (rule 6), a dense layer of at most
   GEMM_BEFORE_FFT_MAX_TAPS = 49 taps (7x7) FFT would take goes to ``gemm`` instead: on the dense
   layers of that sweep (5x5 to 11x11, 32 and 128 channels, 28x28 and 56x56, batch 1 and 8) gemm.c
   led FFT on every one but 32->32 11x11 at 56x56, batch 8; held to AVX2, FFT led it on three of
   the seven at batch 8; evidence: ``python benchmarks/fft_rule.py --kernels 5,7,11 --channels
   32,128 --sizes 28,56``, also through ``benchmarks/as_avx2.sh`` (benchmarks/RESULTS.md,
   nineteenth session);
4. depthwise (groups == C_in > 1): ``depthwise`` — one scaled add per tap, without im2col's
   k_h*k_w copy of the input; no convlens algorithm comes near PyTorch's depthwise kernel. Why:
   level with or ahead of im2col on every MobileNetV2 depthwise layer but the smallest stride-2
   ones; evidence: ``convlens bench --suite mobilenet_v2,seed --batch 1,8`` (benchmarks/RESULTS.md);
5. a small layer, at most TINY_MACS = 2^22 multiply-adds, float32 NCHW on the CPU with the
   compiled core built: ``direct``, one call of direct.c (no padded copy, no columns, no matmul
   launched from Python), where the call's fixed cost, not its arithmetic, is the time; direct.c
   sums 16 output channels per vector with no cache blocking, so its time grows fastest. Why:
   direct leads im2col up to 2.4e6 multiply-adds, the two are level within the noise from 5e6 to
   9e6, and im2col leads from 1.4e7; evidence: ``python
   benchmarks/tiny_rule.py`` (benchmarks/RESULTS.md, twelfth session). A 1x1 stride-1 layer
   without padding, whose columns are the input itself (one product, no copy), only up to
   TINY_POINTWISE_MACS = 2^19: im2col leads on every MobileNetV2 1x1 layer at batch 1 (0.6e6 to
   7.5e6 multiply-adds); evidence: the same script, and ``convlens bench --suite mobilenet_v2
   --batch 1 --algorithms direct,im2col``;
6. a dense layer (one group) with a kernel larger than 3x3, or a kernel of 2 to 9 taps and at most
   GEMM_MAX_ROWS = 4608 taps times input channels (the depth of its product; GEMM_MAX_ROWS_AVX2 =
   1152 where the kernels run AVX2 loops, not AVX-512 ones) and, where the kernels run AVX2 loops,
   not a stem with a kernel under 5x5 (at most STEM_MAX_CHANNELS input channels: held to AVX2,
   VGG-16's 3x3 stem at batch 1 ran 0.65x of PyTorch through gemm.c against 0.84x through im2col,
   MobileNetV2's and ConvNeXt-T's level at batch 8; with AVX-512 loops gemm.c led or matched im2col
   on all three at batch 1 and 8: MobileNetV2 0.91x / 0.81x against 0.53x / 0.65x, ConvNeXt-T's 4x4
   patchify 1.00x / 0.96x against 0.67x / 0.82x, VGG-16 0.85x / 1.60x against 0.85x / 1.26x;
   evidence: ``convlens bench --suite mobilenet_v2,convnext_tiny,vgg16 --limit 1 --batch 1,8
   --algorithms auto,im2col,gemm,direct``, also through ``benchmarks/as_avx2.sh``;
   benchmarks/RESULTS.md, eighteenth session), which gemm.c takes (float32 NCHW on the CPU, C_out a
   multiple of 16: ``gemm.uses_native``): ``gemm``, one compiled pass band by band, each tap's input
   read in place from a band of padded rows in L2, where im2col writes k_h*k_w copies of the input
   and reads them back. Why: ResNet-50's 7x7 stem and its 128- and 256-channel 3x3 stride-2 layers,
   batch 8: 0.95x / 1.03x / 0.88x of PyTorch against 0.73x (direct) / 0.82x / 0.76x (im2col); batch
   1: 1.02x / 0.96x / 0.86x against 0.93x / 0.82x / 0.84x; its 512-channel layers (4608 deep) ran
   faster through im2col's product then (fifteenth session), but since gemm.c splits a large weight
   between the threads (sixteenth session) it leads or matches im2col at 4608 deep: ResNet-50's
   512@7 at batch 1 0.95x-0.97x of PyTorch against 0.83x-0.84x, its 512@14 stride 2 0.91x-0.93x
   against 0.90x-0.94x (batch 8: 0.85x against 0.88x), VGG-16's 512@28 and 512@14 at batch 8 (which
   Winograd takes) 0.86x / 0.91x against 0.78x / 0.77x; evidence: ``convlens bench --suite resnet50
   --batch 1,8 --algorithms auto,gemm,im2col`` (benchmarks/RESULTS.md, fifteenth session) and
   ``python benchmarks/gemm_depth.py`` (nineteenth session). With AVX2 loops on both sides
   (``benchmarks/as_avx2.sh`` on the Xeon; sixteenth session) the 256-channel stride-2 layer (2304
   deep) ran faster through im2col (0.85x-0.90x against 0.72x-0.80x) and ``convlens tune`` fitted
   1152; so did every 4608-deep layer of ``gemm_depth.py``. Except where the weight passes
   gemm.LARGE_WEIGHT_BYTES = 4 MiB (ResNet-50's 512-channel 3x3 layers) and the output has fewer than
   STREAMED_WEIGHT_MIN_POSITIONS = 512 positions N*H_out*W_out (batch 1; 392 at batch 8): ``im2col``.
   Alone, a layer's weight rows stay in the caches from one call to the next; inside a model they
   come from memory on every call, and so do the weight and the cache's saved copy, which the cache
   compares on every call, where im2col's product reads the weight once. Why: inside ResNet-50 at
   batch 1 (eval), its two 512@7 layers took 4.83 ms by gemm.c against 3.71 by im2col (PyTorch
   3.72), its 512@14 stride-2 layer 2.52 against 1.90 (PyTorch 2.31; per-layer hooks, the three
   ways in one process, ad hoc), while alone gemm.c led (0.93x against 0.85x of PyTorch); at batch 8
   (392 positions) the stride-2 layer took 9.88 against 9.74 inside the model (ad hoc), 0.86x
   against 0.84x alone. With the rule, ``python benchmarks/model_layers.py --batch 1`` against the
   commit before it: each 512@7 layer 2.43 -> 1.98 ms in place (PyTorch 1.96 / 1.88), the model
   0.99x -> 1.03x of PyTorch; alone: ``convlens bench --suite resnet50 --batch 1,8 --kernel 3
   --algorithms auto,gemm,im2col`` (benchmarks/RESULTS.md, twenty-first session). Kernels larger than 3x3 have no depth
   limit: in ``fft_rule.py``'s sweep (rule 3), gemm.c led im2col on every dense layer it takes,
   6,272 and 15,488 deep included (128->128 7x7 and 11x11 at batch 1: 1.32x-1.45x faster with
   AVX-512 loops, 1.09x-1.16x held to AVX2), since im2col's columns grow with the kernel's taps;
7. a stem that gemm.c does not take: a dense layer with at most STEM_MAX_CHANNELS = 4 input
   channels per group and a kernel of at least STEM_MIN_TAPS = 25 taps (5x5), which direct.c
   takes: ``direct``. im2col's columns are k_h*k_w copies of the image for a product only
   C_in*k_h*k_w deep, while direct.c keeps the whole filter bank in cache and reads the image in
   place. Why: ResNet's 7x7 stride-2 stem and AlexNet's 11x11 stride-4 one, batch 1 and 8, run
   faster in direct.c than in im2col (3x3 stems do not); evidence: ``python
   benchmarks/tiny_rule.py``;
8. otherwise ``im2col`` — one large matrix multiply (per group).
9. Rules 1 to 8 take the transforms of the weight as made once and kept (Winograd's U, gemm.c's
   rows, FFT's spectra: ``algos/cache.py``). Where the weight changed since its previous call (its
   version counter moved: ``weight_changes.py``, an optimizer step between two forwards, as in
   training) they are made again on every call, so where rules 1 to 8 pick one of those
   algorithms and the output has fewer than CHANGING_MIN_POSITIONS = 512 positions N*H_out*W_out:
   ``im2col``, which reads the weight as it is. Why: with the weight changing before every call
   and gradients recorded, ResNet-50's 3x3 layers ran (Winograd's or gemm.c's time -> im2col's, ms) at
   batch 1 256@14 (196 positions) 1.49 -> 1.24, 512@7 (49) 2.41 -> 1.84, 256@28 stride 2 (196)
   1.67 -> 1.30, 512@14 stride 2 (49) 2.53 -> 1.79; at batch 8 512@7 (392) 8.79 -> 8.32, 512@14
   stride 2 (392) 11.37 -> 8.43; while from 784 positions Winograd led (128@28 at batch 1: 0.86
   against 1.17, 256@14 at batch 8: 4.69 against 8.42). Measured wrong (an ad hoc run of the same
   measurement): 256@14 at batch 2 (392), 1.85 against 2.33. The ResNet-50 train step with its SGD
   step went from 0.96x-0.97x to 1.00x-1.01x of PyTorch at batch 1, 1.12x to 1.11x at batch 8;
   evidence: ``python benchmarks/changing_weight.py --batch 1|8`` and ``python benchmarks/models.py
   --models resnet50 --batch 1|8 --train``
   (benchmarks/RESULTS.md, twenty-first session).

Rules 5 and 7 (direct.c) hold where they were measured (an AMD EPYC, AVX2); on an Intel Xeon with AVX-512
the compiled kernel's reach moved with the kernel (im2col led from about 2^19 multiply-adds in the
thirteenth session, direct.c up to about 2^24 in the fourteenth: benchmarks/RESULTS.md).
``convlens tune`` measures the machine once (:mod:`convlens.tune`): where it has, its
thresholds replace TINY_MACS, TINY_POINTWISE_MACS, whether stems go to direct.c, and
GEMM_MAX_ROWS (rule 6's depth, which moved with the instruction set: with AVX2 loops on both
sides im2col led gemm.c on the 2304-deep stride-2 layer; benchmarks/RESULTS.md, sixteenth
session), and the choice's reason names the file.

The figures behind every rule are in benchmarks/RESULTS.md.

With ``convlens.set_autotune(True)``, the first call for each (sizes, options, dtype, device,
precision) times every algorithm that supports it on random data of that shape and keeps the
fastest; later calls reuse the choice (like ``torch.backends.cudnn.benchmark``). The choice is
stable once made, and the cache is safe to share between threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import cache

import torch

from convlens import native, tune
from convlens.algos import Algorithm, concrete, gemm, get
from convlens.algos.im2col import columns_are_input
from convlens.algos.winograd import plan as winograd_plan
from convlens.algos.winograd.plan import MIN_TILES, tile_count, tile_size
from convlens.config import get_autotune, get_precision, get_workspace_limit
from convlens.spec import ConvSpec
from convlens.timing import interleaved_medians

FFT_MIN_TAPS = 25  # kernel taps k_h*k_w for FFT on a dense layer; see rule 3 above
FFT_MIN_TAP_CHANNELS = 1500  # taps x channels per group (the smaller of in and out), dense layers
FFT_MIN_BATCH = 4  # images per call, dense layers
FFT_MIN_TAPS_DEPTHWISE = 49  # kernel taps for FFT on a depthwise layer
BANDED_MIN_TAPS = 25  # kernel taps from which banded takes a narrow depthwise layer; see rule 2 above
BANDED_MAX_WIDTH = 32  # output columns up to which it does
MIN_CHANNELS = {4: 64, 2: 128}  # per group, by Winograd's tile size m; see rule 1 above
STRIDED_MAX_U_BYTES = 2 * 1024**2  # the largest U of a stride-2 layer Winograd takes; rule 1
FUSED_MIN_CHANNELS = 64  # per group, either tile size, where the fused pass runs the layer; rule 1
GEMM_BEFORE_FFT_MAX_TAPS = 49  # kernel taps up to which gemm.c takes FFT's dense layers (AVX-512 loops); rule 3
TINY_MACS = 1 << 22  # multiply-adds up to which the compiled direct kernel takes a layer; see rule 5 above
TINY_POINTWISE_MACS = 1 << 19  # the same for a 1x1 stride-1 unpadded layer (one product already)
TRANSFORMS_WEIGHT = ("winograd", "gemm", "fft")  # algorithms that keep a transform of the weight; see rule 9
CHANGING_MIN_POSITIONS = 512  # output positions from which a transform made on every call pays; rule 9
STREAMED_WEIGHT_MIN_POSITIONS = 512  # output positions under which gemm.c leaves a weight over 4 MiB; rule 6
STEM_MAX_CHANNELS = 4  # input channels per group up to which a large-kernel layer is a stem; rule 7
GEMM_MAX_ROWS = 4608  # k_h*k_w*C_in up to which gemm.c takes a dense 3x3 layer; rule 6
GEMM_MAX_ROWS_AVX2 = 1152  # the same where its loops are AVX2 (8 lanes) or narrower
STEM_MIN_TAPS = 25  # kernel taps from which it is


@dataclass(frozen=True)
class Choice:
    algorithm: Algorithm
    reason: str


def rule(spec: ConvSpec, workspace: int | None = None, weight_changes: bool = False) -> Choice:
    """The cost rule (no timing). ``workspace``: the call's workspace limit in bytes, which FFT's
    buffers must fit (default: the process-wide limit); ``weight_changes``: the weight changed since
    its previous call (the last paragraph of the rules)."""
    chosen = fixed_weight_rule(spec, workspace)
    transformed = weight_changes and chosen.algorithm.name in TRANSFORMS_WEIGHT
    if transformed and spec.positions < CHANGING_MIN_POSITIONS:
        reason = (
            f"the weight changed since its previous call (an optimizer step) and the output has {spec.positions} "
            f"positions, fewer than {CHANGING_MIN_POSITIONS}: {chosen.algorithm.name}'s transform of the weight, "
            "made again on every call, costs more than it saves; im2col reads the weight as it is"
        )
        return Choice(get("im2col"), reason)
    return chosen


def fixed_weight_rule(spec: ConvSpec, workspace: int | None = None) -> Choice:
    """Rules 1 to 8, which take the weight's transforms as made once and kept."""
    if spec.rank == 3:  # the 3-D algorithms: direct and im2col
        if spec.is_depthwise:
            return Choice(get("direct"), "3-D depthwise: one scaled add per tap, without im2col's copy of the input")
        return Choice(get("im2col"), "3-D: one matrix multiply over im2col columns, in workspace-bounded pieces")
    winograd = get("winograd")
    if (
        winograd.supports(spec) is None
        and (winograd_plan.tiling_stride(spec) == 1 or strided_winograd_pays(spec))
        and min(spec.in_per_group, spec.out_per_group) >= min_channels(spec)
        and spec.dtype in (torch.float32, torch.float64)
        and tile_count(spec) >= MIN_TILES
    ):
        if winograd_plan.tiling_stride(spec) == 2:
            reason = "3x3 stride 2, many channels, tiles and images, a transformed weight of at most 2 MiB, fused:"
            return Choice(winograd, reason + " Winograd's 1.44x fewer multiplications pay")
        return Choice(winograd, "3x3 stride 1, many channels and tiles: Winograd's fewer multiplications pay")
    if spec.is_depthwise and native.takes(spec):
        return Choice(get("depthwise"), "depthwise, in the compiled kernel: ahead of banded and FFT")
    floating = spec.dtype in (torch.float32, torch.float64)
    workspace = get_workspace_limit() if workspace is None else workspace
    if floating and banded_pays(spec, workspace):
        return Choice(get("banded"), "depthwise, 5x5 or larger kernel, narrow output: one product per kernel row")
    if spec.stride == (1, 1) and floating and fft_pays(spec, workspace):
        if gemm_before_fft(spec):
            reason = (
                "a dense layer up to 7x7 that gemm.c takes, with AVX-512 loops: each tap read in place, ahead of FFT"
            )
            return Choice(get("gemm"), reason)
        return Choice(get("fft"), "stride 1, large kernel: FFT's work does not grow with the kernel, im2col's does")
    if spec.is_depthwise:
        return Choice(get("depthwise"), "depthwise: one scaled add per tap, without im2col's k_h*k_w copy of the input")
    general = "general case: one matrix multiply over im2col columns"
    if not native.takes(spec):
        return Choice(get("im2col"), general)
    limits = thresholds()
    tiny = limits.tiny_pointwise_macs if columns_are_input(spec) else limits.tiny_macs
    said = f" (rules 5 to 7 as `convlens tune` measured this machine: {limits.source})" if limits.source else ""
    if spec.flops // 2 <= tiny:
        reason = "a small layer: one compiled pass, where im2col's copies and calls cost more"
        return Choice(get("direct"), reason + said)
    small_stem = spec.in_per_group <= STEM_MAX_CHANNELS and spec.taps < STEM_MIN_TAPS  # rule 6: with AVX2 loops
    small_stem = small_stem and native.instruction_set() != "AVX-512"
    deep = limits.gemm_max_rows
    within = spec.taps > 9 or spec.in_per_group * spec.taps <= deep  # a kernel larger than 3x3: any depth
    if spec.taps > 1 and within and not small_stem and gemm.uses_native(spec):
        if weight_streams(spec):
            reason = (
                f"a dense layer whose weight passes {gemm.LARGE_WEIGHT_BYTES // 1024**2} MiB, with fewer than "
                f"{STREAMED_WEIGHT_MIN_POSITIONS} output positions: in a model its weight comes from memory, "
                "which im2col's product reads once and gemm.c's kept rows three times (the rows, and the weight "
                "and its saved copy for the cache's check)"
            )
            return Choice(get("im2col"), reason + said)
        depth = "larger than 3x3" if spec.taps > 9 else f"at most {deep} deep (k_h*k_w*C_in)"
        reason = f"a dense layer {depth}: gemm.c reads each tap's input in place, no columns"
        return Choice(get("gemm"), reason + said)
    if limits.stems and spec.in_per_group <= STEM_MAX_CHANNELS and spec.taps >= STEM_MIN_TAPS:
        reason = "a stem (few input channels, large kernel): im2col copies the image k*k times"
        return Choice(get("direct"), reason + said)
    return Choice(get("im2col"), general + said)


def weight_streams(spec: ConvSpec) -> bool:
    """Rule 6's exception: a weight of more than gemm.LARGE_WEIGHT_BYTES with fewer than
    STREAMED_WEIGHT_MIN_POSITIONS output positions N*H_out*W_out, whose time is reading it."""
    weight_bytes = spec.taps * spec.in_per_group * spec.out_channels * spec.dtype.itemsize
    return weight_bytes > gemm.LARGE_WEIGHT_BYTES and spec.positions < STREAMED_WEIGHT_MIN_POSITIONS


def strided_winograd_pays(spec: ConvSpec) -> bool:
    """Rule 1 at stride 2: the fused pass runs the layer, its U is at most STRIDED_MAX_U_BYTES and
    the batch has an image for every thread."""
    u_bytes = winograd_plan.span(spec, 2) ** 2 * spec.in_channels * spec.out_channels * 4  # U (5*5, C_in, C_out)
    return winograd_plan.uses_fused(spec) and u_bytes <= STRIDED_MAX_U_BYTES and spec.batch >= winograd_plan.threads()


def min_channels(spec: ConvSpec) -> int:
    """Rule 1's channels per group: FUSED_MIN_CHANNELS where winograd.c's fused pass runs the layer,
    else MIN_CHANNELS by tile size."""
    return FUSED_MIN_CHANNELS if winograd_plan.uses_fused(spec) else MIN_CHANNELS[tile_size(spec)]


def built_in() -> tune.Thresholds:
    """Rules 5 to 7's thresholds as this module sets them (no source: not a calibration)."""
    deep = GEMM_MAX_ROWS if native.instruction_set() == "AVX-512" else GEMM_MAX_ROWS_AVX2
    return tune.Thresholds(TINY_MACS, TINY_POINTWISE_MACS, stems=True, gemm_max_rows=deep)


def thresholds() -> tune.Thresholds:
    """Rules 5 to 7's thresholds in force: this machine's calibration (``convlens tune``) where
    there is one, else the built-in ones; the built-in ones too while torch.compile traces (the
    traced graph runs the Python algorithms, not the kernels tune timed)."""
    measured = None if torch.compiler.is_compiling() else tune.stored()
    return built_in() if measured is None else measured


def fft_pays(spec: ConvSpec, workspace: int) -> bool:
    """Rule 3's kernel, channel and batch thresholds, and FFT's buffers (``fft.buffer_bytes``, the
    kept kernel spectra included) within ``workspace`` bytes: FFT does not work in pieces, and its
    spectra grow with the image (64 channels at 224x224 with an 11x11 kernel: 905 MB of kernel
    spectra), so a large image goes to im2col, which does. Stride and dtype are checked by ``rule``."""
    taps = spec.kernel_size[0] * spec.kernel_size[1]
    if spec.is_depthwise:  # one input channel per group: a multiply per frequency, no channel sum
        pays = taps >= FFT_MIN_TAPS_DEPTHWISE
    else:
        channels = min(spec.in_per_group, spec.out_per_group)
        pays = taps >= FFT_MIN_TAPS and taps * channels >= FFT_MIN_TAP_CHANNELS and spec.batch >= FFT_MIN_BATCH
    return pays and get("fft").extra_bytes(spec, workspace) <= workspace


def gemm_before_fft(spec: ConvSpec) -> bool:
    """Rule 3's exception: a dense layer of at most GEMM_BEFORE_FFT_MAX_TAPS taps that the compiled
    kernels take (``native.takes``, ``gemm.uses_native``), where they run AVX-512 loops."""
    return (
        not spec.is_depthwise
        and spec.taps <= GEMM_BEFORE_FFT_MAX_TAPS
        and native.instruction_set() == "AVX-512"
        and native.takes(spec)
        and gemm.uses_native(spec)
    )


def banded_pays(spec: ConvSpec, workspace: int) -> bool:
    """Rule 2: a depthwise layer banded runs (one filter per channel, stride 1) with at least
    BANDED_MIN_TAPS taps and at most BANDED_MAX_WIDTH output columns, its buffers within
    ``workspace`` bytes."""
    return (
        get("banded").supports(spec) is None
        and spec.kernel_size[0] * spec.kernel_size[1] >= BANDED_MIN_TAPS
        and spec.out_size[1] <= BANDED_MAX_WIDTH
        and get("banded").extra_bytes(spec, workspace) <= workspace
    )


_lock = threading.Lock()
_timed: dict[tuple, Choice] = {}


def cache_key(spec: ConvSpec) -> tuple:
    return (*(getattr(spec, f.name) for f in fields(spec) if f.compare), get_precision())


def candidates(spec: ConvSpec) -> list[Algorithm]:
    return [algorithm for algorithm in concrete() if spec.rank in algorithm.ranks and algorithm.supports(spec) is None]


def time_candidates(spec: ConvSpec, workspace: int) -> Choice:
    """Time every supporting algorithm whose buffers fit ``workspace`` bytes (im2col always: it works
    in pieces within the limit) once on random data of this shape; keep the fastest."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((spec.batch, spec.in_channels, *spec.in_size), generator=generator).to(spec.dtype)
    weight = torch.randn((spec.out_channels, spec.in_per_group, *spec.kernel_size), generator=generator)
    x, weight = x.to(spec.device), weight.to(dtype=spec.dtype, device=spec.device)

    def timed_call(algorithm: Algorithm) -> Callable[[], torch.Tensor]:
        return lambda: algorithm.forward(x, weight, None, spec, workspace)

    within = [a for a in candidates(spec) if a.name == "im2col" or a.extra_bytes(spec, workspace) <= workspace]
    runs = {algorithm.name: timed_call(algorithm) for algorithm in within}
    with torch.no_grad():
        for run in runs.values():
            run()  # warm up (transform caches, allocator)
        seconds = interleaved_medians(runs, rounds=1, min_run_time=0.05)
    best = min(seconds, key=seconds.__getitem__)
    summary = ", ".join(f"{name} {value * 1e3:.2f} ms" for name, value in sorted(seconds.items(), key=lambda kv: kv[1]))
    return Choice(get(best), f"timed once: {summary}")


def choose(spec: ConvSpec, workspace: int | None = None, weight_changes: bool = False) -> Choice:
    """auto's choice for ``spec`` within ``workspace`` bytes (default: the process-wide limit), by the
    cost rule (``weight_changes``: the weight changed since its previous call, the last paragraph of
    the rules) or, with autotuning on, by one timing per configuration (with a fixed weight). An
    algorithm that mixes values comes guarded (``finite_guarded``), so auto never changes where a NaN
    or an Inf lands."""
    workspace = get_workspace_limit() if workspace is None else workspace
    if torch.compiler.is_compiling():
        return guarded(rule(spec, workspace))
    if not get_autotune():
        return ruled(spec, workspace, weight_changes)
    key = (*cache_key(spec), workspace)
    with _lock:
        timed = _timed.get(key)
    if timed is None:
        timed = guarded(time_candidates(spec, workspace))
        with _lock:
            timed = _timed.setdefault(key, timed)  # the first choice made wins: stable for this shape
    return timed


def ruled(spec: ConvSpec, workspace: int, weight_changes: bool = False) -> Choice:
    """The rule's choice, guarded, worked out once per spec object, workspace, whether the weight
    changes, precision, thread count and ``winograd.plan.fused`` (what the rule reads besides the
    build) and kept in the spec's memo:
    the rule costs 5 us per call (``python benchmarks/overhead.py``). Worked out again when the
    registry no longer holds the algorithm chosen (a test or a user swapped it), or the machine's
    calibration changed (``convlens tune``, another thread count)."""
    key = ("auto", workspace, weight_changes, get_precision(), winograd_plan.fused, winograd_plan.threads())
    remembered = spec.memo.get(key)
    measured = tune.stored()
    if isinstance(remembered, tuple) and get(remembered[0].name) is remembered[0] and remembered[2] is measured:
        return remembered[1]
    chosen = rule(spec, workspace, weight_changes)
    choice = guarded(chosen)
    spec.memo[key] = (chosen.algorithm, choice, measured)
    return choice


def guarded(choice: Choice) -> Choice:
    """``choice``, its algorithm wrapped by ``finite_guarded`` where it mixes values."""
    if not choice.algorithm.mixes_values:
        return choice
    return Choice(finite_guarded(choice.algorithm), choice.reason)


def exact_fallback(spec: ConvSpec) -> Algorithm:
    """The exact algorithm auto would otherwise pick: depthwise for a depthwise layer, else im2col."""
    return get("depthwise") if spec.is_depthwise else get("im2col")


@cache
def finite_guarded(algorithm: Algorithm) -> Algorithm:
    """``algorithm`` whose output is checked for NaN and Inf: where it has any, the call is computed
    again by the exact fallback, whose NaN and Inf land where PyTorch's do. Winograd, FFT and banded
    mix the values of a tile, an image or a row, so one NaN spreads over many outputs and an Inf
    output can come out as NaN (Inf - Inf in a transform). The check is the algorithm's own where
    it has one (``checked_forward``: the fused Winograd's output pass looks at each value as it
    writes it), else one sum over the output (NaN and Inf survive a sum; a finite sum means every
    output is finite). Why the own check: the sum cost 6.6%-16.7% of ResNet-50's Winograd layers at
    batch 1 and up to 15.6% at batch 8 (8.2% geomean over the seven), the fused pass's check 0.2%;
    evidence: ``python benchmarks/nonfinite_guard.py --suites resnet50 --precision highest``
    (benchmarks/RESULTS.md, seventeenth session). Not while torch.compile traces (data-dependent
    control flow), where the algorithm's own semantics hold."""

    def forward(
        x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, workspace: int
    ) -> torch.Tensor:
        if torch.compiler.is_compiling():
            return algorithm.forward(x, weight, bias, spec, workspace)
        if algorithm.checked_forward is not None:
            out, finite = algorithm.checked_forward(x, weight, bias, spec, workspace)
        else:
            out = algorithm.forward(x, weight, bias, spec, workspace)
            finite = out.numel() == 0 or bool(torch.isfinite(out.sum()))
        if finite:
            return out
        return exact_fallback(spec).forward(x, weight, bias, spec, workspace)

    return replace(algorithm, forward=forward, checked_forward=None)  # its own check is inside forward now


def clear_cache() -> None:
    with _lock:
        _timed.clear()
