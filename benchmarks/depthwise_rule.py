"""auto's rule 2: a depthwise layer the compiled kernel takes stays with the depthwise algorithm,
ahead of banded and FFT, for kernels up to 7x7.

    python benchmarks/depthwise_rule.py                    # ConvNeXt-T's 7x7 depthwise layers, NCHW
    python benchmarks/depthwise_rule.py --channels-last

Forward, float32, torch's threads, batch 1 and 8; depthwise (direct.c where it takes the layer),
FFT and banded interleaved with F.conv2d in one process; prints each one's speedup over PyTorch
and auto's pick.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import convlens
from convlens.benchmark.report import cpu_name
from convlens.benchmark.suites import suite
from convlens.benchmark.timing import speedups_over


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="convnext_tiny")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--channels-last", action="store_true", help="the input in channels-last layout")
    args = parser.parse_args()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; speedup over F.conv2d")
    layers = [layer for layer in suite(args.suite) if layer.spec(1).is_depthwise]
    for batch in (int(value) for value in args.batch.split(",")):
        for layer in layers:
            x, w, b = layer.tensors(batch)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            options = layer.options
            spec = convlens.ConvSpec.from_args(x, w, b, **options)
            candidates = {"pytorch": lambda x=x, w=w, b=b, options=options: F.conv2d(x, w, b, **options)}
            for name in ("depthwise", "fft", "banded"):
                if convlens.algos.get(name).supports(spec) is None:
                    candidates[name] = lambda x=x, w=w, b=b, options=options, name=name: convlens.conv2d(
                        x, w, b, **options, algorithm=name
                    )
            pytorch_ms, speedup = speedups_over("pytorch", candidates, rounds=3, min_run_time=0.1)
            times = "  ".join(f"{name} {value:.2f}x" for name, value in speedup.items())
            pick = convlens.algos.resolve("auto", spec).name
            print(f"N={batch} {layer.label:<30} PyTorch {pytorch_ms:6.3f} ms  {times}  auto: {pick}", flush=True)


if __name__ == "__main__":
    main()
