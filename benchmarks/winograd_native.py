"""Winograd's compiled forwards (src/convlens/native/winograd.c) against its torch-op pipeline and
against PyTorch, on ResNet-50's 3x3 stride-1 layers: "fused" (one call: the passes and the
products band by band, V and M kept in the cache), "native" (the two compiled passes around the
BLAS products) and "python" (the torch-op pipeline).

    python benchmarks/winograd_native.py                   # batch 8, F(2x2) and F(4x4)
    python benchmarks/winograd_native.py --batch 1 --precision high

Forward only, float32, torch's threads; the three candidates are interleaved in one process
(``speedups_over``); prints each layer's speedup over F.conv2d and the geometric means. The
products between the passes are the same torch.bmm in "native" and "python", so the difference
between them is the passes alone. Its result decides ``winograd.plan.native`` and
``winograd.plan.fused`` (with FUSED_MAX_U_BYTES; "fused" is "-" where the fused pass does not
take the layer).
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

import convlens
from convlens.algos.winograd import plan
from convlens.benchmark.report import cpu_name, require_kernels
from convlens.benchmark.suites import suite
from convlens.benchmark.timing import speedups_over, with_attributes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--precision", default="highest,high", help="highest: F(2x2, 3x3); high: F(4x4, 3x3)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    require_kernels()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; speedup over F.conv2d")
    layers = [layer for layer in suite("resnet50") if plan.supports(layer.spec(1)) is None]
    for precision in args.precision.split(","):
        convlens.set_precision(precision)
        logs: dict[str, list[float]] = {"fused": [], "native": [], "python": []}
        for layer in layers:
            x, w, b = layer.tensors(args.batch)
            options = layer.options

            def ours(x=x, w=w, b=b, options=options) -> torch.Tensor:
                return convlens.conv2d(x, w, b, **options, algorithm="winograd")

            candidates = {
                "pytorch": lambda x=x, w=w, b=b, options=options: F.conv2d(x, w, b, **options),
                "native": with_attributes(ours, plan, native=True, fused=False),
                "python": with_attributes(ours, plan, native=False, fused=False),
            }
            # as shipped: the fused pass where it takes the layer, else the forward plan.native picks
            candidates["fused"] = with_attributes(ours, plan, fused=True)
            spec = convlens.ConvSpec.from_args(x, w, b, **options)
            takes = with_attributes(lambda spec=spec: plan.uses_fused(spec), plan, fused=True)()
            pytorch_ms, speedup = speedups_over("pytorch", candidates, rounds=args.rounds, min_run_time=0.1)
            fused = f"{speedup['fused']:.2f}x" + ("" if takes else " (not taken: the pipeline)")
            times = f"fused {fused}  native {speedup['native']:.2f}x  python {speedup['python']:.2f}x"
            print(f"{precision} N={args.batch} {layer.label:<30} PyTorch {pytorch_ms:7.2f} ms  {times}", flush=True)
            for key in logs:
                logs[key].append(math.log(speedup[key]))
        means = {key: math.exp(sum(values) / len(values)) for key, values in logs.items()}
        wins = sum(n > p for n, p in zip(logs["native"], logs["python"], strict=True))
        summary = ", ".join(f"{key} {mean:.2f}x" for key, mean in means.items())
        print(f"{precision} N={args.batch} geometric mean: {summary}; native ahead on {wins} of {len(layers)} layers")


if __name__ == "__main__":
    main()
