"""Layer suites read off real models: every convolution a model runs, with the input size it sees.

The shapes come from a forward pass with hooks (random weights, nothing downloaded), so "all
ResNet-50 conv layers" means exactly the layers ResNet-50 runs, each unique configuration once
with the number of times it occurs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict, cast

import torch

from convlens.benchmark.models import SMALL_MODELS, VIDEO_MODELS, build
from convlens.errors import ArgumentError
from convlens.spec import ConvSpec, transposed_length
from convlens.spec.transposed import TransposedSpec


class LayerOptions(TypedDict):
    """A layer's conv2d options, to pass on with ``**`` (``Layer.options``)."""

    stride: tuple[int, ...]
    padding: tuple[int, ...] | str
    dilation: tuple[int, ...]
    groups: int


@dataclass(frozen=True)
class Layer:
    """One convolution configuration as it occurs in a model, at batch size 1: a 2-D convolution
    unless its sizes say otherwise (one per spatial dimension) or it is ``transposed``."""

    suite: str
    name: str  # the first module path it occurs at, e.g. "layer1.0.conv2"
    in_channels: int
    out_channels: int
    size: tuple[int, ...]
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...] | str
    dilation: tuple[int, ...]
    groups: int
    count: int = 1
    padding_mode: str = "zeros"
    transposed: bool = False
    output_padding: tuple[int, ...] = ()

    @property
    def rank(self) -> int:
        return len(self.size)

    @property
    def kind(self) -> str:
        """The function's name: "conv2d", "conv_transpose3d", ..."""
        return f"conv{'_transpose' if self.transposed else ''}{self.rank}d"

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.transposed:  # (C_in, C_out/groups, *kernel)
            return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def tensors(
        self, batch: int, dtype: torch.dtype = torch.float32, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, self.in_channels, *self.size, generator=generator).to(dtype)
        w = torch.randn(self.weight_shape, generator=generator)
        fan_in = w[0].numel() if not self.transposed else w[:, 0].numel()
        w = (w / (fan_in**0.5)).to(dtype)  # unit-variance outputs, as a trained layer roughly has
        b = torch.randn(self.out_channels, generator=generator).to(dtype)
        return x, w, b

    @property
    def options(self) -> LayerOptions:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}

    @property
    def call_options(self) -> dict:
        """Every option of the layer's function but the tensors: padding_mode, or output_padding."""
        if self.transposed:
            return {**self.options, "output_padding": self.output_padding}
        return {**self.options, "padding_mode": self.padding_mode}

    def convlens(
        self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, algorithm: str = "auto"
    ) -> torch.Tensor:
        """The layer computed by convlens's function of its kind."""
        import convlens

        return getattr(convlens, self.kind)(x, w, b, **self.call_options, algorithm=algorithm)

    def pytorch(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        """The layer computed by PyTorch, as its nn layer does (padding modes by F.pad)."""
        from convlens.padding import pytorch_convolution

        if self.transposed:
            return getattr(torch.nn.functional, self.kind)(x, w, b, **self.call_options)
        return pytorch_convolution(x, w, b, **self.call_options)

    def spec(self, batch: int, dtype: torch.dtype = torch.float32) -> ConvSpec:
        """The convolution it runs; for a transposed layer, the convolution whose input gradient it is."""
        x = torch.empty((batch, self.in_channels, *self.size), dtype=dtype, device="meta")
        w = torch.empty(self.weight_shape, dtype=dtype, device="meta")
        if self.transposed:
            forward = TransposedSpec.from_args(x, w, None, **self.call_options, rank=self.rank).forward
            assert forward is not None  # a layer's input has positions
            return forward
        return ConvSpec.from_args(x, w, None, **self.options, padding_mode=self.padding_mode, rank=self.rank)

    @property
    def label(self) -> str:
        text = f"{self.in_channels}->{self.out_channels} {'x'.join(map(str, self.kernel_size))} "
        text += f"@{'x'.join(map(str, self.size))}"
        if any(step != 1 for step in self.stride):
            text += f" s{self.stride[0] if len(set(self.stride)) == 1 else 'x'.join(map(str, self.stride))}"
        if any(gap != 1 for gap in self.dilation):
            text += f" d{self.dilation[0] if len(set(self.dilation)) == 1 else 'x'.join(map(str, self.dilation))}"
        if self.groups > 1:
            text += " dw" if self.groups == self.in_channels else f" g{self.groups}"
        return f"{text} T" if self.transposed else text


CONV_LAYERS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
TRANSPOSED_LAYERS = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)


