"""Each convolution of a whole model timed where it runs, inside the model, convlens against PyTorch.

    python benchmarks/model_layers.py                     # resnet50, batch 1, the 12 layers furthest behind
    python benchmarks/model_layers.py --model resnet50 --batch 8 --top 20

A layer timed alone (``convlens bench``) runs with its weight, its transform and its input warm
from the previous repeat; inside a model they are cold, pushed out by the layers between. This
times every Conv2d of a torchvision model (random weights, 224x224 random input, eval, no
autograd) inside the model's forward, with forward hooks (time.perf_counter before and after the
module; the CPU runs one op at a time, so the difference is the layer), in the model and in its
``convlens.nn.convert`` copy, the two forwards interleaved in one process. Prints the medians,
per layer, of both, sorted by how far convlens is behind, and the sums.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch
import torchvision

import convlens
from convlens.benchmark.report import cpu_name


def hooked(model: torch.nn.Module) -> dict[str, list[float]]:
    """Seconds per call of every Conv2d of ``model``, by name, appended on each forward."""
    seconds: dict[str, list[float]] = defaultdict(list)
    started: dict[str, float] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_pre_hook(lambda _m, _i, name=name: started.__setitem__(name, time.perf_counter()))
            module.register_forward_hook(
                lambda _m, _i, _o, name=name: seconds[name].append(time.perf_counter() - started[name])
            )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50", help="a torchvision model name")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--top", type=int, default=12, help="how many layers to print")
    args = parser.parse_args()
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, args.model)().eval()
    ours = convlens.nn.convert(getattr(torchvision.models, args.model)().eval())
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(args.batch, 3, 224, 224)
    their_layers, our_layers = hooked(theirs), hooked(ours)
    totals: dict[str, list[float]] = {"pytorch": [], "convlens": []}
    with torch.no_grad():
        for repeat in range(args.repeats + 3):  # three warm-up forwards, not counted
            for name, model in (("pytorch", theirs), ("convlens", ours)):
                started = time.perf_counter()
                model(x)
                if repeat >= 3:
                    totals[name].append(time.perf_counter() - started)
            if repeat == 2:
                for seconds in (*their_layers.values(), *our_layers.values()):
                    seconds.clear()
    modules = dict(theirs.named_modules())
    rows = []
    for name, seconds in their_layers.items():
        pytorch_ms, convlens_ms = statistics.median(seconds) * 1e3, statistics.median(our_layers[name]) * 1e3
        rows.append((convlens_ms - pytorch_ms, name, pytorch_ms, convlens_ms))
    rows.sort(reverse=True)
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; {args.model}, batch {args.batch}, "
          f"median of {args.repeats} forwards")  # fmt: skip
    model_ms = {name: statistics.median(seconds) * 1e3 for name, seconds in totals.items()}
    print(f"model: PyTorch {model_ms['pytorch']:.1f} ms, convlens {model_ms['convlens']:.1f} ms "
          f"({model_ms['pytorch'] / model_ms['convlens']:.2f}x); its Conv2d layers: PyTorch "
          f"{sum(row[2] for row in rows):.1f} ms, convlens {sum(row[3] for row in rows):.1f} ms")  # fmt: skip
    for behind, name, pytorch_ms, convlens_ms in rows[: args.top]:
        conv = modules[name]
        assert isinstance(conv, torch.nn.Conv2d)
        shape = f"{conv.in_channels}->{conv.out_channels} {conv.kernel_size[0]}x{conv.kernel_size[1]} s{conv.stride[0]}"
        print(f"{name:24} {shape:>20}  PyTorch {pytorch_ms:6.3f} ms  convlens {convlens_ms:6.3f} ms  "
              f"{behind:+.3f} ms  {pytorch_ms / convlens_ms:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
