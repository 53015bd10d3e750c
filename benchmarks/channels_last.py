"""convlens on channels-last tensors, as a model converted with ``.to(memory_format=torch.channels_last)`` runs.

    python benchmarks/channels_last.py                  # every unique ResNet-50 layer, batch 8
    python benchmarks/channels_last.py --suite mobilenet_v2 --batch 1

Input and weight in channels-last memory order; times convlens auto and im2col against F.conv2d
(PyTorch's own channels-last kernel), interleaved in one process, precision "high"; prints the
speedup per layer and the geometric mean.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import convlens
from convlens.benchmark.suites import Layer, suite
from convlens.benchmark.timing import geomean, speedups_over

NAMES = ("auto", "im2col")


def speedups(layer: Layer, batch: int) -> tuple[float, dict[str, float]]:
    """PyTorch's ms and each convlens candidate's speedup over it, channels-last, measured interleaved."""
    x, w, b = (t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t for t in layer.tensors(batch))
    options = layer.options
    candidates = {"pytorch": lambda: F.conv2d(x, w, b, **options)}
    for name in NAMES:
        candidates[name] = lambda name=name: convlens.conv2d(x, w, b, **options, algorithm=name)
    return speedups_over("pytorch", candidates, rounds=3, min_run_time=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="resnet50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="only the first N layers")
    args = parser.parse_args()
    convlens.set_precision("high")
    results: dict[str, list[float]] = {name: [] for name in NAMES}
    print(f"speedup over PyTorch, channels-last input and weight, batch {args.batch}")
    for layer in suite(args.suite)[: args.limit]:
        pytorch_ms, speedup = speedups(layer, args.batch)
        for name in NAMES:
            results[name].append(speedup[name])
        text = "  ".join(f"{name} {speedup[name]:.2f}x" for name in NAMES)
        print(f"{layer.label:<28} PyTorch {pytorch_ms:6.2f} ms  {text}", flush=True)
    print("geometric mean: " + "  ".join(f"{name} {geomean(values):.2f}x" for name, values in results.items()))


if __name__ == "__main__":
    main()
