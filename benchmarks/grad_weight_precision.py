"""The weight gradient's error against float64, and what its runs of positions cost.

grad_weight = grad_rows @ cols^T contracts over every window position of every image
(P = N * H_out * W_out). convlens takes that sum in runs of ``POSITIONS_PER_SUM`` positions and adds
the partial products (autograd/products.py, ``sum_over_positions``); the alternative is one matrix
product over all P. For each layer this prints the largest error of dLoss/d weight against float64
(over three seeds) for PyTorch, convlens and the one product, and the time of the weight gradient
(``torch.autograd.grad(out, weight)``) of both ways over PyTorch's, interleaved in one process.

    python benchmarks/grad_weight_precision.py                     # the issue's 1x1 layer, ResNet-50 at batch 8
    python benchmarks/grad_weight_precision.py --suites none       # the 1x1 layer only (NCHW and channels-last)
    python benchmarks/grad_weight_precision.py --channels-last     # ResNet-50's layers channels-last
"""

from __future__ import annotations

import argparse
import platform
from unittest import mock

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import track
from rich.table import Table

import convlens
from convlens.autograd import products
from convlens.benchmark.suites import Layer, suite
from convlens.benchmark.timing import geomean, interleaved_medians

ONE_PRODUCT = mock.patch.object(products, "POSITIONS_PER_SUM", 2**62)  # every run is all of P: one product
ISSUE_LAYER = Layer("issue-16", "1x1", 8, 8, (32, 32), (1, 1), (1, 1), (0, 0), (1, 1), 1)


def weight_grad(conv, x: torch.Tensor, w: torch.Tensor, options: dict, grad_output: torch.Tensor) -> torch.Tensor:
    leaf = w.detach().requires_grad_()
    (grad,) = torch.autograd.grad(conv(x, leaf, **options), leaf, grad_output)
    return grad


def errors(layer: Layer, batch: int, layout: torch.memory_format) -> dict[str, float]:
    """The largest |grad_weight - float64 truth| over three seeds, per way."""
    worst = {"pytorch": 0.0, "convlens": 0.0, "one product": 0.0}
    for seed in range(3):
        x, w, _ = layer.tensors(batch, seed=seed)
        x = x.contiguous(memory_format=layout)
        generator = torch.Generator().manual_seed(100 + seed)
        grad_output = torch.randn((batch, layer.out_channels, *layer.spec(batch).out_size), generator=generator)
        truth = weight_grad(F.conv2d, x.double(), w.double(), layer.options, grad_output.double())
        found = {"pytorch": weight_grad(F.conv2d, x, w, layer.options, grad_output)}
        found["convlens"] = weight_grad(convlens.conv2d, x, w, layer.options, grad_output)
        with ONE_PRODUCT:
            found["one product"] = weight_grad(convlens.conv2d, x, w, layer.options, grad_output)
        for name, grad in found.items():
            worst[name] = max(worst[name], (grad.double() - truth).abs().max().item())
    return worst


def times(layer: Layer, batch: int, layout: torch.memory_format, rounds: int) -> dict[str, float]:
    """Median seconds of the weight gradient alone, per way, interleaved."""
    x, w, _ = layer.tensors(batch)
    x = x.contiguous(memory_format=layout)
    leaf = w.detach().requires_grad_()
    ours, theirs = convlens.conv2d(x, leaf, **layer.options), F.conv2d(x, leaf, **layer.options)
    grad_output = torch.randn(theirs.shape)

    def one_product() -> object:
        with ONE_PRODUCT:
            return torch.autograd.grad(ours, leaf, grad_output, retain_graph=True)

    candidates = {
        "pytorch": lambda: torch.autograd.grad(theirs, leaf, grad_output, retain_graph=True),
        "convlens": lambda: torch.autograd.grad(ours, leaf, grad_output, retain_graph=True),
        "one product": one_product,
    }
    return interleaved_medians(candidates, rounds=rounds, min_run_time=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", default="resnet50", help="comma-separated suites, or none")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--channels-last", action="store_true", help="the suites' inputs channels-last")
    args = parser.parse_args()
    suite_layout = torch.channels_last if args.channels_last else torch.contiguous_format
    jobs = [(ISSUE_LAYER, 4, torch.contiguous_format), (ISSUE_LAYER, 4, torch.channels_last)]
    for name in [] if args.suites == "none" else args.suites.split(","):
        jobs += [(layer, args.batch, suite_layout) for layer in suite(name)]
    title = (f"dLoss/d weight: max |error| vs float64 (3 seeds) and speed over PyTorch's, "
             f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}")  # fmt: skip
    table = Table(title=title)
    columns = ("layer", "N", "P", "PyTorch err", "convlens err", "one product err", "convlens x", "one product x")
    for column in columns:
        table.add_column(column, justify="left" if column == "layer" else "right")
    ratios: dict[str, list[float]] = {"convlens": [], "one product": []}
    for layer, batch, layout in track(jobs, description="measuring"):
        error = errors(layer, batch, layout)
        seconds = times(layer, batch, layout, args.rounds)
        for name in ratios:
            ratios[name].append(seconds["pytorch"] / seconds[name])
        spec = layer.spec(batch)
        positions = batch * spec.out_size[0] * spec.out_size[1]
        table.add_row(
            f"{layer.suite} {layer.label}" + (" CL" if layout == torch.channels_last else ""),
            str(batch),
            str(positions),
            *(f"{error[name]:.2e}" for name in ("pytorch", "convlens", "one product")),
            *(f"{ratios[name][-1]:.2f}" for name in ("convlens", "one product")),
        )
    Console().print(table)
    print(
        "geomean speed over PyTorch's weight gradient: "
        + ", ".join(f"{k} {geomean(v):.2f}x" for k, v in ratios.items())
    )


if __name__ == "__main__":
    main()
