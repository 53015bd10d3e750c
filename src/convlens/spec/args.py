"""Arguments as PyTorch's parser takes them: ints, one size per spatial dimension, padding, tensors.

Each function turns one user-facing argument into a normalised value or raises an
:class:`~convlens.errors.ArgumentError` / :class:`~convlens.errors.ArgumentTypeError` whose
message names the argument, the value and the rule.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import torch

from convlens.errors import ArgumentError, ArgumentTypeError

IntOrSizes = int | Sequence[int]  # one value for every spatial dimension, or one each
Padding = int | Sequence[int] | str

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
PADDING_STRINGS = ("valid", "same")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
COMPLEX_DTYPES = (torch.complex64, torch.complex128)  # complex32: PyTorch's forward runs, its backward does not
INTEGER_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
# What PyTorch's CPU kernels take: conv2d integers (no gradients; sums wrap around as the integer
# type does, which every exact algorithm gives alike), unfold and fold bool (a copy and an "or").
CONV_DTYPES = FLOAT_DTYPES + COMPLEX_DTYPES + INTEGER_DTYPES
WINDOW_DTYPES = FLOAT_DTYPES + COMPLEX_DTYPES + (torch.bool,)


def to_int(name: str, value: object, in_tuple: bool = False, position: int = 0) -> int:
    """``value`` as a Python int, accepting what PyTorch's argument parser accepts.

    Python ints, NumPy integers and one-element integer tensors pass; floats and tensors of several
    elements do not. A bool passes only as a later item of a tuple: PyTorch's parser checks the
    type of a tuple's first item alone, so ``stride=(1, True)`` runs and ``stride=(True, 1)`` does not.
    """
    kind = "an int or a tuple of ints" if in_tuple else "an int"
    if isinstance(value, bool):
        if in_tuple and position > 0:
            return int(value)
        raise ArgumentTypeError(f"{name} must be {kind}, got bool {name}={value!r}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            raise ArgumentTypeError(
                f"{name} must be {kind}; a tensor passes only with one integer element, got {name}={value!r}"
            )
        return int(value.item())
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ArgumentTypeError(f"{name} must be {kind}, got a {type(value).__name__}: {name}={value!r}") from None


AXES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}  # the spatial dimensions' names, per rank
AXIS_WORDS = {1: ("width",), 2: ("height", "width"), 3: ("depth", "height", "width")}  # as PyTorch names them


def to_sizes(name: str, value: object, rank: int = 2) -> tuple[int, ...]:
    """An int or a sequence of 1 or ``rank`` ints, as the ``rank`` values (one per spatial dimension,
    (height, width) for 2-D) it stands for."""
    if isinstance(value, (str, bytes)):
        raise ArgumentTypeError(f"{name} must be an int or a tuple of {rank} ints, got {name}={value!r}")
    if isinstance(value, Sequence):
        items = tuple(to_int(name, v, in_tuple=True, position=i) for i, v in enumerate(value))
        if len(items) == 1:
            return items * rank
        if len(items) == rank:
            return items
        axes = ", ".join(AXIS_WORDS[rank]) if rank in AXIS_WORDS else f"{rank} dimensions"
        raise ArgumentError(
            f"expected {name} to be a single integer value or a list of {rank} values to match the convolution "
            f"dimensions, but got {name}={list(items)}: {name} must be a single int or a tuple of {rank} ints "
            f"({axes}), got {len(items)} values"
        )
    return (to_int(name, value, in_tuple=True),) * rank


def pytorch_wording(name: str, value: object) -> str:
    """What PyTorch's convolution says when ``name`` breaks its sign rule, to open convlens's message
    (code written against PyTorch matches on it); empty for arguments PyTorch's conv has no such check for."""
    if name == "dilation":  # PyTorch's two checks: one for negative values, one for zeros
        values = list(value) if isinstance(value, tuple) else [value]
        if any(v < 0 for v in values):  # type: ignore[operator]
            return f"dilation should be greater than zero, but got {values}: "
        return "non-positive dilation is not supported: "
    return {
        "stride": "non-positive stride is not supported: ",
        "groups": "non-positive groups is not supported: ",
        "padding": "negative padding is not supported: ",
        "output_padding": "negative output_padding is not supported: ",
    }.get(name, "")


def positive_int(name: str, value: object) -> int:
    number = to_int(name, value)
    if number < 1:
        raise ArgumentError(f"{pytorch_wording(name, number)}{name} must be positive, got {name}={number}")
    return number


def positive_sizes(name: str, value: object, rank: int = 2) -> tuple[int, ...]:
    sizes = to_sizes(name, value, rank)
    if min(sizes) < 1:
        raise ArgumentError(f"{pytorch_wording(name, sizes)}{name} must be positive, got {name}={sizes}")
    return sizes


