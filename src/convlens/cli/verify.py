"""``convlens verify``: every algorithm against PyTorch and float64, on random and real layers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convlens.cli.options import UsageError, algorithm_names, comma_list, non_negative_int, positive_int, seed

MAX_BATCH = 16  # verify --backward --models resnet50 --batch 16 peaked at 1.6 GB resident (float64 truth and gradients)


def add_parser(commands: argparse._SubParsersAction) -> None:
    from convlens.config import PRECISIONS
    from convlens.verify import KINDS, MODEL_SUITES

    check = commands.add_parser("verify", help="every algorithm against PyTorch and float64, on random and real layers")
    check.add_argument(
        "--cases", type=non_negative_int, default=200, help="random configurations of each kind (default 200)"
    )
    check.add_argument(
        "--kinds",
        type=comma_list,
        default=list(KINDS),
        help=f"kinds of convolution to sweep (default {','.join(KINDS)})",
    )
    check.add_argument("--seed", type=seed, default=0, help="0 to 2**64 - 1 (default 0)")
    check.add_argument("--algorithms", type=comma_list, default=None, help="default: every algorithm and auto")
    models_help = f"conv layers of these models (default {','.join(MODEL_SUITES)}; 'none' for none)"
    check.add_argument("--models", type=comma_list, default=list(MODEL_SUITES), help=models_help)
    check.add_argument(
        "--batch",
        type=positive_int,
        default=1,
        help=f"the models' layers at this batch size (default 1, at most {MAX_BATCH})",
    )
    check.add_argument("--precision", default=PRECISIONS[0], choices=PRECISIONS)
    check.add_argument(
        "--backward", action="store_true", help="also check the gradients of input, weight and bias (through auto)"
    )
    check.add_argument("--json", type=Path, default=None, help="also write the results as JSON ('-' for stdout)")
    check.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
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
    if args.batch > MAX_BATCH:
        raise UsageError(f"--batch {args.batch}: at most {MAX_BATCH} (each layer is also run in float64)")
    for kind in args.kinds:
        if kind not in verify.KINDS:
            raise UsageError(f"--kinds: unknown kind {kind!r}; choose from {', '.join(verify.KINDS)}")
    if args.cases == 0 and not models:
        raise UsageError("--cases 0 with --models none leaves nothing to verify; give --cases 1 or more, or models")
    if args.json is not None and args.json != Path("-"):
        from convlens.files import prepare_out_file

        prepare_out_file(args.json, "--json")  # before the sweep, not after it
    randoms = [config for kind in args.kinds for config in verify.kind_configs(kind, args.cases, args.seed)]
    configs = randoms + verify.model_configs(models, args.batch)
    console = Console(stderr=args.json == Path("-"), width=None if sys.stdout.isatty() else 160)
    with convlens.settings(precision=args.precision), Progress(console=console, transient=True) as progress:
        task = progress.add_task("verifying", total=len(configs))
        summaries = verify.run(configs, names, progress=lambda config: progress.advance(task), backward=args.backward)

    sources = f"{args.cases} random of each of {', '.join(args.kinds)}, seed {args.seed}; "
    sources += f"layers of {', '.join(models) or 'no models'}"
    sources += f" at batch {args.batch}" if models else ""
    table = Table(title=f"{len(configs)} configurations ({sources}), float32 vs float64, precision {args.precision}")
    for column in ("algorithm", "cases", "max |err|", "max rel", "PyTorch max |err|", "worst x PyTorch", "failures"):
        table.add_column(column, justify="left" if column == "algorithm" else "right")
    for name, s in summaries.items():
        table.add_row(
            name,
            str(s.cases),
            f"{s.max_error:.2e}",
            f"{s.max_relative:.2e}",
            f"{s.pytorch_max_error:.2e}",
            f"{s.worst_ratio:.1f}",
            str(len(s.failures)),
        )
    console.print(table)
    failures = [f for s in summaries.values() for f in s.failures]
    for failure in failures[:10]:
        console.print(
            f"FAIL {failure.algorithm}: error {failure.error:.3e} > allowed {failure.allowed:.3e} "
            f"({failure.config.describe()})"
        )
    if args.json is not None:
        options = {
            "cases": args.cases,
            "kinds": args.kinds,
            "seed": args.seed,
            "models": models,
            "batch": args.batch,
            "precision": args.precision,
            "backward": args.backward,
        }
        text = json.dumps(verify.to_json(summaries, options), indent=2)
        if args.json == Path("-"):
            print(text)
        else:
            from convlens.files import atomic_write_bytes

            console.print(f"wrote {atomic_write_bytes(args.json, text.encode())}")
    return 1 if failures else 0
