"""Should auto run a stride-1 transposed convolution as the ordinary convolution it equals (the
kernel turned, so conv2d's fast algorithms serve it)? Measured here against the route convlens
takes, the input gradient of a convolution (col2im of W_row^T @ X: conv_transpose2d's auto is the
shared backward's pick, "input gradient, auto"), and PyTorch's own F.conv_transpose2d,
interleaved in one process. The turned kernel is a new tensor: made in each call, as
conv_transpose2d would have to, the transformed-weight caches of Winograd and FFT miss every
time; made once, what a cache of turned kernels would give.

    python benchmarks/transposed_routes.py [--batch 8]

Layers: ResNet-50's 3x3 widths (64@56, 128@28, 256@14) and a 5x5 at 56x56, stride 1, padding k//2.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import convlens
from convlens.benchmark.timing import interleaved_medians

LAYERS = ((64, 56, 3), (128, 28, 3), (256, 14, 3), (64, 56, 5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"speed over F.conv_transpose2d (x), batch {args.batch}, {torch.get_num_threads()} threads")
    for channels, size, kernel in LAYERS:
        x = torch.randn(args.batch, channels, size, size)
        w = torch.randn(channels, channels, kernel, kernel) / (channels * kernel * kernel) ** 0.5
        report(x, w, kernel // 2, f"{channels}@{size} {kernel}x{kernel}")


def report(x: torch.Tensor, w: torch.Tensor, padding: int, label: str) -> None:
    size = [x.shape[0], w.shape[1], *(n + w.shape[-1] - 1 - 2 * padding for n in x.shape[2:])]

    def turned() -> torch.Tensor:
        return convlens.conv2d(x, w.transpose(0, 1).flip(-2, -1), padding=w.shape[-1] - 1 - padding)

    turned_once = w.transpose(0, 1).flip(-2, -1).contiguous()
    runs = {
        "pytorch": lambda: F.conv_transpose2d(x, w, padding=padding),
        "input gradient, im2col": lambda: convlens.grad.conv2d_input(size, w, x, padding=padding, algorithm="im2col"),
        "input gradient, auto": lambda: convlens.conv_transpose2d(x, w, padding=padding),
        "turned per call, conv2d auto": turned,
        "turned once, conv2d auto": lambda: convlens.conv2d(x, turned_once, padding=w.shape[-1] - 1 - padding),
    }
    for name, run in runs.items():  # each route gives PyTorch's values
        torch.testing.assert_close(run(), runs["pytorch"](), rtol=1e-3, atol=1e-3, msg=name)
    with torch.no_grad():
        medians = interleaved_medians(runs, rounds=3, min_run_time=0.2)
    speeds = ", ".join(f"{name} {medians['pytorch'] / seconds:.2f}x" for name, seconds in medians.items())
    print(f"{label}: PyTorch {medians['pytorch'] * 1e3:.1f} ms; {speeds}")


if __name__ == "__main__":
    main()
