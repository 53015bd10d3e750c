"""Argument rules and shape math for a 2-D convolution, in one place.

Every public entry point (``conv2d``, ``unfold``, ``fold``, ``output_size``, ``nn.Conv2d``)
turns its arguments into normalised values here *before* anything is allocated. A mistake
raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong value) whose
message names the argument, the value and the rule.

The output size along one spatial dimension is PyTorch's formula::

    out = floor((size + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1

``padding="same"`` keeps ``out == size`` (stride 1 only): the total padding
``dilation * (kernel - 1)`` is split with the smaller half before and the larger half after,
exactly as PyTorch does, so even kernels pad one more row at the bottom and column at the right.

What convlens accepts is what ``torch.nn.functional.conv2d`` accepts, with one deliberate
exception: integer, bool and complex tensors are refused (PyTorch's CPU kernel runs integer
and complex convolutions; convlens is a floating-point reference).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

IntOrPair = int | Sequence[int]
Padding = int | Sequence[int] | str

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
PADDING_STRINGS = ("valid", "same")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# --------------------------------------------------------------------------------------
# Scalars and pairs
# --------------------------------------------------------------------------------------
def to_int(name: str, value: object) -> int:
    """``value`` as a Python int, accepting what PyTorch's argument parser accepts.

    Python ints, NumPy integers and one-element integer tensors pass; bools, floats and tensors
    of several elements do not.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool {name}={value!r}")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            raise TypeError(
                f"{name} must be an int or a tuple of ints; a tensor passes only with one integer element, "
                f"got {name}={value!r}"
            )
        return int(value.item())
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a tuple of ints, got {type(value).__name__} {name}={value!r}"
        ) from None


