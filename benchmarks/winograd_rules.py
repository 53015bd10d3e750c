"""Winograd's two size rules, each against its alternative, in one process: the figures behind them.

    python benchmarks/winograd_rules.py                 # ResNet-50's 3x3 stride-1 layers, batch 1 and 8

- Tile size (``winograd.plan.tile_size``): F(2x2) below MIN_TILES = 32 F(4x4) tiles over the
  batch, at precision "high". Timed: the rule's choice, F(4x4) forced, and F(2x2) (precision
  "highest", which always uses it).
- Output detour (``winograd.plan.output_via_hwc``): an NCHW output whose tiles span at most
  NARROW_WIDTH = 16 columns goes through channels-last scratch and one cropping copy. Timed: the
  rule, and the straight copy everywhere (NARROW_WIDTH = 0), for each tile size.

Columns: "rule" is precision "high" as shipped; "F4" forces F(4x4); "F2" is precision "highest"
(always F(2x2)); "straight" is without the output detour. Speed is PyTorch's F.conv2d time over
the candidate's, all candidates of a layer interleaved (median of repeats,
``torch.utils.benchmark``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import track
from rich.table import Table

import convlens
from convlens.algos.winograd import plan
from convlens.benchmark.timing import interleaved_medians, with_attributes

LAYERS = ((64, 56), (128, 28), (256, 14), (512, 7), (512, 14))  # (channels, size); the last is VGG-16's


def patched(call: Callable[[], object], precision: str, **constants: int) -> Callable[[], object]:
    """``call`` at ``precision`` with the Winograd plan's constants set to ``constants``."""
    with_constants = with_attributes(call, plan, **constants)

    def run() -> object:
        convlens.set_precision(precision)
        return with_constants()

    return run


def layer_speeds(
    channels: int, size: int, batch: int, candidates: dict[str, tuple[str, dict[str, int]]], rounds: int, seconds: float
) -> list[str]:
    """PyTorch's time over each candidate's, for one layer, all interleaved."""
    torch.manual_seed(0)
    x = torch.randn(batch, channels, size, size)
    w = torch.randn(channels, channels, 3, 3) / (9 * channels) ** 0.5

    def ours() -> torch.Tensor:
        return convlens.conv2d(x, w, padding=1, algorithm="winograd")

    calls = {"pytorch": lambda: F.conv2d(x, w, padding=1)}
    calls |= {name: patched(ours, precision, **constants) for name, (precision, constants) in candidates.items()}
    with torch.no_grad():
        for call in calls.values():
            call()  # warm up: transform caches, scratch buffers
        medians = interleaved_medians(calls, rounds=rounds, min_run_time=seconds)
    return [f"{medians['pytorch'] / medians[name]:.2f}x" for name in candidates]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=0.2)
    args = parser.parse_args()
    always = 0
    candidates = {  # name: (precision, constants)
        "rule": ("high", {}),
        "F4": ("high", {"MIN_TILES": always}),
        "F4 straight": ("high", {"MIN_TILES": always, "NARROW_WIDTH": 0}),
        "F2": ("highest", {}),
        "F2 straight": ("highest", {"NARROW_WIDTH": 0}),
    }
    table = Table(title=f"Winograd's size rules, speed over PyTorch, fp32, {torch.get_num_threads()} threads")
    for column in ("layer", "N", "F(4x4) tiles", *candidates):
        table.add_column(column, justify="left" if column == "layer" else "right", no_wrap=column == "layer")
    runs = [(channels, size, int(batch)) for batch in args.batch.split(",") for channels, size in LAYERS]
    for channels, size, batch in track(runs, description="timing layers"):
        speeds = layer_speeds(channels, size, batch, candidates, args.rounds, args.min_run_time)
        tiles_across = -(-size // 4)  # F(4x4) tiles per row, ceil(size / 4)
        tiles = batch * tiles_across * tiles_across
        table.add_row(f"{channels}->{channels} @{size}x{size}", str(batch), str(tiles), *speeds)
    convlens.set_precision("highest")
    Console().print(table)


if __name__ == "__main__":
    main()
