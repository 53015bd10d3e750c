"""The forward of a training step, where the weight changes between two calls: which algorithm is
fastest when its transform of the weight is made again on every call (auto's rule 9).

    python benchmarks/changing_weight.py             # ResNet-50's 3x3 layers, batch 1
    python benchmarks/changing_weight.py --batch 8

Per layer, in milliseconds per call: PyTorch's F.conv2d, convlens's auto and each algorithm that
runs the layer (Winograd, gemm, im2col), every one called with gradients recorded (the input and
the weight require them, as in a train step's forward) and with the weight negated in place
before each call (an optimizer step: new values, a new version), so that Winograd's U and
gemm.c's rows are made again on every call. Timed interleaved in one process; the positions
column is N*H_out*W_out, the quantity rule 9 reads.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import convlens
from convlens.benchmark.report import cpu_name
from convlens.benchmark.timing import interleaved_medians

LAYERS = ((64, 56, 1), (128, 28, 1), (256, 14, 1), (512, 7, 1), (128, 56, 2), (256, 28, 2), (512, 14, 2))
NAMES = ("pytorch", "auto", "winograd", "gemm", "im2col")


def layer_times(channels: int, size: int, stride: int, batch: int) -> dict[str, float]:
    """Milliseconds per call of each way that runs ResNet-50's 3x3 layer (channels, input size, stride)."""
    torch.manual_seed(0)
    x = torch.randn(batch, channels, size, size, requires_grad=True)
    weight = torch.nn.Parameter(torch.randn(channels, channels, 3, 3) / (9 * channels) ** 0.5)

    def step() -> None:  # an optimizer step between two forwards: new values, a new version
        with torch.no_grad():
            weight.neg_()

    def by(name: str):
        if name == "pytorch":
            return lambda: (step(), F.conv2d(x, weight, stride=stride, padding=1))
        return lambda: (step(), convlens.conv2d(x, weight, stride=stride, padding=1, algorithm=name))

    runs = {name: by(name) for name in NAMES if name in ("pytorch", "auto") or runs_layer(name, x, weight, stride)}
    return {name: seconds * 1e3 for name, seconds in interleaved_medians(runs, 3, 0.2).items()}


def runs_layer(name: str, x: torch.Tensor, weight: torch.Tensor, stride: int) -> bool:
    spec = convlens.spec.ConvSpec.from_args(x, weight, None, stride, 1)
    return convlens.algos.get(name).supports(spec) is None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; forward with gradients recorded, the weight "
          f"changing before every call; ms per call, batch {args.batch}")  # fmt: skip
    print(f"{'layer':>22} {'positions':>10} " + " ".join(f"{name:>9}" for name in NAMES) + "  auto picks")
    for channels, size, stride in LAYERS:
        ms = layer_times(channels, size, stride, args.batch)
        out = (size - 1) // stride + 1
        x = torch.empty(args.batch, channels, size, size)
        weight = torch.empty(channels, channels, 3, 3)
        picked = convlens.explain_choice(x, weight, None, stride, 1, weight_changes=True).algorithm
        cells = " ".join(f"{ms[name]:9.2f}" if name in ms else f"{'-':>9}" for name in NAMES)
        label = f"{channels}->{channels} @{size}x{size} s{stride}"
        print(f"{label:>22} {args.batch * out * out:10d} {cells}  {picked}", flush=True)


if __name__ == "__main__":
    main()
