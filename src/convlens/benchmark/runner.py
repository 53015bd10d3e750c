"""One benchmark run: every candidate on every layer of the chosen suites, against PyTorch, in one process.

Per layer and batch size, interleaved with ``torch.utils.benchmark`` (see timing.py):
each convlens algorithm that supports the layer, ``auto``, PyTorch's function of the layer's kind
(``F.conv2d``, ``F.conv3d``, ``F.conv_transpose2d``, ...: the reference), for 2-D convolutions the
seed's ``F.unfold`` + matmul + view, and a single GEMM of the same size as the layer
(C_out x C_in*k*k times C_in*k*k x N*H_out*W_out), the practical roofline of any GEMM-based method.

Reported per candidate: median ms, effective GFLOP/s (2*N*C_out*H_out*W_out*C_in/G*k_h*k_w / t),
speedup over PyTorch (PyTorch's time / its time), % of the same-size GEMM's rate, predicted extra
memory, and max |error| against float64 next to PyTorch's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

import convlens
from convlens import algos
from convlens.algos.auto import choose
from convlens.benchmark.suites import Layer
from convlens.benchmark.timing import geomean, interleaved_medians
from convlens.spec import volume

REFERENCE = "pytorch"
SEED = "seed unfold"
GEMM = "same-size GEMM"


@dataclass
class Row:
    layer: Layer
    batch: int
    flops: int
    milliseconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    extra_bytes: dict[str, int] = field(default_factory=dict)
    auto_choice: str = ""

    def speedup(self, name: str) -> float:
        return self.milliseconds[REFERENCE] / self.milliseconds[name]

    def gflops(self, name: str) -> float:
        return self.flops / (self.milliseconds[name] * 1e-3) / 1e9

    def gemm_percent(self, name: str) -> float:
        return 100.0 * self.milliseconds[GEMM] / self.milliseconds[name]


def seed_unfold(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, layer: Layer) -> torch.Tensor:
    """The seed's method, with PyTorch's own unfold: unfold, transpose, matmul, transpose, view."""
    h_out, w_out = layer.spec(x.shape[0]).out_size
    cols = F.unfold(x, layer.kernel_size, layer.dilation, _pair_padding(layer), layer.stride)
    out_rows = cols.transpose(1, 2).matmul(w.view(w.size(0), -1).t()).transpose(1, 2) + b.view(1, -1, 1)
    return out_rows.view(x.shape[0], -1, h_out, w_out)


def _pair_padding(layer: Layer) -> tuple[int, ...]:
    return layer.padding if isinstance(layer.padding, tuple) else (0, 0)


def predicted_extra_bytes(name: str, layer: Layer, batch: int, device: torch.device | None = None) -> int:
    """Memory a candidate allocates beyond input, weight and output, predicted from the shapes (on
    ``device``, where the compiled kernels may take the call; default: any device, the Python
    algorithms' buffers): the algorithm's own ``buffer_bytes``; for the seed's method its padded
    input and columns."""
    spec = layer.spec(batch).as_2d()
    if device is not None:
        spec = replace(spec, device=device)
    if name == REFERENCE:  # PyTorch's own workspace is not visible from here
        return 0
    if name == SEED:
        h_pad, w_pad = spec.padded_size
        return batch * spec.in_channels * h_pad * w_pad * spec.dtype.itemsize + spec.cols_bytes()
    return algos.get(name).extra_bytes(spec, convlens.get_workspace_limit())


def pytorch_call(layer: Layer, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> Callable[[], torch.Tensor]:
    """PyTorch's function of the layer's kind with its options (padding modes through F.pad, as its nn layer)."""
    if layer.transposed or layer.padding_mode == "zeros":
        function = getattr(F, layer.kind)
        options = {k: v for k, v in layer.call_options.items() if k != "padding_mode"}
        return lambda: function(x, w, b, **options)
    return lambda: layer.pytorch(x, w, b)


def benchmark_layer(
    layer: Layer,
    batch: int,
    algorithm_names: Iterable[str],
    rounds: int,
    min_run_time: float,
    device: torch.device | str = "cpu",
) -> Row:
    """One layer (of any kind: conv1d to conv_transpose3d) at one batch size on ``device`` (on CUDA,
    PyTorch's reference is cuDNN's kernel; ``torch.utils.benchmark`` synchronizes the device around
    each timed block)."""
    x, w, b = (tensor.to(device) for tensor in layer.tensors(batch))
    # for a transposed layer, the convolution whose input gradient it is; on the tensors' device, so
    # that auto's choice reported is the one the call makes (the compiled kernels take CPU layers)
    spec = replace(layer.spec(batch).as_2d(), device=x.device)

    def convlens_call(name: str) -> Callable[[], torch.Tensor]:
        return lambda: layer.convlens(x, w, b, algorithm=name)

    candidates: dict[str, Callable[[], torch.Tensor]] = {REFERENCE: pytorch_call(layer, x, w, b)}
    for name in algorithm_names:
        if algos.runs(name, spec):
            candidates[name] = convlens_call(name)
    if layer.kind == "conv2d" and layer.groups == 1 and isinstance(layer.padding, tuple):
        candidates[SEED] = lambda: seed_unfold(x, w, b, layer)
    positions = volume(spec.out_size)
    gemm_a = torch.randn(spec.out_per_group, spec.in_per_group * spec.taps, device=device)
    gemm_b = torch.randn(spec.in_per_group * spec.taps, batch * positions * spec.groups, device=device)
    candidates[GEMM] = lambda: gemm_a @ gemm_b

    row = Row(layer, batch, spec.flops)
    with torch.no_grad():
        truth = layer.pytorch(x.double(), w.double(), b.double())
        for name, function in candidates.items():
            if name == GEMM:
                continue
            row.errors[name] = (function().double() - truth).abs().max().item()
            if not layer.transposed:  # a transposed layer's buffers are its backward's, not predicted here
                chosen = choose(spec).algorithm.name if name == "auto" else name
                row.extra_bytes[name] = predicted_extra_bytes(chosen, layer, batch, x.device)
        medians = interleaved_medians(candidates, rounds=rounds, min_run_time=min_run_time)
    row.milliseconds = {name: seconds * 1e3 for name, seconds in medians.items()}
    if "auto" in candidates and not layer.transposed:
        row.auto_choice = choose(spec).algorithm.name
    return row


def summary(rows: list[Row], names: Iterable[str]) -> dict[str, float]:
    """Geometric-mean speedup over PyTorch of each candidate, over the rows it ran on (none: left out)."""
    speedups = {name: [r.speedup(name) for r in rows if name in r.milliseconds] for name in names}
    return {name: geomean(values) for name, values in speedups.items() if values}
