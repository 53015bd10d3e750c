"""What an explore page embeds: a configuration with its values and convlens's output, or a real
model layer's input, weight, output and receptive field with the image it was fed."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import torch

import convlens
from convlens.errors import ArgumentError
from convlens.spec import Padding, volume

# what the page draws cell by cell (larger configurations: convlens explain)
PAGE_LIMITS = {"input": 48 * 48, "channels": 16, "output": 64 * 64}


class ExploreError(ArgumentError):
    """A configuration larger than the page draws, or a model layer it cannot show."""


def made_by() -> str:
    return f"made by convlens {convlens.__version__} with torch {torch.__version__}"


def configuration_data(
    size: tuple[int, ...],
    channels: int,
    filters: int,
    kernel: tuple[int, ...],
    *,
    stride: tuple[int, ...],
    padding: Padding,
    dilation: tuple[int, ...],
    groups: int,
    padding_mode: str,
    transposed: bool,
    output_padding: tuple[int, ...] | None,
    seed: int,
) -> dict:
    """The page's data for one configuration (one or two spatial dimensions): the configuration in
    the page's terms, the values, and convlens's output computed in float64."""
    from convlens.explain.examples import integer_example, transposed_example

    rank = len(size)
    if rank not in (1, 2):
        raise ExploreError(f"explore draws 1-D and 2-D convolutions, got {rank} sizes (convlens explain --dims 3: 3-D)")
    example = transposed_example if transposed else integer_example
    x, w, b = (t.double() for t in example(size, channels, filters, kernel, groups, seed))
    if transposed:
        if isinstance(padding, str) or padding_mode != "zeros":
            raise ExploreError("a transposed convolution takes zero padding of numbers only (it crops the output)")
        transposed_conv = convlens.conv_transpose1d if rank == 1 else convlens.conv_transpose2d
        out = transposed_conv(x[None], w, b, stride, padding, output_padding or (0,) * rank, groups, dilation)[0]
    else:
        conv = convlens.conv1d if rank == 1 else convlens.conv2d
        out = conv(x[None], w, b, stride, padding, dilation, groups, padding_mode=padding_mode)[0]
    check_page_limits(size, channels, filters, tuple(out.shape[1:]))
    one = 1 if rank == 1 else None  # a signal is an image one row high
    config = {
        "rank": rank,
        "transposed": transposed,
        "H": one or size[0],
        "W": size[-1],
        "cin": channels,
        "cout": filters,
        "kh": one or kernel[0],
        "kw": kernel[-1],
        "sh": one or stride[0],
        "sw": stride[-1],
        "dh": one or dilation[0],
        "dw": dilation[-1],
        "groups": groups,
        "oph": 0 if output_padding is None or rank == 1 else output_padding[0],
        "opw": 0 if output_padding is None else output_padding[-1],
        "paddingText": padding_text(padding),
        "pmode": padding_mode,
        "seed": seed,
    }  # fmt: skip
    values = {name: t.flatten().tolist() for name, t in (("x", x), ("w", w), ("b", b), ("out", out))}
    return {"mode": "configuration", "madeBy": made_by(), "config": config, **values}


def padding_text(padding: Padding) -> str:
    """The page's padding box: same / valid, one number for every dimension, or h,w."""
    if isinstance(padding, str):
        return padding
    numbers = (padding,) if isinstance(padding, int) else tuple(padding)
    return str(numbers[0]) if len(set(numbers)) == 1 else ",".join(map(str, numbers))


def check_page_limits(size: tuple[int, ...], channels: int, filters: int, out_size: tuple[int, ...]) -> None:
    cells, out_cells = volume(size), volume(out_size)
    too_many_channels = max(channels, filters) > PAGE_LIMITS["channels"]
    if cells > PAGE_LIMITS["input"] or too_many_channels or out_cells > PAGE_LIMITS["output"]:
        raise ExploreError(
            f"the page draws every value: inputs up to 48x48 and {PAGE_LIMITS['channels']} channels, outputs up to "
            f"64x64; got input {'x'.join(map(str, size))} with {channels} channels, {filters} filters, output "
            f"{'x'.join(map(str, out_size))} (convlens explain shows one value of any size)"
        )


def floats(t: torch.Tensor) -> str:
    """A tensor's values as little-endian float32 bytes in base64, as the page's decode() reads them."""
    return base64.b64encode(t.detach().float().contiguous().numpy().astype("<f4").tobytes()).decode()


def png_data_uri(image: torch.Tensor) -> str:
    """A (3, H, W) image in [0, 1] as a PNG data URI: the page fetches nothing."""
    from PIL import Image

    pixels = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def model_data(
    model_name: str,
    layer: str,
    *,
    weights: Path | None = None,
    image: Path | None = None,
    data_root: Path | None = None,
    index: int = 0,
    seed: int = 0,
) -> dict:
    """The page's data for a Conv2d inside a torchvision model: the model (random weights, seeded, or
    ``weights``) fed one picture at 224x224 (the bundled photo, an ``image`` file, or CIFAR-10 test
    image ``index`` under ``data_root``), the layer's input, weight, bias and own output, and the
    receptive field of its outputs on the picture."""
    import torch.nn.functional as F

    from convlens.data import bundled_image, cifar10_image, image_file, normalize
    from convlens.explain.model_layer import build_model, find_conv, receptive_field

    if image is not None:
        picture, source = image_file(image, 224), str(image)
    elif data_root is not None:
        small = cifar10_image(data_root, index)
        picture = F.interpolate(small.display[None], size=(224, 224), mode="bilinear", align_corners=False)[0]
        picture, source = picture.clamp(0, 1), f"CIFAR-10 test image {index}, 32x32 resized to 224x224"
    else:
        picture, source = bundled_image(224).display, "the bundled photo (grace_hopper.jpg), 224x224"
    model = build_model(model_name, weights, seed)
    conv = find_conv(model, layer)
    captured: dict[str, torch.Tensor] = {}
    handle = conv.register_forward_hook(lambda module, args, out: captured.update(input=args[0], output=out))
    try:
        with torch.no_grad():
            model(normalize(picture)[None])
    finally:
        handle.remove()
    x, out = captured["input"][0], captured["output"][0]
    field = receptive_field(model, layer, (1, 3, 224, 224), (0, 0))
    height, width = x.shape[1:]
    config = {
        "rank": 2, "transposed": False, "H": height, "W": width, "cin": conv.in_channels, "cout": conv.out_channels,
        "kh": conv.kernel_size[0], "kw": conv.kernel_size[1], "sh": conv.stride[0], "sw": conv.stride[1],
        "dh": conv.dilation[0], "dw": conv.dilation[1], "groups": conv.groups, "oph": 0, "opw": 0,
        "paddingText": padding_text(conv.padding),
        "pmode": conv.padding_mode,
    }  # fmt: skip
    return {
        "mode": "model",
        "madeBy": made_by(),
        "model": {
            "name": model_name,
            "layer": layer,
            "repr": repr(conv),
            "source": source,
            "inputShape": list(x.shape),
            "config": config,
            "input": floats(x),
            "weight": floats(conv.weight),
            "bias": None if conv.bias is None else floats(conv.bias),
            "output": floats(out),
            "image": png_data_uri(picture),
            "imageSize": list(picture.shape[1:]),
            "field": None
            if field is None
            else {"size": list(field.size), "jump": list(field.jump), "start": [field.rows[0], field.columns[0]]},
        },
    }