def to_pair(name: str, value: object) -> tuple[int, int]:
    """An int or a sequence of one or two ints, as the (height, width) pair it stands for."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an int or a tuple of 2 ints, got {name}={value!r}")
    if isinstance(value, Sequence):
        items = [to_int(name, v) for v in value]  # type: ignore[union-attr]
        if len(items) == 1:
            return (items[0], items[0])
        if len(items) == 2:
            return (items[0], items[1])
        raise ValueError(
            f"{name} must be a single int or a tuple of 2 ints (height, width), "
            f"got {len(items)} values: {name}={tuple(items)}"
        )
    number = to_int(name, value)
    return (number, number)


def positive_int(name: str, value: object) -> int:
    number = to_int(name, value)
    if number < 1:
        raise ValueError(f"{name} must be positive, got {name}={number}")
    return number


def positive_pair(name: str, value: object) -> tuple[int, int]:
    pair = to_pair(name, value)
    if min(pair) < 1:
        raise ValueError(f"{name} must be positive, got {name}={pair}")
    return pair


def non_negative_pair(name: str, value: object) -> tuple[int, int]:
    pair = to_pair(name, value)
    if min(pair) < 0:
        raise ValueError(f"{name} must be non-negative (negative padding is not supported), got {name}={pair}")
    return pair


def check_padding_mode(padding_mode: object) -> str:
    if not isinstance(padding_mode, str) or padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got padding_mode={padding_mode!r}")
    return padding_mode


def same_padding(kernel_size: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) padding that keeps the size at stride 1, split as PyTorch does."""
    total_h = dilation[0] * (kernel_size[0] - 1)
    total_w = dilation[1] * (kernel_size[1] - 1)
    return (total_h // 2, total_h - total_h // 2, total_w // 2, total_w - total_w // 2)


def resolve_padding(
    padding: object, kernel_size: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Explicit (top, bottom, left, right) padding from an int, a pair, "valid" or "same"."""
    if isinstance(padding, str):
        if padding not in PADDING_STRINGS:
            raise ValueError(f"padding must be an int, a tuple of 2 ints, 'valid' or 'same', got padding={padding!r}")
        if padding == "valid":
            return (0, 0, 0, 0)
        if stride != (1, 1):
            raise ValueError(f"padding='same' requires stride=1, got stride={stride}")
        return same_padding(kernel_size, dilation)
    pad_h, pad_w = non_negative_pair("padding", padding)
    return (pad_h, pad_h, pad_w, pad_w)


def output_length(size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int) -> int:
    """PyTorch's output-size formula along one dimension (may be < 1 for a kernel too large)."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


def formula_text(axis: str, size: int, kernel: int, stride: int, pads: tuple[int, int], dilation: int) -> str:
    """The output-size formula with the numbers filled in, for error messages and ``explain``."""
    result = output_length(size, kernel, stride, pads[0], pads[1], dilation)
    return (
        f"{axis}_out = floor(({axis} + pad + pad - dilation*(kernel-1) - 1) / stride) + 1"
        f" = floor(({size} + {pads[0]} + {pads[1]} - {dilation}*({kernel}-1) - 1) / {stride}) + 1 = {result}"
    )


def check_window_fits(
    in_size: tuple[int, int],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
) -> tuple[int, int]:
    """(H_out, W_out), or a ValueError showing the formula when the kernel is larger than the padded input."""
    height, width = in_size
    top, bottom, left, right = padding
    span_h = dilation[0] * (kernel_size[0] - 1) + 1
    span_w = dilation[1] * (kernel_size[1] - 1) + 1
    padded_h = height + top + bottom
    padded_w = width + left + right
    if span_h > padded_h or span_w > padded_w:
        raise ValueError(
            f"kernel_size={kernel_size} with dilation={dilation} spans {span_h}x{span_w}, "
            f"larger than the padded input {padded_h}x{padded_w} (input {height}x{width}, "
            f"padding (top, bottom, left, right)={padding}); the output would be empty:\n"
            f"  {formula_text('H', height, kernel_size[0], stride[0], (top, bottom), dilation[0])}\n"
            f"  {formula_text('W', width, kernel_size[1], stride[1], (left, right), dilation[1])}"
        )
    return (
        output_length(height, kernel_size[0], stride[0], top, bottom, dilation[0]),
        output_length(width, kernel_size[1], stride[1], left, right, dilation[1]),
    )


def output_size(
    input_size: IntOrPair,
    kernel_size: IntOrPair,
    stride: IntOrPair = 1,
    padding: Padding = 0,
    dilation: IntOrPair = 1,
) -> tuple[int, int]:
    """(H_out, W_out) of a convolution, by PyTorch's formula, with the same validation as conv2d.

    >>> output_size(32, 5)          # the seed's CIFAR-10 layer
    (28, 28)
    >>> output_size((5, 5), 3, stride=2, padding=1)   # the CS231n demo
    (3, 3)
    """
    size = positive_pair("input_size", input_size)
    kernel = positive_pair("kernel_size", kernel_size)
    strides = positive_pair("stride", stride)
    dilations = positive_pair("dilation", dilation)
    pads = resolve_padding(padding, kernel, strides, dilations)
    return check_window_fits(size, kernel, strides, pads, dilations)


# --------------------------------------------------------------------------------------
# Tensors
# --------------------------------------------------------------------------------------
def check_tensor(name: str, tensor: object) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating-point tensor (float16, bfloat16, float32 or float64), "
            f"got {name}.dtype={tensor.dtype}"
        )
    return tensor


def check_same_kind(name: str, tensor: torch.Tensor, reference: torch.Tensor, reference_name: str) -> None:
    if tensor.dtype != reference.dtype:
        raise TypeError(
            f"{name} and {reference_name} must have the same dtype, "
            f"got {name}.dtype={tensor.dtype} and {reference_name}.dtype={reference.dtype}"
        )
    if tensor.device != reference.device:
        raise ValueError(
            f"{name} and {reference_name} must be on the same device, "
            f"got {name}.device={tensor.device} and {reference_name}.device={reference.device}"
        )


def prefers_channels_last(tensor: torch.Tensor) -> bool:
    """True when a 4-D tensor's strides say channels-last, by PyTorch's own rule
    (``suggest_memory_format``): walking C, W, H, N the strides never decrease, with the
    ambiguous cases (size-0 dimensions, C of stride 0, N of the same stride as C) read as NCHW.
    A sliced channels-last tensor is still channels-last; a plainly contiguous one is not.
    """
    if tensor.dim() != 4:
        return False
    sizes, strides = tensor.shape, tensor.stride()
    if strides[1] == 0:
        return False
    smallest = 0
    for dim in (1, 3, 2, 0):
        if sizes[dim] == 0 or strides[dim] < smallest:
            return False
        if dim == 0 and smallest == strides[1]:
            return False
        smallest = strides[dim] * (sizes[dim] if sizes[dim] > 1 else 1)
    return True


@dataclass(frozen=True)
class ConvSpec:
    """A validated 2-D convolution: every size and option normalised, the output size computed.

    Sizes are for the batched form; ``batched`` records whether the caller passed (C, H, W).
    ``padding`` is explicit (top, bottom, left, right) padding, whatever form the caller used.
    """

    batch: int
    in_channels: int
    in_size: tuple[int, int]
    out_channels: int
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]
    groups: int
    padding_mode: str
    has_bias: bool
    batched: bool
    dtype: torch.dtype
    device: torch.device

    # ---- derived sizes ---------------------------------------------------------------
    @property
    def out_size(self) -> tuple[int, int]:
        return check_window_fits(self.in_size, self.kernel_size, self.stride, self.padding, self.dilation)

    @property
    def padded_size(self) -> tuple[int, int]:
        top, bottom, left, right = self.padding
        return (self.in_size[0] + top + bottom, self.in_size[1] + left + right)

    def prepadded(self) -> ConvSpec:
        """The same convolution seen from its already padded input: ``in_size`` is the padded size
        and no padding is left to apply. The non-zero padding modes pad with ``F.pad`` before an
        algorithm runs, and the algorithm then gets this spec."""
        return replace(self, in_size=self.padded_size, padding=(0, 0, 0, 0))

    @property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups

    @property
    def taps(self) -> int:
        """Number of kernel positions k_h * k_w."""
        return self.kernel_size[0] * self.kernel_size[1]

    @property
    def is_depthwise(self) -> bool:
        return self.groups == self.in_channels and self.groups > 1

    @property
    def flops(self) -> int:
        """Multiply-adds counted as 2 flops: 2 * N * C_out * H_out * W_out * (C_in/groups) * k_h * k_w."""
        h_out, w_out = self.out_size
        return 2 * self.batch * self.out_channels * h_out * w_out * self.in_per_group * self.taps

    def cols_bytes(self, batch: int | None = None) -> int:
        """Bytes of the im2col columns (N, C_in*k_h*k_w, H_out*W_out) for ``batch`` images."""
        h_out, w_out = self.out_size
        n = self.batch if batch is None else batch
        return n * self.in_channels * self.taps * h_out * w_out * self.dtype.itemsize

    def describe(self) -> str:
        """One line, e.g. ``N=8 3x32x32 -> 4x28x28 k=(5, 5) s=(1, 1) p=(0, 0, 0, 0) d=(1, 1) g=1``."""
        h_out, w_out = self.out_size
        text = (
            f"N={self.batch} {self.in_channels}x{self.in_size[0]}x{self.in_size[1]} -> "
            f"{self.out_channels}x{h_out}x{w_out} k={self.kernel_size} s={self.stride} "
            f"p={self.padding} d={self.dilation} g={self.groups}"
        )
        if self.padding_mode != "zeros":
            text += f" {self.padding_mode}"
        return text

    # ---- construction ----------------------------------------------------------------
    @classmethod
    def from_args(
        cls,
        input: object,
        weight: object,
        bias: object = None,
        stride: IntOrPair = 1,
        padding: Padding = 0,
        dilation: IntOrPair = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
    ) -> ConvSpec:
        """Check every argument of conv2d against PyTorch's rules and return the normalised spec."""
        x = check_tensor("input", input)
        w = check_tensor("weight", weight)
        check_same_kind("weight", w, x, "input")
        if bias is not None:
            b = check_tensor("bias", bias)
            check_same_kind("bias", b, x, "input")
        mode = check_padding_mode(padding_mode)

        if x.dim() not in (3, 4):
            raise ValueError(f"input must be 3-D (C, H, W) or 4-D (N, C, H, W), got input of shape {tuple(x.shape)}")
        if w.dim() != 4:
            raise ValueError(f"weight must be 4-D (C_out, C_in/groups, k_h, k_w), got weight of shape {tuple(w.shape)}")
        batched = x.dim() == 4
        batch = x.shape[0] if batched else 1
        in_channels, height, width = x.shape[-3:]
        out_channels, in_per_group, k_h, k_w = w.shape

        strides = positive_pair("stride", stride)
        dilations = positive_pair("dilation", dilation)
        group_count = positive_int("groups", groups)
        if k_h < 1 or k_w < 1:
            raise ValueError(f"kernel size must be positive, got weight of shape {tuple(w.shape)}")
        pads = resolve_padding(padding, (k_h, k_w), strides, dilations)

        if out_channels < group_count or out_channels % group_count != 0:
            raise ValueError(
                f"weight.shape[0] (out_channels={out_channels}) must be a positive multiple of "
                f"groups={group_count}, got weight of shape {tuple(w.shape)}"
            )
        if in_channels != in_per_group * group_count:
            raise ValueError(
                f"input has {in_channels} channels but weight of shape {tuple(w.shape)} with "
                f"groups={group_count} expects weight.shape[1] * groups = {in_per_group * group_count}"
            )
        if bias is not None and tuple(bias.shape) != (out_channels,):  # type: ignore[union-attr]
            raise ValueError(
                f"bias must be 1-D with out_channels={out_channels} elements, got bias of shape {tuple(bias.shape)}"  # type: ignore[union-attr]
            )
        if (height == 0 or width == 0) and batch != 0 and in_channels != 0:
            raise ValueError(
                f"input height and width must be non-zero unless the batch or channel size is 0 "
                f"(as in PyTorch), got input of shape {tuple(x.shape)}"
            )
        if mode != "zeros":
            check_mode_padding(mode, (height, width), pads)
        check_window_fits((height, width), (k_h, k_w), strides, pads, dilations)

        spec = cls(
            batch=batch,
            in_channels=in_channels,
            in_size=(height, width),
            out_channels=out_channels,
            kernel_size=(k_h, k_w),
            stride=strides,
            padding=pads,
            dilation=dilations,
            groups=group_count,
            padding_mode=mode,
            has_bias=bias is not None,
            batched=batched,
            dtype=x.dtype,
            device=x.device,
        )
        check_memory(spec)
        return spec


