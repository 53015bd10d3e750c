"""A 1x1 layer's weight gradient image by image against the folded product (the reason for
``autograd.products.MIN_RUNS_PER_IMAGE``).

    python benchmarks/grad_weight_pointwise.py            # ResNet-50's 1x1 stride-1 layers, batch 8
    python benchmarks/grad_weight_pointwise.py --batch 1

The folded product's operands are transposing copies of grad_output and x ((N*L, C) each); image by
image, each image's product (in runs of ``POSITIONS_PER_SUM`` positions, as the folded one) reads
them in place. Times both and PyTorch's own (``torch.nn.grad.conv2d_weight``) interleaved in one
process (float32, torch's threads), and prints each one's time as a multiple of PyTorch's (below 1
is faster), its largest error against float64 next to PyTorch's, how many runs an image holds, and
which one convlens takes.
"""

from __future__ import annotations

import argparse

import torch
from torch.nn.grad import conv2d_weight

from convlens.autograd import products
from convlens.benchmark.report import cpu_name
from convlens.benchmark.suites import suite
from convlens.benchmark.timing import interleaved_medians, with_attributes
from convlens.config import get_workspace_limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; time as a multiple of PyTorch's, max |error| vs float64")
    workspace = get_workspace_limit()
    for layer in suite("resnet50"):
        spec = layer.spec(args.batch)
        if spec.kernel_size != (1, 1) or spec.stride != (1, 1):
            continue
        x, w, _ = layer.tensors(args.batch)
        grad_output = torch.randn(spec.batch, spec.out_channels, *spec.out_size)

        def weight_grad(image_by_image: bool, x=x, w=w, g=grad_output, spec=spec):
            grads = lambda: products.grads_by_products(g, x, w, spec, workspace, (False, True))[1]  # noqa: E731
            return with_attributes(grads, products, weight_grad_image_by_image=lambda *_: image_by_image)

        candidates = {
            "pytorch": lambda x=x, w=w, g=grad_output: conv2d_weight(x, w.shape, g),
            "image by image": weight_grad(True),
            "folded": weight_grad(False),
        }
        truth = conv2d_weight(x.double(), w.shape, grad_output.double())
        errors = {
            name: float((call().double().reshape(truth.shape) - truth).abs().max()) for name, call in candidates.items()
        }
        with torch.no_grad():
            medians = interleaved_medians(candidates, rounds=5, min_run_time=0.2)
        runs = spec.out_size[0] * spec.out_size[1] / max(products.POSITIONS_PER_SUM, spec.out_channels)
        taken = "image by image" if products.weight_grad_image_by_image(spec, grad_output, x) else "folded"
        shown = "  ".join(
            f"{name} {medians[name] / medians['pytorch']:.2f}x ({errors[name]:.1e})"
            for name in ("image by image", "folded")
        )
        pytorch = f"PyTorch {medians['pytorch'] * 1e3:6.2f} ms ({errors['pytorch']:.1e})"
        runs_taken = f"{runs:4.1f} runs per image, takes {taken}"
        print(f"N={args.batch} {layer.label:>22}  {pytorch}  {shown}  {runs_taken}", flush=True)


if __name__ == "__main__":
    main()
