"""WindowSpec: the sliding-window arguments of unfold and fold, and their input rules.

PyTorch's ``F.unfold`` and ``F.fold`` are 2-D only. convlens's take 1, 2 or 3 spatial
dimensions: the rank is the length of ``kernel_size`` when it is a tuple, and 2 (PyTorch's) when
it is an int, so every call PyTorch accepts means the same here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from convlens.errors import ArgumentError, ArgumentTypeError
from convlens.spec.args import (
    AXES,
    WINDOW_DTYPES,
    IntOrSizes,
    check_tensor,
    kernel_names,
    non_negative_sizes,
    per_dimension,
    positive_sizes,
)
from convlens.spec.shape import check_window_fits, volume


@dataclass(frozen=True)
class WindowSpec:
    """The sliding-window arguments shared by unfold and fold, one value per spatial dimension."""

    kernel_size: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[int, ...]
    stride: tuple[int, ...]

    @classmethod
    def from_args(
        cls, kernel_size: IntOrSizes, dilation: IntOrSizes, padding: IntOrSizes, stride: IntOrSizes
    ) -> WindowSpec:
        rank = 2
        if isinstance(kernel_size, Sequence) and not isinstance(kernel_size, str) and len(kernel_size) in (1, 3):
            rank = len(kernel_size)
        kernel = positive_sizes("kernel_size", kernel_size, rank)
        return cls(
            kernel_size=kernel,
            dilation=per_dimension(positive_sizes, "dilation", dilation, len(kernel), f"kernel_size={kernel}"),
            padding=per_dimension(non_negative_sizes, "padding", padding, len(kernel), f"kernel_size={kernel}"),
            stride=per_dimension(positive_sizes, "stride", stride, len(kernel), f"kernel_size={kernel}"),
        )

    @property
    def rank(self) -> int:
        return len(self.kernel_size)

    @property
    def explicit_padding(self) -> tuple[int, ...]:
        """(before, after) per spatial dimension: the same padding on both sides."""
        return tuple(pad for pad in self.padding for _ in range(2))

    @property
    def taps(self) -> int:
        return volume(self.kernel_size)

    def blocks(self, in_size: tuple[int, ...]) -> tuple[int, ...]:
        """Number of window positions (H_out, W_out) over an input of ``in_size``."""
        return check_window_fits(in_size, self.kernel_size, self.stride, self.explicit_padding, self.dilation)

    def shapes(self) -> tuple[str, str]:
        """The image's axes and the columns' rows as the messages name them: ("C, H, W", "C*k_h*k_w")."""
        return f"C, {', '.join(AXES[self.rank])}", f"C*{kernel_names(self.rank).replace(', ', '*')}"


def check_unfold_input(input: object, window: WindowSpec) -> torch.Tensor:
    """unfold takes (N, C, H, W) or unbatched (C, H, W) with non-zero C, H and W, as F.unfold
    (one more or one fewer spatial dimension for 3-D and 1-D windows)."""
    x = check_tensor("input", input, WINDOW_DTYPES)
    rank, (axes, _) = window.rank, window.shapes()
    if x.dim() not in (rank + 1, rank + 2):
        raise ArgumentError(
            f"input must be {rank + 1}-D ({axes}) or {rank + 2}-D (N, {axes}) for kernel_size={window.kernel_size}, "
            f"got input of shape {tuple(x.shape)}"
        )
    if 0 in x.shape[-rank - 1 :]:
        raise ArgumentError(
            f"Expected {rank + 1}D or {rank + 2}D (batch mode) tensor with possibly 0 batch size and other non-zero "
            f"dimensions for input, but got: {list(x.shape)}: input channels and spatial sizes must be non-zero"
        )
    window.blocks(tuple(x.shape[-rank:]))
    return x


def check_fold_input(
    input: object, output_size: IntOrSizes, window: WindowSpec, reduce: object = "sum"
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """fold takes columns (N, C*k_h*k_w, L) or (C*k_h*k_w, L) whose L matches output_size's blocks,
    and ``reduce`` "sum" or "mean" (a mean of floating-point or complex values)."""
    cols = check_tensor("input", input, WINDOW_DTYPES)
    if reduce not in ("sum", "mean"):
        raise ArgumentError(f"reduce must be 'sum' or 'mean', got reduce={reduce!r}")
    if reduce == "mean" and cols.dtype == torch.bool:
        raise ArgumentTypeError("reduce='mean' needs floating-point or complex input, got input.dtype=torch.bool")
    size = per_dimension(positive_sizes, "output_size", output_size, window.rank, f"kernel_size={window.kernel_size}")
    _, rows_name = window.shapes()
    if cols.dim() not in (2, 3):
        raise ArgumentError(
            f"input must be 2-D ({rows_name}, L) or 3-D (N, {rows_name}, L), got input of shape {tuple(cols.shape)}"
        )
    if 0 in cols.shape[-2:]:
        raise ArgumentError(
            f"Expected 2D or 3D (batch mode) tensor for input with possibly 0 batch size and non-zero dimensions for "
            f"input, but got: {list(cols.shape)}: input rows ({rows_name}) and blocks (L) must be non-zero"
        )
    rows = cols.shape[-2]
    if rows % window.taps != 0:
        raise ArgumentError(
            f"input.shape[-2]={rows} must be divisible by {rows_name.removeprefix('C*')}={window.taps} "
            f"(kernel_size={window.kernel_size})"
        )
    blocks = window.blocks(size)
    if cols.shape[-1] != volume(blocks):
        raise ArgumentError(
            f"input.shape[-1]={cols.shape[-1]} must equal the number of sliding blocks "
            f"{'*'.join(map(str, blocks))}={volume(blocks)} for output_size={size}, kernel_size={window.kernel_size}, "
            f"dilation={window.dilation}, padding={window.padding}, stride={window.stride}"
        )
    return cols, size
