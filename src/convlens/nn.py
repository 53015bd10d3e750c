"""``convlens.nn.Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``: torch's layers computed by convlens,
and ``convert`` for whole models.

Each module *is* its torch class (a subclass): same constructor and defaults, same parameter
initialisation, same ``state_dict`` keys, same repr, ``isinstance`` holds. Only the forward
differs: it calls :func:`convlens.conv2d` / :func:`convlens.conv_transpose2d` (or their 1-D and
3-D forms) with the module's options and its ``algorithm``.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar, Literal, TypeVar, cast

import torch
from torch import Tensor

from convlens import algos
from convlens.functional import convolution
from convlens.spec import IntOrSizes, Padding, check_layer_args
from convlens.transposed import conv_transpose

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "convert"]


class ChosenAlgorithm:
    """The ``algorithm`` attribute of a convlens layer, checked when it is set, and shown by the repr
    when it is not the default."""

    _algorithm: str

    @property
    def algorithm(self) -> str:
        """The convlens algorithm ``forward`` uses; a name ``algorithm=`` does not accept is refused here."""
        return self._algorithm

    @algorithm.setter
    def algorithm(self, name: str) -> None:
        checked = algos.check_name(name)
        rank = getattr(self, "_rank", 2)
        algos.check_rank(checked, rank, f"a {type(self).__name__} layer")
        self._algorithm = checked

    def extra_repr(self) -> str:
        text = super().extra_repr()  # type: ignore[misc]  # the torch layer's, next in the MRO
        return text if self.algorithm == "auto" else f"{text}, algorithm={self.algorithm!r}"


Layer = TypeVar("Layer", bound="ConvLayer")


class ConvLayer(ChosenAlgorithm):
    """What convlens's Conv1d, Conv2d and Conv3d share: torch's constructor with every argument
    checked first (for ``_rank`` spatial dimensions), and a forward by :func:`convlens.conv2d` and
    its 1-D and 3-D forms."""

    _rank: ClassVar[int]
    stride: tuple[int, ...]
    padding: str | tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSizes,
        stride: IntOrSizes = 1,
        padding: Padding = 0,
        dilation: IntOrSizes = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
        *,
        algorithm: str = "auto",
    ) -> None:
        algos.check_name(algorithm)
        check_layer_args(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, self._rank
        )
        # check_layer_args has accepted every argument; torch's own layer (next in the MRO) takes them
        super().__init__(  # type: ignore[call-arg]
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype
        )
        self.algorithm = algorithm

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        # torch's layer keeps the resolved "same" / "valid" string or the tuple in self.padding;
        # padding_mode goes to convlens, which pads as torch's layer does.
        return convolution(input, weight, bias, self.stride, self.padding, self.dilation, self.groups,
                           self.padding_mode, self.algorithm, None, rank=self._rank)  # fmt: skip

    @classmethod
    def from_torch(cls: type[Layer], layer: torch.nn.modules.conv._ConvNd, algorithm: str = "auto") -> Layer:
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
        new.weight = layer.weight  # type: ignore[attr-defined]
        new.bias = layer.bias  # type: ignore[attr-defined]
        new.train(layer.training)  # type: ignore[attr-defined]
        return new


class Conv1d(ConvLayer, torch.nn.Conv1d):
    """1-D convolution layer with PyTorch's semantics, computed by convlens (:func:`convlens.conv1d`,
    the 2-D convolution of an image one row high).

    Args: exactly as ``torch.nn.Conv1d``, plus ``algorithm`` (one of ``convlens.algorithms()``).

    Examples:
        >>> layer = Conv1d(16, 32, 3, padding=2, dilation=2)
        >>> layer(torch.randn(8, 16, 100)).shape
        torch.Size([8, 32, 100])
    """

    _rank = 1


class Conv2d(ConvLayer, torch.nn.Conv2d):
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

    _rank = 2


class Conv3d(ConvLayer, torch.nn.Conv3d):
    """3-D convolution layer with PyTorch's semantics, computed by convlens (:func:`convlens.conv3d`:
    direct or im2col over (D, H, W)).

    Args: exactly as ``torch.nn.Conv3d``, plus ``algorithm`` ("auto", "direct" or "im2col").

    Examples:
        >>> layer = Conv3d(3, 8, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3))
        >>> layer(torch.randn(1, 3, 8, 32, 32)).shape
        torch.Size([1, 8, 8, 16, 16])
    """

    _rank = 3


class ConvTransposeLayer(ChosenAlgorithm):
    """What convlens's ConvTranspose1d, 2d and 3d share: torch's constructor, and a forward by
    :func:`convlens.conv_transpose2d` and its 1-D and 3-D forms, with torch's own rule for the
    ``output_padding`` that gives ``output_size``."""

    _rank: ClassVar[int]

    def __init__(self, *args: Any, algorithm: str = "auto", **kwargs: Any) -> None:
        algos.check_name(algorithm)
        super().__init__(*args, **kwargs)
        self.algorithm = algorithm

    def forward(self, input: Tensor, output_size: list[int] | None = None) -> Tensor:
        layer = cast("torch.nn.modules.conv._ConvTransposeNd", self)
        if layer.padding_mode != "zeros":
            raise ValueError(f"Only 'zeros' padding mode is supported for {type(self).__name__}")
        # torch's own rule for the output_padding that gives output_size (and its checks); torch's
        # stubs say list where the layer holds tuples
        sizes = (layer.stride, layer.padding, layer.kernel_size, layer.dilation)
        stride, padding, kernel, dilation = (list(cast("tuple[int, ...]", value)) for value in sizes)
        output_padding = layer._output_padding(input, output_size, stride, padding, kernel, self._rank, dilation)
        return conv_transpose(input, layer.weight, layer.bias, stride, padding, output_padding, layer.groups,
                              dilation, self.algorithm, rank=self._rank)  # fmt: skip


class ConvTranspose1d(ConvTransposeLayer, torch.nn.ConvTranspose1d):
    """1-D transposed convolution layer: ``torch.nn.ConvTranspose1d`` computed by
    :func:`convlens.conv_transpose1d`, plus ``algorithm``."""

    _rank = 1


class ConvTranspose2d(ConvTransposeLayer, torch.nn.ConvTranspose2d):
    """2-D transposed convolution layer with PyTorch's semantics, computed by convlens
    (:func:`convlens.conv_transpose2d`: the input gradient of a convolution with the same weight).

    Args: exactly as ``torch.nn.ConvTranspose2d``, plus ``algorithm`` (one of ``convlens.algorithms()``).
    ``forward(input, output_size=None)`` as PyTorch's: ``output_size`` picks the output_padding.

    Examples:
        >>> layer = ConvTranspose2d(16, 3, 4, stride=2, padding=1)
        >>> layer(torch.randn(8, 16, 16, 16)).shape
        torch.Size([8, 3, 32, 32])
    """

    _rank = 2


class ConvTranspose3d(ConvTransposeLayer, torch.nn.ConvTranspose3d):
    """3-D transposed convolution layer: ``torch.nn.ConvTranspose3d`` computed by
    :func:`convlens.conv_transpose3d`, plus ``algorithm`` ("auto", "direct" or "im2col")."""

    _rank = 3


CONVLENS_LAYERS: dict[type[torch.nn.Module], type[torch.nn.Module]] = {
    torch.nn.Conv1d: Conv1d,
    torch.nn.Conv2d: Conv2d,
    torch.nn.Conv3d: Conv3d,
    torch.nn.ConvTranspose1d: ConvTranspose1d,
    torch.nn.ConvTranspose2d: ConvTranspose2d,
    torch.nn.ConvTranspose3d: ConvTranspose3d,
}


def convert(module: torch.nn.Module, algorithm: str = "auto") -> torch.nn.Module:
    """Make every torch convolution layer inside ``module`` (``Conv1d``, ``Conv2d``, ``Conv3d`` and the
    three ``ConvTranspose`` layers) a convlens layer and return ``module``.

    Each layer becomes a convlens layer in place: the same object, its class changed, so its
    parameters (an optimizer built on the model keeps working), buffers, device, dtype, training
    mode, forward hooks and pre-hooks, and what hooks maintain (``weight_norm``, ``spectral_norm``,
    pruning masks) all stay as they were. Left alone, with a warning naming each one: subclasses of
    torch's conv layers that are not convlens's own, whose ``forward`` may do more than a convolution
    (a layer under ``torch.nn.utils.parametrize`` is one). A convlens layer already there gets the new
    ``algorithm``. Every layer is found before any is changed, so a model is converted whole or not
    at all.
    """
    algos.check_name(algorithm)
    kinds = tuple(CONVLENS_LAYERS)
    ours = tuple(CONVLENS_LAYERS.values())
    layers = [(name, layer) for name, layer in module.named_modules() if isinstance(layer, kinds)]
    foreign = [name or type(layer).__name__ for name, layer in layers if type(layer) not in (*kinds, *ours)]
    if foreign:
        warnings.warn(
            f"convlens.nn.convert left {len(foreign)} conv subclass layer(s) as they are (their forward "
            f"may do more than a convolution, e.g. a parametrization): {', '.join(foreign)}",
            stacklevel=2,
        )
    for name, layer in layers:  # every layer's kind takes the algorithm, before any is changed
        if type(layer) in (*kinds, *ours):
            rank = getattr(CONVLENS_LAYERS.get(type(layer), type(layer)), "_rank", 2)
            algos.check_rank(algorithm, rank, f"{name or type(layer).__name__} ({type(layer).__name__})")
    for _, layer in layers:
        if type(layer) in CONVLENS_LAYERS:
            layer.__class__ = CONVLENS_LAYERS[type(layer)]  # same object: parameters, buffers and hooks stay
        if isinstance(layer, ChosenAlgorithm):
            layer.algorithm = algorithm
    return module
