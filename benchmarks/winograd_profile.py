"""Where Winograd's time goes: milliseconds per call by stage, next to PyTorch's whole conv.

    python benchmarks/winograd_profile.py               # ResNet-50's 3x3 stride-1 layers, batch 8
    python benchmarks/winograd_profile.py --precision highest   # F(2x2, 3x3)

Profiles ``convlens.conv2d(..., algorithm="winograd")`` (F(4x4, 3x3) by default) with ``torch.profiler`` and
groups the operations it runs into the algorithm's stages: copies (the channels-last input with
its zero padding written in, the tile gather, the output), transforms (``mm``/``addmm``: input and
output transforms), products (``bmm``) and the weight-cache check (``equal``); "other" is
everything else (Python, views, allocation). The profiler adds a little time of its own, so the
stages sum to a bit more than an unprofiled call.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
import torch.nn.functional as F

import convlens
from convlens.benchmark.timing import interleaved_medians

LAYERS = ((64, 56), (128, 28), (256, 14), (512, 7))  # (channels, size) of ResNet-50's 3x3 stride-1 layers
STAGES = {
    "aten::copy_": "copies",
    "aten::fill_": "copies",
    "aten::mm": "transforms",
    "aten::addmm": "transforms",
    "aten::bmm": "products",
    "aten::equal": "cache check",
}


def stage_milliseconds(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, calls: int) -> dict[str, float]:
    """Self CPU milliseconds per call of each stage, the rest under "other"."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        for _ in range(calls):
            convlens.conv2d(x, w, b, padding=1, algorithm="winograd")
    totals: dict[str, float] = defaultdict(float)
    for event in profile.key_averages():
        totals[STAGES.get(event.key, "other")] += event.self_cpu_time_total / 1e3 / calls
    return dict(totals)


def layer_row(channels: int, size: int, batch: int, calls: int) -> tuple[float, float, dict[str, float]]:
    """(PyTorch ms, convlens Winograd ms, stage ms) for one layer."""
    torch.manual_seed(0)
    x = torch.randn(batch, channels, size, size)
    w = torch.randn(channels, channels, 3, 3) / (9 * channels) ** 0.5
    b = torch.randn(channels)
    candidates = {
        "pytorch": lambda: F.conv2d(x, w, b, padding=1),
        "ours": lambda: convlens.conv2d(x, w, b, padding=1, algorithm="winograd"),
    }
    with torch.no_grad():
        medians = interleaved_medians(candidates, rounds=3, min_run_time=0.2)
        stages = stage_milliseconds(x, w, b, calls)
    return medians["pytorch"] * 1e3, medians["ours"] * 1e3, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument(
        "--precision", choices=["highest", "high"], default="high", help='"highest" profiles F(2x2) (default: F(4x4))'
    )
    args = parser.parse_args()
    convlens.set_precision(args.precision)
    order = ["copies", "transforms", "products", "cache check", "other"]
    header = "  ".join(f"{name:>11}" for name in order)
    print(f"{'layer':>20} {'PyTorch':>8} {'ours':>6}  {header}   (ms per call)")
    for channels, size in LAYERS:
        pytorch_ms, ours_ms, stages = layer_row(channels, size, args.batch, args.calls)
        cells = "  ".join(f"{stages.get(name, 0.0):11.2f}" for name in order)
        print(f"{f'{channels}->{channels} @{size}x{size}':>20} {pytorch_ms:8.2f} {ours_ms:6.2f}  {cells}", flush=True)


if __name__ == "__main__":
    main()
