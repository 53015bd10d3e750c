"""FFT's transform size: the padded size rounded up to a fast length (``fft.fft_length``: even, no
prime factor above 13), against the padded size as it is, in one process, interleaved.

    python benchmarks/fft_sizes.py                     # stride-1 layers with 5x5, 7x7 and 11x11 kernels, batch 8

A padded side such as 62 (56 + 2*3, a 7x7 layer) is 2*31, and an FFT of a length with a large
prime factor runs several times slower than one of 64. Rounding up costs a few more frequencies
in the products and saves most of the transform time. Speed is PyTorch's F.conv2d time over the
candidate's; "unrounded" sets ``fft.fft_length`` to the identity for its calls.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import track
from rich.table import Table

import convlens
from convlens.algos import fft
from convlens.benchmark.timing import interleaved_medians, with_attributes
from convlens.spec import ConvSpec

LAYERS = (  # (in, out, size, kernel, groups)
    (64, 192, 27, 5, 1),  # AlexNet's second layer
    (64, 64, 56, 7, 1),
    (128, 128, 28, 7, 1),
    (256, 256, 14, 7, 1),
    (64, 64, 56, 11, 1),
    (128, 128, 28, 11, 1),
    (96, 96, 56, 7, 96),  # ConvNeXt-T's depthwise layers
    (192, 192, 28, 7, 192),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=0.2)
    args = parser.parse_args()
    table = Table(title=f"FFT size, speed over PyTorch, fp32, batch {args.batch}, {torch.get_num_threads()} threads")
    for column in ("layer", "padded", "FFT size", "PyTorch ms", "rounded", "unrounded"):
        table.add_column(column, justify="left" if column == "layer" else "right", no_wrap=column == "layer")
    for c_in, c_out, size, kernel, groups in track(LAYERS, description="timing layers"):
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(args.batch, c_in, size, size, generator=generator)
        w = torch.randn(c_out, c_in // groups, kernel, kernel, generator=generator)
        options = {"padding": kernel // 2, "groups": groups}

        def ours(x: torch.Tensor = x, w: torch.Tensor = w, options: dict = options) -> torch.Tensor:
            return convlens.conv2d(x, w, **options, algorithm="fft")

        calls = {"pytorch": lambda x=x, w=w, options=options: F.conv2d(x, w, **options), "rounded": ours}
        calls["unrounded"] = with_attributes(ours, fft, fft_length=lambda n: n)  # FFTs of the padded size itself
        with torch.no_grad():
            for call in calls.values():
                call()  # warm up: both sizes' kernel spectra cached
            medians = interleaved_medians(calls, rounds=args.rounds, min_run_time=args.min_run_time)
        spec = ConvSpec.from_args(x, w, None, **options)
        kind = " dw" if groups > 1 else ""
        table.add_row(
            f"{c_in}->{c_out} {kernel}x{kernel} @{size}x{size}{kind}",
            "x".join(map(str, spec.padded_size)),
            "x".join(map(str, fft.fft_size(spec))),
            f"{medians['pytorch'] * 1e3:.2f}",
            f"{medians['pytorch'] / medians['rounded']:.2f}x",
            f"{medians['pytorch'] / medians['unrounded']:.2f}x",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
