"""Whether im2col should fold the batch into the positions (the reason for ``im2col.folds_batch``).

    python benchmarks/im2col_fold.py                    # every unique ResNet-50 layer, batch 8
    python benchmarks/im2col_fold.py --suite vgg16 --batch 1

For each layer, times im2col with one product per image (L = H_out*W_out columns each) and with the
batch folded into one product (N*L columns, plus a transposing copy of the output), interleaved with
F.conv2d in one process; prints the ratio to PyTorch and which one ``folds_batch`` picks.
"""

from __future__ import annotations

import argparse
from unittest import mock

import torch
import torch.nn.functional as F

import convlens
from convlens.algos import im2col
from convlens.benchmark.suites import Layer, suite
from convlens.benchmark.timing import interleaved_medians


def speedups(layer: Layer, batch: int) -> dict[str, float]:
    """Speedup over F.conv2d of im2col per image and folded, measured interleaved."""
    x, w, b = layer.tensors(batch)

    def run(fold: bool) -> torch.Tensor:
        with mock.patch.object(im2col, "folds_batch", lambda spec: fold):
            return convlens.conv2d(x, w, b, **layer.options, algorithm="im2col")

    candidates = {
        "pytorch": lambda: F.conv2d(x, w, b, **layer.options),
        "per image": lambda: run(False),
        "folded": lambda: run(True),
    }
    with torch.no_grad():
        medians = interleaved_medians(candidates, rounds=2, min_run_time=0.1)
    return {name: medians["pytorch"] / seconds for name, seconds in medians.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="resnet50")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    print(f"{'layer':>28} {'L':>6}  per image  folded  rule picks")
    for layer in suite(args.suite):
        spec = layer.spec(args.batch)
        speedup = speedups(layer, args.batch)
        positions = spec.out_size[0] * spec.out_size[1]
        picks = "folded" if im2col.folds_batch(spec) else "per image"
        print(f"{layer.label:>28} {positions:>6}  {speedup['per image']:8.2f}x {speedup['folded']:6.2f}x  {picks}")


if __name__ == "__main__":
    main()
