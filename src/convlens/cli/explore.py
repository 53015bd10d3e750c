"""``convlens explore``: one self-contained HTML page to play with a convolution, or with a Conv2d
inside a real model fed a real picture. The options are explain's (a configuration, --transposed,
--dims 1, or --model and --layer), plus the picture for a model and --open."""

from __future__ import annotations

import argparse
from pathlib import Path

from convlens.cli.explain import (
    add_configuration_arguments,
    check_options,
    configuration,
    per_dimension,
    resolve_at,
    transposed_configuration,
)
from convlens.cli.options import UsageError, non_negative_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    explore = commands.add_parser(
        "explore",
        help="an interactive page: hover an output to see its window and sum, change the configuration",
        description="Write one self-contained HTML page (no network needed) where every number of a convolution "
        "can be hovered, stepped through and recomputed under other settings. Default: the CS231n demo. With "
        "--model and --layer: a Conv2d inside a torchvision model fed a picture.",
    )
    add_configuration_arguments(explore)
    explore.add_argument("--image", type=Path, help="with --model: a picture to feed it (default: the bundled photo)")
    explore.add_argument("--data-root", type=Path, help="with --model: a folder with CIFAR-10; --index picks the image")
    explore.add_argument("--index", type=non_negative_int, default=None, help="with --data-root: CIFAR-10 test image")
    explore.add_argument("--open", action="store_true", help="open the page in a web browser")
    explore.set_defaults(run=run, filter=None, at_text=None, im2col=False)


def run(args: argparse.Namespace) -> int:
    from convlens.explore import explore, model_data, render
    from convlens.files import prepare_out_dir

    resolve_at(args)
    check_options(args)
    picture = [option for option, value in (("--image", args.image), ("--data-root", args.data_root)) if value]
    if args.model is None and (picture or args.index is not None):
        raise UsageError(f"{', '.join(picture) or '--index'} goes with --model (the picture fed to the model)")
    if len(picture) == 2:
        raise UsageError("give --image or --data-root, not both")
    if args.index is not None and args.data_root is None:
        raise UsageError("--index picks a CIFAR-10 image: it goes with --data-root")
    if args.dims == 3:
        raise UsageError("explore draws --dims 1 and 2; convlens explain --dims 3 explains a 3-D value")
    out = prepare_out_dir(args.out)
    if args.model is not None:
        data = model_data(args.model, args.layer, weights=args.weights, image=args.image, data_root=args.data_root,
                          index=args.index or 0, seed=args.seed)  # fmt: skip
        page = render(f"convlens explore: {args.model}.{args.layer}", data)
        name = f"explore-{args.model}-{args.layer.replace('.', '_')}.html"
    elif args.transposed:
        t = transposed_configuration(args)
        page = explore(t.size, t.channels, t.filters, t.kernel, stride=t.stride, padding=t.padding,
                       dilation=t.dilation, groups=t.groups, transposed=True, output_padding=t.output_padding,
                       seed=args.seed)  # fmt: skip
        name = "explore-transposed.html"
    else:
        config = configuration(args)
        output_padding = per_dimension("output_padding", args.output_padding, args.dims)
        page = explore(config.size, config.channels, config.filters, config.kernel, stride=config.stride,
                       padding=config.padding, dilation=config.dilation, groups=config.groups,
                       padding_mode=config.padding_mode, output_padding=output_padding, seed=args.seed)  # fmt: skip
        name = "explore.html"
    path = page.save(out / name)
    print(f"wrote {path} ({len(page.html) / 1024:,.0f} KiB, self-contained: open it in any browser, offline)")
    if args.open:
        import webbrowser

        webbrowser.open(path.resolve().as_uri())
    return 0
