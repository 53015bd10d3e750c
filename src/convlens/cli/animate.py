"""``convlens animate``: the sliding window as a GIF, MP4 or HTML animation, for any configuration
explain takes (transposed, dilated, grouped, padding modes; --dims 1 as one row)."""

from __future__ import annotations

import argparse

from convlens.cli.explain import add_configuration_arguments, check_options, configuration, transposed_configuration
from convlens.cli.options import UsageError, positive_int


def add_parser(commands: argparse._SubParsersAction) -> None:
    animate = commands.add_parser(
        "animate",
        help="the sliding window as an animation (GIF, MP4 or HTML)",
        description="Animate a convolution: one frame per output position (per input position for --transposed), "
        "the window on the padded input, the kernel, the output filling in. Default: the CS231n demo.",
    )
    add_configuration_arguments(animate)
    animate.add_argument("--filter", type=int, default=None, help="which output channel (default 0)")
    animate.add_argument("--format", dest="file_format", choices=("gif", "mp4", "html"), default="gif",
                         help="gif (default; needs nothing), mp4 (needs ffmpeg), html (one file)")  # fmt: skip
    animate.add_argument("--fps", type=positive_int, default=2, help="frames per second (default 2)")
    animate.add_argument("--no-numbers", dest="numbers", action="store_false", help="colours only, no values")
    animate.set_defaults(run=run, at_text=None, im2col=False)


def run(args: argparse.Namespace) -> int:
    from convlens.explain.animation import animate_convolution, animate_transposed, check_frames, check_writer, save
    from convlens.explain.examples import cs231n_example, integer_example, transposed_example
    from convlens.files import prepare_out_dir

    args.at, args.at_model = None, None
    if args.model is not None:
        raise UsageError("animate draws a configuration; convlens explore --model shows a model layer")
    check_options(args)
    check_writer(args.file_format)
    if args.dims == 3:
        raise UsageError("animate draws --dims 1 and 2")
    filter_index = args.filter or 0
    if args.transposed:
        t = transposed_configuration(args)
        check_frames(t.size[0] * t.size[1])
        x, w, b = transposed_example(t.size, t.channels, t.filters, t.kernel, t.groups, args.seed)
        if not 0 <= filter_index < t.filters:
            raise UsageError(f"--filter {filter_index} is out of range: filter must be in [0, {t.filters - 1}]")
        animation = animate_transposed(x, w, b, t.stride, t.padding, t.output_padding, t.dilation, t.groups,
                                       filter_index, args.numbers)  # fmt: skip
        frames, name = t.size[0] * t.size[1], "animate-transposed"
    else:
        config = configuration(args)
        if args.dims == 1:
            config = config.as_one_row()
        spec = config.spec()
        if not 0 <= filter_index < config.filters:
            raise UsageError(f"--filter {filter_index} is out of range: filter must be in [0, {config.filters - 1}]")
        frames = spec.out_size[0] * spec.out_size[1]
        check_frames(frames)
        sizes = (config.size, config.channels, config.filters, config.kernel)
        x, w, b = cs231n_example(args.seed) if config.cs231n else integer_example(*sizes, config.groups, args.seed)
        animation = animate_convolution(x, w, b, spec, filter_index, args.numbers)
        name = "animate"
    out = prepare_out_dir(args.out)
    path = save(animation, out / f"{name}.{args.file_format}", args.file_format, args.fps)
    print(f"wrote {path} ({frames} frames at {args.fps} per second)")
    return 0
