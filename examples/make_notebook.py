"""Writes examples/walkthrough.ipynb (no outputs) from the cells below: python examples/make_notebook.py"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    (
        "md",
        """# What does `nn.Conv2d` actually compute?

This notebook rebuilds one convolution layer three ways with **convlens** — by hand, as one matrix
product, and through the library's algorithms — and checks each against PyTorch. Everything runs on
a CPU in a few seconds; no data set is downloaded (set `CIFAR_ROOT` to a folder holding CIFAR-10 to
use a real CIFAR-10 test image instead of the bundled photo).""",
    ),
    (
        "code",
        """%matplotlib inline
import torch
import torch.nn.functional as F
import convlens
from convlens.data import demo_image
from convlens.explain.byhand import explain_value, format_explanation
from convlens.explain.examples import cs231n_example
from convlens.explain.figures import demo_figure, explain_figure, im2col_figure
from convlens.explain.walkthrough import run_walkthrough

CIFAR_ROOT = None  # e.g. "./data" with cifar-10-batches-py inside
torch.manual_seed(0)""",
    ),
    (
        "md",
        """## 1. One output value, by hand

A 5x5 image with 3 channels, two 3x3x3 filters, padding 1, stride 2 (the setup of the CS231n notes).
An output value is a sum, over the input channels, of the window under the kernel times the kernel,
plus the filter's bias. Note the kernel is **not flipped**: PyTorch's "convolution" is
cross-correlation.""",
    ),
    (
        "code",
        """x, w, b = cs231n_example(seed=0)
step = explain_value(x, w, b, filter_index=0, position=(1, 1), stride=2, padding=1)
print(format_explanation(step))""",
    ),
    ("code", """explain_figure(step)"""),
    (
        "md",
        """## 2. How big is the output?

Each spatial size follows `floor((size + 2*padding - dilation*(kernel-1) - 1) / stride) + 1`.
A 32x32 image and a 5x5 kernel, no padding, stride 1, give 28x28:""",
    ),
    (
        "code",
        """print(convlens.output_size(32, 5))