def layers_of(model: torch.nn.Module, suite: str, image_size: int | tuple[int, ...]) -> list[Layer]:
    """Unique convolution configurations (every kind: 1-D to 3-D, transposed too) ``model`` runs on
    one input, in order of first use. ``image_size``: the side of a 3-channel square image, or the
    whole input shape (a video's (1, 3, T, H, W), a signal's (1, C, L))."""
    found: dict[tuple, Layer] = {}
    hooks = []

    def record(name: str):
        def hook(module: torch.nn.modules.conv._ConvNd, args: tuple, output: torch.Tensor) -> None:
            transposed = isinstance(module, TRANSPOSED_LAYERS)
            layer = Layer(
                suite=suite,
                name=name,
                in_channels=module.in_channels,
                out_channels=module.out_channels,
                size=tuple(args[0].shape[2:]),
                kernel_size=module.kernel_size,
                stride=module.stride,
                padding=module.padding,
                dilation=module.dilation,
                groups=module.groups,
                padding_mode=module.padding_mode,
                transposed=transposed,
                output_padding=output_padding_of(module, args[0], output) if transposed else (),
            )
            key = tuple(value for field, value in layer.__dict__.items() if field not in ("suite", "name", "count"))
            previous = found.get(key)
            found[key] = layer if previous is None else _counted(previous)

        return hook

    for name, module in model.named_modules():
        if isinstance(module, CONV_LAYERS + TRANSPOSED_LAYERS):
            hooks.append(module.register_forward_hook(record(name)))
    shape = (1, 3, image_size, image_size) if isinstance(image_size, int) else image_size
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(shape, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return list(found.values())


def output_padding_of(module: torch.nn.modules.conv._ConvNd, x: torch.Tensor, out: torch.Tensor) -> tuple[int, ...]:
    """The output_padding a transposed layer's call used: its output size beyond the formula's
    (``forward(input, output_size)`` may pick another than the constructor's)."""
    padding = cast("tuple[int, ...]", module.padding)
    return tuple(
        size - transposed_length(extent, k, s, p, d, 0)
        for size, extent, k, s, p, d in zip(
            out.shape[2:], x.shape[2:], module.kernel_size, module.stride, padding, module.dilation, strict=True
        )
    )


def _counted(layer: Layer) -> Layer:
    return Layer(**{**layer.__dict__, "count": layer.count + 1})


def seed_layer() -> Layer:
    """The seed's nn.Conv2d(3, 1, 5) on a 32x32 CIFAR-10 image."""
    return Layer("seed", "conv", 3, 1, (32, 32), (5, 5), (1, 1), (0, 0), (1, 1), 1)


SUITES = ("resnet50", "vgg16", "mobilenet_v2", "convnext_tiny", "alexnet", "seed")
# convnext_tiny: 7x7 depthwise layers at stride 1; alexnet: a 5x5 stride-1 layer (64 -> 192 at
# 27x27), the large kernels of torchvision's models, which auto gives to banded or FFT (auto.py, rules 2 and 3)
KIND_SUITES = (*VIDEO_MODELS, *SMALL_MODELS)  # 3-D (video), transposed 2-D (dcgan, unet_decoder), 1-D (wavenet)
ALL_SUITES = (*SUITES, *KIND_SUITES)


def suite(name: str) -> list[Layer]:
    """The layers of one suite: a torchvision model at 224x224, a model of another kind
    (``KIND_SUITES``, each at its own input), or the seed's CIFAR-10 layer."""
    if name == "seed":
        return [seed_layer()]
    if name not in ALL_SUITES:
        raise ArgumentError(f"suite must be one of {ALL_SUITES}, got suite={name!r}")
    return model_layers(name)


def model_layers(name: str) -> list[Layer]:
    """The unique conv layers of a model: one of ``KIND_SUITES`` at its own input, else a torchvision
    classifier at 224x224 (shapes only: no memory for weights, nothing downloaded)."""
    if name in KIND_SUITES:
        model, shape = build(name)
        return layers_of(model, name, shape)
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.get_model(name, weights=None)
    return layers_of(model, name, 224)
