"""``convlens explore``: one self-contained HTML page where a learner plays with a convolution.

The page holds everything inline (script, style, data, the image as a data URI): it opens from disk
offline in any current browser. convlens computes the configuration's output (or a real model
layer's input, weight and output) and embeds it; the page's JavaScript (``assets/explore.js``)
recomputes it on load and says whether the two agree (``<body data-selfcheck="pass">``), then
recomputes everything itself as the learner hovers values and changes the controls.

    explore(...)           -> ExplorePage: .html, .save(path), and _repr_html_ for Jupyter
    configuration_data     the embedded data of a configuration: values, convlens's output
    model_data             the embedded data of a Conv2d inside a model fed a real image
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from convlens.explore.data import configuration_data, model_data
from convlens.spec import Padding

__all__ = ["ExplorePage", "configuration_data", "explore", "model_data", "render"]


@dataclass(frozen=True)
class ExplorePage:
    """One explore page: ``html`` is the whole file."""

    title: str
    html: str

    def save(self, path: Path) -> Path:
        """Write the page atomically; the path written."""
        from convlens.files import atomic_write_bytes

        return atomic_write_bytes(Path(path), self.html.encode())

    def _repr_html_(self) -> str:
        """The page inline in Jupyter, in a frame of its own (its script and style kept to itself)."""
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" style="width: 100%; height: 900px; border: 0" '
            f'title="{html.escape(self.title)}"></iframe>'
        )


def render(title: str, data: dict) -> ExplorePage:
    """The page: the template with the style, the script and the data put in."""
    assets = resources.files("convlens.explore") / "assets"
    payload = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")  # no "</script>" inside the data
    page = (assets / "page.html").read_text(encoding="utf-8")
    for key, value in (("__STYLE__", (assets / "explore.css").read_text(encoding="utf-8")),
                       ("__SCRIPT__", (assets / "explore.js").read_text(encoding="utf-8")),
                       ("__TITLE__", html.escape(title)), ("__DATA__", payload)):  # fmt: skip
        page = page.replace(key, value)
    return ExplorePage(title, page)


def explore(
    size: tuple[int, ...] = (5, 5),
    channels: int = 3,
    filters: int = 2,
    kernel: tuple[int, ...] = (3, 3),
    *,
    stride: tuple[int, ...] = (1, 1),
    padding: Padding = (0, 0),
    dilation: tuple[int, ...] = (1, 1),
    groups: int = 1,
    padding_mode: str = "zeros",
    transposed: bool = False,
    output_padding: tuple[int, ...] | None = None,
    seed: int = 0,
    model: str | None = None,
    layer: str | None = None,
    weights: Path | None = None,
    image: Path | None = None,
) -> ExplorePage:
    """The page for one configuration (sizes per spatial dimension: two, or one for a signal), its
    values convlens explain's kind (input 0..2, weights -1..1, biases 0, 1, 2, ...). Arguments are
    checked as ``convlens.conv2d`` checks them.

    With ``model`` and ``layer`` (a torchvision model name and a Conv2d in it): that layer, fed the
    bundled photo or ``image`` at 224x224, with random weights (``seed``) or ``weights`` (a
    state_dict file); the configuration arguments are then the layer's own and not used."""
    if model is not None or layer is not None:
        if model is None or layer is None:
            raise TypeError("explore() takes model= and layer= together")
        data = model_data(model, layer, weights=weights, image=image, seed=seed)
        return render(f"convlens explore: {model}.{layer}", data)
    data = configuration_data(size, channels, filters, kernel, stride=stride, padding=padding, dilation=dilation,
                              groups=groups, padding_mode=padding_mode, transposed=transposed,
                              output_padding=output_padding, seed=seed)  # fmt: skip
    kind = "conv_transpose" if transposed else "conv"
    title = f"convlens explore: {kind}{len(size)}d, input {'x'.join(map(str, size))}x{channels}, kernel " + "x".join(
        map(str, kernel)
    )
    return render(title, data)
