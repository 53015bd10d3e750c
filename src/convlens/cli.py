"""The ``convlens`` command: thin. It parses, calls the library, prints, and exits 2 on bad input."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from convlens.data import DataError, demo_image
from convlens.explain.walkthrough import run_walkthrough


class UsageError(Exception):
    """A user mistake: reported as one line on stderr, exit code 2, no traceback."""


def cmd_demo(args: argparse.Namespace) -> int:
    image = demo_image(args.data_root, args.index, args.download)
    result = run_walkthrough(image.normalized, seed=args.seed)
    print(f"input: {image.source}")
    print("output size (nn.Conv2d(3, 1, 5), stride 1, padding 0):")
    for line in result.formulas:
        print(f"  {line}")
    for name, shape in result.shapes.items():
        print(f"{name}.shape = {shape}")
    print(f"max |nn.Conv2d - convlens im2col| = {result.max_abs_difference:.3g}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convlens", description="PyTorch's Conv2d, rebuilt and explained.")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="the walkthrough: nn.Conv2d(3, 1, 5) redone as unfold + matmul + view")
    demo.add_argument("--data-root", type=Path, default=None, help="folder holding CIFAR-10 (cifar-10-batches-py)")
    demo.add_argument("--index", type=int, default=0, help="CIFAR-10 test image index (default 0)")
    demo.add_argument("--download", action="store_true", help="download CIFAR-10 into --data-root if missing")
    demo.add_argument("--out", type=Path, default=Path("convlens-out"), help="folder for figures")
    demo.add_argument("--seed", type=int, default=0, help="seed for the layer's weights (default 0)")
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (UsageError, DataError) as error:
        print(f"convlens {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
