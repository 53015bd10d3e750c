"""Small models for the convolution kinds torchvision's classifiers do not run: a DCGAN generator
and a U-Net decoder (transposed 2-D convolutions that upsample), and a WaveNet-style stack of
dilated causal 1-D convolutions. Their layers are what such models run; their weights are random.
torchvision's video models (``r3d_18``, ``mc3_18``, ``r2plus1d_18``) supply the 3-D convolutions.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


class DCGANGenerator(nn.Module):
    """DCGAN's generator (Radford et al., 2015) for 64x64 images: a (N, 100, 1, 1) noise vector
    upsampled 4 -> 8 -> 16 -> 32 -> 64 by 4x4 transposed convolutions of stride 2, padding 1."""

    def __init__(self, noise: int = 100, width: int = 64) -> None:
        super().__init__()
        channels = [width * 8, width * 4, width * 2, width]
        layers: list[nn.Module] = [nn.ConvTranspose2d(noise, channels[0], 4, 1, 0, bias=False)]
        for c_in, c_out in itertools.pairwise(channels):
            layers += [nn.BatchNorm2d(c_in), nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)]
        layers += [nn.BatchNorm2d(channels[-1]), nn.ReLU(), nn.ConvTranspose2d(channels[-1], 3, 4, 2, 1), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.input_shape = (1, noise, 1, 1)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.main(noise)


class UNetDecoder(nn.Module):
    """A U-Net decoder (Ronneberger et al., 2015): from a (N, 512, 14, 14) bottleneck, each step
    upsamples by a 2x2 transposed convolution of stride 2, joins the skip connection (random here,
    the encoder's features in a real U-Net) and applies two 3x3 convolutions; a 1x1 head at the end."""

    def __init__(self, widths: tuple[int, ...] = (512, 256, 128, 64), classes: int = 2) -> None:
        super().__init__()
        self.ups = nn.ModuleList(nn.ConvTranspose2d(c, c // 2, 2, stride=2) for c in widths[:-1])
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, c // 2, 3, padding=1), nn.ReLU(), nn.Conv2d(c // 2, c // 2, 3, padding=1))
            for c in widths[:-1]
        )
        self.head = nn.Conv2d(widths[-1], classes, 1)
        self.input_shape = (1, widths[0], 14, 14)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for up, block in zip(self.ups, self.blocks, strict=True):
            x = up(x)
            skip = torch.zeros_like(x)  # the encoder's features at this scale
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


class WaveNetStack(nn.Module):
    """A WaveNet-style stack (van den Oord et al., 2016): dilated causal 1-D convolutions of kernel 2,
    dilation 1, 2, 4, ... 512, each causal by its left padding (F.pad), gated (tanh * sigmoid) and
    residual, on (N, 32, 4000) features of a quarter-second of 16 kHz audio."""

    def __init__(self, channels: int = 32, layers: int = 10) -> None:
        super().__init__()
        self.dilations = [2**i for i in range(layers)]
        self.filters = nn.ModuleList(nn.Conv1d(channels, 2 * channels, 2, dilation=d) for d in self.dilations)
        self.mixes = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in self.dilations)
        self.input_shape = (1, channels, 4000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilation, conv, mix in zip(self.dilations, self.filters, self.mixes, strict=True):
            filtered, gate = conv(nn.functional.pad(x, (dilation, 0))).chunk(2, dim=1)  # causal: pad the past only
            x = x + mix(torch.tanh(filtered) * torch.sigmoid(gate))
        return x


SMALL_MODELS = {"dcgan": DCGANGenerator, "unet_decoder": UNetDecoder, "wavenet": WaveNetStack}
VIDEO_MODELS = ("r3d_18", "mc3_18", "r2plus1d_18")
VIDEO_INPUT = (1, 3, 16, 112, 112)  # 16 frames of 112x112, as torchvision's video models are trained


def build(name: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """A model of this module or a torchvision video model, on the meta device, and its input shape."""
    with torch.device("meta"):  # shapes only: no memory for weights, nothing downloaded
        if name in SMALL_MODELS:
            model = SMALL_MODELS[name]()
            return model, tuple(model.input_shape)
        import torchvision

        return torchvision.models.get_model(name, weights=None), VIDEO_INPUT
