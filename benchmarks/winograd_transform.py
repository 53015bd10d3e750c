"""What Winograd's weight transform costs when it cannot be reused (the weight changed since the
last call, as after every optimizer step), and why U is laid out as it is.

    python benchmarks/winograd_transform.py             # ResNet-50's 3x3 stride-1 layers, batch 8
    python benchmarks/winograd_transform.py --batch 1

Per layer and tile size, in milliseconds: convlens's transform by torch ops
(``winograd.transforms.transform_weight``, in chunks of filters, into a fresh buffer); the same U
made by one product and one transposing copy of the whole of it; U made by one product in the
(t*t, C_out, C_in) layout, which needs no copy; U in the panels the fused pass reads, by those
torch ops then ``native.panels`` ("panels, torch") and by winograd_weight.c into a kept buffer
("panels, C"; "turned, C": the input gradient's U, from the same weight); then the products
M = V @ U of one call with U as convlens keeps it and with that no-copy layout read transposed.
Last, one Winograd forward with an unchanged weight and one whose weight changed since the last
call (the cache rewrites U in place), as speedups over PyTorch's F.conv2d in the same run.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import convlens
from convlens import native
from convlens.algos import winograd
from convlens.algos.winograd import transforms
from convlens.benchmark.report import cpu_name, require_kernels
from convlens.benchmark.timing import interleaved_medians
from convlens.spec import ConvSpec

LAYERS = ((64, 56), (128, 28), (256, 14), (512, 7))  # (channels, size) of ResNet-50's 3x3 stride-1 layers


def one_shot(weight: torch.Tensor, m: int) -> torch.Tensor:
    """U (t*t, C_in, C_out) by one product and one transposing copy of the whole of it."""
    return no_copy(weight, m).transpose(1, 2).contiguous()


def no_copy(weight: torch.Tensor, m: int) -> torch.Tensor:
    """U laid out (t*t, C_out, C_in): one product, no copy."""
    g = winograd.MATRICES[m][1]
    kron_g = torch.kron(g, g).to(weight.dtype)
    return (kron_g @ weight.reshape(-1, 9).t()).view(-1, weight.shape[0], weight.shape[1])


def layer_row(channels: int, size: int, precision: str, m: int, batch: int) -> dict[str, float]:
    """Milliseconds of each candidate on one layer, measured interleaved."""
    torch.manual_seed(0)
    x = torch.randn(batch, channels, size, size)
    weight = torch.randn(channels, channels, 3, 3) / (9 * channels) ** 0.5
    changing = weight.clone()
    convlens.set_precision(precision)
    u, u_t = one_shot(weight, m), no_copy(weight, m)
    tiles = winograd.tile_count(ConvSpec.from_args(x, weight, padding=1))  # with this precision's m
    v = torch.randn((m + 2) ** 2, tiles, channels)
    products = torch.empty_like(v)
    g = winograd.MATRICES[m][1]
    kept = native.winograd_weight(weight, g)

    def changed_forward() -> torch.Tensor:
        changing.add_(1e-3)  # as an optimizer step would: the cached transform is stale
        return convlens.conv2d(x, changing, padding=1, algorithm="winograd")

    candidates = {
        "pytorch": lambda: F.conv2d(x, weight, padding=1),
        "u": lambda: transforms.transform_weight(weight, m, 1, torch.float32),
        "u one shot": lambda: one_shot(weight, m),
        "u no copy": lambda: no_copy(weight, m),
        "panels, torch": lambda: native.panels(transforms.transform_weight(weight, m, 1, torch.float32)[0]),
        "panels, C": lambda: native.winograd_weight(weight, g, out=kept),
        "turned, C": lambda: native.winograd_weight(weight, g, turned=True, out=kept),
        "products": lambda: torch.bmm(v, u, out=products),
        "products no copy": lambda: torch.bmm(v, u_t.transpose(1, 2), out=products),
        "same weight": lambda: convlens.conv2d(x, weight, padding=1, algorithm="winograd"),
        "new weight": changed_forward,
    }
    with torch.no_grad():
        return {name: seconds * 1e3 for name, seconds in interleaved_medians(candidates, 3, 0.2).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    require_kernels()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, batch {args.batch}")
    print("transform and products: ms per call; forward: speedup over PyTorch")
    names = ("u", "u one shot", "u no copy", "panels, torch", "panels, C", "turned, C", "products", "products no copy")
    print(f"{'layer':>16} {'F(m)':>5} " + " ".join(f"{name:>16}" for name in names) + "  fwd, same weight / new weight")
    for channels, size in LAYERS:
        for precision, m in (("highest", 2), ("high", 4)):
            ms = layer_row(channels, size, precision, m, args.batch)
            layer = f"{channels}->{channels} @{size}x{size}"
            cells = " ".join(f"{ms[name]:16.2f}" for name in names)
            speedups = f"{ms['pytorch'] / ms['same weight']:.2f}x / {ms['pytorch'] / ms['new weight']:.2f}x"
            print(f"{layer:>16} {f'F({m})':>5} {cells}  {speedups}", flush=True)


if __name__ == "__main__":
    main()
