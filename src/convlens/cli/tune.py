"""``convlens tune``: measure this machine once for auto's compiled-kernel rules (convlens.tune)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from convlens.cli.options import finite_positive_float, positive_int
from convlens.files import OutputError, prepare_out_dir

if TYPE_CHECKING:  # imported by run, not at startup
    from rich.console import Console
    from rich.table import Table

    from convlens.tune import Thresholds, Timing

EXIT_NO_KERNELS = 1  # the answer is "nothing to tune here": no compiled kernels


def add_parser(commands: argparse._SubParsersAction) -> None:
    tune = commands.add_parser(
        "tune", help="time direct.c against im2col on this machine once; auto then uses the thresholds measured"
    )
    tune.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds per probe (default 3)")
    tune.add_argument("--min-run-time", type=finite_positive_float, default=0.05, help="seconds per measurement block")
    tune.add_argument("--threads", type=positive_int, default=None, help="default: torch's own (part of the key)")
    what = tune.add_mutually_exclusive_group()
    what.add_argument("--show", action="store_true", help="print this machine's calibration; measure nothing")
    what.add_argument("--forget", action="store_true", help="delete this machine's calibration")
    what.add_argument("--dry-run", action="store_true", help="measure and print, write nothing")
    tune.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from rich.console import Console

    from convlens import native, tune
    from convlens.algos import auto

    console = Console(highlight=False)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    key = tune.machine()
    console.print(
        f"machine: {key['cpu']}, torch's loops {key['capability']}, convlens's {key['kernels'] or 'not built'}, "
        f"{key['threads']} threads, torch {key['torch']}"
    )
    if args.forget:
        deleted = tune.forget()
        console.print(f"deleted {deleted}" if deleted else f"no calibration for this machine ({tune.path()})")
        return 0
    built_in = auto.built_in()
    if args.show:
        found = tune.stored()
        console.print(table(found or built_in, built_in))
        console.print(f"from {found.source}" if found else f"no calibration for this machine ({tune.path()})")
        return 0
    if not native.available():
        console.print(f"nothing to tune: no compiled kernels ({native.reason()}), so auto never picks direct.c")
        return EXIT_NO_KERNELS
    if not args.dry_run:  # before 20 seconds of timing: a folder the calibration can go to
        prepare_out_dir(tune.cache_dir(), option="cache (CONVLENS_CACHE_DIR)")
    timings = measure(args, console)
    measured = tune.fit(timings)
    console.print(probe_table(timings))
    console.print(table(measured, built_in))
    if args.dry_run:
        console.print("--dry-run: nothing written")
        return 0
    try:
        written = tune.save(measured, timings)
    except OSError as error:
        raise OutputError(
            f"cannot write the calibration to {tune.path()}: {error.strerror or error} "
            "(set CONVLENS_CACHE_DIR to a writable folder)"
        ) from None
    console.print(f"wrote {written}; auto uses it in every process with this key")
    return 0


def measure(args: argparse.Namespace, console: Console) -> list[Timing]:
    from rich.progress import Progress

    from convlens import tune

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("timing probes", total=len(tune.PROBES))
        return tune.measure(
            rounds=args.rounds, min_run_time=args.min_run_time, progress=lambda probe: progress.advance(task)
        )


def probe_table(timings: list[Timing]) -> Table:
    from rich.table import Table

    table = Table(title="direct.c / gemm.c against im2col, forward, float32 (median of interleaved rounds)")
    for column in ("probe", "rule", "multiply-adds", "depth", "compiled", "compiled us", "im2col us", "faster"):
        table.add_column(column, justify="left" if column in ("probe", "rule", "compiled", "faster") else "right")
    for timing in timings:
        probe = timing.probe
        faster = probe.compiled if timing.compiled < timing.im2col else "im2col"
        table.add_row(
            str(probe), probe.rule, f"{probe.macs:,}", f"{probe.depth:,}", probe.compiled,
            f"{timing.compiled * 1e6:.0f}", f"{timing.im2col * 1e6:.0f}", faster,
        )  # fmt: skip
    return table


def table(thresholds: Thresholds, built_in: Thresholds) -> Table:
    from rich.table import Table

    table = Table(title="auto's rules 5 to 7: the compiled kernels take")
    for column in ("rule", "this machine", "built in"):
        table.add_column(column)
    table.add_row("3x3 and other small layers, up to", f"{thresholds.tiny_macs:,} MACs", f"{built_in.tiny_macs:,} MACs")
    table.add_row(
        "1x1 stride-1 unpadded layers, up to",
        f"{thresholds.tiny_pointwise_macs:,} MACs",
        f"{built_in.tiny_pointwise_macs:,} MACs",
    )
    table.add_row("stems (<= 4 input channels, 5x5+)", yes_no(thresholds.stems), yes_no(built_in.stems))
    table.add_row(
        "gemm.c takes dense 3x3 layers up to", f"{thresholds.gemm_max_rows:,} deep", f"{built_in.gemm_max_rows:,} deep"
    )
    return table


def yes_no(value: bool) -> str:
    return "yes" if value else "no"
