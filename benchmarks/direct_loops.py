"""direct.c's loops on the layers each is for: which one it should run, and whether it picks it.

    python benchmarks/direct_loops.py               # several input channels per group: planes vs output blocks
    python benchmarks/direct_loops.py --depthwise   # MobileNetV2's, ConvNeXt-T's and 5x5 depthwise layers, NCHW

run_planes sums an output row at a time (one loop over the row per input channel and tap, the
row in memory); run_output_blocks sums 16 output channels at a time in one vector, 4 outputs of a
row sharing each weight load; for depthwise layers run_channel_blocks sums 16 channels per vector
(an NCHW plane copied channels innermost and back), and run_row_vectors 8 outputs of a row per
vector, 4 vectors at once, in registers (stride 1 along the row). All give the same bits; the
kernel picks one (``convlens_direct_pick``). The dense sweep takes layers from 8x8 to 224x224,
stride 1 to 4, including the stems of ResNet (7x7 stride 2) and AlexNet (11x11 stride 4). Each loop
is asked for by name and interleaved with F.conv2d (and, for the dense layers, convlens's im2col,
for scale) in one process, float32, torch's threads. Prints each one's speedup over PyTorch, the
kernel's pick, and whether it is the fastest loop.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import convlens
from convlens import native
from convlens.benchmark.report import cpu_name, require_kernels
from convlens.benchmark.suites import suite
from convlens.benchmark.timing import speedups_over

# (batch, C_in, C_out, size, kernel, stride, groups)
LAYERS = [
    (1, 4, 4, 8, 3, 1, 1), (1, 8, 8, 16, 3, 1, 1), (1, 3, 16, 32, 3, 1, 1), (1, 16, 16, 16, 3, 1, 1),
    (1, 3, 6, 32, 5, 1, 1), (1, 16, 16, 16, 1, 1, 1), (1, 32, 32, 16, 3, 1, 4), (1, 32, 32, 16, 3, 1, 16),
    (1, 32, 32, 56, 3, 1, 16), (1, 16, 2, 64, 3, 1, 1), (1, 8, 8, 112, 3, 1, 1), (1, 4, 4, 224, 3, 1, 1),
    (1, 16, 16, 64, 3, 1, 1), (1, 16, 16, 128, 3, 1, 1), (1, 32, 32, 32, 3, 1, 1), (1, 64, 64, 28, 3, 1, 1),
    (1, 3, 64, 224, 3, 1, 1), (1, 32, 64, 28, 3, 2, 1), (1, 3, 32, 224, 3, 2, 1), (1, 3, 64, 224, 7, 2, 1),
    (8, 3, 64, 224, 7, 2, 1), (1, 3, 64, 224, 11, 4, 1), (8, 3, 64, 224, 11, 4, 1),
]  # fmt: skip


# stride-1 5x5 depthwise layers of MobileNetV3-Large's shapes (channels, size), and one wider: the
# kernel width between MobileNetV2's 3x3 and ConvNeXt-T's 7x7 (which of the loops leads moves with it)
FIVE_BY_FIVE = [(72, 56), (120, 28), (672, 14), (960, 7)]


def depthwise_layers(batches: tuple[int, ...]) -> list[tuple[int, int, int, int, int, int, int]]:
    """MobileNetV2's and ConvNeXt-T's depthwise layers, and FIVE_BY_FIVE, NCHW, in LAYERS's form."""
    found = [(batch, c, c, size, 5, 1, c) for c, size in FIVE_BY_FIVE for batch in batches]
    for name in ("mobilenet_v2", "convnext_tiny"):
        for layer in suite(name):
            spec = layer.spec(1)
            if spec.is_depthwise:
                for batch in batches:
                    found.append((batch, spec.in_channels, spec.out_channels, spec.in_size[1], spec.kernel_size[1],
                                  spec.stride[1], spec.groups))  # fmt: skip
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--depthwise", action="store_true", help="MobileNetV2's and ConvNeXt-T's depthwise layers")
    args = parser.parse_args()
    require_kernels()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; speedup over F.conv2d")
    torch.manual_seed(0)
    layers = depthwise_layers((1, 8)) if args.depthwise else LAYERS
    right = 0
    for batch, c_in, c_out, size, k, stride, groups in layers:
        x, w, b = torch.randn(batch, c_in, size, size), torch.randn(c_out, c_in // groups, k, k), torch.randn(c_out)
        options = {"stride": stride, "padding": k // 2, "groups": groups}
        spec = convlens.ConvSpec.from_args(x, w, b, **options)
        loops = ["planes"]
        if c_in > groups or size * size <= 16384:  # channel blocks copy a depthwise plane of at most 16384
            loops.append("blocks")
        if c_in == groups and stride == 1:
            loops.append("row vectors")
        candidates = {"pytorch": lambda x=x, w=w, b=b, options=options: F.conv2d(x, w, b, **options)}
        for loop in loops:
            candidates[loop] = lambda x=x, w=w, b=b, spec=spec, loop=loop: native.direct_forward(x, w, b, spec, loop)
        if not args.depthwise:
            candidates["im2col"] = lambda x=x, w=w, b=b, o=options: convlens.conv2d(x, w, b, **o, algorithm="im2col")
        pytorch_ms, speedup = speedups_over("pytorch", candidates, rounds=3, min_run_time=0.05)
        pick = native.direct_loop(spec)
        fastest = max(loops, key=speedup.__getitem__)
        right += pick == fastest
        times = "  ".join(f"{name} {value:.2f}x" for name, value in speedup.items())
        print(f"N={batch} {c_in}->{c_out} {k}x{k} s{stride} g={groups} @{size}  PyTorch {pytorch_ms * 1000:7.0f} us  "
              f"{times}  pick: {pick}{'' if pick == fastest else f'  ({fastest} is faster)'}", flush=True)  # fmt: skip
    print(f"the kernel picks the fastest loop on {right} of {len(layers)} layers")


if __name__ == "__main__":
    main()
