"""``convlens bench``: speed against PyTorch on real layers, measured in the same process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from convlens.cli.options import UsageError, algorithm_names, comma_list, int_list
from convlens.files import DEFAULT_OUT

if TYPE_CHECKING:  # torch is imported by the commands that need it, not at startup
    import torch


def add_parser(commands: argparse._SubParsersAction) -> None:
    from convlens.benchmark.suites import SUITES
    from convlens.config import PRECISIONS

    bench = commands.add_parser("bench", help="speed against PyTorch on real layers (ResNet-50, VGG-16, ...)")
    bench.add_argument(
        "--suite",
        type=comma_list,
        default=["resnet50"],
        help=f"comma-separated: {', '.join(SUITES)} (default resnet50)",
    )
    bench.add_argument(
        "--batch",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[8],
        help="comma-separated batch sizes (default 8)",
    )
    bench.add_argument("--algorithms", type=comma_list, default=None, help="default: every algorithm and auto")
    bench.add_argument("--kernel", type=int_list(2, "--kernel", repeat=True), help="only layers with this kernel")
    bench.add_argument("--limit", type=int, default=None, help="only the first N layers of each suite")
    bench.add_argument("--precision", default=PRECISIONS[0], choices=PRECISIONS)
    bench.add_argument("--rounds", type=int, default=2)
    bench.add_argument("--min-run-time", type=float, default=0.1, help="seconds per measurement block")
    bench.add_argument("--threads", type=int, default=None)
    bench.add_argument("--device", default="cpu", help="cpu (default) or cuda[:index]: on CUDA, against cuDNN")
    bench.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for bench.md and bench.png")
    bench.set_defaults(run=run)


def bench_device(name: str) -> torch.device:
    """--device: "cpu", or a CUDA device ("cuda", "cuda:1") where one is available."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise UsageError(f"--device: {name!r} is not a device name ({error})") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu or cuda[:index], got --device {name}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is available here")
    return device


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    import convlens
    from convlens.benchmark.suites import SUITES, suite
    from convlens.files import atomic_write_bytes, prepare_out_dir, save_figure

    names = algorithm_names(args.algorithms)
    for name in args.suite:
        if name not in SUITES:
            raise UsageError(f"--suite: unknown suite {name!r}; choose from {', '.join(SUITES)}")
    device = bench_device(args.device)
    out = prepare_out_dir(args.out)
    from convlens.benchmark import report, runner  # after the checks: torch.utils.benchmark logs a line on import

    if args.threads:
        torch.set_num_threads(args.threads)
    layers = [layer for name in args.suite for layer in suite(name)[: args.limit]]
    if args.kernel:
        layers = [layer for layer in layers if layer.kernel_size == args.kernel]
    jobs = [(layer, batch) for batch in args.batch for layer in layers]
    console = Console(width=None if sys.stdout.isatty() else 200)
    rows = []
    with convlens.settings(precision=args.precision), Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=len(jobs))
        for layer, batch in jobs:
            progress.update(task, description=f"{layer.suite} {layer.label} N={batch}")
            rows.append(runner.benchmark_layer(layer, batch, names, args.rounds, args.min_run_time, device))
            progress.advance(task)

    # Only candidates that ran on some layer (depthwise on a suite without depthwise layers has no column).
    names = [name for name in names if any(name in row.milliseconds for row in rows)]
    shown = [*names, runner.SEED, runner.GEMM]
    title = f"speedup over PyTorch F.conv2d (x), fp32, {torch.get_num_threads()} threads, precision {args.precision}"
    table = Table(title=title)
    table.add_column("layer")
    table.add_column("N", justify="right")
    table.add_column("PyTorch ms", justify="right")
    for name in shown:
        table.add_column(name, justify="right")
    table.add_column("auto picks")
    for row in rows:
        cells = [f"{row.speedup(n):.2f}" if n in row.milliseconds else "-" for n in shown]
        reference = f"{row.milliseconds[runner.REFERENCE]:.2f}"
        table.add_row(f"{row.layer.suite} {row.layer.label}", str(row.batch), reference, *cells, row.auto_choice)
    console.print(table)
    geomeans = runner.summary(rows, shown)
    console.print("geomean speedup: " + ", ".join(f"{n} {v:.2f}x" for n, v in geomeans.items()))

    markdown = report.bench_markdown(
        rows,
        names,
        geomeans,
        device=device,
        suites=args.suite,
        batches=args.batch,
        precision=args.precision,
        rounds=args.rounds,
    )
    written = [
        atomic_write_bytes(out / "bench.md", markdown.encode()),
        save_figure(report.chart(rows, shown[:-1]), out / "bench.png"),
    ]
    for path in written:
        console.print(f"wrote {path}")
    return 0
