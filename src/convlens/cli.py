"""The ``convlens`` command: thin. It parses, calls the library, prints, and exits 2 on bad input.

convlens demo      the seed's walkthrough: nn.Conv2d(3, 1, 5) redone as unfold + matmul + view
convlens explain   one output value by hand (any configuration, or a layer of a real model)
convlens verify    every algorithm against PyTorch and float64
convlens bench     speed against PyTorch on real layers
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from convlens.files import DEFAULT_OUT

if TYPE_CHECKING:  # torch is imported by the commands that need it, not at startup
    import torch


class UsageError(ValueError):
    """A bad combination of command-line options."""


def int_list(count: int, name: str, repeat: bool = False) -> Callable[[str], tuple[int, ...]]:
    """argparse type: "a,b" -> (a, b); with ``repeat`` a single "a" means (a, a) (sizes, strides)."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {count} comma-separated integers, got {text!r}") from None
        if len(values) == 1 and repeat:
            values = values * 2
        if len(values) != count:
            raise argparse.ArgumentTypeError(f"{name} must be {count} comma-separated integers, got {text!r}")
        return values

    return parse


def padding_arg(text: str) -> tuple[int, int] | str:
    return text if text in ("same", "valid") else int_list(2, "--padding", repeat=True)(text)


# ---- demo ---------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from convlens.data import demo_image
    from convlens.explain.figures import demo_figure, im2col_figure, input_figure
    from convlens.explain.walkthrough import run_walkthrough
    from convlens.files import prepare_out_dir, save_figure

    start = time.perf_counter()
    out = prepare_out_dir(args.out)
    image = demo_image(args.data_root, args.index, args.download)
    result = run_walkthrough(image.normalized, seed=args.seed)
    print(f"input: {image.source}, normalised with mean 0.5 and std 0.5")
    print("layer: nn.Conv2d(3, 1, 5), stride 1, padding 0, seeded with", args.seed)
    print("output size:")
    for line in result.formulas:
        print(f"  {line}")
    print("shapes, as unfold + matmul + view:")
    for name, shape in result.shapes.items():
        print(f"  {name}.shape = {shape}")
    print(f"max |nn.Conv2d - convlens im2col| = {result.max_abs_difference:.3g}")
    written = [
        save_figure(input_figure(image.display, image.source), out / "demo-input.png"),
        save_figure(demo_figure(result), out / "demo-outputs.png"),
    ]
    import torch

    torch.manual_seed(args.seed)
    four_filters = torch.nn.Conv2d(3, 4, 5).weight.detach()  # the seed's matrix picture: 4 filters 5x5
    written.append(save_figure(im2col_figure(image.normalized, four_filters, (14, 14), 0), out / "demo-im2col.png"))
    for path in written:
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


