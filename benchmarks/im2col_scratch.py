"""What im2col's kept scratch buffer is worth (the reason for ``im2col.SCRATCH``).

    python benchmarks/im2col_scratch.py                 # ResNet-50's layers whose columns are copied, batch 8

Times convlens's im2col with its columns (and folded products) in the buffer kept between calls,
and with a fresh tensor for them on every call, interleaved with F.conv2d in one process; prints
the ratio to PyTorch per layer and the geometric mean. Layers whose columns are a view of the
input (1x1, stride 1) use no buffer and are left out.
"""

from __future__ import annotations

import argparse
from unittest import mock

import torch
import torch.nn.functional as F

import convlens
from convlens.algos import im2col
from convlens.algos.scratch import FreshScratch
from convlens.benchmark.suites import Layer, suite
from convlens.benchmark.timing import geomean, speedups_over


def speedups(layer: Layer, batch: int) -> tuple[float, dict[str, float]]:
    """PyTorch's ms and im2col's speedup over it with kept and with fresh buffers, measured interleaved."""
    x, w, b = layer.tensors(batch)
    options = layer.options
    fresh = FreshScratch()

    def run(scratch: object) -> torch.Tensor:
        with mock.patch.object(im2col, "SCRATCH", scratch):
            return convlens.conv2d(x, w, b, **options, algorithm="im2col")

    candidates = {
        "pytorch": lambda: F.conv2d(x, w, b, **options),
        "kept": lambda: run(im2col.SCRATCH),
        "fresh": lambda: run(fresh),
    }
    return speedups_over("pytorch", candidates, rounds=3, min_run_time=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="resnet50")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    layers = [layer for layer in suite(args.suite) if not im2col.columns_are_input(layer.spec(args.batch))]
    print(f"speedup over PyTorch, convlens im2col, kept against fresh buffers, batch {args.batch}")
    results: dict[str, list[float]] = {"kept": [], "fresh": []}
    for layer in layers:
        pytorch_ms, speedup = speedups(layer, args.batch)
        for name, value in speedup.items():
            results[name].append(value)
        text = f"kept {speedup['kept']:.2f}x  fresh {speedup['fresh']:.2f}x"
        print(f"{layer.label:<28} PyTorch {pytorch_ms:6.2f} ms  {text}", flush=True)
    print(f"geometric mean: kept {geomean(results['kept']):.2f}x  fresh {geomean(results['fresh']):.2f}x")


if __name__ == "__main__":
    main()
