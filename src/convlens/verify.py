"""The proof, as a sweep: every algorithm against PyTorch and a float64 ground truth.

For each configuration (seeded random ones over every option, then the conv layers of real
models), in float32::

    truth      = F.conv2d in float64 on the same inputs       (the ground truth)
    pytorch    = max |F.conv2d(float32) - truth|              PyTorch's own error
    algorithm  = max |convlens.conv2d(float32, algorithm) - truth|

Errors are per element (the largest over all outputs), never averaged. An algorithm passes a
configuration when ``algorithm <= bound * max(pytorch, floor)``, where ``bound`` is the
algorithm's documented ``error_bound`` (2x for the exact methods) and ``floor`` is 4 float32
ulps of the output's scale (so a case PyTorch happens to get exactly right is not a failure).
The relative error reported is ``max |error| / max |truth|``.

With ``backward``, the gradients too: for a seeded grad_output, dLoss/d input, weight and bias
from ``convlens.conv2d`` (auto; the backward is shared by every algorithm) against the same
float64 truth and PyTorch's float32 gradients, each a row of its own. Their bound is the largest
of the algorithms the backward may use: Winograd's where it supports the layer (the input
gradient may be a Winograd convolution and the weight gradient go through its transforms),
else the exact methods' 2x.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import cast

import torch

from convlens import algos
from convlens.autograd import grad_input_spec
from convlens.benchmark.suites import KIND_SUITES, Layer, model_layers
from convlens.spec import ConvSpec, pad_pairs, resolve_padding, same_padding

MODEL_SUITES = ("resnet18", "resnet50", "mobilenet_v2", "vgg16", "convnext_tiny", "alexnet", *KIND_SUITES)
KINDS = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")
GRADIENTS = ("grad_input", "grad_weight", "grad_bias")  # the rows of a backward check


@dataclass(frozen=True)
class Config:
    """One convolution to check: a layer's configuration (benchmark.suites.Layer), a batch size,
    and the seed of its random values."""

    layer: Layer
    batch: int
    seed: int = 0

    @property
    def options(self) -> dict:
        return {**self.layer.options, "padding_mode": self.layer.padding_mode}

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.layer.tensors(self.batch, seed=self.seed)

    def describe(self) -> str:
        layer = self.layer
        text = (
            f"{f'{layer.suite} {layer.name}'.strip()}: {layer.kind} N={self.batch} {layer.in_channels}->"
            f"{layer.out_channels} {'x'.join(map(str, layer.size))} k={layer.kernel_size} s={layer.stride} "
            f"p={layer.padding} d={layer.dilation} g={layer.groups}"
        )
        extra = f"op={layer.output_padding}" if layer.transposed else layer.padding_mode
        return f"{text} {extra} seed={self.seed}"


def random_configs(count: int, seed: int) -> list[Config]:
    """``count`` random valid configurations over every option, reproducible from ``seed``."""
    rng = random.Random(seed)
    configs: list[Config] = []
    while len(configs) < count:
        groups = rng.choice([1, 1, 1, 2, 3, 4])
        depthwise = rng.random() < 0.15
        in_channels = groups * rng.randint(1, 8) if not depthwise else groups
        out_channels = groups * rng.randint(1, 8)
        kernel = rng.choice([(1, 1), (3, 3), (3, 3), (5, 5), (7, 7), (rng.randint(1, 5), rng.randint(1, 5))])
        stride = rng.choice([(1, 1), (1, 1), (2, 2), (rng.randint(1, 3), rng.randint(1, 3))])
        dilation = rng.choice([(1, 1), (1, 1), (1, 1), (2, 2), (rng.randint(1, 3), rng.randint(1, 3))])
        mode = rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"])
        kind = rng.choice(["pair", "same", "valid"])
        if kind == "same" and stride == (1, 1):
            padding: tuple[int, int] | str = "same"
            pads = same_padding(kernel, dilation)
        elif kind == "valid":
            padding, pads = "valid", (0, 0, 0, 0)
        else:
            pair = (rng.randint(0, 3), rng.randint(0, 3))
            padding, pads = pair, (pair[0], pair[0], pair[1], pair[1])
        span = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
        size = cast(
            "tuple[int, int]",  # (height, width): span has one entry per axis
            tuple(
                max(s - p0 - p1, max(p0, p1) + 1, 1) + rng.randint(0, 20)
                for s, p0, p1 in zip(span, pads[0::2], pads[1::2])
            ),
        )
        batch = rng.randint(1, 4)
        layer = Layer("random", "", in_channels, out_channels, size, kernel, stride, padding,
                      dilation, groups, padding_mode=mode)  # fmt: skip
        configs.append(Config(layer, batch, seed=rng.randrange(2**31)))
    return configs


def kind_configs(kind: str, count: int, seed: int) -> list[Config]:
    """``count`` random valid configurations of one kind of convolution (``KINDS``) over every option,
    reproducible from ``seed``; conv2d's are :func:`random_configs`'."""
    if kind == "conv2d":
        return random_configs(count, seed)
    rng = random.Random(f"{kind}-{seed}")
    transposed, rank = kind.startswith("conv_transpose"), int(kind[-2])
    configs: list[Config] = []
    while len(configs) < count:
        groups = rng.choice([1, 1, 2, 3])
        in_channels, out_channels = groups * rng.randint(1, 4), groups * rng.randint(1, 4)
        kernel = tuple(rng.randint(1, 3 if rank == 3 else 5) for _ in range(rank))
        stride = tuple(rng.choice([1, 1, 2, 3]) for _ in range(rank))
        dilation = tuple(rng.choice([1, 1, 2]) for _ in range(rank))
        size = tuple(rng.randint(1, 6 if rank == 3 else 24) for _ in range(rank))
        padding: tuple[int, ...] | str
        if transposed:
            extra = tuple(rng.randint(0, max(s, d) - 1) for s, d in zip(stride, dilation, strict=True))
            full = [(n - 1) * s + d * (k - 1) + 1 for n, s, d, k in zip(size, stride, dilation, kernel, strict=True)]
            padding = tuple(rng.randint(0, (f + e - 1) // 2) for f, e in zip(full, extra, strict=True))
            layer = Layer("random", "", in_channels, out_channels, size, kernel, stride, padding, dilation, groups,
                          transposed=True, output_padding=extra)  # fmt: skip
        else:
            mode = rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"])
            padding = rng.choice(("same", "valid", tuple(rng.randint(0, 2) for _ in range(rank))))
            if padding == "same":
                stride = (1,) * rank
            pads = resolve_padding(padding, kernel, stride, dilation)
            spans = [d * (k - 1) + 1 for d, k in zip(dilation, kernel, strict=True)]  # reflect: padding < size
            size = tuple(
                max(n, span - before - after, max(before, after) + 1)
                for n, span, (before, after) in zip(size, spans, pad_pairs(pads), strict=True)
            )
            layer = Layer("random", "", in_channels, out_channels, size, kernel, stride, padding, dilation, groups,
                          padding_mode=mode)  # fmt: skip
        configs.append(Config(layer, rng.randint(1, 3), seed=rng.randrange(2**31)))
    return configs


def model_configs(names: Iterable[str], batch: int = 1) -> list[Config]:
    """The unique conv layers of real models (benchmark.suites: torchvision's classifiers and video
    models, a DCGAN generator, a U-Net decoder, a WaveNet stack), at ``batch``."""
    return [Config(layer, batch, seed=index) for name in names for index, layer in enumerate(model_layers(name))]


def allowed_error(pytorch_error: float, scale: float, bound: float) -> float:
    """The accuracy rule: the largest float32 error against float64 an algorithm may have, ``bound``
    times PyTorch's own error, or times 4 float32 ulps of the output's ``scale`` (max |truth|) where
    PyTorch's is smaller (a case PyTorch happens to get exactly right is not a failure)."""
    floor = 4 * torch.finfo(torch.float32).eps * max(scale, 1e-30)
    return bound * max(pytorch_error, floor)


