"""``convlens demo``: the seed's walkthrough, nn.Conv2d(3, 1, 5) redone as unfold + matmul + view."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from convlens.cli.options import UsageError, non_negative_int, seed
from convlens.files import DEFAULT_OUT


def add_parser(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="the walkthrough: nn.Conv2d(3, 1, 5) redone as unfold + matmul + view")
    demo.add_argument("--data-root", type=Path, default=None, help="folder holding CIFAR-10 (cifar-10-batches-py)")
    demo.add_argument("--index", type=non_negative_int, help="with --data-root: CIFAR-10 test image index (default 0)")
    demo.add_argument("--download", action="store_true", help="download CIFAR-10 into --data-root if missing")
    demo.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for figures (default ./convlens-out)")
    demo.add_argument("--seed", type=seed, default=0, help="seed for the layer's weights, 0 to 2**64 - 1 (default 0)")
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    from convlens.data import demo_image
    from convlens.explain.figures import demo_figure, im2col_figure, input_figure
    from convlens.explain.walkthrough import run_walkthrough
    from convlens.files import prepare_out_dir, save_figure

    start = time.perf_counter()
    if args.data_root is None and args.index is not None:
        raise UsageError(
            f"--index {args.index} picks a CIFAR-10 image and needs --data-root (without it: the bundled photo)"
        )
    if args.data_root is None and args.download:
        raise UsageError("--download fetches CIFAR-10 into --data-root and needs it")
    out = prepare_out_dir(args.out)
    image = demo_image(args.data_root, args.index or 0, args.download)
    result = run_walkthrough(image.normalized, seed=args.seed)
    print(f"input: {image.source}, normalised with mean 0.5 and std 0.5")
    print("layer: nn.Conv2d(3, 1, 5), stride 1, padding 0, seeded with", args.seed)
    print("output size:")
    for line in result.formulas:
        print(f"  {line}")
    print("shapes, as unfold + matmul + view:")
    for name, shape in result.shapes.items():
        print(f"  {name}.shape = {shape}")
    print(f"max |nn.Conv2d - convlens im2col| = {result.max_abs_difference:.3g}")
    written = [
        save_figure(input_figure(image.display, image.source), out / "demo-input.png"),
        save_figure(demo_figure(result), out / "demo-outputs.png"),
    ]
    # the matrix picture of the same nn.Conv2d(3, 1, 5): one filter, so W_row is one row
    layer = f"the demo's nn.Conv2d(3, 1, 5), seed {args.seed}"
    figure = im2col_figure(image.normalized, result.weight.detach(), (14, 14), 0, layer=layer)
    written.append(save_figure(figure, out / "demo-im2col.png"))
    for path in written:
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0
