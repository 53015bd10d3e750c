"""convlens on channels-last tensors, as a model converted with ``.to(memory_format=torch.channels_last)`` runs.

    python benchmarks/channels_last.py                  # every unique ResNet-50 layer, batch 8
    python benchmarks/channels_last.py --suite mobilenet_v2 --batch 1
    python benchmarks/channels_last.py --suite convnext_tiny --patchify --batch 1

Input and weight in channels-last memory order; times convlens auto and im2col against F.conv2d
(PyTorch's own channels-last kernel), interleaved in one process, precision "high"; prints the
speedup per layer and the geometric mean. ``--patchify``: only the layers whose kernel equals
their stride (ConvNeXt's stem and downsampling layers), and im2col also with its columns copied
("im2col columns": ``patches`` switched off) and with ``patches`` wherever the windows allow it
("im2col patches": PATCH_MIN_WIDTH and PATCH_MIN_DEPTH at 0), the input channels-last and the weight
as the model keeps it (contiguous), as inside ConvNeXt, whose LayerNorm2d hands its output on
channels-last.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import convlens
from convlens.algos import im2col
from convlens.benchmark.suites import Layer, suite
from convlens.benchmark.timing import geomean, speedups_over

NAMES = ("auto", "im2col")


def with_patch_limits(function, limit: int):  # type: ignore[no-untyped-def]
    """``function`` with im2col's PATCH_MIN_WIDTH and PATCH_MIN_DEPTH set to ``limit``: 0, ``patches``
    wherever the windows allow it; a huge one, never (the columns copied, piece by piece)."""

    def call():  # type: ignore[no-untyped-def]
        kept = im2col.PATCH_MIN_WIDTH, im2col.PATCH_MIN_DEPTH
        im2col.PATCH_MIN_WIDTH = im2col.PATCH_MIN_DEPTH = limit
        try:
            return function()
        finally:
            im2col.PATCH_MIN_WIDTH, im2col.PATCH_MIN_DEPTH = kept

    return call


LIMITS = {"im2col columns": 1 << 62, "im2col patches": 0}


def speedups(layer: Layer, batch: int, names: tuple[str, ...], weight_too: bool) -> tuple[float, dict[str, float]]:
    """PyTorch's ms and each convlens candidate's speedup over it, channels-last, measured interleaved."""
    x, w, b = layer.tensors(batch)
    x = x.contiguous(memory_format=torch.channels_last)
    if weight_too:
        w = w.contiguous(memory_format=torch.channels_last)
    options = layer.options
    candidates = {"pytorch": lambda: F.conv2d(x, w, b, **options)}
    for name in names:
        algorithm = name.split()[0]
        run = lambda algorithm=algorithm: convlens.conv2d(x, w, b, **options, algorithm=algorithm)  # noqa: E731
        candidates[name] = with_patch_limits(run, LIMITS[name]) if name in LIMITS else run
    return speedups_over("pytorch", candidates, rounds=3, min_run_time=0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="resnet50")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="only the first N layers")
    parser.add_argument("--patchify", action="store_true", help="only layers whose kernel is their stride")
    args = parser.parse_args()
    convlens.set_precision("high")
    names = (*NAMES, *LIMITS) if args.patchify else NAMES
    results: dict[str, list[float]] = {name: [] for name in names}
    layers = suite(args.suite)[: args.limit]
    if args.patchify:
        layers = [layer for layer in layers if layer.kernel_size == layer.stride]
    weights = "the weight contiguous" if args.patchify else "weight"
    print(f"speedup over PyTorch, channels-last input and {weights}, batch {args.batch}")
    for layer in layers:
        pytorch_ms, speedup = speedups(layer, args.batch, names, weight_too=not args.patchify)
        for name in names:
            results[name].append(speedup[name])
        text = "  ".join(f"{name} {speedup[name]:.2f}x" for name in names)
        print(f"{layer.label:<28} PyTorch {pytorch_ms:6.2f} ms  {text}", flush=True)
    print("geometric mean: " + "  ".join(f"{name} {geomean(values):.2f}x" for name, values in results.items()))


if __name__ == "__main__":
    main()
