"""Winograd at stride 2 (F(2x2, 3x3) at stride 2, fused) against the other algorithms on strided 3x3 layers.

    python benchmarks/winograd_strided.py                 # ResNet-50's and ResNet-18's, batch 1 and 8
    python benchmarks/winograd_strided.py --batch 8 --layers resnet50

For each layer: PyTorch (F.conv2d) and convlens's winograd, gemm, im2col and auto, interleaved in
one process (float32, forward, torch's threads, torch.utils.benchmark medians); prints each one's
speed as a ratio to PyTorch (above 1: faster), which one auto picks, and the largest error of
winograd and of PyTorch against float64 (per element, not an average). Each layer is timed call
after call, its transformed weight U warm in the cache; ``python benchmarks/cold_cache.py`` times
them cold, as inside a model, which is why auto's rule 1 takes stride 2 only where U is small
(benchmarks/RESULTS.md, eighteenth session).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import convlens
from convlens.algos.auto import choose
from convlens.benchmark.report import cpu_name, require_kernels
from convlens.benchmark.timing import interleaved_medians

# (C_in, C_out, input size): 3x3, stride 2, padding 1
LAYERS = {
    "resnet50": [(128, 128, 56), (256, 256, 28), (512, 512, 14)],
    "resnet18": [(64, 128, 56), (128, 256, 28), (256, 512, 14)],
}
ALGORITHMS = ("winograd", "gemm", "im2col", "auto")


def measure(batch: int, c_in: int, c_out: int, size: int) -> tuple[dict[str, float], str, float, float]:
    """Each algorithm's speed over PyTorch's, auto's pick, and winograd's and PyTorch's largest error
    against float64."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, c_in, size, size, generator=generator)
    w = torch.randn(c_out, c_in, 3, 3, generator=generator) / (3 * c_in**0.5)
    b = torch.randn(c_out, generator=generator)
    options = {"stride": 2, "padding": 1}
    spec = convlens.ConvSpec.from_args(x, w, b, **options)
    candidates = {"pytorch": lambda: F.conv2d(x, w, b, **options)}
    for name in ALGORITHMS:
        if name == "auto" or convlens.algos.get(name).supports(spec) is None:
            candidates[name] = lambda name=name: convlens.conv2d(x, w, b, **options, algorithm=name)
    with torch.no_grad():
        medians = interleaved_medians(candidates, rounds=5, min_run_time=0.2)
        truth = F.conv2d(x.double(), w.double(), b.double(), **options)
        ours = convlens.conv2d(x, w, b, **options, algorithm="winograd")
        theirs = F.conv2d(x, w, b, **options)
    ratios = {name: medians["pytorch"] / seconds for name, seconds in medians.items() if name != "pytorch"}
    errors = [float((out.double() - truth).abs().max()) for out in (ours, theirs)]
    return ratios, choose(spec).algorithm.name, errors[0], errors[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--layers", default="resnet50,resnet18", help=f"comma-separated: {', '.join(LAYERS)}")
    args = parser.parse_args()
    require_kernels()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; speed over PyTorch's (above 1: faster)")
    for batch in (int(b) for b in args.batch.split(",")):
        for model in args.layers.split(","):
            for c_in, c_out, size in LAYERS[model]:
                ratios, picked, ours, theirs = measure(batch, c_in, c_out, size)
                speeds = "  ".join(f"{name} {ratio:4.2f}x" for name, ratio in ratios.items())
                label = f"{model} {c_in}->{c_out} s2 @{size}"
                print(f"N={batch} {label:>26}  {speeds}  (auto: {picked})  "
                      f"error vs float64: winograd {ours:.1e}, PyTorch {theirs:.1e}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
