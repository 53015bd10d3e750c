"""``convlens summary``: every layer call of a model, its shapes, parameters, multiply-adds,
convolution settings and receptive field, run on meta; where the model breaks on a shape, the
rows up to it and the diagnosis (exit 1, no traceback: that is the answer)."""

from __future__ import annotations

import argparse
from pathlib import Path

from convlens.cli.options import UsageError


def add_parser(commands: argparse._SubParsersAction) -> None:
    summary = commands.add_parser(
        "summary", help="every layer of a model: shapes, params, MACs, receptive field; and why its shapes break"
    )
    summary.add_argument("target", help="a torchvision model name, e.g. resnet18")
    summary.add_argument("--input", dest="input_text", required=True, help="input shape, e.g. 1,3,224,224")
    summary.add_argument("--json", type=Path, default=None, help="also write the summary as JSON")
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

    import torch
    import torchvision
    from rich.console import Console
    from rich.table import Table

    from convlens.summary import summary

    shape = input_shape(args.input_text)
    if args.target not in torchvision.models.list_models():
        raise UsageError(
            f"unknown model {args.target!r}: give a torchvision model name (torchvision.models.list_models())"
        )
    if args.json is not None:
        from convlens.files import prepare_out_file

        prepare_out_file(args.json, "--json")
    with torch.device("meta"):  # shapes only: no memory for weights, nothing downloaded
        model = torchvision.models.get_model(args.target, weights=None)
    start = time.perf_counter()
    result = summary(model, shape)
    seconds = time.perf_counter() - start
    console = Console(width=None if sys.stdout.isatty() else 200)
    table = Table(title=f"{args.target} on input {list(shape)} (meta: shapes only)")
    columns = ("layer", "type", "output", "params", "MACs", "kernel", "stride", "padding", "dilation", "groups",
               "receptive field", "jump")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("layer", "type") else "right")

    def text(value: object) -> str:
        if value is None:
            return ""
        return (
            "x".join(map(str, value))
            if isinstance(value, tuple)
            else f"{value:,}"
            if isinstance(value, int)
            else str(value)
        )

    for row in result.rows:
        output = "FAILED" if row.failed else text(row.output_shape)
        table.add_row(row.name, row.type, output, text(row.params), text(row.macs), text(row.kernel_size),
                      text(row.stride), text(row.padding), text(row.dilation), text(row.groups),
                      text(row.receptive_field), text(row.jump), style="bold red" if row.failed else None)  # fmt: skip
    console.print(table)
    console.print(
        f"total: {result.total_params:,} parameters, {result.total_macs:,} multiply-adds; traced on meta in "
        f"{seconds:.2f} s" + (" (the diagnosis's search included)" if result.failure is not None else "")
    )
    if result.failure is not None:
        console.print(f"[bold red]the forward stopped at {result.failure.name}[/]: {result.failure.message}")
        for fix in result.failure.fixes:
            console.print(f"- {fix}", markup=False)
    if args.json is not None:
        from convlens.files import atomic_write_bytes

        console.print(f"wrote {atomic_write_bytes(args.json, json.dumps(result.to_dict(), indent=2).encode())}")
    return 1 if result.failure is not None else 0
