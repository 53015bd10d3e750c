"""gemm.c's pieces for a large weight (the reason for ``gemm.pieces``'s LARGE_WEIGHT_BYTES case).

    python benchmarks/gemm_pieces.py             # ResNet-50's 256- and 512-channel 3x3 layers, batch 1, 2, 4, 8
    python benchmarks/gemm_pieces.py --batch 1

Each of gemm.c's pieces reads all of the weight rows (9.4 MB for 512 channels). Times, on each
layer, gemm.c with the pieces ``gemm.pieces`` picks, with ``gemm.pieces_by_cache`` (bands of rows
by the cache, at least two per thread), and with whole images, ceil(N / threads) per piece (one
piece per thread, each reading the weight once), and im2col for scale, interleaved with F.conv2d
in one process (float32, torch's threads); prints each one's speedup over PyTorch with its
(output rows per band, images per piece).
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

import convlens
from convlens import native
from convlens.algos import gemm
from convlens.benchmark.report import cpu_name, require_kernels
from convlens.benchmark.timing import speedups_over

# (C_in = C_out, input size, stride): ResNet-50's 3x3 layers with weights of 2.4 and 9.4 MB
LAYERS = [(256, 28, 2), (512, 14, 2), (512, 7, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", default="1,2,4,8", help="comma-separated batch sizes")
    args = parser.parse_args()
    require_kernels()
    threads = torch.get_num_threads()
    print(f"{cpu_name()}, {threads} threads; speedup over F.conv2d, (rows per band, images per piece)")
    for batch in (int(b) for b in args.batch.split(",")):
        for channels, size, stride in LAYERS:
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(batch, channels, size, size, generator=generator)
            w = torch.randn(channels, channels, 3, 3, generator=generator)
            b = torch.randn(channels, generator=generator)
            spec = convlens.ConvSpec.from_args(x, w, b, stride=stride, padding=1)
            w_rows = gemm.weight_rows(w)
            choices = {
                "pieces": gemm.pieces(spec),
                "by cache": gemm.pieces_by_cache(spec),
                "one per thread": (spec.out_size[0], math.ceil(batch / min(threads, batch))),
            }
            candidates = {
                "pytorch": lambda x=x, w=w, b=b, stride=stride: F.conv2d(x, w, b, stride=stride, padding=1),
                **{
                    name: lambda x=x, b=b, spec=spec, w_rows=w_rows, p=p: native.gemm_forward(x, w_rows, b, spec, p)
                    for name, p in choices.items()
                },
                "im2col": lambda x=x, w=w, b=b, stride=stride: convlens.conv2d(
                    x, w, b, stride=stride, padding=1, algorithm="im2col"
                ),
            }
            pytorch_ms, speedup = speedups_over("pytorch", candidates, rounds=5)
            shown = "  ".join(f"{name} {speedup[name]:.2f}x {choices[name]}" for name in choices)
            print(f"N={batch} {channels}->{channels} 3x3 s{stride} @{size}  PyTorch {pytorch_ms:6.2f} ms  {shown}  "
                  f"im2col {speedup['im2col']:.2f}x", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
