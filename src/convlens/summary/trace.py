"""Running a model's forward once and writing down every layer call.

Two things watch the forward:

- hooks on every module. A module without children gets a row (its qualified name as
  ``named_modules()`` gives it, type, parameters, input and output); so does a module with
  children that holds parameters of its own (ConvNeXt's ``layer_scale``), for those parameters.
- a ``TorchFunctionMode`` that sees every torch call. Inside a leaf module the calls fill in its
  row (the window settings of the convolution or pooling it runs, the multiply-adds of its
  products); elsewhere, in a model's own ``forward``, a convolution, pooling, interpolate,
  flatten/view/reshape, linear or matmul gets a row of its own, named after the module whose
  forward called it plus the function (``head.conv2d``).

Every tensor carries the **receptive field** r, **jump** j and **start** s of its values on the
model's input, per spatial dimension (s: where value 0's field begins). A window of k taps at
dilation d and stride s, with p padding before, over a tensor (r, j, s0) gives

    r' = r + (k - 1)*d*j        j' = j*s        s' = s0 - p*j

a transposed convolution of stride s divides the jump, and its outputs' windows grow by
((k-1)*d)*j/s (the window that holds every input any of its outputs sees), an upsampling by f
divides the jump by f, and any other op takes the window that holds all of its inputs' fields. Jumps are
``Fraction``s so that a decoder's halved jumps stay exact.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import torch
from torch.overrides import TorchFunctionMode

from convlens.errors import ArgumentError
from convlens.spec import resolve_padding, to_sizes
from convlens.summary.rows import OWN, Row

CONVOLUTIONS = {"conv1d", "conv2d", "conv3d"}
TRANSPOSED = {"conv_transpose1d", "conv_transpose2d", "conv_transpose3d"}
POOLS = {f"{kind}_pool{rank}d" for kind in ("max", "avg") for rank in (1, 2, 3)}
ADAPTIVE = {f"adaptive_{kind}_pool{rank}d" for kind in ("max", "avg") for rank in (1, 2, 3)}
VIEWS = {"flatten", "view", "reshape"}
PRODUCTS = {"linear", "matmul", "mm", "bmm"}
ATTENTION = {"multi_head_attention_forward", "_native_multi_head_attention"}
# where a normalisation's weight and bias are in its arguments
NORM_AFFINE = {"batch_norm": (3, 4), "instance_norm": (3, 4), "layer_norm": (2, 3), "group_norm": (2, 3)}
# the functions that get a row of their own when a model's forward (not a leaf module) calls them
ROW_FUNCTIONS = CONVOLUTIONS | TRANSPOSED | POOLS | ADAPTIVE | VIEWS | PRODUCTS | {"interpolate"}

Field = tuple[tuple[Fraction, ...], tuple[Fraction, ...], tuple[Fraction, ...]]  # receptive field, jump, start


@dataclass(frozen=True)
class Window:
    """The sliding window of one convolution or pooling call, as numbers per spatial dimension."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]  # (before, after) per dimension
    dilation: tuple[int, ...]
    groups: int | None = None
    output_padding: tuple[int, ...] | None = None

    @property
    def transposed(self) -> bool:
        return self.output_padding is not None