# ---- explain ------------------------------------------------------------------------------
def cmd_explain(args: argparse.Namespace) -> int:
    from convlens.explain.byhand import cs231n_example, explain_value, format_explanation
    from convlens.explain.figures import explain_figure, im2col_figure
    from convlens.files import prepare_out_dir, save_figure

    out = prepare_out_dir(args.out)
    if args.model is not None:
        return explain_model(args, out)
    if args.layer is not None or args.weights is not None:
        raise UsageError("--layer and --weights go with --model")

    import torch

    if args.im2col:
        generator = torch.Generator().manual_seed(args.seed)
        size = args.size or (32, 32)
        x = torch.randn(args.channels or 3, *size, generator=generator)
        kernel = args.kernel or (5, 5)
        w = torch.randn(args.filters or 4, x.shape[0], *kernel, generator=generator)
        position = args.at or (0, 0)
        path = save_figure(im2col_figure(x, w, position, args.filter), out / "im2col.png")
        print(f"wrote {path}")
        return 0

    defaults = args.size is None and args.channels is None and args.filters is None and args.kernel is None
    if defaults:
        x, w, b = cs231n_example(args.seed)
        stride, padding = args.stride or (2, 2), args.padding if args.padding is not None else (1, 1)
    else:
        generator = torch.Generator().manual_seed(args.seed)
        size, channels = args.size or (5, 5), args.channels or 3
        x = torch.randint(0, 3, (channels, *size), generator=generator).float()
        w = torch.randint(-1, 2, (args.filters or 2, channels // args.groups, *(args.kernel or (3, 3))),
                          generator=generator).float()  # fmt: skip
        b = torch.arange(w.shape[0], dtype=torch.float32)
        stride, padding = args.stride or (1, 1), args.padding if args.padding is not None else (0, 0)
    explanation = explain_value(
        x, w, b, args.filter, args.at or (0, 0), stride=stride, padding=padding, dilation=args.dilation or (1, 1),
        groups=args.groups, padding_mode=args.padding_mode,
    )  # fmt: skip
    print(format_explanation(explanation))
    path = save_figure(explain_figure(explanation), out / "explain.png")
    print(f"wrote {path}")
    return 0


def explain_model(args: argparse.Namespace, out: Path) -> int:
    from convlens.explain.byhand import format_explanation
    from convlens.explain.figures import explain_figure
    from convlens.explain.model_layer import explain_layer
    from convlens.files import save_figure

    if args.layer is None:
        raise UsageError("--model needs --layer NAME (a Conv2d inside it, e.g. layer1.0.conv1)")
    at = args.at_model or (0, 0, 0, 0)
    result = explain_layer(args.model, args.layer, at, args.weights, args.seed)
    print(f"{args.model}.{args.layer}: {result.module_repr}")
    print(f"input: the demo image at 224x224; weights: {args.weights or f'random, seed {args.seed}'}")
    print(format_explanation(result.explanation, max_channels=3))
    print(f"the module's own output at (n, c, y, x)={at}: {result.module_value:.7g}")
    print(f"by hand: {result.explanation.value:.7g}  (|difference| {result.difference:.2g})")
    name = f"explain-{args.model}-{args.layer.replace('.', '_')}.png"
    path = save_figure(explain_figure(result.explanation, max_channels=3), out / name)
    print(f"wrote {path}")
    return 0


def algorithm_names(requested: list[str] | None) -> list[str]:
    """--algorithms as given, checked; by default every algorithm, then auto."""
    import convlens

    names = list(requested) if requested else [*convlens.algorithms()[1:], "auto"]
    for name in names:
        if name not in convlens.algorithms():
            raise UsageError(
                f"--algorithms: unknown algorithm {name!r}; choose from {', '.join(convlens.algorithms())}"
            )
    return names


# ---- verify -------------------------------------------------------------------------------
def cmd_verify(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    import convlens
    from convlens import verify

    names = algorithm_names(args.algorithms)
    models = [] if args.models == ["none"] else args.models
    for name in models:
        if name not in verify.MODEL_SUITES:
            raise UsageError(f"--models: unknown model {name!r}; choose from {', '.join(verify.MODEL_SUITES)} or none")
    if args.json is not None and args.json != Path("-"):
        from convlens.files import prepare_out_dir

        prepare_out_dir(args.json.parent if str(args.json.parent) else Path("."))
    convlens.set_precision(args.precision)
    configs = verify.random_configs(args.cases, args.seed) + verify.model_configs(models)
    console = Console(stderr=args.json == Path("-"), width=None if sys.stdout.isatty() else 160)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("verifying", total=len(configs))
        summaries = verify.run(configs, names, progress=lambda config: progress.advance(task), backward=args.backward)

    sources = f"{args.cases} random, seed {args.seed}; layers of {', '.join(models) or 'no models'}"
    table = Table(title=f"{len(configs)} configurations ({sources}), float32 vs float64, precision {args.precision}")
    for column in ("algorithm", "cases", "max |err|", "max rel", "PyTorch max |err|", "worst x PyTorch", "failures"):
        table.add_column(column, justify="left" if column == "algorithm" else "right")
    for name, s in summaries.items():
        table.add_row(name, str(s.cases), f"{s.max_error:.2e}", f"{s.max_relative:.2e}", f"{s.pytorch_max_error:.2e}",
                      f"{s.worst_ratio:.1f}", str(len(s.failures)))  # fmt: skip
    console.print(table)
    failures = [f for s in summaries.values() for f in s.failures]
    for failure in failures[:10]:
        console.print(
            f"FAIL {failure.algorithm}: error {failure.error:.3e} > allowed {failure.allowed:.3e} "
            f"({failure.config.describe()})"
        )
    if args.json is not None:
        settings = {"cases": args.cases, "seed": args.seed, "models": models, "precision": args.precision,
                    "backward": args.backward}  # fmt: skip
        text = json.dumps(verify.to_json(summaries, settings), indent=2)
        if args.json == Path("-"):
            print(text)
        else:
            from convlens.files import atomic_write_bytes

            console.print(f"wrote {atomic_write_bytes(args.json, text.encode())}")
    return 1 if failures else 0


# ---- bench --------------------------------------------------------------------------------
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


def cmd_bench(args: argparse.Namespace) -> int:
    import platform
    from datetime import date

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
    from convlens.benchmark import runner  # after the checks: torch.utils.benchmark logs a line on import
    if args.threads:
        torch.set_num_threads(args.threads)
    convlens.set_precision(args.precision)
    layers = [layer for name in args.suite for layer in suite(name)[: args.limit]]
    if args.kernel:
        layers = [layer for layer in layers if layer.kernel_size == args.kernel]
    jobs = [(layer, batch) for batch in args.batch for layer in layers]
    console = Console(width=None if sys.stdout.isatty() else 200)
    rows = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("benchmarking", total=len(jobs))
        for layer, batch in jobs:
            progress.update(task, description=f"{layer.suite} {layer.label} N={batch}")
            rows.append(runner.benchmark_layer(layer, batch, names, args.rounds, args.min_run_time, device))
            progress.advance(task)

    # Only candidates that ran on some layer (depthwise on a suite without depthwise layers has no column).
    names = [name for name in names if any(name in row.milliseconds for row in rows)]
    shown = [*names, runner.SEED, runner.GEMM]
    table = Table(title=f"speedup over PyTorch F.conv2d (x), fp32, {torch.get_num_threads()} threads, "
                        f"precision {args.precision}")  # fmt: skip
    table.add_column("layer")
    table.add_column("N", justify="right")
    table.add_column("PyTorch ms", justify="right")
    for name in shown:
        table.add_column(name, justify="right")
    table.add_column("auto picks")
    for row in rows:
        cells = [f"{row.speedup(n):.2f}" if n in row.milliseconds else "-" for n in shown]
        table.add_row(f"{row.layer.suite} {row.layer.label}", str(row.batch),
                      f"{row.milliseconds[runner.REFERENCE]:.2f}", *cells, row.auto_choice)  # fmt: skip
    console.print(table)
    geomeans = runner.summary(rows, shown)
    console.print("geomean speedup: " + ", ".join(f"{n} {v:.2f}x" for n, v in geomeans.items()))

    machine = (
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    if device.type == "cuda":
        tf32 = "on" if torch.backends.cudnn.allow_tf32 else "off"
        machine += f"; {torch.cuda.get_device_name(device)}, cuDNN {torch.backends.cudnn.version()} (TF32 {tf32})"
    report = "\n\n".join([
        f"# convlens bench, {date.today().isoformat()}",
        f"Machine: {machine}. Suites: {', '.join(args.suite)}; batch {', '.join(map(str, args.batch))}; "
        f"precision {args.precision}; {args.rounds} interleaved rounds, median.",
        "Speedup over PyTorch F.conv2d (higher is faster) and effective GFLOP/s:",
        runner.markdown_table(rows, shown),
        "Geometric-mean speedup: " + ", ".join(f"{n} {v:.2f}x" for n, v in geomeans.items()),
        "Rate as a % of the same-size GEMM's (its practical roofline) and predicted extra memory beyond "
        "input, weight and output (buffers kept between calls included), in MiB:",
        runner.resources_table(rows, [*names, runner.SEED]),
        "Max |error| against float64 (PyTorch's own in the first column):",
        runner.error_table(rows, [runner.REFERENCE, *names]),
    ]) + "\n"  # fmt: skip
    written = [
        atomic_write_bytes(out / "bench.md", report.encode()),
        save_figure(runner.chart(rows, shown[:-1]), out / "bench.png"),
    ]
    for path in written:
        console.print(f"wrote {path}")
    return 0


# ---- parser -------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from convlens.benchmark.suites import SUITES as bench_suites
    from convlens.verify import MODEL_SUITES as verify_models

    parser = argparse.ArgumentParser(prog="convlens", description="PyTorch's Conv2d, rebuilt and explained.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="the walkthrough: nn.Conv2d(3, 1, 5) redone as unfold + matmul + view")
    demo.add_argument("--data-root", type=Path, default=None, help="folder holding CIFAR-10 (cifar-10-batches-py)")
    demo.add_argument("--index", type=int, default=0, help="CIFAR-10 test image index (default 0)")
    demo.add_argument("--download", action="store_true", help="download CIFAR-10 into --data-root if missing")
    demo.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for figures (default ./convlens-out)")
    demo.add_argument("--seed", type=int, default=0, help="seed for the layer's weights (default 0)")
    demo.set_defaults(run=cmd_demo)

    explain = commands.add_parser(
        "explain",
        help="one output value by hand",
        description="Compute one output value by hand. Default: the CS231n demo (5x5x3 input, two 3x3 filters, "
        "padding 1, stride 2). With --model and --layer: a Conv2d inside a torchvision model. With --im2col: "
        "the matrix picture.",
    )
    explain.add_argument("--size", type=int_list(2, "--size", repeat=True), help="input H,W (or one number)")
    explain.add_argument("--channels", type=int, help="input channels")
    explain.add_argument("--filters", type=int, help="number of filters (output channels)")
    explain.add_argument("--kernel", type=int_list(2, "--kernel", repeat=True), help="kernel k_h,k_w (or one number)")
    explain.add_argument("--stride", type=int_list(2, "--stride", repeat=True))
    explain.add_argument("--padding", type=padding_arg, help="h,w or one number, or same / valid")
    explain.add_argument("--dilation", type=int_list(2, "--dilation", repeat=True))
    explain.add_argument("--groups", type=int, default=1)
    explain.add_argument("--padding-mode", default="zeros", choices=("zeros", "reflect", "replicate", "circular"))
    explain.add_argument("--filter", type=int, default=0, help="which output channel (default 0)")
    explain.add_argument("--at", dest="at_text", default=None,
                         help="output position y,x; with --model: n,c,y,x")  # fmt: skip
    explain.add_argument("--im2col", action="store_true", help="draw X_col, W_row and their product instead")
    explain.add_argument("--model", help="a torchvision model name, e.g. resnet18 (random weights, seeded)")
    explain.add_argument("--layer", help="with --model: the Conv2d's name, e.g. layer1.0.conv1")
    explain.add_argument("--weights", type=Path, help="with --model: a state_dict file to load")
    explain.add_argument("--seed", type=int, default=0)
    explain.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for figures (default ./convlens-out)")
    explain.set_defaults(run=cmd_explain)

    check = commands.add_parser("verify", help="every algorithm against PyTorch and float64, on random and real layers")
    check.add_argument("--cases", type=int, default=200, help="random configurations (default 200)")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--algorithms", type=comma_list, default=None, help="default: every algorithm and auto")
    models_help = f"conv layers of these models, at batch 1 (default {','.join(verify_models)}; 'none' for none)"
    check.add_argument("--models", type=comma_list, default=list(verify_models), help=models_help)
    check.add_argument("--precision", default="highest", choices=("highest", "high"))
    check.add_argument(
        "--backward", action="store_true", help="also check the gradients of input, weight and bias (through auto)"
    )
    check.add_argument("--json", type=Path, default=None, help="also write the results as JSON ('-' for stdout)")
    check.set_defaults(run=cmd_verify)

    bench = commands.add_parser("bench", help="speed against PyTorch on real layers (ResNet-50, VGG-16, ...)")
    bench.add_argument("--suite", type=comma_list, default=["resnet50"],
                       help=f"comma-separated: {', '.join(bench_suites)} (default resnet50)")  # fmt: skip
    bench.add_argument("--batch", type=lambda text: [int(v) for v in text.split(",")], default=[8],
                       help="comma-separated batch sizes (default 8)")  # fmt: skip
    bench.add_argument("--algorithms", type=comma_list, default=None, help="default: every algorithm and auto")
    bench.add_argument("--kernel", type=int_list(2, "--kernel", repeat=True), help="only layers with this kernel")
    bench.add_argument("--limit", type=int, default=None, help="only the first N layers of each suite")
    bench.add_argument("--precision", default="highest", choices=("highest", "high"))
    bench.add_argument("--rounds", type=int, default=2)
    bench.add_argument("--min-run-time", type=float, default=0.1, help="seconds per measurement block")
    bench.add_argument("--threads", type=int, default=None)
    bench.add_argument("--device", default="cpu", help="cpu (default) or cuda[:index]: on CUDA, against cuDNN")
    bench.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for bench.md and bench.png")
    bench.set_defaults(run=cmd_bench)
    return parser


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def resolve_at(args: argparse.Namespace) -> None:
    """--at is y,x for a configuration and n,c,y,x for a model layer."""
    args.at, args.at_model = None, None
    if getattr(args, "at_text", None) is None:
        return
    if getattr(args, "model", None) is not None:
        args.at_model = int_list(4, "--at")(args.at_text)
    else:
        args.at = int_list(2, "--at")(args.at_text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        resolve_at(args)
        return args.run(args)
    except argparse.ArgumentTypeError as error:
        parser.exit(2, f"convlens {args.command}: error: {error}\n")
    # Every user mistake is a ValueError or TypeError: the library's argument rules, and the CLI's
    # own UsageError, DataError, OutputError, PositionError and ModelError (all ValueErrors).
    # Reported as one line on stderr, exit code 2, no traceback.
    except (ValueError, TypeError) as error:
        message = str(error).splitlines()
        print(f"convlens {args.command}: error: {' '.join(line.strip() for line in message)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
