"""Backward time of convlens against PyTorch on every conv layer of a suite (CPU, fp32).

    python benchmarks/backward.py                   # batch 8, all 23 unique ResNet-50 layers
    python benchmarks/backward.py --batch 2 --rounds 2 --limit 5
    python benchmarks/backward.py --fresh           # im2col's columns in fresh tensors, not its kept buffer
    python benchmarks/backward.py --channels-last   # input and weight channels-last
    python benchmarks/backward.py --suite mobilenet_v2
    python benchmarks/backward.py --precision high  # Winograd F(4x4) allowed (forward and gradients)
    python benchmarks/backward.py --compare-weight-grad   # also: grad_weight by the im2col product everywhere

Times one backward (grad of input, weight and bias for a fixed grad_output), convlens's shared
backward (convlens/autograd/) against PyTorch's, interleaved in one process; ratio = convlens
time / PyTorch time (below 1 is faster). Prints a table and the geometric mean. With
--compare-weight-grad, a third candidate in the same rounds: the same backward with grad_weight
by the im2col product on every layer, as before ``algos/winograd_grad.py`` (which the backward
uses where auto picks Winograd for the forward).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import track
from rich.table import Table

import convlens
from convlens.algos import im2col
from convlens.algos.scratch import FreshScratch
from convlens.autograd import function
from convlens.benchmark.suites import suite
from convlens.benchmark.timing import geomean, interleaved_medians, with_attributes


def backward_call(forward, x, w, b):
    x, w, b = (t.detach().requires_grad_() for t in (x, w, b))
    out = forward(x, w, b)
    grad_output = torch.randn_like(out)
    return lambda: torch.autograd.grad(out, (x, w, b), grad_output, retain_graph=True)


def with_im2col_weight_grad(call):
    """``call`` with the backward's Winograd weight gradient switched off (grad_weight by im2col)."""
    return with_attributes(call, function, grad_weight_by_winograd=lambda *args: None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="resnet50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=0.2)
    parser.add_argument("--limit", type=int, default=None, help="only the first N layers")
    parser.add_argument("--fresh", action="store_true", help="im2col's columns in fresh tensors on every call")
    parser.add_argument("--channels-last", action="store_true", help="input, weight (and so gradients) channels-last")
    parser.add_argument("--precision", choices=["highest", "high"], default="highest")
    parser.add_argument("--compare-weight-grad", action="store_true", help="also time grad_weight by im2col everywhere")
    args = parser.parse_args()
    convlens.set_precision(args.precision)
    if args.fresh:
        im2col.SCRATCH = FreshScratch()

    layers = suite(args.suite)[: args.limit]
    layout = ", channels-last" if args.channels_last else ""
    table = Table(
        title=f"{args.suite} conv layers, backward, batch {args.batch}{layout}, precision {args.precision!r}, fp32, "
        f"{torch.get_num_threads()} threads"
    )
    columns = ["layer", "count", "PyTorch ms", "convlens ms", "ratio"]
    if args.compare_weight_grad:
        columns.append("ratio, grad_weight by im2col")
    for column in columns:
        table.add_column(column, justify="left" if column == "layer" else "right", no_wrap=column == "layer")
    ratios, im2col_ratios = [], []
    for layer in track(layers, description="timing backward"):
        x, w, b = layer.tensors(args.batch)
        if args.channels_last:
            x, w = (t.contiguous(memory_format=torch.channels_last) for t in (x, w))
        options = layer.options
        candidates = {
            "torch": backward_call(lambda x, w, b, o=options: F.conv2d(x, w, b, **o), x, w, b),
            "convlens": backward_call(lambda x, w, b, o=options: convlens.conv2d(x, w, b, **o), x, w, b),
        }
        if args.compare_weight_grad:
            candidates["im2col grad_weight"] = with_im2col_weight_grad(candidates["convlens"])
        medians = interleaved_medians(candidates, args.rounds, args.min_run_time)
        ratio = medians["convlens"] / medians["torch"]
        ratios.append(ratio)
        row = [layer.label, str(layer.count), f"{medians['torch'] * 1e3:.2f}", f"{medians['convlens'] * 1e3:.2f}"]
        row.append(f"{ratio:.2f}x")
        if args.compare_weight_grad:
            im2col_ratios.append(medians["im2col grad_weight"] / medians["torch"])
            row.append(f"{im2col_ratios[-1]:.2f}x")
        table.add_row(*row)
    console = Console()
    console.print(table)
    console.print(f"geomean ratio (convlens / PyTorch): {geomean(ratios):.2f}x; worst {max(ratios):.2f}x")
    if args.compare_weight_grad:
        console.print(
            f"with grad_weight by im2col everywhere: {geomean(im2col_ratios):.2f}x; worst {max(im2col_ratios):.2f}x"
        )


if __name__ == "__main__":
    main()
