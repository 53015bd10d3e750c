"""ConvSpec: one validated 2-D convolution, every size and option normalised.

``ConvSpec.from_args`` checks every argument of ``conv2d`` against PyTorch's rules before
anything is allocated; ``check_layer_args`` does the same for ``nn.Conv2d``'s constructor.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

from convlens.errors import ArgumentError, ArgumentTypeError
from convlens.spec.args import (
    IntOrPair,
    Padding,
    check_conv_tensors,
    check_padding_mode,
    positive_int,
    positive_pair,
    to_int,
)
from convlens.spec.layout import prefers_channels_last
from convlens.spec.shape import check_window_fits, effective_stride, resolve_padding


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
    channels_last: bool = False  # the input's memory layout, which some buffers depend on

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
        x, w, b = check_conv_tensors(input, weight, bias, "conv2d", "(C_out, C_in/groups, k_h, k_w)")
        mode = check_padding_mode(padding_mode)
        batched = x.dim() == 4
        batch = x.shape[0] if batched else 1
        in_channels, height, width = x.shape[-3:]
        out_channels, in_per_group, k_h, k_w = w.shape

        strides = positive_pair("stride", stride)
        dilations = positive_pair("dilation", dilation)
        group_count = positive_int("groups", groups)
        if k_h < 1 or k_w < 1:
            raise ArgumentError(f"kernel size must be positive, got weight of shape {tuple(w.shape)}")
        pads = resolve_padding(padding, (k_h, k_w), strides, dilations)

        if out_channels < group_count or out_channels % group_count != 0:
            raise ArgumentError(
                f"Given groups={group_count}, expected weight to be divisible by {group_count} at dimension 0, but "
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
        check_window_fits((height, width), (k_h, k_w), strides, pads, dilations, pytorch_wording=True)
        if (height == 0 or width == 0) and batch != 0 and in_channels != 0:
            raise ArgumentError(
                f"Only zero batch or zero channel inputs are supported, but got input shape: {list(x.shape)}: "
                f"input height and width must be non-zero unless the batch or channel size is 0"
            )
        if mode != "zeros":
            check_mode_padding(mode, tuple(x.shape), pads)

        spec = cls(
            batch=batch,
            in_channels=in_channels,
            in_size=(height, width),
            out_channels=out_channels,
            kernel_size=(k_h, k_w),
            stride=effective_stride((height, width), (k_h, k_w), strides, pads, dilations),
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
        raise ArgumentError(
            f"padding (top, bottom, left, right)={spec.padding} makes a padded input of {spec.batch}x"
            f"{spec.in_channels}x{h_pad}x{w_pad} = {padded_bytes / 2**30:,.1f} GiB, more than the "
            f"{limit / 2**30:,.1f} GiB of {spec.device}"
        )
    output_bytes = spec.batch * spec.out_channels * h_out * w_out * itemsize
    if output_bytes > limit:
        raise ArgumentError(
            f"the output (input, weight and padding as given) would need {output_bytes / 2**30:,.1f} GiB, "
            f"more than the {limit / 2**30:,.1f} GiB of {spec.device}"
        )


def check_mode_padding(mode: str, shape: tuple[int, ...], padding: tuple[int, int, int, int]) -> None:
    """F.pad's rules, as nn.Conv2d applies it: reflect and replicate need input channels, reflect
    padding < size and circular padding <= size in each dimension."""
    if mode in ("reflect", "replicate") and shape[-3] == 0:
        raise ArgumentError(
            f"Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other non-zero dimensions for "
            f"input, but got: {list(shape)}: padding_mode={mode!r} pads with F.pad, which needs input channels"
        )
    top, bottom, left, right = padding
    for axis, size, pads in (("height", shape[-2], (top, bottom)), ("width", shape[-1], (left, right))):
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
) -> None:
    """The constructor rules of nn.Conv2d, all checked before any parameter is allocated
    (``torch.nn.Conv2d`` itself lets a negative kernel size or stride through to a RuntimeError
    or to the first forward)."""
    channels = {
        name: to_int(name, value) for name, value in (("in_channels", in_channels), ("out_channels", out_channels))
    }
    for name, value in channels.items():
        if value < 0:
            raise ArgumentError(f"{name} must be non-negative, got {name}={value}")
    kernel = positive_pair("kernel_size", kernel_size)
    strides = positive_pair("stride", stride)
    dilations = positive_pair("dilation", dilation)
    resolve_padding(padding, kernel, strides, dilations)
    group_count = positive_int("groups", groups)
    for name, value in channels.items():
        if value % group_count:
            raise ArgumentError(f"{name} must be divisible by groups, got {name}={value} and groups={group_count}")
    if not isinstance(bias, bool):
        raise ArgumentTypeError(f"bias must be a bool, got {type(bias).__name__} bias={bias!r}")
    check_padding_mode(padding_mode)
