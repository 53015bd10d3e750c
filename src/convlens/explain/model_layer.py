"""Explain one output value of a Conv2d inside a real torchvision model.

The model is built with random weights (seeded) or a user's state_dict, fed the demo image at
224x224; a forward hook captures the layer's input and output, and the value at (n, c, y, x) is
recomputed by hand from the layer's own weight and bias.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from convlens.data import bundled_image
from convlens.errors import ArgumentError
from convlens.explain.byhand import Explanation, PositionError, explain_value


class ModelError(ArgumentError):
    """Unknown model or layer, or a weights file that cannot be used."""


@dataclass(frozen=True)
class ReceptiveField:
    """The input pixels one output of a layer sees: ``rows`` and ``columns`` (first, last), unclipped
    (negative or past the edge: padding), from ``convlens.summary``'s field, jump and start."""

    size: tuple[int, int]
    jump: tuple[int, int]
    rows: tuple[int, int]
    columns: tuple[int, int]

    def describe(self, height: int, width: int) -> str:
        (top, bottom), (left, right) = self.rows, self.columns
        inside = f"rows {max(top, 0)}-{min(bottom, height - 1)}, columns {max(left, 0)}-{min(right, width - 1)}"
        padded = " (the rest is padding)" if top < 0 or left < 0 or bottom >= height or right >= width else ""
        return (
            f"receptive field {self.size[0]}x{self.size[1]} (jump {self.jump[0]}x{self.jump[1]}): "
            f"{inside} of the {height}x{width} input{padded}"
        )


@dataclass(frozen=True)
class LayerExplanation:
    model: str
    layer: str
    module_repr: str
    at: tuple[int, int, int, int]
    module_value: float
    explanation: Explanation
    image: torch.Tensor  # (3, H, W) in [0, 1], the picture the model was fed
    field: ReceptiveField | None

    @property
    def difference(self) -> float:
        return abs(self.explanation.value - self.module_value)


def build_model(name: str, weights: Path | None, seed: int) -> torch.nn.Module:
    import torchvision

    available = torchvision.models.list_models(module=torchvision.models)
    if name not in available:
        close = [m for m in available if name.split("_")[0] in m][:6]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ModelError(f"unknown model {name!r}{hint}; torchvision classification models: {len(available)} available")
    torch.manual_seed(seed)
    model = torchvision.models.get_model(name, weights=None)
    if weights is not None:
        state = load_state_dict(weights, name)
        try:
            model.load_state_dict(state)
        except (RuntimeError, ValueError, KeyError) as error:  # missing or unexpected keys, other shapes
            reason = " ".join(str(error).split())
            reason = reason if len(reason) <= 300 else reason[:297] + "..."
            raise ModelError(f"cannot use --weights {weights} for {name}: {reason}") from error
    return model.eval()


def load_state_dict(weights: Path, model_name: str) -> dict[str, torch.Tensor]:
    """The state_dict saved in ``weights`` (read weights-only: no code in the file runs), or a ModelError
    that says what the file is not; torch.load's own errors name pickle opcodes and zip internals."""
    import warnings

    failed = f"cannot use --weights {weights} for {model_name}"
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise before the one-line error
            warnings.simplefilter("ignore")
            state = torch.load(weights, map_location="cpu", weights_only=True)
    except OSError as error:
        raise ModelError(f"{failed}: {error.strerror or error}") from error
    except Exception as error:
        raise ModelError(
            f"{failed}: it is not a PyTorch state_dict file (torch.load cannot read it as one; "
            f"write one with torch.save(model.state_dict(), path))"
        ) from error
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise ModelError(
            f"{failed}: it holds a {type(state).__name__}, not a state_dict (a dict of parameter names to tensors, "
            f"as torch.save(model.state_dict(), path) writes)"
        )
    return state


def find_conv(model: torch.nn.Module, layer: str) -> torch.nn.Conv2d:
    modules = dict(model.named_modules())
    convs = [name for name, module in modules.items() if isinstance(module, torch.nn.Conv2d)]
    if layer not in modules:
        raise ModelError(f"no layer {layer!r} in the model; its Conv2d layers include {', '.join(convs[:5])}, ...")
    module = modules[layer]
    if not isinstance(module, torch.nn.Conv2d):
        raise ModelError(f"layer {layer!r} is a {type(module).__name__}, not a Conv2d; try {convs[0]}")
    return module


def explain_layer(
    model_name: str, layer: str, at: tuple[int, int, int, int], weights: Path | None = None, seed: int = 0
) -> LayerExplanation:
    model = build_model(model_name, weights, seed)
    conv = find_conv(model, layer)
    demo = bundled_image(size=224)
    image = demo.normalized.unsqueeze(0)  # (1, 3, 224, 224)
    captured: dict[str, torch.Tensor] = {}

    def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> None:
        captured["input"], captured["output"] = args[0].detach(), output.detach()

    handle = conv.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(image)
    finally:
        handle.remove()
    n, c, y, x = at
    output = captured["output"]
    if not (
        0 <= n < output.shape[0] and 0 <= c < output.shape[1] and 0 <= y < output.shape[2] and 0 <= x < output.shape[3]
    ):
        raise PositionError(
            f"--at {n},{c},{y},{x} is outside the layer's output of shape (N, C, H, W)={tuple(output.shape)}"
        )
    with torch.no_grad():
        explanation = explain_value(
            captured["input"][n], conv.weight.detach(), None if conv.bias is None else conv.bias.detach(), c, (y, x),
            stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
            padding_mode=conv.padding_mode,
        )  # fmt: skip
    field = receptive_field(model, layer, tuple(image.shape), (y, x))
    return LayerExplanation(
        model_name, layer, repr(conv), at, output[n, c, y, x].item(), explanation, demo.display, field
    )


def receptive_field(model: torch.nn.Module, layer: str, shape: tuple[int, ...], at: tuple[int, int]):
    """Where output ``at`` of ``layer``'s first call sees the input, or None when it is not found."""
    from convlens.summary import summary

    row = next((row for row in summary(model, shape).rows if row.name == layer), None)
    if row is None or row.receptive_field is None or row.jump is None or row.receptive_field_start is None:
        return None
    size, jump, start = (tuple(int(v) for v in values) for values in (row.receptive_field, row.jump,
                                                                        row.receptive_field_start))  # fmt: skip
    first = [s + i * j for s, i, j in zip(start, at, jump)]
    return ReceptiveField(
        (size[0], size[1]), (jump[0], jump[1]), (first[0], first[0] + size[0] - 1), (first[1], first[1] + size[1] - 1)
    )
