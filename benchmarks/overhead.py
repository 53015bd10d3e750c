"""What one convlens call costs beyond its arithmetic: microseconds per step on a tiny input.

    python benchmarks/overhead.py                  # 1x4x8x8 input, 4 filters 3x3, padding 1

On an input this small the arithmetic is negligible, so the times are the fixed cost of each
step of ``convlens.conv2d``: checking the arguments into a ConvSpec, resolving the algorithm,
the autograd Function around the algorithm, and the algorithm's own torch calls. PyTorch's
F.conv2d on the same input is printed for scale. auto takes this input to the compiled direct
kernel (its rule 5); "direct.c alone" is that kernel's call without the rest. This fixed cost is what makes small layers
(MobileNetV2's at batch 1 take 0.05-0.3 ms) slower relative to PyTorch than large ones.
The last two lines time PyTorch and auto again with gradients on (a model called without
``torch.no_grad``) on tensors that require none.
"weight cache hit" is the check a cached transform (Winograd's U, FFT's spectra) costs on every call: the weight's bits
against its saved copy (``algos.cache``), for this layer's weight and for a 128x128x3x3 one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.benchmark as benchmark

import convlens
from convlens import algos, native
from convlens.algos.winograd.transforms import cached_panels
from convlens.autograd import Conv2dFunction
from convlens.spec import ConvSpec, conv_spec


def microseconds(function) -> float:
    return (
        benchmark.Timer("function()", globals={"function": function}).blocked_autorange(min_run_time=0.3).median * 1e6
    )


def main() -> None:
    x, w, b = torch.randn(1, 4, 8, 8), torch.randn(4, 4, 3, 3), torch.randn(4)
    spec = ConvSpec.from_args(x, w, b, padding=1)
    im2col = algos.get("im2col")
    workspace = convlens.get_workspace_limit()
    w_128 = torch.randn(128, 128, 3, 3)
    steps = {
        "F.conv2d (PyTorch)": lambda: F.conv2d(x, w, b, padding=1),
        "convlens.conv2d, auto": lambda: convlens.conv2d(x, w, b, padding=1),
        "convlens.conv2d, im2col": lambda: convlens.conv2d(x, w, b, padding=1, algorithm="im2col"),
        "convlens.conv2d, direct": lambda: convlens.conv2d(x, w, b, padding=1, algorithm="direct"),
        "  ConvSpec.from_args": lambda: ConvSpec.from_args(x, w, b, padding=1),
        "  conv_spec (remembered)": lambda: conv_spec(x, w, b, 1, 1, 1, 1, "zeros", 2),
        "  algos.resolve('auto')": lambda: algos.resolve("auto", spec),
        "  Conv2dFunction.apply": lambda: Conv2dFunction.apply(x, w, b, spec, im2col, workspace),
        "    im2col.forward alone": lambda: im2col.forward(x, w, b, spec, workspace),
        "    direct.c alone": lambda: native.direct_forward(x, w, b, spec),
        "weight cache hit, 4x4x3x3": lambda: cached_panels(w, 2),
        "weight cache hit, 128x128x3x3": lambda: cached_panels(w_128, 2),
    }
    with torch.no_grad():
        for name, function in steps.items():
            print(f"{name:<28} {microseconds(function):7.1f} us", flush=True)
    # a model called without torch.no_grad: nothing requires a gradient, so nothing is recorded
    print("gradients on, nothing requiring one:")
    for name in ("F.conv2d (PyTorch)", "convlens.conv2d, auto"):
        print(f"  {name:<26} {microseconds(steps[name]):7.1f} us", flush=True)


if __name__ == "__main__":
    main()