def device_memory_bytes(device: torch.device) -> int | None:
    """Total memory of the device tensors live on (None where it cannot be known, e.g. meta)."""
    if device.type == "cpu":
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return None


def check_memory(spec: ConvSpec) -> None:
    """Refuse, before allocating, a padded input or an output larger than the device's whole memory.

    Skipped while torch.compile traces (the query is a system call it cannot put in a graph)."""
    if torch.compiler.is_compiling():
        return
    limit = device_memory_bytes(spec.device)
    if limit is None:
        return
    itemsize = spec.dtype.itemsize
    (h_pad, w_pad), (h_out, w_out) = spec.padded_size, spec.out_size
    padded_bytes = spec.batch * spec.in_channels * h_pad * w_pad * itemsize
    if any(spec.padding) and padded_bytes > limit:
        raise ValueError(
            f"padding (top, bottom, left, right)={spec.padding} makes a padded input of {spec.batch}x"
            f"{spec.in_channels}x{h_pad}x{w_pad} = {padded_bytes / 2**30:,.1f} GiB, more than the "
            f"{limit / 2**30:,.1f} GiB of {spec.device}"
        )
    output_bytes = spec.batch * spec.out_channels * h_out * w_out * itemsize
    if output_bytes > limit:
        raise ValueError(
            f"the output (input, weight and padding as given) would need {output_bytes / 2**30:,.1f} GiB, "
            f"more than the {limit / 2**30:,.1f} GiB of {spec.device}"
        )


