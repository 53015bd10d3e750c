"""What a summary holds: one ``Row`` per layer call, the ``Failure`` where a forward broke, and
``Summary`` with its totals, its view at a nesting depth and its JSON, CSV and Markdown forms."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field, replace
from typing import Any

# the keys a row's JSON leaves out: the diagnosis's working values
INTERNAL = ("in_channels", "channel_dim", "windowed", "output_bytes", "calls", "failed")


@dataclass
class Row:
    """One layer call: a leaf module, a module's own parameters, or a function (a convolution,
    pooling, interpolate, flatten/view/reshape, linear or matmul) called in a ``forward``.

    ``padding`` is (before, after) per spatial dimension, resolved ("same" and modes to numbers).
    ``receptive_field`` is how many input pixels (per spatial dimension) one output sees,
    ``jump`` how far apart on the input two neighbouring outputs are, and ``receptive_field_start``
    where output 0's field begins (negative: in the padding). A transposed convolution or an
    upsampling makes ``jump`` a fraction."""

    name: str
    type: str
    depth: int
    input_shape: tuple[int, ...] | None = None
    output_shape: tuple[int, ...] | None = None
    params: int = 0
    trainable_params: int = 0
    macs: int = 0
    kernel_size: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    padding: tuple[int, ...] | None = None
    padding_mode: str | None = None
    dilation: tuple[int, ...] | None = None
    groups: int | None = None
    output_padding: tuple[int, ...] | None = None
    receptive_field: tuple[int | float, ...] | None = None
    jump: tuple[int | float, ...] | None = None
    receptive_field_start: tuple[int | float, ...] | None = None
    in_channels: int | None = None  # the channels (or a Linear's in_features) the call takes
    channel_dim: int = 1  # where in its input those are: 1, or -1 for a Linear or matmul
    windowed: bool = False  # whether a convolution or pooling window ran in this call
    output_bytes: int = 0  # memory its output takes (0 for a view or an in-place module)
    calls: tuple[tuple[str, int], ...] = ()  # (name, serial number) of each module call around it, outermost first
    failed: bool = False

    def call_at(self, depth: int) -> tuple[str, int] | None:
        """The call of the module ``depth`` levels deep that holds this row (None: not inside one)."""
        ancestor = ".".join(self.name.split(".")[:depth])
        return next((call for call in reversed(self.calls) if call[0] == ancestor), None)


@dataclass
class Failure:
    """Where the forward stopped: the call, PyTorch's message, and the fixes with their numbers."""

    name: str
    message: str
    fixes: list[str] = field(default_factory=list)


