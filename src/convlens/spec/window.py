"""WindowSpec: the sliding-window arguments of unfold and fold, and their input rules."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from convlens.errors import ArgumentError, ArgumentTypeError
from convlens.spec.args import WINDOW_DTYPES, IntOrPair, check_tensor, non_negative_pair, positive_pair
from convlens.spec.shape import check_window_fits


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


def check_unfold_input(input: object, window: WindowSpec) -> torch.Tensor:
    """unfold takes (N, C, H, W) or unbatched (C, H, W) with non-zero C, H and W, as F.unfold."""
    x = check_tensor("input", input, WINDOW_DTYPES)
    if x.dim() not in (3, 4):
        raise ArgumentError(f"input must be 3-D (C, H, W) or 4-D (N, C, H, W), got input of shape {tuple(x.shape)}")
    if 0 in x.shape[-3:]:
        raise ArgumentError(
            f"Expected 3D or 4D (batch mode) tensor with possibly 0 batch size and other non-zero dimensions for "
            f"input, but got: {list(x.shape)}: input channels, height and width must be non-zero"
        )
    window.blocks((x.shape[-2], x.shape[-1]))
    return x


def check_fold_input(
    input: object, output_size: IntOrPair, window: WindowSpec, reduce: object = "sum"
) -> tuple[torch.Tensor, tuple[int, int]]:
    """fold takes columns (N, C*k_h*k_w, L) or (C*k_h*k_w, L) whose L matches output_size's blocks,
    and ``reduce`` "sum" or "mean" (a mean of floating-point or complex values)."""
    cols = check_tensor("input", input, WINDOW_DTYPES)
    if reduce not in ("sum", "mean"):
        raise ArgumentError(f"reduce must be 'sum' or 'mean', got reduce={reduce!r}")
    if reduce == "mean" and cols.dtype == torch.bool:
        raise ArgumentTypeError("reduce='mean' needs floating-point or complex input, got input.dtype=torch.bool")
    size = positive_pair("output_size", output_size)
    if cols.dim() not in (2, 3):
        raise ArgumentError(
            f"input must be 2-D (C*k_h*k_w, L) or 3-D (N, C*k_h*k_w, L), got input of shape {tuple(cols.shape)}"
        )
    if 0 in cols.shape[-2:]:
        raise ArgumentError(
            f"Expected 2D or 3D (batch mode) tensor for input with possibly 0 batch size and non-zero dimensions for "
            f"input, but got: {list(cols.shape)}: input rows (C*k_h*k_w) and blocks (L) must be non-zero"
        )
    rows = cols.shape[-2]
    if rows % window.taps != 0:
        raise ArgumentError(
            f"input.shape[-2]={rows} must be divisible by k_h*k_w={window.taps} (kernel_size={window.kernel_size})"
        )
    h_out, w_out = window.blocks(size)
    if cols.shape[-1] != h_out * w_out:
        raise ArgumentError(
            f"input.shape[-1]={cols.shape[-1]} must equal the number of sliding blocks "
            f"{h_out}*{w_out}={h_out * w_out} for output_size={size}, kernel_size={window.kernel_size}, "
            f"dilation={window.dilation}, padding={window.padding}, stride={window.stride}"
        )
    return cols, size