def window_of(name: str, args: Sequence, kwargs: dict) -> Window | None:
    """The window of a convolution, transposed convolution or (fixed-size) pooling call, read off
    its arguments before it runs; None for any other call, or arguments PyTorch will refuse."""
    x = args[0] if args else kwargs.get("input")
    if not isinstance(x, torch.Tensor):
        return None
    rank = x.dim() - 2
    order: tuple[str, ...]
    try:
        if name in CONVOLUTIONS | TRANSPOSED:
            order = ("bias", "stride", "padding", "dilation", "groups")
            if name in TRANSPOSED:
                order = ("bias", "stride", "padding", "output_padding", "groups", "dilation")
            options = dict(zip(order, args[2:], strict=False)) | kwargs
            kernel = tuple(args[1].shape[2:])
            stride = to_sizes("stride", options.get("stride", 1), rank)
            dilation = to_sizes("dilation", options.get("dilation", 1), rank)
            groups = int(options.get("groups", 1))
            if name in CONVOLUTIONS:
                padding = resolve_padding(options.get("padding", 0), kernel, stride, dilation)
                return Window(kernel, stride, tuple(padding), dilation, groups)
            pads = to_sizes("padding", options.get("padding", 0), rank)
            output_padding = to_sizes("output_padding", options.get("output_padding", 0), rank)
            return Window(kernel, stride, tuple(p for p in pads for _ in "ab"), dilation, groups, output_padding)
        if name in POOLS:
            order = ("kernel_size", "stride", "padding", "dilation" if name.startswith("max") else "ceil_mode")
            options = dict(zip(order, args[1:], strict=False)) | kwargs
            kernel = to_sizes("kernel_size", options["kernel_size"], rank)
            stride = to_sizes("stride", options.get("stride") or kernel, rank)  # PyTorch's default: the kernel
            dilation = to_sizes("dilation", options.get("dilation", 1) if name.startswith("max") else 1, rank)
            pads = to_sizes("padding", options.get("padding", 0), rank)
            return Window(kernel, stride, tuple(p for p in pads for _ in "ab"), dilation)
    except (ArgumentError, TypeError, ValueError, KeyError, IndexError):
        return None
    return None


def macs_of(name: str, args: Sequence, kwargs: dict, out: torch.Tensor) -> int:
    """Multiply-adds of one call, counted as torchinfo counts them for layers: every product of a
    weight with an input, plus one per bias value added; a normalisation's affine parameters once
    per sample (torchinfo's convention); matmul's products. Other calls: 0."""
    bias = kwargs.get("bias", args[2] if len(args) > 2 else None)
    bias_adds = out.numel() if isinstance(bias, torch.Tensor) else 0
    if name in CONVOLUTIONS:  # each output: C_in/G * k_h * k_w products, one output channel's weight
        return out.numel() * args[1][0].numel() + bias_adds
    if name in TRANSPOSED:  # each input value spreads over C_out/G * k_h * k_w outputs
        return args[0].numel() * args[1][0].numel() + bias_adds
    if name == "linear":
        return out.numel() * args[1].shape[-1] + bias_adds
    if name in PRODUCTS:
        return out.numel() * args[0].shape[-1]
    if name in ATTENTION:  # projections of query, key and value, the scores, their sum of values, out projection
        query, key = args[0], args[1]
        batch_first = name == "_native_multi_head_attention"
        embed = query.shape[-1]
        batch = query.shape[0 if batch_first else 1] if query.dim() == 3 else 1
        targets, sources = query.numel() // (batch * embed), key.numel() // (batch * embed)
        projected = (2 * targets + 2 * sources) * batch * embed  # q and out: targets; k and v: sources
        return projected * embed + 2 * batch * targets * sources * embed + projected  # + one bias add each
    if name in NORM_AFFINE:
        at_weight, at_bias = NORM_AFFINE[name]
        weight = kwargs.get("weight", args[at_weight] if len(args) > at_weight else None)
        bias = kwargs.get("bias", args[at_bias] if len(args) > at_bias else None)
        affine = sum(t.numel() for t in (weight, bias) if isinstance(t, torch.Tensor))
        return args[0].shape[0] * affine if args[0].dim() > 0 else 0
    return 0


