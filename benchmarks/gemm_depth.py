"""gemm.c against im2col on deep dense 3x3 layers: how deep auto's rule 6 sends a layer to gemm.c.

    python benchmarks/gemm_depth.py                      # batch 1 and 8, the layers below
    python benchmarks/gemm_depth.py --batch 8
    bash benchmarks/as_avx2.sh python benchmarks/gemm_depth.py

Rule 6 (``convlens.algos.auto``) gives a dense layer to gemm.c up to GEMM_MAX_ROWS taps times input
channels (the depth of its product) and leaves deeper ones to im2col's BLAS product. This times,
interleaved in one process (float32, forward, torch's threads, torch.utils.benchmark medians),
PyTorch (F.conv2d), gemm, im2col and auto on the 3x3 layers of ResNet-50, ResNet-18 and VGG-16
from 2,304 to 4,608 deep, and prints each one's speed as a ratio to PyTorch's (above 1: faster),
the depth and auto's pick.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import convlens
from convlens.algos.auto import choose
from convlens.benchmark.report import cpu_name, require_kernels
from convlens.benchmark.timing import interleaved_medians

# (model, C_in, C_out, input size, stride): 3x3, padding 1
LAYERS = [
    ("resnet50", 256, 256, 28, 2),  # 2,304 deep: gemm.c's side of the line
    ("resnet18", 256, 256, 14, 1),  # 2,304
    ("resnet50", 512, 512, 14, 2),  # 4,608
    ("resnet50", 512, 512, 7, 1),  # 4,608 (Winograd's at batch 8)
    ("vgg16", 512, 512, 28, 1),  # 4,608
    ("vgg16", 512, 512, 14, 1),  # 4,608
]
ALGORITHMS = ("gemm", "im2col", "auto")


def measure(batch: int, c_in: int, c_out: int, size: int, stride: int) -> tuple[dict[str, float], str]:
    """Each algorithm's speed over PyTorch's, and auto's pick."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c_in, size, size, generator=generator)
    w = torch.randn(c_out, c_in, 3, 3, generator=generator) / (3 * c_in**0.5)
    b = torch.randn(c_out, generator=generator)
    options = {"stride": stride, "padding": 1}
    spec = convlens.ConvSpec.from_args(x, w, b, **options)
    candidates = {"pytorch": lambda: F.conv2d(x, w, b, **options)}
    for name in ALGORITHMS:
        candidates[name] = lambda name=name: convlens.conv2d(x, w, b, **options, algorithm=name)
    with torch.no_grad():
        medians = interleaved_medians(candidates, rounds=5, min_run_time=0.2)
    ratios = {name: medians["pytorch"] / seconds for name, seconds in medians.items() if name != "pytorch"}
    return ratios, choose(spec).algorithm.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", default="1,8", help="comma-separated batch sizes")
    args = parser.parse_args()
    require_kernels()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; speed over PyTorch's (above 1: faster)")
    for batch in (int(b) for b in args.batch.split(",")):
        for model, c_in, c_out, size, stride in LAYERS:
            ratios, picked = measure(batch, c_in, c_out, size, stride)
            speeds = "  ".join(f"{name} {ratio:4.2f}x" for name, ratio in ratios.items())
            label = f"{model} {c_in}->{c_out} @{size}" + (f" s{stride}" if stride > 1 else "")
            print(f"N={batch} {label:>26} {9 * c_in:>5} deep  {speeds}  (auto: {picked})", flush=True)


if __name__ == "__main__":
    main()
