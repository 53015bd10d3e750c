"""How the backward computes dLoss/d x: col2im's scatter-add, or a convolution of grad_output
(stride 1, the reason for ``autograd.by_convolution.grad_input_by_convolution``'s rule), or one
convolution per stride phase of the input (stride 2, ``autograd.by_phases``'s rule).

    python benchmarks/grad_input.py                  # ResNet-50's 3x3 stride-1 layers, batch 8
    python benchmarks/grad_input.py --batch 1 --precision high --changing-weight   # as in a train step
    python benchmarks/grad_input.py --stride 2 --changing-weight   # its 3x3 stride-2 layers

Times the input gradient alone, in one process, interleaved: the product and col2im path, the
convolution by Winograd and by im2col (stride 1) or the phases by gemm.c (stride 2), what the
backward does by default, and PyTorch's own input gradient; prints milliseconds and, for stride
1, the tiles Winograd has per output channel of that convolution, for stride 2 grad_output's
positions N*H_out*W_out. ``--changing-weight``: the weight takes other values before every call
(two sets in turn, the same copy for every candidate), as after an optimizer step, so that the
transforms of the weight (Winograd's U of the turned weight, gemm.c's phase rows) are made on
every call, as in training.
"""

from __future__ import annotations

import argparse
from unittest import mock

import torch

import convlens
from convlens.algos.winograd.plan import tile_count
from convlens.autograd import by_convolution, by_phases, function
from convlens.benchmark.report import cpu_name
from convlens.benchmark.timing import interleaved_medians
from convlens.spec import ConvSpec

LAYERS = {  # (channels, input size) of ResNet-50's 3x3 layers, by stride
    1: ((64, 56), (128, 28), (256, 14), (512, 7)),
    2: ((128, 56), (256, 28), (512, 14)),
}
WORKSPACE = 256 * 1024**2


def grad_input_times(
    channels: int, size: int, batch: int, changing: bool, stride: int = 1
) -> tuple[dict[str, float], float]:
    """Milliseconds of each way, and for stride 1 the tiles per output channel of the gradient's
    convolution, for stride 2 grad_output's positions."""
    torch.manual_seed(0)
    x = torch.randn(batch, channels, size, size)
    values = [torch.randn(channels, channels, 3, 3) / (9 * channels) ** 0.5 for _ in range(2)]
    weight = values[0].clone()
    calls = [0]

    def step() -> None:  # as after an optimizer step: the weight's values change, the tensor stays
        if changing:
            calls[0] += 1
            weight.copy_(values[calls[0] % 2])

    spec = ConvSpec.from_args(x, weight, None, stride, 1, 1, 1, "zeros")
    grad_output = torch.randn(spec.output_shape)
    needs = (True, False, False)
    bound = convlens.algos.resolve("auto", spec, WORKSPACE).error_bound(spec)  # the forward's, as its backward gets

    def col2im_path() -> object:
        step()
        with (
            mock.patch.object(function, "grad_input_by_convolution", lambda *args, **kwargs: None),
            mock.patch.object(by_phases, "pays", lambda *args: False),
        ):
            return function.conv2d_backward(grad_output, x, weight, spec, WORKSPACE, needs, bound)

    def convolution_by(name: str) -> object:
        step()
        return by_convolution.grad_input_by_convolution(grad_output, weight, spec, WORKSPACE, algorithm=name)

    candidates = {"col2im": col2im_path}
    if stride == 1:
        candidates["winograd"] = lambda: convolution_by("winograd")
        candidates["im2col"] = lambda: convolution_by("im2col")
    else:
        candidates["phases"] = lambda: (step(), by_phases.grad_input_by_phases(grad_output, weight, spec, WORKSPACE))
    candidates["default"] = lambda: (
        step(),
        function.conv2d_backward(grad_output, x, weight, spec, WORKSPACE, needs, bound),
    )
    candidates["pytorch"] = lambda: (
        step(),
        torch.ops.aten.convolution_backward(
            grad_output, x, weight, None, [stride] * 2, [1, 1], [1, 1], False, [0, 0], 1, [True, False, False]
        ),
    )
    with torch.no_grad():
        ms = {name: seconds * 1e3 for name, seconds in interleaved_medians(candidates, 3, 0.2).items()}
    return ms, tile_count(spec) / channels if stride == 1 else batch * spec.out_size[0] * spec.out_size[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--precision", default="highest", choices=["highest", "high"])
    parser.add_argument("--changing-weight", action="store_true", help="new weight values before every call")
    parser.add_argument("--stride", type=int, default=1, choices=[1, 2])
    args = parser.parse_args()
    convlens.set_precision(args.precision)
    names = ("col2im", "winograd", "im2col") if args.stride == 1 else ("col2im", "phases")
    names += ("default", "pytorch")
    measure = "tiles/channel" if args.stride == 1 else "positions"
    weight = "changing before every call" if args.changing_weight else "the same in every call"
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; input gradient, ms per call, batch {args.batch}, "
          f"stride {args.stride}, precision {args.precision}, weight {weight}")  # fmt: skip
    print(f"{'layer':>16} {measure:>14} " + " ".join(f"{name:>9}" for name in names))
    for channels, size in LAYERS[args.stride]:
        ms, per_layer = grad_input_times(channels, size, args.batch, args.changing_weight, args.stride)
        cells = " ".join(f"{ms[name]:9.2f}" for name in names)
        print(f"{f'{channels}->{channels} @{size}x{size}':>16} {per_layer:14.2f} {cells}", flush=True)


if __name__ == "__main__":
    main()
