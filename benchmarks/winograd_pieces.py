"""How the size of Winograd's pieces changes its speed (the reason for ``winograd.pieces``).

    python benchmarks/winograd_pieces.py                # ResNet-50's 3x3 stride-1 layers, batch 8

Times convlens's Winograd F(4x4, 3x3) with pieces of at least 1, 4 and 16 MiB of tiles and with
the whole batch in one piece, interleaved with F.conv2d in one process; prints the ratio to PyTorch.
Each piece reads all of the transformed weight U, so a piece is never smaller than U whatever the
setting (except "whole batch", which is one piece). With ``--fresh`` the intermediates are
allocated afresh on every call instead of living in the kept scratch buffers.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import convlens
from convlens.algos import winograd
from convlens.algos.scratch import Scratch
from convlens.benchmark.timing import interleaved_medians

MIB = 1024**2
LAYERS = ((64, 56), (128, 28), (256, 14), (512, 7))  # (channels, size) of ResNet-50's 3x3 stride-1 layers


class FreshScratch(Scratch):
    """Hands out a new tensor on every take: what the algorithm would cost without kept buffers."""

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, device=device)


def speedups(channels: int, size: int, batch: int, pieces_mib: list[int]) -> tuple[float, dict[str, float]]:
    """PyTorch's ms and Winograd's speedup over it for each piece size, measured interleaved."""
    torch.manual_seed(0)
    x = torch.randn(batch, channels, size, size)
    w = torch.randn(channels, channels, 3, 3) / (9 * channels) ** 0.5
    default = winograd.PIECE_BYTES

    def run(piece_bytes: int) -> torch.Tensor:
        winograd.PIECE_BYTES = piece_bytes
        try:
            return convlens.conv2d(x, w, padding=1, algorithm="winograd")
        finally:
            winograd.PIECE_BYTES = default

    candidates = {"pytorch": lambda: F.conv2d(x, w, padding=1)}
    for mib in pieces_mib:
        candidates[f">={mib} MiB"] = lambda mib=mib: run(mib * MIB)
    candidates["whole batch"] = lambda: run(1 << 50)
    with torch.no_grad():
        medians = interleaved_medians(candidates, rounds=3, min_run_time=0.2)
    pytorch = medians.pop("pytorch")
    return pytorch * 1e3, {name: pytorch / seconds for name, seconds in medians.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--pieces-mib", default="1,4,16")
    parser.add_argument("--fresh", action="store_true", help="allocate the intermediates on every call")
    args = parser.parse_args()
    if args.fresh:
        winograd.SCRATCH = FreshScratch()
    convlens.set_precision("high")
    print("speedup over PyTorch, Winograd F(4x4, 3x3), by piece size")
    for channels, size in LAYERS:
        pytorch_ms, speedup = speedups(channels, size, args.batch, [int(v) for v in args.pieces_mib.split(",")])
        text = "  ".join(f"{name} {value:.2f}x" for name, value in speedup.items())
        print(f"{channels}->{channels} 3x3 @{size}x{size}: PyTorch {pytorch_ms:.2f} ms  {text}", flush=True)


if __name__ == "__main__":
    main()
