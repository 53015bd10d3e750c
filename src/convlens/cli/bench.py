"""``convlens bench``: speed against PyTorch on real layers, measured in the same process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from convlens.cli.options import (
    UsageError,
    algorithm_names,
    comma_list,
    finite_positive_float,
    int_list,
    positive_int,
    positive_int_list,
    size_text,
)
from convlens.files import DEFAULT_OUT

if TYPE_CHECKING:  # torch is imported by the commands that need it, not at startup
    import torch

    from convlens.benchmark.suites import Layer


def add_parser(commands: argparse._SubParsersAction) -> None:
    from convlens.benchmark.suites import ALL_SUITES as SUITES
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
        type=positive_int_list,
        default=[8],
        help="comma-separated batch sizes (default 8)",
    )
    bench.add_argument("--algorithms", type=comma_list, default=None, help="default: every algorithm and auto")
    kernel = int_list(2, "--kernel", repeat=True, minimum=1)
    bench.add_argument("--kernel", type=kernel, help="only layers with this kernel")
    bench.add_argument("--limit", type=positive_int, default=None, help="only the first N layers of each suite")
    bench.add_argument("--precision", default=PRECISIONS[0], choices=PRECISIONS)
    bench.add_argument("--rounds", type=positive_int, default=2)
    bench.add_argument("--min-run-time", type=finite_positive_float, default=0.1, help="seconds per measurement block")
    bench.add_argument("--threads", type=positive_int, default=None, help="default: torch's own")
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


def chosen_layers(args: argparse.Namespace) -> list[Layer]:
    """The layers of --suite, the first --limit of each, those with --kernel; never none."""
    from convlens.benchmark.suites import suite

    layers = [layer for name in args.suite for layer in suite(name)[: args.limit]]
    if args.kernel is None:
        return layers
    matching = [layer for layer in layers if layer.kernel_size == args.kernel]
    if not matching:
        suites = f"suite{'s' * (len(args.suite) > 1)} {', '.join(args.suite)}"
        each = " of each" if len(args.suite) > 1 else ""
        first = "" if args.limit is None else f" (the first {args.limit} layer{'s' * (args.limit > 1)}{each})"
        kernels = ", ".join("x".join(map(str, kernel)) for kernel in sorted({layer.kernel_size for layer in layers}))
        wanted = "x".join(map(str, args.kernel))
        raise UsageError(f"--kernel: no layer of {suites}{first} has a {wanted} kernel; kernels there: {kernels}")
    return matching


def check_memory(layer: Layer, batch: int, names: list[str], device: torch.device) -> None:
    """Refuse, before allocating, a layer and batch size whose tensors would not fit in the device's memory:
    input and output with their float64 copies for the error check, the same-size GEMM's operands,
    and the largest extra buffer of a candidate (predicted as the report does)."""
    from convlens import algos
    from convlens.algos.auto import choose
    from convlens.benchmark.runner import SEED, predicted_extra_bytes
    from convlens.spec import device_memory_bytes, volume

    limit = device_memory_bytes(device)
    if limit is None:
        return
    one = layer.spec(1)  # sizes scale with the batch: computed from one image, no tensor shape can overflow
    positions_in, positions_out = volume(one.in_size), volume(one.out_size)
    needed = 12 * batch * one.in_channels * positions_in + 20 * batch * one.out_channels * positions_out
    needed += one.cols_bytes(batch)
    if needed <= limit:  # the batch is small enough to ask each candidate for its buffers
        spec = layer.spec(batch)
        chosen = {choose(spec.as_2d()).algorithm.name if name == "auto" else name for name in names}
        candidates = [name for name in chosen if spec.rank in algos.get(name).ranks or spec.rank == 1]
        candidates = [name for name in candidates if algos.get(name).supports(spec.as_2d()) is None]
        if layer.kind == "conv2d" and layer.groups == 1 and isinstance(layer.padding, tuple):
            candidates.append(SEED)
        needed += max((predicted_extra_bytes(name, layer, batch) for name in candidates), default=0)
    if needed > limit:
        raise UsageError(
            f"--batch {batch}: {layer.suite} {layer.label} would need {size_text(needed)} (input, output, their "
            f"float64 check, the same-size GEMM and the largest algorithm buffer), more than the "
            f"{limit / 2**30:,.1f} GiB ({limit:,} bytes) of memory on {device}"
        )


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    import convlens
    from convlens.benchmark.suites import ALL_SUITES as SUITES
    from convlens.files import atomic_write_bytes, prepare_out_dir, save_figure

    names = algorithm_names(args.algorithms)
    if not args.suite:
        raise UsageError(f"--suite names no suite; choose from {', '.join(SUITES)}")
    for name in args.suite:
        if name not in SUITES:
            raise UsageError(f"--suite: unknown suite {name!r}; choose from {', '.join(SUITES)}")
    device = bench_device(args.device)
    layers = chosen_layers(args)
    for layer in layers:
        for batch in args.batch:
            check_memory(layer, batch, names, device)
    out = prepare_out_dir(args.out)
    from convlens.benchmark import report, runner  # after the checks: torch.utils.benchmark logs a line on import

    if args.threads is not None:
        torch.set_num_threads(args.threads)
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
    title = f"speedup over PyTorch (x), fp32, {torch.get_num_threads()} threads, precision {args.precision}"
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
