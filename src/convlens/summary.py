"""``convlens.summary``: one row per layer call of a model's forward, every convolution rule
resolved to numbers, the receptive field of each output, and, where the forward breaks on a shape,
the rows up to it and a diagnosis with the fix's numbers instead of a traceback.

The forward runs once on **meta** tensors (shapes only: no memory, no arithmetic). Two things
watch it:

- forward hooks on every module without children give the module's row: its qualified name,
  type, shapes, parameters, multiply-adds, and for convolutions and pooling the kernel, stride,
  padding resolved to (before, after) numbers, dilation and groups;
- a ``TorchFunctionMode`` sees every torch call. A convolution a model's own ``forward`` calls as
  ``F.conv2d`` gets a row too, named after the module whose forward called it plus the function.
  And every tensor carries its **receptive field** and **jump** with respect to the model's input:
  a convolution or pooling window of k taps at dilation d and stride s over a tensor of field r
  and jump j gives ``r + (k - 1)*d*j`` and ``j*s``; any other op keeps the largest of its inputs'.

When a convolution's window is larger than its padded input, the diagnosis gives the output-size
formula with the numbers, the chain of layers that shrank the input, the smallest input size the
whole model accepts (the traced forward run on meta for growing sizes, then halving the gap) and
the padding on the failing layer that would let this input through.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from convlens.errors import ArgumentError
from convlens.spec import check_window_fits, resolve_padding, to_sizes

CONVOLUTIONS = {F.conv1d: 1, F.conv2d: 2, F.conv3d: 3, torch.conv1d: 1, torch.conv2d: 2, torch.conv3d: 3}
POOLING = (torch.nn.MaxPool1d, torch.nn.MaxPool2d, torch.nn.MaxPool3d, torch.nn.AvgPool1d, torch.nn.AvgPool2d,
           torch.nn.AvgPool3d)  # fmt: skip


@dataclass
class Row:
    """One layer call: a leaf module, or a convolution called as a function inside a forward."""

    name: str
    type: str
    input_shape: tuple[int, ...] | None = None
    output_shape: tuple[int, ...] | None = None
    params: int = 0
    macs: int = 0
    kernel_size: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    padding: tuple[int, ...] | None = None  # (before, after) per spatial dimension, resolved
    dilation: tuple[int, ...] | None = None
    groups: int | None = None
    in_channels: int | None = None  # what a convolution takes (or a Linear's in_features): for the diagnosis
    receptive_field: tuple[int, ...] | None = None
    jump: tuple[int, ...] | None = None
    failed: bool = False


@dataclass
class Failure:
    name: str
    message: str
    fixes: list[str] = field(default_factory=list)


@dataclass
class Summary:
    rows: list[Row]
    failure: Failure | None = None

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    def to_dict(self) -> dict:
        """The JSON form: rows with the keys that apply to them, totals, and the failure or None."""
        rows = [
            {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(row).items()
             if value is not None and (key != "failed" or value)}
            for row in self.rows
        ]  # fmt: skip
        failure = None if self.failure is None else asdict(self.failure)
        return {"rows": rows, "total_params": self.total_params, "total_macs": self.total_macs, "failure": failure}


def conv_options(func: Callable, args: Sequence, kwargs: dict) -> tuple[int, dict]:
    """(rank, {stride, padding, dilation, groups}) of an F.convNd call as written."""
    options = dict(zip(("bias", "stride", "padding", "dilation", "groups"), args[2:], strict=False)) | kwargs
    return CONVOLUTIONS[func], options


def window_of(func: Callable, args: Sequence, kwargs: dict) -> tuple[tuple[int, ...], ...] | None:
    """(kernel, stride, dilation) of a convolution or (non-adaptive) pooling call, None for other ops."""
    name = getattr(func, "__name__", "")
    if func in CONVOLUTIONS:
        rank, options = conv_options(func, args, kwargs)
        stride, dilation = options.get("stride", 1), options.get("dilation", 1)
        return tuple(args[1].shape[2:]), to_sizes("stride", stride, rank), to_sizes("dilation", dilation, rank)
    if name.endswith(("pool1d", "pool2d", "pool3d")) and "adaptive" not in name and "lp" not in name:
        rank = int(name[-2])
        options = dict(zip(("kernel_size", "stride", "padding", "dilation"), args[1:], strict=False)) | kwargs
        kernel = to_sizes("kernel_size", options["kernel_size"], rank)
        stride = options.get("stride") or kernel  # PyTorch's default stride is the kernel
        dilation = options.get("dilation", 1) if name.startswith("max") else 1
        return kernel, to_sizes("stride", stride, rank), to_sizes("dilation", dilation, rank)
    return None


class Tracer(TorchFunctionMode):
    """Carries receptive field and jump through every torch call; gives functional convolutions rows."""

    def __init__(self, rows: list[Row], modules: list[str]) -> None:
        super().__init__()
        self.rows, self.modules = rows, modules  # the rows so far; the names of the modules now running
        self.inside_conv_module = 0  # a Conv layer's own call to F.convNd is its row, not another

    def __torch_function__(self, func: Callable, types: tuple, args: Sequence = (), kwargs: dict | None = None):
        kwargs = kwargs or {}
        row = None
        if func in CONVOLUTIONS and not self.inside_conv_module:
            row = self.functional_row(func, args, kwargs)
        out = func(*args, **kwargs)
        fields = [t._convlens_field for t in (*args, *kwargs.values()) if hasattr(t, "_convlens_field")]
        if isinstance(out, torch.Tensor) and fields:
            rank = max(len(f[0]) for f in fields)
            receptive = tuple(max(f[0][i] for f in fields if len(f[0]) == rank) for i in range(rank))
            jump = tuple(max(f[1][i] for f in fields if len(f[1]) == rank) for i in range(rank))
            window = window_of(func, args, kwargs)
            if window is not None:
                kernel, stride, dilation = window
                receptive = tuple(r + (k - 1) * d * j for r, k, d, j in zip(receptive, kernel, dilation, jump))
                jump = tuple(j * s for j, s in zip(jump, stride))
            out._convlens_field = (receptive, jump)  # type: ignore[attr-defined]
            if row is not None:
                row.receptive_field, row.jump = receptive, jump
        if row is not None:
            row.output_shape, row.failed = tuple(out.shape), False
            row.macs = out.numel() * args[1][0].numel()  # each output: C_in/G * k_h * k_w products
        return out

    def functional_row(self, func: Callable, args: Sequence, kwargs: dict) -> Row:
        rank, options = conv_options(func, args, kwargs)
        stride = to_sizes("stride", options.get("stride", 1), rank)
        dilation = to_sizes("dilation", options.get("dilation", 1), rank)
        kernel = tuple(args[1].shape[2:])
        owner = self.modules[-1] if self.modules else ""
        row = Row(
            f"{owner}.{func.__name__}" if owner else func.__name__,
            f"F.{func.__name__}",
            input_shape=tuple(args[0].shape),
            kernel_size=kernel,
            stride=stride,
            dilation=dilation,
            groups=options.get("groups", 1),
            failed=True,
        )  # fmt: skip (failed until it returns)
        with contextlib.suppress(ArgumentError):
            row.padding = resolve_padding(options.get("padding", 0), kernel, stride, dilation)
        self.rows.append(row)
        return row


def module_row(name: str, module: torch.nn.Module, x: object) -> Row:
    """A leaf module's row before it runs: its input shape, parameters and window settings."""
    row = Row(name, type(module).__name__, input_shape=tuple(x.shape) if isinstance(x, torch.Tensor) else None,
              params=sum(p.numel() for p in module.parameters(recurse=False)), failed=True)  # fmt: skip
    if isinstance(module, torch.nn.Linear):
        row.in_channels = module.in_features
    if isinstance(module, torch.nn.modules.conv._ConvNd):
        row.kernel_size, row.stride, row.dilation = module.kernel_size, module.stride, module.dilation
        row.groups, row.in_channels = module.groups, module.in_channels
        with contextlib.suppress(ArgumentError):
            row.padding = resolve_padding(module.padding, module.kernel_size, module.stride, module.dilation)
    elif isinstance(module, POOLING) and isinstance(x, torch.Tensor):
        rank = x.dim() - 2
        row.kernel_size = to_sizes("kernel_size", module.kernel_size, rank)
        row.stride = to_sizes("stride", module.stride or module.kernel_size, rank)
        row.dilation = to_sizes("dilation", getattr(module, "dilation", 1), rank)
        row.padding = tuple(p for p in to_sizes("padding", module.padding, rank) for _ in range(2))
    return row