@dataclass
class Outcome:
    config: Config
    algorithm: str
    error: float
    pytorch_error: float
    scale: float
    bound: float  # multiple of PyTorch's error allowed

    @property
    def allowed(self) -> float:
        return allowed_error(self.pytorch_error, self.scale, self.bound)

    @property
    def passed(self) -> bool:
        return self.error <= self.allowed

    @property
    def relative(self) -> float:
        return self.error / self.scale if self.scale else 0.0


@dataclass
class Summary:
    algorithm: str
    cases: int = 0
    max_error: float = 0.0
    max_relative: float = 0.0
    pytorch_max_error: float = 0.0
    worst_ratio: float = 0.0  # max over cases of error / PyTorch's error
    failures: list[Outcome] = field(default_factory=list)


def check_config(config: Config, names: Iterable[str]) -> list[Outcome]:
    """Every named algorithm that runs ``config``'s kind of convolution, against float64 and PyTorch."""
    x, w, b = config.tensors()
    layer = config.layer
    truth = layer.pytorch(x.double(), w.double(), b.double())
    pytorch_error = (layer.pytorch(x, w, b).double() - truth).abs().max().item()
    scale = truth.abs().max().item()
    spec = layer.spec(config.batch).as_2d()  # a 1-D convolution runs as a one-row image
    outcomes = []
    for name in names:
        if not algos.runs(name, spec):  # this algorithm does not run this layer (its supports() says why)
            continue
        with torch.no_grad():
            ours = layer.convlens(x, w, b, algorithm=name)
        error = (ours.double() - truth).abs().max().item()
        outcomes.append(Outcome(config, name, error, pytorch_error, scale, bound_of(name, spec, layer.transposed)))
    return outcomes


