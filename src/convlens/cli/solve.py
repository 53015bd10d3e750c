"""``convlens solve``: which stride, padding, dilation and output_padding give the wanted size."""

from __future__ import annotations

import argparse

from convlens.cli.options import UsageError, positive_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    solve = commands.add_parser(
        "solve",
        help="the output-size formula backwards: the settings that give the wanted size",
        description="List the stride / padding / dilation / output_padding combinations that take --in to --out "
        "with a --kernel kernel along one dimension, simplest first, ordinary and transposed convolutions alike.",
    )
    solve.add_argument("--in", dest="in_size", type=positive_int, required=True, help="input size along one dimension")
    solve.add_argument("--out", dest="out_size", type=positive_int, required=True, help="wanted output size")
    solve.add_argument("--kernel", type=positive_int, required=True, help="kernel size along that dimension")
    kind = solve.add_mutually_exclusive_group()
    kind.add_argument("--transposed", action="store_true", help="transposed convolutions only")
    kind.add_argument("--ordinary", action="store_true", help="ordinary convolutions only")
    solve.add_argument("--max-stride", type=positive_int, default=8, help="default 8")
    solve.add_argument("--max-dilation", type=positive_int, default=4, help="default 4")
    solve.add_argument("--limit", type=positive_int, default=10, help="show at most this many (default 10)")
    solve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console
    from rich.table import Table

    from convlens.solve import solve

    transposed = True if args.transposed else False if args.ordinary else None
    found = solve(args.in_size, args.out_size, args.kernel, transposed=transposed, max_stride=args.max_stride,
                  max_dilation=args.max_dilation)  # fmt: skip
    console = Console(width=None if sys.stdout.isatty() else 160)
    if not found:
        kinds = {True: "transposed convolution", False: "ordinary convolution", None: "convolution"}[transposed]
        raise UsageError(
            f"no {kinds} with a {args.kernel} kernel takes {args.in_size} to {args.out_size} with stride up to "
            f"{args.max_stride} and dilation up to {args.max_dilation}; try another kernel, or raise the bounds"
        )
    table = Table(
        title=f"{args.in_size} -> {args.out_size} with kernel {args.kernel}: {len(found)} way(s), simplest first"
    )
    for column in ("kind", "stride", "padding", "dilation", "output_padding", "PyTorch"):
        table.add_column(column, justify="left" if column in ("kind", "PyTorch") else "right")
    for solution in found[: args.limit]:
        kind = "transposed" if solution.transposed else "ordinary"
        table.add_row(kind, str(solution.stride), str(solution.padding), str(solution.dilation),
                      str(solution.output_padding) if solution.transposed else "-", solution.code())  # fmt: skip
    console.print(table)
    console.print(found[0].formula(args.in_size))
    if len(found) > args.limit:
        console.print(f"... {len(found) - args.limit} more (--limit {len(found)} shows them all)")
    return 0
