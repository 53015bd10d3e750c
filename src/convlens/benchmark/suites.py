"""Layer suites read off real torchvision models: every Conv2d a model runs, with the input size it sees.

The shapes come from a forward pass with hooks (random weights, nothing downloaded), so "all
ResNet-50 conv layers" means exactly the layers ResNet-50 runs, each unique configuration once
with the number of times it occurs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict, cast

import torch

from convlens.errors import ArgumentError
from convlens.spec import ConvSpec


class LayerOptions(TypedDict):
    """A layer's conv2d options, to pass on with ``**`` (``Layer.options``)."""

    stride: tuple[int, int]
    padding: tuple[int, int] | str
    dilation: tuple[int, int]
    groups: int


@dataclass(frozen=True)
class Layer:
    """One convolution configuration as it occurs in a model, at batch size 1."""

    suite: str
    name: str  # the first module path it occurs at, e.g. "layer1.0.conv2"
    in_channels: int
    out_channels: int
    size: tuple[int, int]
    kernel_size: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] | str
    dilation: tuple[int, int]
    groups: int
    count: int = 1
    padding_mode: str = "zeros"

    def tensors(
        self, batch: int, dtype: torch.dtype = torch.float32, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, self.in_channels, *self.size, generator=generator).to(dtype)
        w = torch.randn(self.out_channels, self.in_channels // self.groups, *self.kernel_size, generator=generator)
        w = (w / (w[0].numel() ** 0.5)).to(dtype)  # unit-variance outputs, as a trained layer roughly has
        b = torch.randn(self.out_channels, generator=generator).to(dtype)
        return x, w, b

    @property
    def options(self) -> LayerOptions:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation, "groups": self.groups}

    def spec(self, batch: int, dtype: torch.dtype = torch.float32) -> ConvSpec:
        x = torch.empty((batch, self.in_channels, *self.size), dtype=dtype, device="meta")
        w = torch.empty(
            (self.out_channels, self.in_channels // self.groups, *self.kernel_size), dtype=dtype, device="meta"
        )
        return ConvSpec.from_args(x, w, None, **self.options, padding_mode=self.padding_mode)

    @property
    def label(self) -> str:
        k_h, k_w = self.kernel_size
        text = f"{self.in_channels}->{self.out_channels} {k_h}x{k_w} @{self.size[0]}x{self.size[1]}"
        if self.stride != (1, 1):
            text += f" s{self.stride[0]}"
        if self.groups > 1:
            text += " dw" if self.groups == self.in_channels else f" g{self.groups}"
        return text


def layers_of(model: torch.nn.Module, suite: str, image_size: int) -> list[Layer]:
    """Unique Conv2d configurations ``model`` runs on one image of ``image_size``, in order of first use."""
    found: dict[tuple, Layer] = {}
    hooks = []

    def record(name: str):
        def hook(module: torch.nn.Conv2d, args: tuple, output: torch.Tensor) -> None:
            layer = Layer(
                suite=suite,
                name=name,
                in_channels=module.in_channels,
                out_channels=module.out_channels,
                size=tuple(args[0].shape[-2:]),
                # nn.Conv2d's sizes are pairs; its stubs (shared by 1-D to 3-D) say tuple[int, ...]
                kernel_size=cast("tuple[int, int]", module.kernel_size),
                stride=cast("tuple[int, int]", module.stride),
                padding=cast("tuple[int, int] | str", module.padding),
                dilation=cast("tuple[int, int]", module.dilation),
                groups=module.groups,
                padding_mode=module.padding_mode,
            )
            key = (layer.in_channels, layer.out_channels, layer.size, layer.kernel_size, layer.stride,
                   layer.padding, layer.dilation, layer.groups, layer.padding_mode)  # fmt: skip
            previous = found.get(key)
            found[key] = layer if previous is None else _counted(previous)

        return hook

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            hooks.append(module.register_forward_hook(record(name)))
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, image_size, image_size, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return list(found.values())


def _counted(layer: Layer) -> Layer:
    return Layer(**{**layer.__dict__, "count": layer.count + 1})


def seed_layer() -> Layer:
    """The seed's nn.Conv2d(3, 1, 5) on a 32x32 CIFAR-10 image."""
    return Layer("seed", "conv", 3, 1, (32, 32), (5, 5), (1, 1), (0, 0), (1, 1), 1)


SUITES = ("resnet50", "vgg16", "mobilenet_v2", "convnext_tiny", "alexnet", "seed")
# convnext_tiny: 7x7 depthwise layers at stride 1; alexnet: a 5x5 stride-1 layer (64 -> 192 at
# 27x27), the large kernels of torchvision's models, which auto gives to banded or FFT (auto.py, rules 2 and 3)


def suite(name: str) -> list[Layer]:
    """The layers of one suite: a torchvision model at 224x224, or the seed's CIFAR-10 layer."""
    if name == "seed":
        return [seed_layer()]
    if name not in SUITES:
        raise ArgumentError(f"suite must be one of {SUITES}, got suite={name!r}")
    import torchvision

    with torch.device("meta"):  # shapes only: no memory for weights, nothing downloaded
        model = torchvision.models.get_model(name, weights=None)
    return layers_of(model, name, 224)
