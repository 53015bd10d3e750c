"""im2col.c's gather on its own: how long the columns take against the product they feed.

    python benchmarks/im2col_gather.py               # ResNet-50's strided 3x3 layers and stem, batch 1 and 8

For each layer, times the compiled gather of all of the layer's columns in one piece
(``native.im2col_columns``, folded where ``im2col.folds_batch`` folds), the one matrix product
over them (torch.mm or bmm), and F.conv2d, interleaved in one process (float32, torch's threads);
prints each one's milliseconds, the gather's rate in GB/s of columns written, and its share of
gather + product. A strided layer's runs of a column row are a few values long: this is where
the per-run cost shows (benchmarks/RESULTS.md, seventeenth session).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import convlens
from convlens import native
from convlens.algos import im2col
from convlens.benchmark.report import cpu_name, require_kernels
from convlens.benchmark.timing import interleaved_medians

# (C_in, C_out, input size, kernel, stride, padding): ResNet-50's strided 3x3 layers and its stem
LAYERS = [(128, 128, 56, 3, 2, 1), (256, 256, 28, 3, 2, 1), (512, 512, 14, 3, 2, 1), (3, 64, 224, 7, 2, 3)]


def milliseconds(
    batch: int, c_in: int, c_out: int, size: int, k: int, stride: int, padding: int
) -> tuple[dict[str, float], int, bool]:
    """Median ms of F.conv2d, of the gather of all of the layer's columns and of the product over them;
    the columns' bytes; whether they are folded."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c_in, size, size, generator=generator)
    w = torch.randn(c_out, c_in, k, k, generator=generator)
    spec = convlens.ConvSpec.from_args(x, w, None, stride=stride, padding=padding)
    h_out, w_out = spec.out_size
    folded = im2col.folds_batch(spec)
    depth, positions = c_in * k * k, h_out * w_out
    buffer = torch.empty(batch * depth * positions)
    cols = native.im2col_columns(x, spec, (0, batch), (0, h_out), folded, buffer)
    w_rows = w.view(c_out, depth)

    def product() -> torch.Tensor:
        if folded:
            return torch.mm(w_rows, cols.view(depth, -1))
        return torch.bmm(w_rows.expand(batch, -1, -1), cols.view(batch, depth, positions))

    candidates = {
        "pytorch": lambda: F.conv2d(x, w, stride=stride, padding=padding),
        "gather": lambda: native.im2col_columns(x, spec, (0, batch), (0, h_out), folded, buffer),
        "product": product,
    }
    with torch.no_grad():
        medians = interleaved_medians(candidates, rounds=5, min_run_time=0.2)
    return {name: seconds * 1e3 for name, seconds in medians.items()}, buffer.numel() * 4, folded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", default="1,8", help="comma-separated batch sizes")
    args = parser.parse_args()
    require_kernels()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads")
    for batch in (int(b) for b in args.batch.split(",")):
        for c_in, c_out, size, k, stride, padding in LAYERS:
            ms, column_bytes, folded = milliseconds(batch, c_in, c_out, size, k, stride, padding)
            rate = column_bytes / ms["gather"] / 1e6
            share = 100 * ms["gather"] / (ms["gather"] + ms["product"])
            label = f"{c_in}->{c_out} {k}x{k} s{stride} @{size}" + (" folded" if folded else "")
            print(f"N={batch} {label:>29}  PyTorch {ms['pytorch']:6.2f} ms  gather {ms['gather']:5.2f} ms "
                  f"({rate:5.1f} GB/s, {share:4.1f}% of gather + product)  product {ms['product']:5.2f} ms",
                  flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
