"""How the size of the depthwise path's channel pieces changes its speed (the reason for
``depthwise.PIECE_BYTES``).

    python benchmarks/depthwise_pieces.py               # MobileNetV2's depthwise layers, batch 1 and 8

Times convlens's depthwise algorithm with pieces of channels whose output planes hold 256 KiB,
1 MiB and 4 MiB, and with every channel in one piece (the algorithm before pieces), interleaved
with F.conv2d in one process; prints the ratio to PyTorch per layer and the geometric mean.
"""

from __future__ import annotations

import argparse
import math
from unittest import mock

import torch
import torch.nn.functional as F

import convlens
from convlens.algos import depthwise
from convlens.benchmark.suites import Layer, suite
from convlens.benchmark.timing import speedups_over

KIB = 1024


def speedups(layer: Layer, batch: int, pieces_kib: list[int]) -> tuple[float, dict[str, float]]:
    """PyTorch's ms and the depthwise path's speedup over it for each piece size, measured interleaved."""
    x, w, b = layer.tensors(batch)
    options = layer.options

    def run(piece_bytes: int) -> torch.Tensor:
        with mock.patch.object(depthwise, "PIECE_BYTES", piece_bytes):
            return convlens.conv2d(x, w, b, **options, algorithm="depthwise")

    candidates = {"pytorch": lambda: F.conv2d(x, w, b, **options)}
    for kib in pieces_kib:
        candidates[f"{kib} KiB"] = lambda kib=kib: run(kib * KIB)
    candidates["one piece"] = lambda: run(1 << 50)
    return speedups_over("pytorch", candidates, rounds=3, min_run_time=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--pieces-kib", default="256,1024,4096")
    args = parser.parse_args()
    layers = [layer for layer in suite("mobilenet_v2") if layer.spec(1).is_depthwise]
    pieces = [int(value) for value in args.pieces_kib.split(",")]
    print("speedup over PyTorch, convlens depthwise, by piece size")
    for batch in (int(value) for value in args.batch.split(",")):
        logs: dict[str, list[float]] = {}
        for layer in layers:
            pytorch_ms, speedup = speedups(layer, batch, pieces)
            text = "  ".join(f"{name} {value:.2f}x" for name, value in speedup.items())
            print(f"N={batch} {layer.label:<28} PyTorch {pytorch_ms:6.2f} ms  {text}", flush=True)
            for name, value in speedup.items():
                logs.setdefault(name, []).append(math.log(value))
        means = "  ".join(f"{name} {math.exp(sum(v) / len(v)):.2f}x" for name, v in logs.items())
        print(f"N={batch} geometric mean: {means}", flush=True)


if __name__ == "__main__":
    main()