def check_mode_padding(mode: str, in_size: tuple[int, int], padding: tuple[int, int, int, int]) -> None:
    """reflect needs padding < size and circular padding <= size in each dimension (as F.pad)."""
    top, bottom, left, right = padding
    for axis, size, pads in (("height", in_size[0], (top, bottom)), ("width", in_size[1], (left, right))):
        largest = max(pads)
        if mode == "reflect" and largest >= size:
            raise ValueError(
                f"padding_mode='reflect' needs padding < input {axis}, got padding {largest} for {axis} {size}"
            )
        if mode == "circular" and largest > size:
            raise ValueError(
                f"padding_mode='circular' needs padding <= input {axis}, got padding {largest} for {axis} {size}"
            )


def check_layer_args(
    in_channels: object,
    out_channels: object,
    kernel_size: object,
    stride: object,
    padding: object,
    dilation: object,
    groups: object,
    bias: object,
    padding_mode: object,
) -> None:
    """The constructor rules of nn.Conv2d, all checked before any parameter is allocated
    (``torch.nn.Conv2d`` itself lets a negative kernel size or stride through to a RuntimeError
    or to the first forward)."""
    channels = {
        name: to_int(name, value) for name, value in (("in_channels", in_channels), ("out_channels", out_channels))
    }
    for name, value in channels.items():
        if value < 0:
            raise ValueError(f"{name} must be non-negative, got {name}={value}")
    kernel = positive_pair("kernel_size", kernel_size)
    strides = positive_pair("stride", stride)
    dilations = positive_pair("dilation", dilation)
    resolve_padding(padding, kernel, strides, dilations)
    group_count = positive_int("groups", groups)
    for name, value in channels.items():
        if value % group_count:
            raise ValueError(f"{name} must be divisible by groups, got {name}={value} and groups={group_count}")
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be a bool, got {type(bias).__name__} bias={bias!r}")
    check_padding_mode(padding_mode)


