"""auto's rules 5 and 7: where the compiled direct kernel beats im2col, small layers and stems.

    python benchmarks/tiny_rule.py

On a small layer a call's fixed cost, not its arithmetic, is the time: im2col pays for its
padded copy, its columns and a matmul call from Python, the compiled direct kernel (direct.c) for
one C call, but it does every multiply-add without cache blocking, so its time grows fastest. On a
stem (a few input channels, a large kernel: ResNet's 7x7 stride 2, AlexNet's 11x11 stride 4)
im2col's columns are k_h*k_w copies of the image for a thin product, while direct.c's output
blocks keep the whole filter bank in cache. Sweeps dense and grouped layers from 10 thousand to 30
million multiply-adds at batch 1 and 4, and stems at batch 1 and 8 (float32, NCHW, torch's
threads), interleaved with F.conv2d in one process, and prints each one's speedup over PyTorch with
auto's pick; rule 5's thresholds are where direct stops leading on the small layers, 3x3 and 1x1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import convlens
from convlens.algos import auto
from convlens.benchmark.report import cpu_name, require_kernels
from convlens.benchmark.timing import speedups_over

# (batch, C_in, C_out, size, kernel, groups, stride)
LAYERS = [
    (1, 4, 4, 8, 3, 1, 1), (1, 3, 8, 16, 3, 1, 1), (1, 8, 8, 16, 3, 1, 1), (1, 3, 16, 32, 3, 1, 1),
    (1, 16, 16, 16, 3, 1, 1), (4, 8, 8, 16, 3, 1, 1), (1, 3, 6, 32, 5, 1, 1), (1, 16, 16, 16, 1, 1, 1),
    (1, 32, 32, 16, 3, 4, 1), (1, 32, 32, 16, 3, 1, 1), (1, 48, 48, 16, 3, 1, 1), (1, 64, 64, 14, 3, 1, 1),
    (1, 128, 128, 7, 3, 1, 1), (4, 16, 16, 32, 3, 1, 1), (2, 32, 32, 28, 3, 1, 1), (1, 96, 96, 14, 3, 1, 1),
    (1, 64, 64, 28, 3, 1, 1),
    # 1x1 (pointwise), whose columns are the input itself
    (1, 32, 64, 16, 1, 1, 1), (1, 64, 64, 14, 1, 1, 1), (1, 32, 192, 28, 1, 1, 1), (1, 960, 160, 7, 1, 1, 1),
    # stems
    (1, 3, 64, 224, 7, 1, 2), (8, 3, 64, 224, 7, 1, 2), (1, 3, 64, 224, 11, 1, 4), (8, 3, 64, 224, 11, 1, 4),
    (1, 3, 32, 224, 5, 1, 2), (1, 3, 64, 224, 3, 1, 1), (1, 3, 32, 224, 3, 1, 2),
]  # fmt: skip


def main() -> None:
    require_kernels()
    threads = torch.get_num_threads()
    print(f"{cpu_name()}, {threads} threads; speedup over F.conv2d; auto.TINY_MACS = {auto.TINY_MACS:,}")
    torch.manual_seed(0)
    for batch, c_in, c_out, size, k, groups, stride in LAYERS:
        x, w, b = torch.randn(batch, c_in, size, size), torch.randn(c_out, c_in // groups, k, k), torch.randn(c_out)
        options = {"padding": k // 2, "groups": groups, "stride": stride}
        spec = convlens.ConvSpec.from_args(x, w, b, **options)
        candidates = {
            "pytorch": lambda x=x, w=w, b=b, options=options: F.conv2d(x, w, b, **options),
            "direct": lambda x=x, w=w, b=b, options=options: convlens.conv2d(x, w, b, **options, algorithm="direct"),
            "im2col": lambda x=x, w=w, b=b, options=options: convlens.conv2d(x, w, b, **options, algorithm="im2col"),
        }
        pytorch_ms, speedup = speedups_over("pytorch", candidates, rounds=3, min_run_time=0.05)
        pick = auto.rule(spec).algorithm.name
        print(f"N={batch} {c_in}->{c_out} {k}x{k} s{stride} g={groups} @{size}  {spec.flops // 2:>11,} MACs  PyTorch "
              f"{pytorch_ms * 1000:6.0f} us  direct {speedup['direct']:.2f}x  im2col {speedup['im2col']:.2f}x  "
              f"auto: {pick}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
