"""The products backward's input gradient: dLoss/d cols = w_rows^T @ grad_rows, then col2im, with the
product taken either way round (``autograd.products.input_grad_columns``'s rule).

    python benchmarks/grad_columns.py

Per layer (ResNet-50's layers whose input gradient goes by col2im, at batch 1 to 4), ms per
product and col2im: w_rows^T @ grad_rows (P columns) against (grad_rows^T @ w_rows)^T (P rows),
interleaved in one process, and which one the rule takes (fewer than FEW_POSITIONS positions P:
P rows).
"""

from __future__ import annotations

import torch

from convlens.autograd.products import FEW_POSITIONS
from convlens.benchmark.report import cpu_name
from convlens.benchmark.timing import interleaved_medians
from convlens.spec import ConvSpec
from convlens.unfold import col2im

LAYERS = (  # batch, C_in, C_out, kernel, input size, stride
    (1, 512, 512, 3, 7, 1),
    (1, 512, 512, 3, 14, 2),
    (1, 1024, 2048, 1, 14, 2),
    (2, 512, 512, 3, 7, 1),
    (1, 256, 256, 3, 14, 1),
    (1, 256, 256, 3, 28, 2),
    (4, 512, 512, 3, 7, 1),
    (1, 512, 1024, 1, 28, 2),
)


def layer_times(batch: int, c_in: int, c_out: int, k: int, size: int, stride: int) -> tuple[int, dict[str, float]]:
    """grad_output's positions and ms per product and col2im, each way round."""
    torch.manual_seed(0)
    x, weight = torch.randn(batch, c_in, size, size), torch.randn(c_out, c_in, k, k)
    spec = ConvSpec.from_args(x, weight, None, stride, k // 2)
    h_out, w_out = spec.out_size
    positions = batch * h_out * w_out
    w_rows = weight.reshape(1, c_out, c_in * k * k)
    grad_rows = torch.randn(1, c_out, positions)

    def fold(grad_cols: torch.Tensor) -> torch.Tensor:
        grad_cols = grad_cols.reshape(c_in * k * k, positions)
        return col2im(grad_cols, spec.padded_size, spec.kernel_size, spec.dilation, spec.stride, (h_out, w_out),
                      batch_last=True)  # fmt: skip

    runs = {
        "columns": lambda: fold(w_rows.transpose(-1, -2) @ grad_rows),
        "rows": lambda: fold((grad_rows.transpose(-1, -2) @ w_rows).transpose(-1, -2)),
    }
    return positions, {name: seconds * 1e3 for name, seconds in interleaved_medians(runs, 3, 0.3).items()}


def main() -> None:
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; the product and col2im, ms per call")
    print(f"{'layer':>28} {'positions':>10} {'P columns':>10} {'P rows':>10}  rule")
    for batch, c_in, c_out, k, size, stride in LAYERS:
        positions, ms = layer_times(batch, c_in, c_out, k, size, stride)
        rule = "P rows" if positions < FEW_POSITIONS else "P columns"
        label = f"{c_in}->{c_out} {k}x{k} @{size} s{stride} N={batch}"
        print(f"{label:>28} {positions:10d} {ms['columns']:10.2f} {ms['rows']:10.2f}  {rule}", flush=True)


if __name__ == "__main__":
    main()
