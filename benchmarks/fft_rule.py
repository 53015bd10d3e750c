"""auto's rules for large kernels against measurement (rule 2, banded; rule 3, FFT): for a sweep
of stride-1 layers, FFT, banded (depthwise layers only) and the algorithm auto used before
these rules (im2col for a dense layer, depthwise for a depthwise one), interleaved; for a dense
layer gemm.c too, where it takes the layer (``gemm.uses_native``).

    python benchmarks/fft_rule.py                      # kernels 3-11, channels 3-128, sizes 14-112, batch 1 and 8
    python benchmarks/fft_rule.py --kernels 5,7 --batch 8

Each row prints the times, PyTorch's, which one auto picks (``auto.rule``, timed too where it is
none of these, as Winograd on 3x3), and the regret: the time of auto's pick over the fastest
one's (1.00 = auto picked the fastest). The summary gives the geometric mean and worst regret,
dense and depthwise apart, for auto's rules and for "before" (auto without rules 2 and 3).
Layers of more than ``--max-macs`` multiply-adds are skipped to keep the sweep to minutes;
padding k // 2 ("same" for odd kernels).
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import track
from rich.table import Table

import convlens
from convlens.algos import auto, gemm
from convlens.benchmark.timing import geomean, interleaved_medians
from convlens.spec import ConvSpec


@dataclass(frozen=True)
class Case:
    kernel: int
    channels: int
    size: int
    batch: int
    depthwise: bool

    @property
    def out_channels(self) -> int:
        return self.channels if self.depthwise or self.channels > 3 else 64  # 3 channels: a stem-like 3 -> 64

    @property
    def macs(self) -> int:
        per_output = self.kernel**2 * (1 if self.depthwise else self.channels)
        return self.batch * self.out_channels * self.size**2 * per_output

    @property
    def label(self) -> str:
        kind = " dw" if self.depthwise else ""
        k = self.kernel
        return f"{self.channels}->{self.out_channels} {k}x{k} @{self.size}x{self.size}{kind}"


def cases(kernels: list[int], channels: list[int], sizes: list[int], batches: list[int], max_macs: float) -> list[Case]:
    found = []
    for kernel, channel, size, batch, depthwise in itertools.product(kernels, channels, sizes, batches, (False, True)):
        case = Case(kernel, channel, size, batch, depthwise)
        if (depthwise and channel <= 3) or case.macs > max_macs:
            continue
        found.append(case)
    return found


def measure(case: Case, rounds: int, seconds: float) -> tuple[dict[str, float], str]:
    """Median seconds of each candidate and PyTorch, interleaved, and auto's pick."""
    generator = torch.Generator().manual_seed(0)
    groups = case.channels if case.depthwise else 1
    x = torch.randn(case.batch, case.channels, case.size, case.size, generator=generator)
    w = torch.randn(case.out_channels, case.channels // groups, case.kernel, case.kernel, generator=generator)
    options = {"padding": case.kernel // 2, "groups": groups}
    spec = ConvSpec.from_args(x, w, None, **options)
    picked = auto.rule(spec).algorithm.name  # timed too where it is none of these (Winograd on 3x3)
    dense = ["im2col", *(["gemm"] if gemm.uses_native(spec) else [])]  # gemm.c where it takes the layer
    names = {"fft", *(["depthwise", "banded"] if case.depthwise else dense), picked}
    calls = {name: (lambda name=name: convlens.conv2d(x, w, **options, algorithm=name)) for name in sorted(names)}
    calls["pytorch"] = lambda: F.conv2d(x, w, **options)
    with torch.no_grad():
        for call in calls.values():
            call()  # warm up: spectra cache, scratch buffers
        medians = interleaved_medians(calls, rounds=rounds, min_run_time=seconds)
    return medians, picked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernels", default="3,5,7,11")
    parser.add_argument("--channels", default="3,32,128")
    parser.add_argument("--sizes", default="14,28,56,112")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--max-macs", type=float, default=4e9)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--min-run-time", type=float, default=0.1)
    args = parser.parse_args()

    def numbers(text: str) -> list[int]:
        return [int(value) for value in text.split(",")]

    grid = (numbers(text) for text in (args.kernels, args.channels, args.sizes, args.batch))
    sweep = cases(*grid, args.max_macs)
    table = Table(title=f"auto's FFT rule, stride 1, fp32, {torch.get_num_threads()} threads (ms)")
    for column in ("layer", "N", "PyTorch", "before", "fft", "banded", "gemm", "auto picks", "regret"):
        table.add_column(column, justify="left" if column == "layer" else "right", no_wrap=column == "layer")
    regrets: dict[tuple[str, str], list[float]] = {}
    for case in track(sweep, description="timing layers"):
        medians, picked = measure(case, args.rounds, args.min_run_time)
        # auto before rules 2 and 3: the same pick, except where they give the layer to banded or FFT
        before = picked if picked not in ("fft", "banded") else ("depthwise" if case.depthwise else "im2col")
        best = min(seconds for name, seconds in medians.items() if name != "pytorch")
        kind = "depthwise" if case.depthwise else "dense"
        regrets.setdefault((kind, "auto"), []).append(medians[picked] / best)
        regrets.setdefault((kind, "before"), []).append(medians[before] / best)
        table.add_row(
            case.label,
            str(case.batch),
            f"{medians['pytorch'] * 1e3:.2f}",
            f"{before} {medians[before] * 1e3:.2f}",
            f"{medians['fft'] * 1e3:.2f}",
            f"{medians['banded'] * 1e3:.2f}" if "banded" in medians else "-",
            f"{medians['gemm'] * 1e3:.2f}" if "gemm" in medians else "-",
            picked,
            f"{medians[picked] / best:.2f}",
        )
    console = Console()
    console.print(table)
    for (kind, rule), values in sorted(regrets.items()):
        console.print(
            f"{kind:<9} {rule:<9}: regret geomean {geomean(values):.3f}, worst {max(values):.2f}, "
            f"above 1.15 on {sum(value > 1.15 for value in values)} of {len(values)} layers"
        )


if __name__ == "__main__":
    main()