def non_negative_sizes(name: str, value: object, rank: int = 2) -> tuple[int, ...]:
    sizes = to_sizes(name, value, rank)
    if min(sizes) < 0:
        raise ArgumentError(f"{pytorch_wording(name, sizes)}{name} must be non-negative, got {name}={sizes}")
    return sizes


def per_dimension(
    check: Callable[[str, object, int], tuple[int, ...]], name: str, value: object, rank: int, source: str
) -> tuple[int, ...]:
    """``check(name, value, rank)``, its error saying which argument (``source``) set the rank."""
    try:
        return check(name, value, rank)
    except ArgumentError as error:
        raise ArgumentError(f"{error} ({source} makes it {rank}-D)") from None


def check_padding_mode(padding_mode: object) -> str:
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ArgumentError(f"padding_mode must be one of {PADDING_MODES}, got padding_mode={padding_mode!r}")
    return padding_mode


def check_tensor(name: str, tensor: object, dtypes: tuple[torch.dtype, ...] = CONV_DTYPES) -> torch.Tensor:
    """``tensor`` if it is a tensor of one of ``dtypes`` (conv2d's by default; unfold's and fold's
    are ``WINDOW_DTYPES``)."""
    if not isinstance(tensor, torch.Tensor):
        raise ArgumentTypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype not in dtypes:
        names = ", ".join(str(dtype).removeprefix("torch.") for dtype in dtypes)
        raise ArgumentTypeError(f"{name} must be a tensor of one of ({names}), got {name}.dtype={tensor.dtype}")
    return tensor


def _type_name(dtype: torch.dtype) -> str:
    """PyTorch's short name of a dtype in its messages: float, double, c10::Half, c10::BFloat16."""
    return {torch.float32: "float", torch.float64: "double", torch.float16: "c10::Half"}.get(
        dtype, f"c10::{str(dtype).removeprefix('torch.').capitalize()}"
    )


def check_same_kind(name: str, tensor: torch.Tensor, reference: torch.Tensor, reference_name: str) -> None:
    if tensor.dtype != reference.dtype:
        raise ArgumentTypeError(
            f"Input type ({_type_name(reference.dtype)}) and {name} type ({_type_name(tensor.dtype)}) should be "
            f"the same: {name} and {reference_name} must have the same dtype, "
            f"got {name}.dtype={tensor.dtype} and {reference_name}.dtype={reference.dtype}"
        )
    # a meta input makes PyTorch's call shapes-only whatever the weight's device (conv2d then runs on meta);
    # a meta weight or bias beside a real input makes its CPU kernel return uninitialised memory: refused
    if tensor.device != reference.device and reference.device.type != "meta":
        raise ArgumentError(
            f"{name} and {reference_name} must be on the same device, "
            f"got {name}.device={tensor.device} and {reference_name}.device={reference.device}"
            + (
                " (PyTorch's CPU kernel returns uninitialised values for this mix)"
                if tensor.device.type == "meta"
                else ""
            )
        )


def kernel_names(rank: int) -> str:
    """The kernel's sizes as the docs name them: "k", "k_h, k_w" or "k_d, k_h, k_w"."""
    return ", ".join(f"k_{axis.lower()}" for axis in AXES[rank]) if rank > 1 else "k"


def check_conv_tensors(
    input: object, weight: object, bias: object, op: str, rank: int, transposed: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(input, weight, bias) of a convolution call named ``op`` over ``rank`` spatial dimensions:
    tensors of one dtype and device, input (rank + 1)-D or (rank + 2)-D, weight (rank + 2)-D
    (PyTorch's wording first)."""
    x = check_tensor("input", input)
    w = check_tensor("weight", weight)
    check_same_kind("weight", w, x, "input")
    b = None if bias is None else check_tensor("bias", bias)
    if b is not None:
        check_same_kind("bias", b, x, "input")
    spatial = ", ".join(AXES[rank])
    if x.dim() not in (rank + 1, rank + 2):
        raise ArgumentError(
            f"Expected {rank + 1}D (unbatched) or {rank + 2}D (batched) input to {op}, but got input of size: "
            f"{list(x.shape)}: input must be {rank + 1}-D (C, {spatial}) or {rank + 2}-D (N, C, {spatial})"
        )
    if w.dim() != rank + 2:
        channels = "C_in, C_out/groups" if transposed else "C_out, C_in/groups"
        pytorch = (  # PyTorch's two wordings: a weight too small to be any convolution's, or another rank's
            "weight should have at least three dimensions"
            if w.dim() < 3
            else f"Expected {w.dim()}-dimensional input for {w.dim()}-dimensional weight {list(w.shape)}, but got "
            f"{rank + 2}-dimensional input of size {list(x.shape if x.dim() == rank + 2 else (1, *x.shape))} instead"
        )
        raise ArgumentError(
            f"{pytorch}: weight must be {rank + 2}-D ({channels}, {kernel_names(rank)}) for {op}, got weight of "
            f"shape {tuple(w.shape)}"
        )
    return x, w, b
