"""``convlens.nn.Conv2d``: ``torch.nn.Conv2d`` computed by convlens, and ``convert`` for whole models.

The module *is* a ``torch.nn.Conv2d`` (a subclass): same constructor and defaults, same
parameter initialisation, same ``state_dict`` keys, same repr, ``isinstance`` holds. Only the
forward differs: it calls :func:`convlens.conv2d` with the module's options and its
``algorithm``.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, cast

import torch
from torch import Tensor

from convlens import algos
from convlens.functional import conv2d
from convlens.spec import IntOrPair, Padding, check_layer_args

__all__ = ["Conv2d", "convert"]


class Conv2d(torch.nn.Conv2d):
    """2-D convolution layer with PyTorch's semantics, computed by a convlens algorithm.

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
        padding_mode, device, dtype: exactly as ``torch.nn.Conv2d``.
        algorithm: one of ``convlens.algorithms()``; "auto" (the default) picks per input.

    Shape:
        input (N, C_in, H, W) or (C_in, H, W) -> output (N, C_out, H_out, W_out) or (C_out, H_out, W_out),
        ``H_out = floor((H + pad_top + pad_bottom - dilation[0] * (kernel_size[0] - 1) - 1) / stride[0]) + 1``
        and likewise for W.

    Attributes:
        weight: (C_out, C_in / groups, k_h, k_w), initialised as ``torch.nn.Conv2d`` does.
        bias: (C_out,) or None.
        algorithm: the convlens algorithm name used by ``forward``.

    Examples:
        >>> layer = Conv2d(3, 16, 3, padding=1, algorithm="im2col")
        >>> layer(torch.randn(8, 3, 32, 32)).shape
        torch.Size([8, 16, 32, 32])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: Padding = 0,
        dilation: IntOrPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        algorithm: str = "auto",
    ) -> None:
        algos.check_name(algorithm)
        check_layer_args(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode)
        # check_layer_args has accepted every argument; torch's stubs are narrower than torch itself
        # (which takes any int sequence as a pair) and than what check_layer_args lets through
        super().__init__(
            in_channels,
            out_channels,
            cast("int | tuple[int, int]", kernel_size),
            cast("int | tuple[int, int]", stride),
            cast("str | int | tuple[int, int]", padding),
            cast("int | tuple[int, int]", dilation),
            groups,
            bias,
            cast("Literal['zeros', 'reflect', 'replicate', 'circular']", padding_mode),
            device,
            dtype,
        )
        self.algorithm = algorithm

    @property
    def algorithm(self) -> str:
        """The convlens algorithm ``forward`` uses; a name ``algorithm=`` does not accept is refused here."""
        return self._algorithm

    @algorithm.setter
    def algorithm(self, name: str) -> None:
        self._algorithm = algos.check_name(name)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        return text if self.algorithm == "auto" else f"{text}, algorithm={self.algorithm!r}"

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        # torch.nn.Conv2d keeps the resolved "same" / "valid" string or the (h, w) pair in
        # self.padding; padding_mode goes to convlens, which pads as nn.Conv2d does.
        return conv2d(
            input,
            weight,
            bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            padding_mode=self.padding_mode,
            algorithm=self.algorithm,
        )

    @classmethod
    def from_torch(cls, layer: torch.nn.Conv2d, algorithm: str = "auto") -> Conv2d:
        """A convlens layer that shares ``layer``'s parameters (the same Parameter objects, so an
        optimizer built on the old model keeps working), with its options and training mode."""
        new = cls(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            bias=layer.bias is not None,
            padding_mode=layer.padding_mode,
            device="meta",  # no memory spent on parameters that are replaced just below
            dtype=layer.weight.dtype,
            algorithm=algorithm,
        )
        new.weight = layer.weight
        new.bias = layer.bias
        new.train(layer.training)
        return new


def convert(module: torch.nn.Module, algorithm: str = "auto") -> torch.nn.Module:
    """Make every ``torch.nn.Conv2d`` inside ``module`` a convlens ``Conv2d`` and return ``module``.

    Each layer becomes a convlens layer in place: the same object, its class changed, so its
    parameters (an optimizer built on the model keeps working), buffers, device, dtype, training
    mode, forward hooks and pre-hooks, and what hooks maintain (``weight_norm``, ``spectral_norm``,
    pruning masks) all stay as they were. Left alone, with a warning naming each one: subclasses of
    ``torch.nn.Conv2d`` that are not convlens's own, whose ``forward`` may do more than a convolution
    (a layer under ``torch.nn.utils.parametrize`` is one). A convlens layer already there gets the new
    ``algorithm``. Every layer is found before any is changed, so a model is converted whole or not
    at all.
    """
    algos.check_name(algorithm)
    layers = [(name, layer) for name, layer in module.named_modules() if isinstance(layer, torch.nn.Conv2d)]
    foreign = [name or type(layer).__name__ for name, layer in layers if type(layer) not in (torch.nn.Conv2d, Conv2d)]
    if foreign:
        warnings.warn(
            f"convlens.nn.convert left {len(foreign)} Conv2d subclass layer(s) as they are (their forward "
            f"may do more than a convolution, e.g. a parametrization): {', '.join(foreign)}",
            stacklevel=2,
        )
    for _, layer in layers:
        if type(layer) is torch.nn.Conv2d:
            layer.__class__ = Conv2d  # same object: parameters, buffers and hooks stay
        if isinstance(layer, Conv2d):
            layer.algorithm = algorithm
    return module