def next_field(
    name: str, args: Sequence, kwargs: dict, out: torch.Tensor, window: Window | None, given: Field
) -> Field:
    """The receptive field, jump and start of a call's output from its input's (module docstring)."""
    field, jump, start = given
    if window is not None and not window.transposed:
        field = tuple(r + (k - 1) * d * j for r, k, d, j in zip(field, window.kernel, window.dilation, jump))
        start = tuple(s - p * j for s, p, j in zip(start, window.padding[::2], jump))
        jump = tuple(j * s for j, s in zip(jump, window.stride))
    elif window is not None:
        # output o takes the inputs i with i*s = o + p - t*d, t in [0, k): from ceil((o + p - span + 1)/s) to
        # floor((o + p)/s), span = (k - 1)*d + 1. The window start + o*j/s, r + (span - 1)*j/s wide, holds them
        # for every o (exactly at some phases of o: the inputs of one output step by j every s outputs)
        spans = [(k - 1) * d + 1 for k, d in zip(window.kernel, window.dilation)]
        field = tuple(r + (n - 1) * j / s for r, n, s, j in zip(field, spans, window.stride, jump))
        start = tuple(s0 + (p - n + 1) * j / s for s0, p, n, s, j in zip(start, window.padding[::2], spans,
                                                                          window.stride, jump))  # fmt: skip
        jump = tuple(j / s for j, s in zip(jump, window.stride))
    elif name == "pad" and len(args) > 1 and len(args[1]) <= 2 * len(start):  # F.pad's list: last dimension first
        before = [*args[1][::2], *(0,) * len(start)][: len(start)][::-1]
        start = tuple(s - p * j for s, p, j in zip(start, before, jump))
    elif name in ADAPTIVE | {"interpolate"} and out.dim() == args[0].dim():
        sizes_in, sizes_out = args[0].shape[2:], out.shape[2:]
        if name in ADAPTIVE:  # the widest of its windows: from floor(i*n/o) to ceil((i+1)*n/o)
            widths = [max(-(-(i + 1) * n // o) - i * n // o for i in range(o)) for n, o in zip(sizes_in, sizes_out)]
        else:  # nearest takes one input, the linear modes two neighbours per dimension
            mode = kwargs.get("mode", args[3] if len(args) > 3 else "nearest")
            widths = [1 if "nearest" in str(mode) else min(2, n) for n in sizes_in]
        field = tuple(r + (w - 1) * j for r, w, j in zip(field, widths, jump))
        jump = tuple(j * Fraction(n, o) for j, n, o in zip(jump, sizes_in, sizes_out))
    return field, jump, start


def union(fields: list[Field]) -> Field:
    """The field of a value computed from several (a residual sum, a concatenation): the window
    that holds all of theirs, at the largest jump; inputs of a lower rank (a bias, a mask) ignored."""
    rank = max(len(field[0]) for field in fields)
    fields = [field for field in fields if len(field[0]) == rank]
    if len(fields) == 1:
        return fields[0]
    starts = tuple(min(field[2][i] for field in fields) for i in range(rank))
    ends = tuple(max(field[2][i] + field[0][i] for field in fields) for i in range(rank))
    jumps = tuple(max(field[1][i] for field in fields) for i in range(rank))
    return tuple(end - start for start, end in zip(starts, ends)), jumps, starts


def as_numbers(values: tuple[Fraction, ...], whole: bool = False) -> tuple[int | float, ...]:
    """Fractions as ints where whole, floats otherwise (a receptive field rounds up to whole pixels)."""
    if whole:
        return tuple(math.ceil(v) for v in values)
    return tuple(int(v) if v.denominator == 1 else float(v) for v in values)


def label(func: Callable, name: str) -> str:
    """How a row names a function's type: F.conv2d, torch.flatten, Tensor.view."""
    if getattr(torch.nn.functional, name, None) is func:
        return f"F.{name}"
    if getattr(torch.Tensor, name, None) is func or getattr(func, "__objclass__", None) is torch._C.TensorBase:
        return f"Tensor.{name}"
    return f"torch.{name}"


class Tracer(TorchFunctionMode):
    """Carries receptive fields through every torch call; fills leaf rows and makes function rows."""

    def __init__(self, rows: list[Row], running: list[tuple[str, int]]) -> None:
        super().__init__()
        self.rows, self.running = rows, running  # the rows so far; (name, serial) of the module calls now running
        self.leaf: Row | None = None  # the row of the leaf module now running
        self.owners: dict[tuple[str, int], Row] = {}  # module calls with children and parameters -> their rows

    def __torch_function__(self, func: Callable, types: tuple, args: Sequence = (), kwargs: dict | None = None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        window = window_of(name, args, kwargs)
        row, own_row = self.leaf, False
        if row is None and name in ROW_FUNCTIONS and args and isinstance(args[0], torch.Tensor):
            row, own_row = self.function_row(func, name, args), True
        elif row is None and self.running:  # e.g. attention run by a module with parameters: its multiply-adds
            row = self.owners.get(self.running[-1])
        if row is not None and window is not None and not row.windowed:
            describe_window(row, window, args)
        result = func(*args, **kwargs)
        out = first_tensor(result)  # attention returns (output, weights)
        if out is None:
            return result
        given = [t._convlens_field for t in (*args, *kwargs.values()) if hasattr(t, "_convlens_field")]
        if given:
            field = next_field(name, args, kwargs, out, window, union(given))
            out._convlens_field = field  # type: ignore[attr-defined]
            if row is not None and (window is not None or name in ADAPTIVE or name == "interpolate"):
                row.windowed = True
                set_field(row, field)
        if row is not None:
            row.macs += macs_of(name, args, kwargs, out)
            if own_row:
                row.output_shape, row.failed = tuple(out.shape), False
                row.output_bytes = 0 if name in VIEWS else out.numel() * out.element_size()
        return result

    def function_row(self, func: Callable, name: str, args: Sequence) -> Row:
        owner = self.running[-1][0] if self.running else ""
        depth = len(owner.split(".")) + 1 if owner else 1
        x = args[0]
        row = Row(
            f"{owner}.{name}" if owner else name,
            label(func, name),
            depth,
            input_shape=tuple(x.shape),
            calls=tuple(self.running),
            failed=True,
        )  # fmt: skip (failed until it returns)
        if name in PRODUCTS and len(args) > 1 and isinstance(args[1], torch.Tensor) and args[1].dim() > 0:
            # linear's weight is (out, in); matmul's right operand (..., in, out)
            inner = args[1].shape[-1] if name == "linear" else args[1].shape[0 if args[1].dim() == 1 else -2]
            row.in_channels, row.channel_dim = int(inner), -1
        self.rows.append(row)
        return row


def first_tensor(value: object) -> torch.Tensor | None:
    """A call's output tensor, or the first of a tuple of outputs."""
    if isinstance(value, (tuple, list)):
        value = next((v for v in value if isinstance(v, torch.Tensor)), None)
    return value if isinstance(value, torch.Tensor) else None


def describe_window(row: Row, window: Window, args: Sequence) -> None:
    """A row's window columns, and the channels its weight takes (for the diagnosis)."""
    row.kernel_size, row.stride, row.padding = window.kernel, window.stride, window.padding
    row.dilation = window.dilation
    row.groups, row.output_padding = window.groups, window.output_padding
    if window.groups is not None and isinstance(args[1], torch.Tensor):
        weight = args[1]
        row.in_channels = weight.shape[0] if window.transposed else weight.shape[1] * window.groups
    row.windowed = True


def set_field(row: Row, field: Field) -> None:
    receptive, jump, start = field
    row.receptive_field = as_numbers(receptive, whole=True)
    row.jump, row.receptive_field_start = as_numbers(jump), as_numbers(start)


def module_row(name: str, module: torch.nn.Module, x: object, running: list[tuple[str, int]], own: bool) -> Row:
    """A module's row before it runs: the module's parameters (``own``: only those it holds itself,
    for a module with children), its input shape, its padding mode."""
    parameters = list(module.parameters(recurse=False))
    row = Row(
        name or type(module).__name__,
        type(module).__name__ + (OWN if own else ""),
        len(name.split(".")) if name else 1,
        input_shape=tuple(x.shape) if isinstance(x, torch.Tensor) else None,
        params=sum(p.numel() for p in parameters),
        trainable_params=sum(p.numel() for p in parameters if p.requires_grad),
        calls=tuple(running),
        failed=True,
    )  # fmt: skip (failed until it returns)
    if isinstance(module, torch.nn.Linear):
        row.in_channels, row.channel_dim = module.in_features, -1
    if isinstance(module, torch.nn.modules.conv._ConvNd) and module.padding_mode != "zeros":
        row.padding_mode = module.padding_mode
        with contextlib.suppress(ArgumentError):  # F.pad does the padding: the window's is 0
            describe_window(row, Window(module.kernel_size, module.stride,
                                        tuple(resolve_padding(module.padding, module.kernel_size, module.stride,
                                                              module.dilation)),
                                        module.dilation, module.groups), (x, module.weight))  # fmt: skip
    return row


def finish_module_row(row: Row, module: torch.nn.Module, out: object) -> None:
    """A module's row after it ran: output shape and its memory."""
    row.failed = False
    out = first_tensor(out)
    if out is not None:
        row.output_shape = tuple(out.shape)
        in_place = getattr(module, "inplace", False) is True or module.__class__.__name__ in ("Flatten", "Unflatten")
        row.output_bytes = 0 if in_place or row.type.endswith(OWN) else out.numel() * out.element_size()
        field = getattr(out, "_convlens_field", None)
        if field is not None and row.windowed:
            set_field(row, field)


def trace(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], on_meta: bool) -> Trace:
    """Run ``model(*inputs)`` once in eval mode without gradients, recording rows (the model's
    training flag restored after). ``on_meta``: its parameters and buffers are replaced by meta
    tensors for this call only (``torch.func.functional_call``), so the model itself is unchanged."""
    rows: list[Row] = []
    running: list[tuple[str, int]] = []
    modules: dict[tuple[str, int], tuple[str, tuple[int, ...] | None]] = {}
    names = {module: name for name, module in model.named_modules()}
    tracer = Tracer(rows, running)
    serial = itertools.count()
    open_rows: list[Row | None] = []  # the row of each module call now running, if it has one

    def before(module: torch.nn.Module, args: tuple) -> None:
        call = (names[module], next(serial))
        running.append(call)
        modules[call] = (type(module).__name__, None)
        leaf = not any(True for _ in module.children())
        own = not leaf and any(True for _ in module.parameters(recurse=False))
        row = None
        if (leaf or own) and tracer.leaf is None:
            row = module_row(call[0], module, args[0] if args else None, running, own)
            rows.append(row)
            if leaf:
                tracer.leaf = row
            else:
                tracer.owners[call] = row
        open_rows.append(row)

    def after(module: torch.nn.Module, args: tuple, out: object) -> None:
        call, row = running.pop(), open_rows.pop()
        output = first_tensor(out)
        modules[call] = (type(module).__name__, None if output is None else tuple(output.shape))
        if row is not None:
            tracer.leaf = None if tracer.leaf is row else tracer.leaf
            finish_module_row(row, module, out)

    hooks = [h for m in names for h in (m.register_forward_pre_hook(before), m.register_forward_hook(after))]
    for x in inputs:
        if x.dim() > 2:  # (N, C, *spatial): each value sees itself, one step apart, from 0
            ones, zeros = (Fraction(1),) * (x.dim() - 2), (Fraction(0),) * (x.dim() - 2)
            x._convlens_field = (ones, ones, zeros)  # type: ignore[attr-defined]
    training = model.training
    try:
        with torch.no_grad(), tracer:
            if on_meta:
                state = {name: torch.empty_like(t, device="meta").requires_grad_(t.requires_grad)
                         for name, t in [*model.named_parameters(), *model.named_buffers()]}  # fmt: skip
                torch.func.functional_call(model.eval(), state, inputs)
            else:
                model.eval()(*inputs)
        return Trace(rows, modules, None)
    except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError) as error:
        return Trace(rows, modules, error)
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()


@dataclass
class Trace:
    rows: list[Row]
    modules: dict[tuple[str, int], tuple[str, tuple[int, ...] | None]]
    error: BaseException | None