@dataclass
class Summary:
    rows: list[Row]
    total_params: int
    trainable_params: int
    failure: Failure | None = None
    # (name, serial number) of every module call -> its type and output shape
    modules: dict[tuple[str, int], tuple[str, tuple[int, ...] | None]] = field(default_factory=dict, repr=False)

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    @property
    def activation_bytes(self) -> int:
        """The memory of every output of one forward (views and in-place modules take none)."""
        return sum(row.output_bytes for row in self.rows)

    def at_depth(self, depth: int) -> Summary:
        """The rows below ``depth`` levels of nesting folded into their module at that depth: one
        row per call of it, its parameters and multiply-adds summed, its own output shape, and the
        receptive field of its last windowed row (``depth=1``: one row per child of the model)."""
        if depth < 1:
            raise ValueError(f"depth must be 1 or more, got depth={depth}")
        rows: list[Row] = []
        held_by: list[tuple[str, int] | None] = []  # the module call each kept row stands for
        for row in self.rows:
            call = row.call_at(depth)
            if row.depth > depth and call is not None and held_by and held_by[-1] == call:
                fold_into(rows[-1], row)
                rows[-1].type = rows[-1].type.removesuffix(OWN)  # the module's row now, not only its parameters
            elif row.depth > depth and call is not None:
                module_type, output_shape = self.modules.get(call, ("", None))
                no_window: dict[str, Any] = dict.fromkeys(WINDOW_KEYS)
                rows.append(replace(row, name=call[0], type=module_type, depth=depth, output_shape=output_shape,
                                    **no_window))  # fmt: skip
                held_by.append(call)
            else:
                rows.append(replace(row))
                held_by.append(call if row.name == (call or ("",))[0] else None)
        return replace(self, rows=rows)

    def to_dict(self) -> dict:
        """The JSON form: rows with the keys that apply to them (shapes and pairs as lists), totals,
        and the failure or None."""
        rows = [
            {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(row).items()
             if value is not None and key not in INTERNAL} | ({"failed": True} if row.failed else {})
            for row in self.rows
        ]  # fmt: skip
        return {
            "rows": rows,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_macs": self.total_macs,
            "activation_bytes": self.activation_bytes,
            "failure": None if self.failure is None else asdict(self.failure),
        }

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Column names and one line of text cells per row, as the CLI, CSV and Markdown show them."""
        lines = []
        for row in self.rows:
            output = "FAILED" if row.failed else text(row.output_shape)
            name = "  " * (row.depth - 1) + row.name
            cells = [name, row.type, text(row.input_shape), output, text(row.params), text(row.macs)]
            cells += [text(row.kernel_size), text(row.stride), padding_text(row.padding), text(row.dilation)]
            lines.append([*cells, text(row.groups), text(row.receptive_field), text(row.jump)])
        return list(COLUMNS), lines

    def to_csv(self) -> str:
        """Every row's cells, one line each, names not indented; shapes as 1x3x224x224."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        columns, lines = self.table()
        writer.writerow(columns)
        writer.writerows([[cells[0].strip(), *cells[1:]] for cells in lines])
        return buffer.getvalue()

    def to_markdown(self) -> str:
        """A GitHub Markdown table of the rows, then the totals (and the failure, if any)."""
        columns, lines = self.table()
        right = ["---" if column in ("layer", "type") else "---:" for column in columns]
        table = ["| " + " | ".join(cells) + " |" for cells in (columns, right)]
        for cells in lines:
            table.append("| " + " | ".join(cell.strip().replace("|", "\\|") or " " for cell in cells) + " |")
        table.append("")
        table.append(self.totals_line())
        if self.failure is not None:
            table += ["", f"**The forward stopped at {self.failure.name}**: {self.failure.message}", ""]
            table += [f"- {fix}" for fix in self.failure.fixes]
        return "\n".join(table) + "\n"

    def totals_line(self) -> str:
        trainable = "" if self.trainable_params == self.total_params else f" ({self.trainable_params:,} trainable)"
        return (
            f"total: {self.total_params:,} parameters{trainable}, {self.total_macs:,} multiply-adds, "
            f"{size_text(self.activation_bytes)} of activations in one forward"
        )


WINDOW_KEYS = ("kernel_size", "stride", "padding", "padding_mode", "dilation", "groups", "output_padding")
OWN = " (own parameters)"  # the type of the row of a module with children, for the parameters it holds itself
COLUMNS = ("layer", "type", "input", "output", "params", "MACs", "kernel", "stride", "padding", "dilation", "groups",
           "receptive field", "jump")  # fmt: skip


def fold_into(total: Row, row: Row) -> None:
    """Add a deeper row to the row of the module that holds it."""
    total.params += row.params
    total.trainable_params += row.trainable_params
    total.macs += row.macs
    total.output_bytes += row.output_bytes
    total.failed = total.failed or row.failed
    if row.failed:
        total.output_shape = None
    if row.receptive_field is not None:
        total.receptive_field, total.jump = row.receptive_field, row.jump
        total.receptive_field_start = row.receptive_field_start


def text(value: object) -> str:
    """A cell: sizes as 3x3, counts with thousands separators, fractions to 3 digits."""
    if value is None:
        return ""
    if isinstance(value, tuple):
        return "x".join(str(part) if isinstance(part, int) else text(part) for part in value)
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def padding_text(padding: tuple[int, ...] | None) -> str:
    """(before, after) per dimension: 1x1 where each dimension pads both sides alike, 0+1x0+1 where not."""
    if padding is None:
        return ""
    pairs = list(zip(padding[::2], padding[1::2]))
    return "x".join(str(before) if before == after else f"{before}+{after}" for before, after in pairs)


def size_text(count: int) -> str:
    """Bytes as people read them: 812 B, 19.7 KiB, 119.5 MiB, 1.2 GiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:,.1f} {unit}"
    return f"{count} B"
