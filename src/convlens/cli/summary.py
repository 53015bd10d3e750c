"""``convlens summary``: every layer call of a model, its shapes, parameters, multiply-adds,
convolution settings and receptive field, run on meta; where the model breaks on a shape, the
rows up to it and the diagnosis (exit 1, no traceback: that is the answer)."""

from __future__ import annotations

import argparse
from pathlib import Path

from convlens.cli.options import UsageError, positive_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    summary = commands.add_parser(
        "summary", help="every layer of a model: shapes, params, MACs, receptive field; and why its shapes break"
    )
    summary.add_argument(
        "target", help="a torchvision model name (resnet18), or path/to/file.py:NAME or package.module:NAME naming "
        "an nn.Module, a Module class or a function returning one"
    )  # fmt: skip
    summary.add_argument("--input", dest="input_text", required=True, help="input shape, e.g. 1,3,224,224")
    summary.add_argument("--depth", type=positive_int, default=None,
                         help="fold rows nested deeper than this many module levels into their module")  # fmt: skip
    summary.add_argument("--json", type=Path, default=None, help="also write the summary as JSON")
    summary.add_argument("--csv", type=Path, default=None, help="also write the rows as CSV")
    summary.add_argument("--markdown", action="store_true", help="print a Markdown table instead of the text table")
    summary.set_defaults(run=run)


def input_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--input must be comma-separated sizes such as 1,3,224,224, got {text!r}") from None
    if len(shape) < 3 or min(shape) < 1:
        raise UsageError(f"--input needs N,C and at least one spatial size, each 1 or more, got {text!r}")
    return shape


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    import time

    from rich import box
    from rich.console import Console
    from rich.table import Table

    from convlens.cli.targets import load_model
    from convlens.files import atomic_write_bytes, prepare_out_file
    from convlens.summary import summary

    shape = input_shape(args.input_text)
    for option, path in (("--json", args.json), ("--csv", args.csv)):
        if path is not None:
            prepare_out_file(path, option)
    model = load_model(args.target)
    start = time.perf_counter()
    result = summary(model, shape, depth=args.depth)
    seconds = time.perf_counter() - start
    terminal = sys.stdout.isatty()
    console = Console(width=None if terminal else 200)
    searched = " (the diagnosis's search included)" if result.failure is not None else ""
    timing = f"traced on meta in {seconds:.2f} s{searched}"
    if args.markdown:
        console.print(result.to_markdown() + f"\n{timing}", markup=False, highlight=False, soft_wrap=True)
    else:
        columns, lines = result.table()
        title = f"{args.target} on input {list(shape)} (meta: shapes only)"
        table = Table(title=title, box=box.HEAVY_HEAD if terminal else box.ASCII)  # a file or pipe gets plain ASCII
        for column in columns:
            table.add_column(column, justify="left" if column in ("layer", "type") else "right")
        for row, cells in zip(result.rows, lines):
            table.add_row(*cells, style="bold red" if row.failed else None)
        console.print(table)
        console.print(f"{result.totals_line()}; {timing}", markup=False)
        if result.failure is not None:
            console.print(f"[bold red]the forward stopped at {result.failure.name}[/]: ", end="")
            console.print(result.failure.message, markup=False)
            for fix in result.failure.fixes:
                console.print(f"- {fix}", markup=False)
    for path, content in ((args.json, json.dumps(result.to_dict(), indent=2)), (args.csv, result.to_csv())):
        if path is not None:
            console.print(f"wrote {atomic_write_bytes(path, content.encode())}", markup=False)
    return 1 if result.failure is not None else 0