def bound_of(name: str, spec: ConvSpec, transposed: bool) -> float:
    """The error bound of ``name`` on ``spec``: its own (auto: its pick's); for a transposed
    convolution, which is the input gradient of ``spec``, the backward's (:func:`backward_bound`)."""
    if transposed:
        return backward_bound(spec) if name in ("auto", "winograd") else algos.EXACT_BOUND
    return algos.resolve(name, spec).error_bound(spec)


def backward_bound(spec: ConvSpec) -> float:
    """The error bound of the backward for ``spec`` (module docstring)."""
    winograd = algos.get("winograd")
    if spec.rank != 2 or winograd.supports(spec) is not None:
        return algos.EXACT_BOUND
    grad_spec = grad_input_spec(spec)
    return max(winograd.error_bound(spec), winograd.error_bound(grad_spec) if grad_spec else 0.0)


def check_backward(config: Config) -> list[Outcome]:
    """convlens's gradients of input, weight and bias, against float64 and PyTorch's float32 ones."""
    x, w, b = config.tensors()
    layer = config.layer
    spec = layer.spec(config.batch).as_2d()
    generator = torch.Generator().manual_seed(config.seed + 1)
    grad_output = torch.randn(layer.pytorch(x, w, b).shape, generator=generator)

    def gradients(conv: Callable, tensors: tuple[torch.Tensor, ...], grad: torch.Tensor) -> tuple[torch.Tensor, ...]:
        leaves = tuple(t.detach().requires_grad_() for t in tensors)
        return torch.autograd.grad(conv(*leaves), leaves, grad)

    truth = gradients(layer.pytorch, (x.double(), w.double(), b.double()), grad_output.double())
    theirs = gradients(layer.pytorch, (x, w, b), grad_output)
    ours = gradients(layer.convlens, (x, w, b), grad_output)
    outcomes = []
    for name, true, pytorch, mine in zip(GRADIENTS, truth, theirs, ours, strict=True):
        pytorch_error = (pytorch.double() - true).abs().max().item() if true.numel() else 0.0
        error = (mine.double() - true).abs().max().item() if true.numel() else 0.0
        scale = true.abs().max().item() if true.numel() else 0.0
        outcomes.append(Outcome(config, name, error, pytorch_error, scale, backward_bound(spec)))
    return outcomes


def run(
    configs: list[Config],
    names: list[str],
    progress: Callable[[Config], None] | None = None,
    backward: bool = False,
) -> dict[str, Summary]:
    """Summaries by algorithm (and by gradient, with ``backward``) over every configuration."""
    summaries = {name: Summary(name) for name in (*names, *(GRADIENTS if backward else ()))}
    for config in configs:
        outcomes = check_config(config, names) + (check_backward(config) if backward else [])
        for outcome in outcomes:
            summary = summaries[outcome.algorithm]
            summary.cases += 1
            summary.max_error = max(summary.max_error, outcome.error)
            summary.max_relative = max(summary.max_relative, outcome.relative)
            summary.pytorch_max_error = max(summary.pytorch_max_error, outcome.pytorch_error)
            if outcome.pytorch_error > 0:
                summary.worst_ratio = max(summary.worst_ratio, outcome.error / outcome.pytorch_error)
            if not outcome.passed:
                summary.failures.append(outcome)
        if progress is not None:
            progress(config)
    return summaries


def to_json(summaries: dict[str, Summary], settings: dict) -> dict:
    def outcome_dict(outcome: Outcome) -> dict:
        return {"config": asdict(outcome.config), "describe": outcome.config.describe(), "error": outcome.error,
                "pytorch_error": outcome.pytorch_error, "allowed": outcome.allowed}  # fmt: skip

    return {
        "settings": settings,
        "algorithms": {
            name: {
                "cases": s.cases,
                "max_abs_error": s.max_error,
                "max_relative_error": s.max_relative,
                "pytorch_max_abs_error": s.pytorch_max_error,
                "worst_ratio_to_pytorch": s.worst_ratio,
                "failures": [outcome_dict(f) for f in s.failures],
            }
            for name, s in summaries.items()
        },
    }
