"""direct.c's two loops for layers with several input channels per group: which one it should run.

    python benchmarks/direct_loops.py

run_planes sums an output row at a time (one loop over the row per input channel and tap);
run_output_blocks sums 16 output channels at a time in one vector, 4 outputs of a row sharing each
weight load. Both give the same bits; the kernel picks one by ``output_blocks_pay`` (direct.c).
Sweeps dense and grouped layers from 8x8 to 224x224, stride 1 to 4, including the stems of
ResNet (7x7 stride 2) and AlexNet (11x11 stride 4), float32, NCHW, torch's threads; each loop is
asked for by name and interleaved with F.conv2d (and convlens's im2col, for scale) in one
process. Prints each one's speedup over PyTorch, the kernel's pick, and whether it is the faster loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import convlens
from convlens import native
from convlens.benchmark.report import cpu_name
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


def main() -> None:
    if not native.available():
        raise SystemExit(f"no compiled kernels: {native.reason()}")
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; speedup over F.conv2d")
    torch.manual_seed(0)
    right = 0
    for batch, c_in, c_out, size, k, stride, groups in LAYERS:
        x, w, b = torch.randn(batch, c_in, size, size), torch.randn(c_out, c_in // groups, k, k), torch.randn(c_out)
        options = {"stride": stride, "padding": k // 2, "groups": groups}
        spec = convlens.ConvSpec.from_args(x, w, b, **options)
        candidates = {
            "pytorch": lambda x=x, w=w, b=b, options=options: F.conv2d(x, w, b, **options),
            "planes": lambda x=x, w=w, b=b, spec=spec: native.direct_forward(x, w, b, spec, loop="planes"),
            "blocks": lambda x=x, w=w, b=b, spec=spec: native.direct_forward(x, w, b, spec, loop="blocks"),
            "im2col": lambda x=x, w=w, b=b, options=options: convlens.conv2d(x, w, b, **options, algorithm="im2col"),
        }
        pytorch_ms, speedup = speedups_over("pytorch", candidates, rounds=3, min_run_time=0.05)
        pick = native.direct_loop(spec)
        faster = max(("planes", "blocks"), key=speedup.__getitem__)
        right += pick == faster
        print(f"N={batch} {c_in}->{c_out} {k}x{k} s{stride} g={groups} @{size}  PyTorch {pytorch_ms * 1000:7.0f} us  "
              f"planes {speedup['planes']:.2f}x  blocks {speedup['blocks']:.2f}x  im2col {speedup['im2col']:.2f}x  "
              f"pick: {pick}{'' if pick == faster else '  (the other is faster)'}", flush=True)  # fmt: skip
    print(f"the kernel picks the faster loop on {right} of {len(LAYERS)} layers")


if __name__ == "__main__":
    main()