def finish_row(row: Row, module: torch.nn.Module, out: object) -> None:
    """A leaf module's row after it ran: output shape, multiply-adds, receptive field and jump."""
    row.failed = False
    if not isinstance(out, torch.Tensor):
        return
    row.output_shape = tuple(out.shape)
    if isinstance(module, torch.nn.modules.conv._ConvNd):
        # weight[0]: one output channel's C_in/G * k_h * k_w taps, or for a transposed layer one input
        # channel's C_out/G * k_h * k_w, the products each input value spreads
        multiplied = math.prod(row.input_shape or (0,)) if module.transposed else out.numel()
        row.macs = multiplied * module.weight[0].numel()
    elif isinstance(module, torch.nn.Linear):
        row.macs = out.numel() * module.in_features
    field_ = getattr(out, "_convlens_field", None)
    if field_ is not None and row.kernel_size is not None:
        row.receptive_field, row.jump = field_


def trace(model: torch.nn.Module, x: torch.Tensor) -> tuple[list[Row], BaseException | None]:
    """Run ``model(x)`` once, recording rows; the exception that stopped it, or None."""
    rows: list[Row] = []
    running: list[str] = []
    names = {module: name for name, module in model.named_modules()}
    tracer = Tracer(rows, running)
    open_rows: dict[int, Row] = {}

    def before(module: torch.nn.Module, args: tuple) -> None:
        running.append(names[module])
        if not any(True for _ in module.children()):
            open_rows[id(module)] = row = module_row(names[module], module, args[0] if args else None)
            rows.append(row)
            tracer.inside_conv_module += isinstance(module, torch.nn.modules.conv._ConvNd)

    def after(module: torch.nn.Module, args: tuple, out: object) -> None:
        running.pop()
        row = open_rows.pop(id(module), None)
        if row is not None:
            tracer.inside_conv_module -= isinstance(module, torch.nn.modules.conv._ConvNd)
            finish_row(row, module, out)

    hooks = [h for m in names for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    x._convlens_field = ((1,) * (x.dim() - 2), (1,) * (x.dim() - 2))  # type: ignore[attr-defined]
    # the model's parameters and buffers as meta tensors, for this call only: the model is not changed
    state = {
        name: torch.empty_like(t, device="meta") for name, t in [*model.named_parameters(), *model.named_buffers()]
    }
    training = model.training
    try:
        with torch.no_grad(), tracer:
            torch.func.functional_call(model.eval(), state, (x,))
        return rows, None
    except (RuntimeError, ValueError, TypeError) as error:
        return rows, error
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()


def summary(model: torch.nn.Module, input_size: Sequence[int], *, dtype: torch.dtype = torch.float32) -> Summary:
    """The layer calls of ``model`` on one input of ``input_size`` (N, C, H, W, or another rank),
    run on meta: no memory, no arithmetic, and the model itself unchanged (its parameters are
    replaced by meta ones for the call, in eval mode). Never raises on a shape error in the model:
    the summary then ends at the failing call, marked, with a diagnosis (``Summary.failure``)."""
    shape = tuple(int(n) for n in input_size)
    rows, error = trace(model, torch.zeros(shape, dtype=dtype, device="meta"))
    if error is None:
        return Summary(rows)
    failed = [row for row in rows if row.failed]
    failing = failed[-1] if failed else None
    message = " ".join(str(error).split())
    name = failing.name if failing is not None else "(no layer row)"
    fixes = diagnose(model, shape, rows, failing, message, dtype) if failing is not None else []
    return Summary(rows, Failure(name, message, fixes))


def diagnose(model: torch.nn.Module, shape: tuple[int, ...], rows: list[Row], failing: Row, message: str,
             dtype: torch.dtype) -> list[str]:  # fmt: skip
    """The fixes for a failing call, with their numbers, read off the recorded shapes (PyTorch's
    messages differ between devices: on meta a channel mismatch is "Invalid channel dimensions")."""
    given = failing.input_shape
    if given is not None and failing.in_channels is not None:
        got = given[-1] if failing.type == "Linear" else given[1] if len(given) > 1 else None
        if got is not None and got != failing.in_channels:
            if failing.type == "Linear":
                return [f"{failing.name} has in_features={failing.in_channels}, its input {list(given)} has {got}: "
                        f"in_features={got} fits this input (nn.LazyLinear(out_features) infers it at the first "
                        f"call)"]  # fmt: skip
            return channel_fixes(shape, rows, failing, failing.in_channels, got)
    if given is None or failing.kernel_size is None or not window_too_large(failing):
        return [f"PyTorch's message at {failing.name}, whose input was {list(given or ())}: {message}"]
    fixes = []
    rank = len(failing.kernel_size)
    pads = failing.padding or (0,) * (2 * rank)
    dilation = failing.dilation or (1,) * rank
    try:
        check_window_fits(given[2:], failing.kernel_size, failing.stride or (1,) * rank, pads, dilation)
    except ArgumentError as error:
        fixes.append(str(error))  # the output-size formula with the numbers
    chain = [f"{row.name} {'x'.join(map(str, row.output_shape[2:]))}" for row in rows
             if row.output_shape is not None and row.kernel_size is not None]  # fmt: skip
    start = "x".join(map(str, shape[2:]))
    fixes.append(f"the input shrank {start} -> " + " -> ".join([*chain, f"{failing.name} (fails)"]))
    spans = [d * (k - 1) + 1 for d, k in zip(dilation, failing.kernel_size)]
    sizes = given[2:]
    need = [max(0, math.ceil((span - size - before - after) / 2)) for span, size, before, after in
            zip(spans, sizes, pads[::2], pads[1::2])]  # fmt: skip
    fixes.append(f"padding {tuple(p + n for p, n in zip(pads[::2], need))} on {failing.name} (instead of "
                 f"{tuple(pads[::2])}) lets this input through")  # fmt: skip
    smallest = smallest_input(model, shape, dtype)
    if smallest is not None:
        fixes.append(f"the smallest input the whole model accepts is {'x'.join(map(str, smallest[2:]))} "
                     f"(input shape {list(smallest)}; checked by a run on meta)")  # fmt: skip
    return fixes


def window_too_large(row: Row) -> bool:
    """Whether a convolution's or pooling's window spans more than its padded input."""
    assert row.input_shape is not None and row.kernel_size is not None
    rank = len(row.kernel_size)
    try:
        check_window_fits(row.input_shape[2:], row.kernel_size, row.stride or (1,) * rank,
                          row.padding or (0,) * (2 * rank), row.dilation or (1,) * rank)  # fmt: skip
    except ArgumentError:
        return True
    return False


def channel_fixes(shape: tuple[int, ...], rows: list[Row], failing: Row, expected: int, got: int) -> list[str]:
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
    if len(shape) == 4 and shape[-1] == expected and shape[1] != expected and not earlier:
        fixes.append(f"the input {list(shape)} looks channels-last (N, H, W, C) for a model that takes (N, C, H, W): "
                     f"x.permute(0, 3, 1, 2) gives {[shape[0], shape[3], shape[1], shape[2]]}")  # fmt: skip
    return fixes


def smallest_input(model: torch.nn.Module, shape: tuple[int, ...], dtype: torch.dtype, limit: int = 1 << 16):
    """The smallest equal spatial size (every spatial dimension the same) the model runs through on
    meta, found by doubling from the given size and then halving the gap; None above ``limit``."""

    def runs(size: int) -> bool:
        _, error = trace(model, torch.zeros((*shape[:2], *(size,) * (len(shape) - 2)), dtype=dtype, device="meta"))
        return error is None

    low, high = max(shape[2:]), max(shape[2:])
    while not runs(high):
        low, high = high, high * 2
        if high > limit:
            return None
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if runs(middle) else (middle, high)
    return (*shape[:2], *(high,) * (len(shape) - 2))
