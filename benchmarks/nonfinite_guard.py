"""What auto's NaN/Inf guard costs: every layer where auto picks a value-mixing algorithm (Winograd,
FFT, banded), timed as auto runs it (the algorithm's own check where it has one, ``checked_forward``:
the fused Winograd's output pass looks at each value it writes; else one sum over its output) and
with the sum in every case, against the bare algorithm, interleaved in one process.

    python benchmarks/nonfinite_guard.py                      # ResNet-50, ConvNeXt-T, AlexNet; batch 1 and 8

Columns: the layer, N, the algorithm auto picks, PyTorch's time, the bare algorithm's and the
guarded one's speed over PyTorch, and the guard's cost as a % of the bare algorithm's time, as auto
runs it and with the sum.
"""

from __future__ import annotations

import argparse
import platform
from dataclasses import replace

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import track
from rich.table import Table

import convlens
from convlens.algos.auto import choose, finite_guarded
from convlens.benchmark.suites import suite
from convlens.benchmark.timing import geomean, interleaved_medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suites", default="resnet50,convnext_tiny,alexnet")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--precision", default="high", choices=("highest", "high"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    convlens.set_precision(args.precision)
    workspace = convlens.get_workspace_limit()
    jobs = []
    for name in args.suites.split(","):
        for batch in (int(b) for b in args.batch.split(",")):
            seen = set()
            for layer in suite(name):
                spec = replace(layer.spec(batch), device=torch.device("cpu"))  # the compiled kernels take CPU specs
                picked = choose(spec).algorithm
                if picked.mixes_values and (layer.label, batch) not in seen:
                    seen.add((layer.label, batch))
                    jobs.append((name, layer, batch, picked))
    table = Table(title=f"auto's NaN/Inf guard, precision {args.precision}, {torch.get_num_threads()} threads, "
                        f"{platform.processor() or platform.machine()}")  # fmt: skip
    for column in ("layer", "N", "algorithm", "PyTorch ms", "bare x", "guarded x", "guard cost %", "sum cost %"):
        table.add_column(column, justify="left" if column in ("layer", "algorithm") else "right")
    costs, sum_costs = [], []
    for name, layer, batch, picked in track(jobs, description="timing"):
        x, w, b = layer.tensors(batch)
        spec = replace(layer.spec(batch), device=x.device)  # a meta spec would keep the compiled kernels out
        bare, guarded = picked, finite_guarded(picked)
        summed = finite_guarded(replace(picked, checked_forward=None))
        candidates = {
            "pytorch": lambda x=x, w=w, b=b, layer=layer: F.conv2d(x, w, b, **layer.options),
            "bare": lambda x=x, w=w, b=b, spec=spec, bare=bare: bare.forward(x, w, b, spec, workspace),
            "guarded": lambda x=x, w=w, b=b, spec=spec, guarded=guarded: guarded.forward(x, w, b, spec, workspace),
            "summed": lambda x=x, w=w, b=b, spec=spec, summed=summed: summed.forward(x, w, b, spec, workspace),
        }
        with torch.no_grad():
            ms = {k: v * 1e3 for k, v in interleaved_medians(candidates, rounds=args.rounds, min_run_time=0.1).items()}
        costs.append(ms["guarded"] / ms["bare"])
        sum_costs.append(ms["summed"] / ms["bare"])
        speeds = (f"{ms['pytorch'] / ms['bare']:.2f}", f"{ms['pytorch'] / ms['guarded']:.2f}")
        shares = (f"{100 * (costs[-1] - 1):+.1f}", f"{100 * (sum_costs[-1] - 1):+.1f}")
        table.add_row(f"{name} {layer.label}", str(batch), picked.name, f"{ms['pytorch']:.2f}", *speeds, *shares)
    Console().print(table)
    print(f"geomean guard cost: {100 * (geomean(costs) - 1):+.1f}% as auto runs it, "
          f"{100 * (geomean(sum_costs) - 1):+.1f}% with the sum, over {len(costs)} layers")  # fmt: skip


if __name__ == "__main__":
    main()
