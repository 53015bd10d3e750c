"""The compiled depthwise kernel (src/convlens/native/direct.c) against PyTorch and against
convlens's Python depthwise path, on the depthwise layers of MobileNetV2 and ConvNeXt-T.

    python benchmarks/depthwise_native.py                  # batch 1 and 8, NCHW
    python benchmarks/depthwise_native.py --suite convnext_tiny --batch 8
    python benchmarks/depthwise_native.py --channels-last  # input (and so output) channels-last

Forward only, float32, torch's threads; the three candidates are interleaved in one process
(``speedups_over``); prints each layer's speedup over F.conv2d and the geometric means. Issue 20's
target: every layer at least 1.0x.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

import convlens
from convlens.algos import depthwise
from convlens.benchmark.report import cpu_name, require_kernels
from convlens.benchmark.suites import suite
from convlens.benchmark.timing import speedups_over, with_attributes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="mobilenet_v2,convnext_tiny")
    parser.add_argument("--batch", default="1,8")
    parser.add_argument("--channels-last", action="store_true", help="the input in channels-last layout")
    args = parser.parse_args()
    require_kernels()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; speedup over F.conv2d")
    for name in args.suite.split(","):
        layers = [layer for layer in suite(name) if layer.spec(1).is_depthwise]
        for batch in (int(value) for value in args.batch.split(",")):
            logs: dict[str, list[float]] = {"native": [], "python": []}
            for layer in layers:
                x, w, b = layer.tensors(batch)
                if args.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                options = layer.options

                def ours(x=x, w=w, b=b, options=options) -> torch.Tensor:
                    return convlens.conv2d(x, w, b, **options, algorithm="depthwise")

                candidates = {
                    "pytorch": lambda x=x, w=w, b=b, options=options: F.conv2d(x, w, b, **options),
                    "native": ours,
                    "python": with_attributes(ours, depthwise, native=False),
                }
                pytorch_ms, speedup = speedups_over("pytorch", candidates, rounds=3, min_run_time=0.1)
                times = f"native {speedup['native']:.2f}x  python {speedup['python']:.2f}x"
                print(f"{name} N={batch} {layer.label:<30} PyTorch {pytorch_ms:6.3f} ms  {times}", flush=True)
                for key in logs:
                    logs[key].append(math.log(speedup[key]))
            means = {key: math.exp(sum(values) / len(values)) for key, values in logs.items()}
            worst = math.exp(min(logs["native"]))
            print(f"{name} N={batch} geometric mean: native {means['native']:.2f}x (worst {worst:.2f}x), "
                  f"python {means['python']:.2f}x", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