@dataclass(frozen=True)
class WindowSpec:
    """The sliding-window arguments shared by unfold and fold, normalised to (height, width) pairs."""

    kernel_size: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    stride: tuple[int, int]

    @classmethod
    def from_args(
        cls, kernel_size: IntOrPair, dilation: IntOrPair, padding: IntOrPair, stride: IntOrPair
    ) -> WindowSpec:
        return cls(
            kernel_size=positive_pair("kernel_size", kernel_size),
            dilation=positive_pair("dilation", dilation),
            padding=non_negative_pair("padding", padding),
            stride=positive_pair("stride", stride),
        )

    @property
    def explicit_padding(self) -> tuple[int, int, int, int]:
        pad_h, pad_w = self.padding
        return (pad_h, pad_h, pad_w, pad_w)

    @property
    def taps(self) -> int:
        return self.kernel_size[0] * self.kernel_size[1]

    def blocks(self, in_size: tuple[int, int]) -> tuple[int, int]:
        """Number of window positions (H_out, W_out) over an input of ``in_size``."""
        return check_window_fits(in_size, self.kernel_size, self.stride, self.explicit_padding, self.dilation)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def check_unfold_input(input: object, window: WindowSpec) -> torch.Tensor:
    """unfold takes (N, C, H, W) or unbatched (C, H, W) with non-empty H and W."""
    x = check_tensor("input", input)
    if x.dim() not in (3, 4):
        raise ValueError(f"input must be 3-D (C, H, W) or 4-D (N, C, H, W), got input of shape {tuple(x.shape)}")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"input height and width must be non-zero, got input of shape {tuple(x.shape)}")
    window.blocks((x.shape[-2], x.shape[-1]))
    return x


def check_fold_input(input: object, output_size: IntOrPair, window: WindowSpec) -> tuple[torch.Tensor, tuple[int, int]]:
    """fold takes columns (N, C*k_h*k_w, L) or (C*k_h*k_w, L) whose L matches output_size's blocks."""
    cols = check_tensor("input", input)
    size = positive_pair("output_size", output_size)
    if cols.dim() not in (2, 3):
        raise ValueError(
            f"input must be 2-D (C*k_h*k_w, L) or 3-D (N, C*k_h*k_w, L), got input of shape {tuple(cols.shape)}"
        )
    rows = cols.shape[-2]
    if rows % window.taps != 0:
        raise ValueError(
            f"input.shape[-2]={rows} must be divisible by k_h*k_w={window.taps} (kernel_size={window.kernel_size})"
        )
    h_out, w_out = window.blocks(size)
    if cols.shape[-1] != h_out * w_out:
        raise ValueError(
            f"input.shape[-1]={cols.shape[-1]} must equal the number of sliding blocks "
            f"{h_out}*{w_out}={h_out * w_out} for output_size={size}, kernel_size={window.kernel_size}, "
            f"dilation={window.dilation}, padding={window.padding}, stride={window.stride}"
        )
    return cols, size
