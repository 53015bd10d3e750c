"""One layer with warm caches and with cold ones: what a layer inside a model pays that a layer alone does not.

    python benchmarks/cold_cache.py                  # ResNet-50 3x3 layers where auto runs the fused Winograd
    python benchmarks/cold_cache.py --evict-mib 1024

A layer timed alone, call after call, finds its weight, and convlens's cached transform of it (Winograd's U, which
is t*t/9 times the weight: 16/9 for F(2x2), 36/9 for F(4x4), 25/9 at stride 2) and the saved copy the cache compares
the weight with, in the caches: this machine's L3 is large (``lscpu``). Inside a model every layer's weights come from
memory again. Here each call is timed once, either right after a call of the same function ("warm") or right after
writing a buffer of ``--evict-mib`` MiB, larger than the L3, which evicts everything ("cold"); or after that eviction
and a read of the input ("model": the weights cold, the input warm, as the previous layer leaves it inside a model);
or after the eviction and a read of every transform kept in Winograd's cache with its saved weight copy ("cold but U":
what computing U from the weight inside the fused pass, instead of reading a cached one, could win at most); PyTorch
(F.conv2d) and
convlens's winograd, gemm and im2col interleaved, median of the rounds, speed as a ratio to PyTorch's in the same mode.
``python benchmarks/model_layers.py`` shows the same layers inside ResNet-50 (benchmarks/RESULTS.md, eighteenth
session).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

import convlens
from convlens.algos.winograd import WEIGHT_CACHE
from convlens.benchmark.report import cpu_name

# (C, input size, stride, batch): 3x3, padding 1, C -> C
LAYERS = [(256, 14, 1, 1), (256, 14, 1, 8), (512, 7, 1, 8), (128, 56, 2, 8), (256, 28, 2, 8), (256, 28, 2, 1)]
ALGORITHMS = ("winograd", "gemm", "im2col")


def one_call(function: Callable[[], object], before: Callable[[], object]) -> float:
    """Seconds of one call of ``function`` right after ``before``."""
    before()
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def evict_but_transforms(evict: torch.Tensor) -> None:
    """Evicts the caches, then reads back every transform Winograd's cache keeps and its saved weight copy."""
    evict.add_(1.0)
    for _, saved, transform in list(WEIGHT_CACHE._entries.values()):
        saved.sum(), transform.sum()


def ratios(layer: tuple[int, int, int, int], evict: torch.Tensor, rounds: int) -> dict[str, dict[str, float]]:
    """Per mode ("warm", "cold", "model", "cold but U"): each algorithm's speed over PyTorch's."""
    channels, size, stride, batch = layer
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=generator)
    w = torch.randn(channels, channels, 3, 3, generator=generator) / (3 * channels**0.5)
    candidates = {"pytorch": lambda: F.conv2d(x, w, stride=stride, padding=1)}
    for name in ALGORITHMS:
        candidates[name] = lambda name=name: convlens.conv2d(x, w, stride=stride, padding=1, algorithm=name)
    result = {}
    with torch.no_grad():
        for function in candidates.values():
            function()  # the transforms cached, the buffers made
        befores = {
            "cold": lambda: evict.add_(1.0),
            "model": lambda: (evict.add_(1.0), x.sum()),
            "cold but U": lambda: evict_but_transforms(evict),
        }
        for mode in ("warm", "cold", "model", "cold but U"):
            seconds: dict[str, list[float]] = {name: [] for name in candidates}
            for _ in range(rounds):
                for name, function in candidates.items():
                    before = function if mode == "warm" else befores[mode]
                    seconds[name].append(one_call(function, before))
            medians = {name: statistics.median(times) for name, times in seconds.items()}
            result[mode] = {name: medians["pytorch"] / medians[name] for name in ALGORITHMS}
            result[mode]["pytorch ms"] = medians["pytorch"] * 1e3
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evict-mib", type=int, default=600, help="MiB written between calls in the cold mode")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--precision", choices=["highest", "high"], default="high")
    parser.add_argument("--layers", help="C,size,stride,batch;... (default: the list above)")
    args = parser.parse_args()
    evict = torch.zeros(args.evict_mib * 2**20 // 4)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads, precision {args.precision!r}; "
          f"speed over PyTorch's in the same mode (above 1: faster)")  # fmt: skip
    with convlens.settings(precision=args.precision):
        chosen = [tuple(map(int, item.split(","))) for item in args.layers.split(";")] if args.layers else LAYERS
        for layer in chosen:
            channels, size, stride, batch = layer
            for mode, speeds in ratios(layer, evict, args.rounds).items():
                shown = "  ".join(f"{name} {speeds[name]:4.2f}x" for name in ALGORITHMS)
                print(f"N={batch} {channels}->{channels} 3x3 s{stride} @{size}  {mode:>10}  {shown}  "
                      f"(PyTorch {speeds['pytorch ms']:.2f} ms)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
