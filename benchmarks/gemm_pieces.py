"""gemm.c's pieces for a large weight (the reason for ``gemm.pieces``'s LARGE_WEIGHT_BYTES case).

    python benchmarks/gemm_pieces.py             # ResNet-50's 256- and 512-channel 3x3 layers, batch 1, 2, 4, 8
    python benchmarks/gemm_pieces.py --batch 1
    python benchmarks/gemm_pieces.py --weight-rows  # laying out the weight rows: torch ops against gemm.c

Each of gemm.c's pieces reads all of the weight rows (9.4 MB for 512 channels). Times, on each
layer, gemm.c with the pieces ``gemm.pieces`` picks, with ``gemm.pieces_by_cache`` (bands of rows
by the cache, at least two per thread), and with whole images, ceil(N / threads) per piece (one
piece per thread, each reading the weight once), and im2col for scale, interleaved with F.conv2d
in one process (float32, torch's threads); prints each one's speedup over PyTorch with its
(output rows per band, images per piece). ``--weight-rows``: how long laying the weight rows out
takes (again on every training step, the weight having changed), by the reference's torch ops (a
permuting copy, then ``native.panels``) and by gemm.c (``native.gemm_weight_rows``, into a kept
buffer), on ResNet-50's weights that gemm.c runs, with a plain copy of the weight for scale.
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
from convlens.benchmark.timing import interleaved_medians, speedups_over

# (C_in = C_out, input size, stride): ResNet-50's 3x3 layers with weights of 2.4 and 9.4 MB
LAYERS = [(256, 28, 2), (512, 14, 2), (512, 7, 1)]
WEIGHTS = [(64, 3, 7), (128, 128, 3), (256, 256, 3), (512, 512, 3)]  # (C_out, C_in, k): the stem and 3x3 layers


def weight_rows_times() -> None:
    """Milliseconds to lay each weight's rows out, torch ops against gemm.c."""
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; weight rows, ms per layout")
    for c_out, c_in, k in WEIGHTS:
        w = torch.randn(c_out, c_in, k, k, generator=torch.Generator().manual_seed(0))
        kept, copy = native.gemm_weight_rows(w), torch.empty_like(w)
        candidates = {
            "torch ops": lambda w=w: native.panels(w.permute(2, 3, 1, 0).reshape(1, -1, w.shape[0])),
            "gemm.c": lambda w=w, kept=kept: native.gemm_weight_rows(w, out=kept),
            "copy": lambda w=w, copy=copy: copy.copy_(w),
        }
        ms = {name: seconds * 1e3 for name, seconds in interleaved_medians(candidates, 3, 0.2).items()}
        cells = "  ".join(f"{name} {value:6.3f}" for name, value in ms.items())
        print(f"{c_out}x{c_in}x{k}x{k} ({w.numel() * 4 / 2**20:.1f} MiB): {cells}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", default="1,2,4,8", help="comma-separated batch sizes")
    parser.add_argument("--weight-rows", action="store_true", help="time laying the weight rows out instead")
    args = parser.parse_args()
    require_kernels()
    if args.weight_rows:
        weight_rows_times()
        return
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