print(convlens.output_size((5, 5), 3, stride=2, padding=1))   # the example above: 3x3""",
    ),
    (
        "md",
        """## 3. The whole layer as one matrix product

Unfold (im2col) copies every 5x5x3 receptive field of the image into one column of `X_col`;
each filter, flattened, is one row of `W_row`. Then every output value is one row-times-column:
`W_row @ X_col`, and a `view` turns the row of 784 values back into a 28x28 map.""",
    ),
    (
        "code",
        """image = demo_image(CIFAR_ROOT)
print(image.source)
result = run_walkthrough(image.normalized, seed=0)
for name, shape in result.shapes.items():
    print(f"{name:8s} {shape}")
print("max |nn.Conv2d - unfold @ w + b| =", result.max_abs_difference)""",
    ),
    ("code", """demo_figure(result)"""),
    (
        "code",
        """four_filters = torch.nn.Conv2d(3, 4, 5).weight.detach()
im2col_figure(image.normalized, four_filters, position=(14, 14), filter_index=0)""",
    ),
    (
        "md",
        """## 4. fold adds overlaps back up

`fold` is the adjoint of `unfold`, not its inverse: each pixel comes back once per window that
covered it. That is exactly what the backward pass needs (gradients from every window add up).""",
    ),
    (
        "code",
        """ones = torch.ones(1, 1, 4, 4)
print(convlens.fold(convlens.unfold(ones, 3), (4, 4), 3)[0, 0])""",
    ),
    (
        "md",
        """## 5. Every algorithm, checked against float64

The same layer through each algorithm convlens has, compared with PyTorch in float32 and with the
exact answer (float64), element by element.""",
    ),
    (
        "code",
        """x32 = torch.randn(8, 16, 32, 32)
w32 = torch.randn(32, 16, 3, 3) / 12
truth = F.conv2d(x32.double(), w32.double(), padding=1)
print(f"{'algorithm':10s} max |error| vs float64")
print(f"{'PyTorch':10s} {(F.conv2d(x32, w32, padding=1).double() - truth).abs().max().item():.2e}")
for name in convlens.algorithms():
    try:
        out = convlens.conv2d(x32, w32, padding=1, algorithm=name)
    except ValueError as reason:  # an algorithm says what it supports
        print(f"{name:10s} does not run this layer: {str(reason).split(': ', 1)[1]}")
        continue
    print(f"{name:10s} {(out.double() - truth).abs().max().item():.2e}")""",
    ),
    (
        "md",
        """## 6. Gradients too

`convlens.nn.Conv2d` is a drop-in `torch.nn.Conv2d`; its backward is written out as im2col math
(`grad_weight = grad_rows @ cols.T`, `grad_input = fold(w_rows.T @ grad_rows)`).""",
    ),
    (
        "code",
        """layer = convlens.nn.Conv2d(3, 8, 3, stride=2, padding=1)
reference = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
reference.load_state_dict(layer.state_dict())
batch = torch.randn(4, 3, 16, 16)
layer(batch).square().sum().backward()
reference(batch).square().sum().backward()
print("max |grad difference|:", (layer.weight.grad - reference.weight.grad).abs().max().item())""",
    ),
    (
        "md",
        """## 7. The transposed convolution: a convolution's input gradient

`conv_transpose2d` runs a convolution backwards: each input value spreads the whole kernel, scaled,
over its window of the output, windows `stride` apart, and where windows overlap their values add.
So the output is `stride` times larger (it upsamples), by the formula
`H_out = (H - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1`. It *is* the input
gradient of the ordinary convolution with the same weight, and convlens computes it that way:
`col2im(W_row^T @ X)`.""",
    ),
    (
        "code",
        """y = torch.randn(1, 16, 8, 8)
w_up = torch.randn(16, 3, 4, 4)  # (C_in, C_out, k_h, k_w): the weight of the convolution it reverses
up = convlens.conv_transpose2d(y, w_up, stride=2, padding=1)
print(up.shape, convlens.output_size((8, 8), 4, stride=2, padding=1, transposed=True))
print("max |convlens - PyTorch| =", (up - F.conv_transpose2d(y, w_up, stride=2, padding=1)).abs().max().item())""",
    ),
    (
        "md",
        """One value by hand, both ways: the input values that land on it (scatter), and the same value as an
ordinary convolution of the input with zeros inserted between its values, padded, with the kernel
turned around (gather). The middle panels count how many windows overlap at each position of the
full output; `output_padding` adds a row and a column past every window, which get the bias alone.""",
    ),
    (
        "code",
        """from convlens.explain.examples import transposed_example
from convlens.explain.figures import transposed_figure
from convlens.explain.transposed import explain_transposed, format_transposed

x_small, w_small, b_small = transposed_example((3, 3), channels=2, filters=1, kernel=(3, 3), groups=1)
value = explain_transposed(x_small, w_small, b_small, 0, (1, 1), stride=2, padding=1, output_padding=1)
print(format_transposed(value))
transposed_figure(value)""",
    ),
    (
        "md",
        """The same holds along one and three dimensions: `conv1d` / `conv_transpose1d` for signals (computed
as an image one row high), `conv3d` / `conv_transpose3d` for video and volumes.""",
    ),
    (
        "code",
        """video = torch.randn(1, 3, 8, 32, 32)
frames = convlens.conv3d(video, torch.randn(8, 3, 3, 3, 3), stride=(1, 2, 2), padding=1)
back = convlens.conv_transpose3d(frames, torch.randn(8, 3, 3, 4, 4), stride=(1, 2, 2), padding=1)
print(frames.shape, back.shape)""",
    ),
    (
        "md",
        """Everything above, to play with: `convlens.explore(...)` builds one self-contained page (the command
`convlens explore` writes it to a file). Hover an output value to see its window, its products and
its sum, and the im2col row and column it comes from; hover an input to see every output it feeds;
change the configuration in the page itself.""",
    ),
    (
        "code",
        """convlens.explore((5, 5), 3, 2, (3, 3), stride=(2, 2), padding=(1, 1))""",
    ),
    (
        "md",
        """## When a model's shapes break

The question people running real models ask most is not what a convolution is but why their shapes
broke. `convlens.summary` runs a model's forward on meta tensors (shapes only), one row per layer call
with every convolution setting resolved, and each output's receptive field on the input. This small
network shrinks a CIFAR-sized image too fast for its 5x5 head: instead of a traceback, the rows up to
the failing call and the fix, with its numbers.""",
    ),
    (
        "code",
        """from torch import nn


class TooDeep(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 8, 3, stride=2))
        self.head = nn.Conv2d(8, 4, 5)

    def forward(self, x):
        return self.head(self.features(x))


from IPython.display import Markdown

report = convlens.summary(TooDeep(), (1, 3, 32, 32))
Markdown(report.to_markdown())""",
    ),
    (
        "md",
        """The last fix was found by running the traced rules on larger and larger inputs; and the receptive
field says how much of the image each output of a layer sees (`convlens explain --model ... --layer ...`
draws it on the image).""",
    ),
    (
        "code",
        """import torchvision

resnet = convlens.summary(torchvision.models.resnet18(), (1, 3, 224, 224), depth=1)
print(resnet.totals_line())
for row in resnet.rows:
    if row.receptive_field:
        print(f"{row.name:8} output {row.output_shape}  receptive field {row.receptive_field}, jump {row.jump}")""",
    ),
]


def build() -> nbformat.NotebookNode:
    cells = [new_markdown_cell(text) if kind == "md" else new_code_cell(text) for kind, text in CELLS]
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


if __name__ == "__main__":
    path = Path(__file__).with_name("walkthrough.ipynb")
    nbformat.write(build(), path)
    print(f"wrote {path}")
