"""The seed's walkthrough as a function: nn.Conv2d(3, 1, 5) on a 32x32 image, redone as
unfold + matmul + view with convlens, and the two outputs compared.

Shapes for one 3x32x32 image and a 5x5 kernel::

    weight   (1, 3, 5, 5)
    cols     (1, 75, 784)     unfold: 3*5*5 = 75 rows, 28*28 = 784 window positions
    out_rows (1, 1, 784)      w_rows (1, 75) @ cols
    out      (1, 1, 28, 28)   view
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from convlens.spec import formula_text, output_size
from convlens.unfold import unfold


@dataclass(frozen=True)
class Walkthrough:
    image: torch.Tensor  # (1, 3, 32, 32) normalised input
    weight: torch.Tensor
    bias: torch.Tensor
    formulas: tuple[str, str]
    shapes: dict[str, tuple[int, ...]]
    torch_output: torch.Tensor  # (1, 1, 28, 28) from nn.Conv2d
    im2col_output: torch.Tensor  # (1, 1, 28, 28) from convlens unfold + matmul + view

    @property
    def max_abs_difference(self) -> float:
        return (self.torch_output - self.im2col_output).abs().max().item()


def run_walkthrough(image: torch.Tensor, seed: int = 0, out_channels: int = 1, kernel: int = 5) -> Walkthrough:
    """Conv2d(3, out_channels, kernel) seeded with ``seed`` applied to a (3, H, W) image two ways."""
    torch.manual_seed(seed)
    layer = torch.nn.Conv2d(image.shape[0], out_channels, kernel)
    batch = image.unsqueeze(0)  # (1, 3, H, W)
    height, width = image.shape[1:]
    h_out, w_out = output_size((height, width), kernel)
    formulas = (
        formula_text("H", height, kernel, 1, (0, 0), 1),
        formula_text("W", width, kernel, 1, (0, 0), 1),
    )
    with torch.no_grad():
        torch_output = layer(batch)
        assert layer.bias is not None  # Conv2d is built with its default bias=True
        weight, bias = layer.weight.detach(), layer.bias.detach()
        cols = unfold(batch, kernel)  # (1, C*k*k, L)
        w_rows = weight.view(out_channels, -1)  # (C_out, C*k*k)
        out_rows = w_rows @ cols + bias.view(1, -1, 1)  # (1, C_out, L)
        im2col_output = out_rows.view(1, out_channels, h_out, w_out)
    shapes = {
        "w": tuple(weight.shape),
        "inp_unf": tuple(cols.shape),
        "out_unf": tuple(out_rows.shape),
        "out": tuple(im2col_output.shape),
    }
    return Walkthrough(batch, weight, bias, formulas, shapes, torch_output, im2col_output)
