"""How the size of im2col's pieces changes its speed (the reason for PIECE_BYTES = 16 MiB).

    python benchmarks/im2col_pieces.py                  # ResNet-50's 64->64 3x3 layer at 56x56, batch 8

Times convlens's im2col with its piece size set to each value (the workspace limit left large),
interleaved with F.conv2d in one process; prints ms and the ratio to PyTorch.
"""

from __future__ import annotations

import argparse
from unittest import mock

import torch
import torch.nn.functional as F

import convlens
from convlens.algos import im2col
from convlens.benchmark.timing import interleaved_medians

MIB = 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--pieces-mib", default="1,4,16,64,256")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.channels, args.size, args.size)
    w = torch.randn(args.channels, args.channels, 3, 3)
    candidates = {"pytorch": lambda: F.conv2d(x, w, padding=1)}
    for mib in (int(v) for v in args.pieces_mib.split(",")):

        def run(mib=mib):
            with mock.patch.object(im2col, "PIECE_BYTES", mib * MIB):
                return convlens.conv2d(x, w, padding=1, algorithm="im2col", workspace_limit=1 << 40)

        candidates[f"{mib} MiB pieces"] = run
    with torch.no_grad():
        medians = interleaved_medians(candidates, rounds=3, min_run_time=0.2)
    columns = args.batch * args.channels * 9 * args.size * args.size * 4
    print(f"{args.batch}x{args.channels}x{args.size}x{args.size}, 3x3, one-shot columns {columns / MIB:.0f} MiB")
    for name, seconds in medians.items():
        print(f"{name:>16}: {seconds * 1e3:7.2f} ms   {medians['pytorch'] / seconds:.2f}x PyTorch")


if __name__ == "__main__":
    main()
