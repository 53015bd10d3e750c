"""How the size of Winograd's pieces changes its speed (the reason for ``winograd.plan.pieces``).

    python benchmarks/winograd_pieces.py                # ResNet-50's 3x3 stride-1 layers at batch 8,
                                                        # VGG-16's 224x224 and 112x112 ones at batch 1

Times convlens's Winograd F(4x4, 3x3) with its default pieces (16 MiB of whole images; an image
with more than 4 MiB of tiles in 2 MiB bands of tile rows), with pieces of one size, about 1, 2,
4, 8 and 16 MiB of tiles (whole images when one fits, else bands), and with the whole batch in
one piece,
interleaved with F.conv2d in one process; prints the ratio to PyTorch. Each piece reads all of
the transformed weight U, so a piece is never smaller than U whatever the setting (except "whole
batch", which is one piece). With ``--fresh`` the intermediates are allocated afresh on every
call instead of living in the kept scratch buffers.
"""

from __future__ import annotations

import argparse
from unittest import mock

import torch
import torch.nn.functional as F

import convlens
from convlens.algos.scratch import FreshScratch
from convlens.algos.winograd import forward, plan
from convlens.benchmark.timing import speedups_over

MIB = 1024**2
# (in channels, out channels, size, batch): ResNet-50's 3x3 stride-1 layers at batch 8, then VGG-16's
# layers whose one image holds more than 16 MiB of F(4x4) tiles, at batch 1
LAYERS = (
    (64, 64, 56, 8),
    (128, 128, 28, 8),
    (256, 256, 14, 8),
    (512, 512, 7, 8),
    (64, 64, 224, 1),
    (64, 128, 112, 1),
    (128, 128, 112, 1),
)


def speedups(layer: tuple[int, int, int, int], pieces_mib: list[int]) -> tuple[float, dict[str, float]]:
    """PyTorch's ms and Winograd's speedup over it for each piece size, measured interleaved."""
    c_in, c_out, size, batch = layer
    torch.manual_seed(0)
    x = torch.randn(batch, c_in, size, size)
    w = torch.randn(c_out, c_in, 3, 3) / (9 * c_in) ** 0.5

    def run(piece_bytes: int) -> torch.Tensor:
        # one size for all: whole images when one fits in it, else bands of that size
        sizes = dict.fromkeys(("PIECE_BYTES", "LARGE_IMAGE_BYTES", "BAND_BYTES"), piece_bytes)
        with mock.patch.multiple(plan, **sizes):
            return convlens.conv2d(x, w, padding=1, algorithm="winograd")

    candidates = {"pytorch": lambda: F.conv2d(x, w, padding=1)}
    candidates["default"] = lambda: convlens.conv2d(x, w, padding=1, algorithm="winograd")
    for mib in pieces_mib:
        candidates[f"{mib} MiB"] = lambda mib=mib: run(mib * MIB)
    candidates["whole batch"] = lambda: run(1 << 50)
    return speedups_over("pytorch", candidates, rounds=3, min_run_time=0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pieces-mib", default="1,2,4,8,16")
    parser.add_argument("--fresh", action="store_true", help="allocate the intermediates on every call")
    args = parser.parse_args()
    if args.fresh:
        forward.SCRATCH = FreshScratch()
    convlens.set_precision("high")
    print("speedup over PyTorch, Winograd F(4x4, 3x3), by piece size")
    for layer in LAYERS:
        pytorch_ms, speedup = speedups(layer, [int(v) for v in args.pieces_mib.split(",")])
        text = "  ".join(f"{name} {value:.2f}x" for name, value in speedup.items())
        c_in, c_out, size, batch = layer
        print(f"{c_in}->{c_out} 3x3 @{size}x{size} N={batch}: PyTorch {pytorch_ms:.2f} ms  {text}", flush=True)


if __name__ == "__main__":
    main()
