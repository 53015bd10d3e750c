"""Why a forward broke on a shape, and the fix with its numbers, read off the recorded rows
(PyTorch's own messages differ between devices: on meta a channel mismatch is "Invalid channel
dimensions", on the CPU "expected input[...] to have 16 channels").

- a window larger than its padded input: the output-size formula with the numbers, the chain of
  layers that shrank the input, the padding on the failing layer that lets this input through,
  and the smallest input the whole model accepts (the traced forward run on meta for growing
  sizes, then halving the gap);
- a channel mismatch: which earlier call made the channels the failing one got; an input that
  looks channels-last gets its ``permute``;
- a Linear (or matmul) whose inner size does not fit: the ``in_features`` that does;
- anything else: PyTorch's message and the shapes going in.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from convlens.errors import ArgumentError
from convlens.spec import check_window_fits
from convlens.summary.rows import Row


def diagnose(rows: list[Row], failing: Row, message: str, shape: tuple[int, ...] | None,
             runs: Callable[[tuple[int, ...]], bool]) -> list[str]:  # fmt: skip
    """The fixes for ``failing``; ``shape`` is the model's input shape (None: several inputs),
    ``runs(shape)`` whether the model runs through on an input of that shape."""
    given = failing.input_shape
    if given is not None and failing.in_channels is not None and len(given) > 1:
        got = given[failing.channel_dim]
        if got != failing.in_channels and failing.channel_dim == -1:
            return linear_fixes(failing, got)
        if got != failing.in_channels:
            return channel_fixes(shape, rows, failing, failing.in_channels, got)
    if given is None or failing.kernel_size is None or failing.output_padding is not None or fits(failing):
        return [f"PyTorch's message at {failing.name}, whose input was {list(given or ())}: {message}"]
    return window_fixes(rows, failing, shape, runs)


def window_fixes(rows: list[Row], failing: Row, shape: tuple[int, ...] | None,
                 runs: Callable[[tuple[int, ...]], bool]) -> list[str]:  # fmt: skip
    assert failing.input_shape is not None and failing.kernel_size is not None
    rank = len(failing.kernel_size)
    pads = failing.padding or (0,) * (2 * rank)
    dilation = failing.dilation or (1,) * rank
    fixes = []
    try:
        check_window_fits(failing.input_shape[2:], failing.kernel_size, failing.stride or (1,) * rank, pads, dilation)
    except ArgumentError as error:
        fixes.append(str(error))  # the output-size formula with the numbers
    chain = [f"{row.name} {'x'.join(map(str, row.output_shape[2:]))}" for row in rows
             if row.output_shape is not None and row.kernel_size is not None and not row.failed]  # fmt: skip
    start = "x".join(map(str, (shape or failing.input_shape)[2:]))
    fixes.append(f"the input shrank {start} -> " + " -> ".join([*chain, f"{failing.name} (fails)"]))
    spans = [d * (k - 1) + 1 for d, k in zip(dilation, failing.kernel_size)]
    need = [max(0, math.ceil((span - size - before - after) / 2)) for span, size, before, after in
            zip(spans, failing.input_shape[2:], pads[::2], pads[1::2])]  # fmt: skip
    fixes.append(f"padding {tuple(p + n for p, n in zip(pads[::2], need))} on {failing.name} (instead of "
                 f"{tuple(pads[::2])}) lets this input through")  # fmt: skip
    smallest = smallest_input(shape, runs) if shape is not None else None
    if smallest is not None:
        fixes.append(f"the smallest input the whole model accepts is {'x'.join(map(str, smallest[2:]))} "
                     f"(input shape {list(smallest)}; checked by a run on meta)")  # fmt: skip
    return fixes


def fits(row: Row) -> bool:
    """Whether a convolution's or pooling's window fits in its padded input."""
    assert row.input_shape is not None and row.kernel_size is not None
    rank = len(row.kernel_size)
    try:
        check_window_fits(row.input_shape[2:], row.kernel_size, row.stride or (1,) * rank,
                          row.padding or (0,) * (2 * rank), row.dilation or (1,) * rank)  # fmt: skip
    except ArgumentError:
        return False
    return True


def linear_fixes(failing: Row, got: int) -> list[str]:
    given = list(failing.input_shape or ())
    if failing.type == "Linear":
        lazy = "nn.LazyLinear(out_features) infers it at the first call"
        return [f"{failing.name} has in_features={failing.in_channels}, its input {given} has {got}: "
                f"in_features={got} fits this input ({lazy})"]  # fmt: skip
    return [f"{failing.name} multiplies an input {given} whose last size is {got} by a weight that takes "
            f"{failing.in_channels}: a weight taking {got} fits this input"]  # fmt: skip


def channel_fixes(shape: tuple[int, ...] | None, rows: list[Row], failing: Row, expected: int, got: int) -> list[str]:
    """A convolution given another number of channels than its weight takes: where those came from."""
    earlier = [row for row in rows[: rows.index(failing)] if row.output_shape is not None and len(row.output_shape) > 1]
    made = [row for row in earlier if row.output_shape[1] == got  # type: ignore[index]
            and (row.input_shape is None or len(row.input_shape) < 2 or row.input_shape[1] != got)]  # fmt: skip
    source = made[-1] if made else None  # the last call that changed the channel count to ``got``
    fixes = [f"{failing.name} expects {expected} input channels and gets {got}"]
    if source is not None:
        produced = list(source.output_shape or ())
        fixes.append(f"the {got} channels come from {source.name} ({source.type}, output {produced}): give "
                     f"{failing.name} in_channels={got}, or {source.name} {expected} output channels")  # fmt: skip
    if shape is not None and len(shape) == 4 and shape[-1] == expected and shape[1] != expected and not earlier:
        fixes.append(f"the input {list(shape)} looks channels-last (N, H, W, C) for a model that takes (N, C, H, W): "
                     f"x.permute(0, 3, 1, 2) gives {[shape[0], shape[3], shape[1], shape[2]]}")  # fmt: skip
    return fixes


def smallest_input(shape: tuple[int, ...], runs: Callable[[tuple[int, ...]], bool], limit: int = 1 << 16):
    """The smallest equal spatial size (every spatial dimension the same) the model runs through,
    found by doubling from the given size and then halving the gap; None above ``limit``."""

    def sized(size: int) -> tuple[int, ...]:
        return (*shape[:2], *(size,) * (len(shape) - 2))

    low, high = max(shape[2:]), max(shape[2:])
    while not runs(sized(high)):
        low, high = high, high * 2
        if high > limit:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if runs(sized(middle)) else (middle, high)
    return sized(high)
