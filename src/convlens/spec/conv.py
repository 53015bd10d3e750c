"""ConvSpec: one validated convolution over 1, 2 or 3 spatial dimensions, every size and option normalised.

``ConvSpec.from_args`` checks every argument of ``conv1d`` / ``conv2d`` / ``conv3d`` against
PyTorch's rules before anything is allocated; ``check_layer_args`` does the same for the
constructors of ``nn.Conv1d`` / ``nn.Conv2d`` / ``nn.Conv3d``. The number of spatial dimensions
(the rank) is a field, not a class per rank: every rule is written once, along each dimension.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import torch

from convlens.errors import ArgumentError, ArgumentTypeError
from convlens.spec.args import (
    AXIS_WORDS,
    IntOrSizes,
    Padding,
    check_conv_tensors,
    check_padding_mode,
    positive_int,
    positive_sizes,
    to_int,
)
from convlens.spec.layout import prefers_channels_last
from convlens.spec.shape import check_window_fits, effective_stride, pad_pairs, padding_name, resolve_padding, volume

T = TypeVar("T")


@dataclass(frozen=True)
class ConvSpec:
    """A validated convolution: every size and option normalised, the output size computed.

    Sizes are for the batched form; ``batched`` records whether the caller passed (C, H, W).
    The spatial sizes (``in_size``, ``kernel_size``, ``stride``, ``dilation``) have one value per
    spatial dimension, (H, W) for 2-D, (L,) for 1-D, (D, H, W) for 3-D; ``padding`` is explicit
    (before, after) padding per dimension, (top, bottom, left, right) for 2-D, whatever form the
    caller used.
    """

    batch: int
    in_channels: int
    in_size: tuple[int, ...]
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    padding_mode: str
    has_bias: bool
    batched: bool
    dtype: torch.dtype
    device: torch.device
    channels_last: bool = False  # the input's memory layout, which some buffers depend on
    # derived once at construction (read several times in every call), not arguments
    out_size: tuple[int, ...] = field(init=False, repr=False, compare=False)
    padded_size: tuple[int, ...] = field(init=False, repr=False, compare=False)
    output_shape: tuple[int, ...] = field(init=False, repr=False, compare=False)  # (N, C_out, *out_size)
    # what the algorithms work out from this spec alone, once per spec object (``remembered``)
    memo: dict[object, object] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # object.__setattr__: the dataclass is frozen. (Not functools.cached_property: its lock,
        # on Python 3.11, stops torch.compile's tracing.)
        out = check_window_fits(self.in_size, self.kernel_size, self.stride, self.padding, self.dilation)
        padded = tuple(size + before + after for size, (before, after) in zip(self.in_size, pad_pairs(self.padding),
                                                                              strict=True))  # fmt: skip
        object.__setattr__(self, "out_size", out)
        object.__setattr__(self, "padded_size", padded)
        object.__setattr__(self, "output_shape", (self.batch, self.out_channels, *out))

    def remembered(self, key: Hashable, make: Callable[[], T]) -> T:
        """``make()``, worked out once per spec object and ``key``: what an algorithm derives from
        the spec alone (auto's choice, the compiled kernel's sizes). A repeated call gets the same
        spec object from ``conv_spec``, so it pays a dict lookup instead. Why: on a small layer the
        call's fixed cost, not its arithmetic, is the time; evidence: ``python
        benchmarks/overhead.py``. Two threads may both make a value; either is right. Not while
        torch.compile traces: a traced graph keeps no state, and writing the memo is a side effect."""
        if torch.compiler.is_compiling():
            return make()
        try:
            return self.memo[key]  # type: ignore[return-value]
        except KeyError:
            value = self.memo[key] = make()
            return value

    # ---- derived sizes ---------------------------------------------------------------
    @property
    def rank(self) -> int:
        """The number of spatial dimensions: 1, 2 or 3."""
        return len(self.in_size)

    def as_2d(self) -> ConvSpec:
        """A 1-D convolution as the 2-D one it equals, over an image one row high: every size of
        height 1, no padding there. (PyTorch's own conv1d runs this way.)"""
        if self.rank != 1:
            return self
        return replace(
            self,
            in_size=(1, *self.in_size),
            kernel_size=(1, *self.kernel_size),
            stride=(1, *self.stride),
            padding=(0, 0, *self.padding),
            dilation=(1, *self.dilation),
        )

    def prepadded(self) -> ConvSpec:
        """The same convolution seen from its already padded input: ``in_size`` is the padded size
        and no padding is left to apply. The non-zero padding modes pad with ``F.pad`` before an
        algorithm runs, and the algorithm then gets this spec."""
        return self.remembered(
            "prepadded", lambda: replace(self, in_size=self.padded_size, padding=(0,) * len(self.padding))
        )

    @property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups

    @property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups

    @property
    def taps(self) -> int:
        """Number of kernel positions, k_h * k_w in 2-D."""
        return volume(self.kernel_size)

    @property
    def positions(self) -> int:
        """Output positions over the batch, N * H_out * W_out in 2-D: the windows the kernel is applied to."""
        return self.batch * volume(self.out_size)

    @property
    def is_depthwise(self) -> bool:
        return self.groups == self.in_channels and self.groups > 1

    @property
    def flops(self) -> int:
        """Multiply-adds counted as 2 flops: 2 * N * C_out * H_out * W_out * (C_in/groups) * k_h * k_w in 2-D."""
        return 2 * self.batch * self.out_channels * volume(self.out_size) * self.in_per_group * self.taps

    def cols_bytes(self, batch: int | None = None) -> int:
        """Bytes of the im2col columns (N, C_in*k_h*k_w, H_out*W_out) for ``batch`` images (2-D)."""
        n = self.batch if batch is None else batch
        return n * self.in_channels * self.taps * volume(self.out_size) * self.dtype.itemsize

    def describe(self) -> str:
        """One line, e.g. ``N=8 3x32x32 -> 4x28x28 k=(5, 5) s=(1, 1) p=(0, 0, 0, 0) d=(1, 1) g=1``."""
        text = (
            f"N={self.batch} {'x'.join(map(str, (self.in_channels, *self.in_size)))} -> "
            f"{'x'.join(map(str, (self.out_channels, *self.out_size)))} k={self.kernel_size} s={self.stride} "
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
        stride: IntOrSizes = 1,
        padding: Padding = 0,
        dilation: IntOrSizes = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
        rank: int = 2,
    ) -> ConvSpec:
        """Check every argument of conv1d / conv2d / conv3d (``rank`` 1, 2, 3) against PyTorch's rules
        and return the normalised spec."""
        x, w, b = check_conv_tensors(input, weight, bias, f"conv{rank}d", rank)
        mode = check_padding_mode(padding_mode)
        batched = x.dim() == rank + 2
        batch = x.shape[0] if batched else 1
        in_channels, in_size = x.shape[-rank - 1], tuple(x.shape[-rank:])
        out_channels, in_per_group, kernel = w.shape[0], w.shape[1], tuple(w.shape[2:])

        strides = positive_sizes("stride", stride, rank)
        dilations = positive_sizes("dilation", dilation, rank)
        group_count = positive_int("groups", groups)
        if min(kernel) < 1:
            raise ArgumentError(f"kernel size must be positive, got weight of shape {tuple(w.shape)}")
        pads = resolve_padding(padding, kernel, strides, dilations)

        if out_channels < group_count or out_channels % group_count != 0:
            rule = "at least" if out_channels < group_count else "divisible by"  # PyTorch's two checks
            raise ArgumentError(
                f"Given groups={group_count}, expected weight to be {rule} {group_count} at dimension 0, but "
                f"got weight of size {list(w.shape)} instead: weight.shape[0] (out_channels={out_channels}) must be "
                f"a positive multiple of groups={group_count}"
            )
        if in_channels != in_per_group * group_count:
            raise ArgumentError(
                f"Given groups={group_count}, weight of size {list(w.shape)}, expected input{list(x.shape)} to have "
                f"{in_per_group * group_count} channels, but got {in_channels} channels instead: the weight with "
                f"groups={group_count} expects weight.shape[1] * groups = {in_per_group * group_count} input channels"
            )
        if b is not None and tuple(b.shape) != (out_channels,):
            raise ArgumentError(
                f"Given weight of size {list(w.shape)}, expected bias to be 1-dimensional with {out_channels} "
                f"elements, but got bias of size {list(b.shape)} instead: bias must be 1-D with "
                f"out_channels={out_channels} elements"
            )
        check_window_fits(in_size, kernel, strides, pads, dilations, pytorch_wording=True)
        if 0 in in_size and batch != 0 and in_channels != 0:
            raise ArgumentError(
                f"Only zero batch or zero channel inputs are supported, but got input shape: {list(x.shape)}: "
                f"input {' and '.join(AXIS_WORDS[rank])} must be non-zero unless the batch or channel size is 0"
            )
        if mode != "zeros":
            check_mode_padding(mode, tuple(x.shape), pads)

        spec = cls(
            batch=batch,
            in_channels=in_channels,
            in_size=in_size,
            out_channels=out_channels,
            kernel_size=kernel,
            stride=effective_stride(in_size, kernel, strides, pads, dilations),
            padding=pads,
            dilation=dilations,
            groups=group_count,
            padding_mode=mode,
            has_bias=bias is not None,
            batched=batched,
            dtype=x.dtype,
            device=x.device,
            channels_last=prefers_channels_last(x),
        )
        check_memory(spec)
        return spec


SPEC_CACHE_SIZE = 4096  # specs remembered by conv_spec; the whole cache is dropped when it fills
_specs: dict[tuple, ConvSpec] = {}


def conv_spec(
    input: object,
    weight: object,
    bias: object,
    stride: IntOrSizes,
    padding: Padding,
    dilation: IntOrSizes,
    groups: int,
    padding_mode: str,
    rank: int,
) -> ConvSpec:
    """``ConvSpec.from_args``, remembered: a call whose tensors have the shapes, strides, dtypes and
    devices, and whose other arguments the values, of an earlier valid call gets that call's spec
    without checking again (the checks read nothing else; the arguments are compared with their
    types, so ``stride=(1, True)`` is not ``stride=(1, 1)``). Calls with unhashable arguments, and
    calls while torch.compile traces, are checked every time. Why: checking
    took 40 us of a call whose arithmetic takes 1 us (a 1x4x8x8 input), every call of every layer;
    evidence: ``python benchmarks/overhead.py``."""
    if (
        torch.compiler.is_compiling()
        or not isinstance(input, torch.Tensor)
        or not isinstance(weight, torch.Tensor)
        or not (bias is None or isinstance(bias, torch.Tensor))
    ):
        return ConvSpec.from_args(input, weight, bias, stride, padding, dilation, groups, padding_mode, rank)
    bias_described = None if bias is None else (bias.shape, bias.stride(), bias.dtype, bias.device)
    described = (input.shape, input.stride(), input.dtype, input.device,
                 weight.shape, weight.stride(), weight.dtype, weight.device, bias_described)  # fmt: skip
    # typed: True == 1 and 1.0 == 1, but PyTorch takes or refuses them by type and place
    key = (rank, described, typed(stride), typed(padding), typed(dilation), typed(groups), padding_mode)
    try:
        spec = _specs.get(key)
    except TypeError:  # an unhashable argument
        return ConvSpec.from_args(input, weight, bias, stride, padding, dilation, groups, padding_mode, rank)
    if spec is None:
        spec = ConvSpec.from_args(input, weight, bias, stride, padding, dilation, groups, padding_mode, rank)
        if len(_specs) >= SPEC_CACHE_SIZE:
            _specs.clear()
        _specs[key] = spec
    return spec


def typed(value: object) -> object:
    """``value`` with the type of every item beside it, for a cache key: (1, True) and (1, 1) differ.
    An int, a str and a pair of ints (nn.Conv2d's arguments) stand for themselves: no other
    value's key equals them (those keys are tuples that open with a type)."""
    kind = type(value)
    if kind is int or kind is str:
        return value
    if isinstance(value, tuple) and kind is tuple and len(value) == 2 and type(value[0]) is type(value[1]) is int:
        return value
    if isinstance(value, tuple | list):
        return (kind, *(typed(item) for item in value))
    return (kind, value)


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
    padded_bytes = spec.batch * spec.in_channels * volume(spec.padded_size) * itemsize
    if any(spec.padding) and padded_bytes > limit:
        raise ArgumentError(
            f"padding {padding_name(spec.rank)}={spec.padding} makes a padded input of "
            f"{'x'.join(map(str, (spec.batch, spec.in_channels, *spec.padded_size)))} = "
            f"{padded_bytes / 2**30:,.1f} GiB, more than the {limit / 2**30:,.1f} GiB of {spec.device}"
        )
    output_bytes = spec.batch * spec.out_channels * volume(spec.out_size) * itemsize
    if output_bytes > limit:
        raise ArgumentError(
            f"the output (input, weight and padding as given) would need {output_bytes / 2**30:,.1f} GiB, "
            f"more than the {limit / 2**30:,.1f} GiB of {spec.device}"
        )


def check_mode_padding(mode: str, shape: tuple[int, ...], padding: tuple[int, ...]) -> None:
    """F.pad's rules, as nn.Conv2d applies it: reflect and replicate need input channels, reflect
    padding < size and circular padding <= size in each dimension."""
    rank = len(padding) // 2
    if mode in ("reflect", "replicate") and shape[-rank - 1] == 0:
        raise ArgumentError(
            f"Expected {rank + 1}D or {rank + 2}D (batch mode) tensor with possibly 0 batch size and other non-zero "
            f"dimensions for input, but got: {list(shape)}: padding_mode={mode!r} pads with F.pad, which needs "
            f"input channels, got in_channels=0"
        )
    for axis, size, pads in zip(AXIS_WORDS[rank], shape[-rank:], pad_pairs(padding), strict=True):
        largest = max(pads)
        if mode == "reflect" and largest >= size:
            raise ArgumentError(
                f"padding_mode='reflect' needs padding < input {axis}, got padding {largest} for {axis} {size}"
            )
        if mode == "circular" and largest > size:
            raise ArgumentError(
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
    rank: int = 2,
) -> None:
    """The constructor rules of nn.Conv1d / Conv2d / Conv3d (``rank``), all checked before any
    parameter is allocated (``torch.nn.Conv2d`` itself lets a negative kernel size or stride
    through to a RuntimeError or to the first forward)."""
    channels = {
        name: to_int(name, value) for name, value in (("in_channels", in_channels), ("out_channels", out_channels))
    }
    for name, value in channels.items():
        if value < 0:
            raise ArgumentError(f"{name} must be non-negative, got {name}={value}")
    kernel = positive_sizes("kernel_size", kernel_size, rank)
    strides = positive_sizes("stride", stride, rank)
    dilations = positive_sizes("dilation", dilation, rank)
    resolve_padding(padding, kernel, strides, dilations)
    group_count = positive_int("groups", groups)
    for name, value in channels.items():
        if value % group_count:
            raise ArgumentError(f"{name} must be divisible by groups, got {name}={value} and groups={group_count}")
    if not isinstance(bias, bool):
        raise ArgumentTypeError(f"bias must be a bool, got {type(bias).__name__} bias={bias!r}")
    check_padding_mode(padding_mode)
