"""What Winograd's weight transform costs when it cannot be cached (the weight changes every call,
as in training, or the backward's turned weight is new every call).

    python benchmarks/winograd_transform.py             # ResNet-50's 3x3 stride-1 layers, batch 8

Prints, per layer and tile size: the transform U = G g G^T alone, laid out as convlens keeps it
(t*t, C_out, C_in), and laid out (t*t, C_in, C_out) by a transposing copy (the layout convlens used
before); then one Winograd forward whose weight changed since the last call (so the cache misses
and U is recomputed) next to one with an unchanged weight, as ratios to PyTorch's F.conv2d
measured in the same run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import convlens
from convlens.algos import winograd
from convlens.benchmark.timing import interleaved_medians

LAYERS = ((64, 56), (128, 28), (256, 14), (512, 7))  # (channels, size) of ResNet-50's 3x3 stride-1 layers


def transposed_layout(weight: torch.Tensor, m: int) -> torch.Tensor:
    """U as (t*t, C_in, C_out) through a transposing copy: the layout convlens used before."""
    return winograd.transform_weight(weight, m, 1, weight.dtype)[0].transpose(1, 2).contiguous()


def layer_row(channels: int, size: int, precision: str, m: int) -> dict[str, float]:
    """Milliseconds of each candidate on one layer, measured interleaved."""
    torch.manual_seed(0)
    x = torch.randn(8, channels, size, size)
    weight = torch.randn(channels, channels, 3, 3) / (9 * channels) ** 0.5
    changing = weight.clone()
    convlens.set_precision(precision)

    def changed_forward() -> torch.Tensor:
        changing.add_(1e-3)  # as an optimizer step would: the cached transform is stale
        return convlens.conv2d(x, changing, padding=1, algorithm="winograd")

    candidates = {
        "pytorch": lambda: F.conv2d(x, weight, padding=1),
        "u": lambda: winograd.transform_weight(weight, m, 1, torch.float32),
        "u transposed": lambda: transposed_layout(weight, m),
        "same weight": lambda: convlens.conv2d(x, weight, padding=1, algorithm="winograd"),
        "new weight": changed_forward,
    }
    with torch.no_grad():
        return {name: seconds * 1e3 for name, seconds in interleaved_medians(candidates, 3, 0.2).items()}


def main() -> None:
    print("ms per call; forward columns: speedup over PyTorch")
    print(f"{'layer':>16} {'F(m)':>5} {'U':>7} {'U transposed':>13} {'fwd, same weight':>17} {'fwd, new weight':>16}")
    for channels, size in LAYERS:
        for precision, m in (("highest", 2), ("high", 4)):
            ms = layer_row(channels, size, precision, m)
            layer = f"{channels}->{channels} @{size}x{size}"
            print(
                f"{layer:>16} {f'F({m})':>5} {ms['u']:7.2f} {ms['u transposed']:13.2f}"
                f" {ms['pytorch'] / ms['same weight']:16.2f}x {ms['pytorch'] / ms['new weight']:15.2f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
