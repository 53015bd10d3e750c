"""``convlens explain``: one output value by hand, for any configuration or a layer of a real model.

Every option is checked before anything is computed: the sizes by their argparse types, the
configuration as conv2d would check it (on the meta device), the filter and position against it,
and the memory it would take against :data:`convlens.explain.examples.MEMORY_LIMIT`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar, cast

from convlens.cli.options import UsageError, int_list, positive_int, seed, size_text
from convlens.files import DEFAULT_OUT

if TYPE_CHECKING:
    from convlens.spec import ConvSpec, Padding

T = TypeVar("T")

# The options that describe a configuration of the user's own: a model layer has its own.
CONFIGURATION = ("size", "channels", "filters", "kernel", "stride", "padding", "dilation", "groups", "padding_mode")


def add_parser(commands: argparse._SubParsersAction) -> None:
    explain = commands.add_parser(
        "explain",
        help="one output value by hand",
        description="Compute one output value by hand. Default: the CS231n demo (5x5x3 input, two 3x3 filters, "
        "padding 1, stride 2). With --model and --layer: a Conv2d inside a torchvision model. With --im2col: "
        "the matrix picture.",
    )
    add_configuration_arguments(explain)
    explain.add_argument("--filter", type=int, help="which output channel (default 0)")
    explain.add_argument("--at", dest="at_text", default=None, help="output position y,x; with --model: n,c,y,x")
    explain.add_argument("--im2col", action="store_true", help="draw X_col, W_row and their product instead")
    explain.set_defaults(run=run)


def add_configuration_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that describe a configuration, or a model layer, shared by explain and explore."""
    from convlens.spec import PADDING_MODES

    def pair(name: str):  # "h,w", or one number for every dimension, or d,h,w with --dims 3; each 1 or more
        return sizes_arg(name, minimum=1)

    parser.add_argument("--dims", type=int, choices=(1, 2, 3), default=2, help="spatial dimensions (default 2)")
    parser.add_argument("--size", type=pair("--size"), help="input H,W (or one number; L with --dims 1, D,H,W with 3)")
    parser.add_argument("--channels", type=positive_int, help="input channels")
    parser.add_argument("--filters", type=positive_int, help="number of filters (output channels)")
    parser.add_argument("--kernel", type=pair("--kernel"), help="kernel k_h,k_w (or one number)")
    parser.add_argument("--stride", type=pair("--stride"))
    parser.add_argument(
        "--padding", type=padding_sizes, help="h,w or one number (one per dimension with --dims), or same / valid"
    )
    parser.add_argument("--dilation", type=pair("--dilation"))
    parser.add_argument("--groups", type=positive_int, help="default 1")
    parser.add_argument("--padding-mode", choices=PADDING_MODES, help="default zeros")
    parser.add_argument(
        "--transposed", action="store_true", help="a transposed convolution (conv_transpose2d): the scatter view"
    )
    parser.add_argument(
        "--output-padding",
        type=int_list(2, "--output-padding", repeat=True, minimum=0),
        help="with --transposed: h,w (or one number), each below the stride or the dilation",
    )
    parser.add_argument("--model", help="a torchvision model name, e.g. resnet18 (random weights, seeded)")
    parser.add_argument("--layer", help="with --model: the Conv2d's name, e.g. layer1.0.conv1")
    parser.add_argument("--weights", type=Path, help="with --model: a state_dict file to load")
    parser.add_argument("--seed", type=seed, default=0, help="0 to 2**64 - 1 (default 0)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for its files (default ./convlens-out)")


def sizes_arg(name: str, minimum: int) -> Callable[[str], tuple[int, ...]]:
    """argparse type: one to three comma-separated integers, each at least ``minimum``; how many a
    size needs depends on --dims, checked once every option is read (:func:`per_dimension`)."""

    def parse(text: str) -> tuple[int, ...]:
        for count in (1, 2, 3):
            try:
                return int_list(count, name, minimum=minimum)(text)
            except argparse.ArgumentTypeError as error:
                if "comma-separated" not in str(error):
                    raise
        raise argparse.ArgumentTypeError(f"{name} must be 1 to 3 comma-separated integers, got {text!r}")

    return parse


def padding_sizes(text: str) -> tuple[int, ...] | str:
    """--padding: "same", "valid", or one to three numbers, each 0 or more."""
    from convlens.spec import PADDING_STRINGS

    return text if text in PADDING_STRINGS else sizes_arg("--padding", minimum=0)(text)


def per_dimension(name: str, value: tuple[int, ...] | None, rank: int) -> tuple[int, ...] | None:
    """An option's sizes for ``rank`` dimensions: one number stands for every dimension."""
    if value is None:
        return None
    if len(value) == 1:
        return value * rank
    if len(value) != rank:
        raise UsageError(
            f"{option(name)} takes 1 or {rank} numbers with --dims {rank}, got {','.join(map(str, value))}"
        )
    return value


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def resolve_at(args: argparse.Namespace) -> None:
    """--at is y,x for a configuration and n,c,y,x for a model layer."""
    args.at, args.at_model = None, None
    if args.at_text is None:
        return
    if args.model is not None:
        args.at_model = int_list(4, "--at")(args.at_text)
    else:
        args.at = int_list(args.dims, "--at")(args.at_text)


@dataclass(frozen=True)
class Configuration:
    """The configuration to explain, defaults filled in; ``cs231n`` when the user gave no sizes.
    Sizes have one value per spatial dimension (2 unless --dims says otherwise)."""

    cs231n: bool
    size: tuple[int, ...]
    channels: int
    filters: int
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: Padding
    dilation: tuple[int, ...]
    groups: int
    padding_mode: str

    def spec(self) -> ConvSpec:
        from convlens.explain.examples import example_spec

        sizes = (self.size, self.channels, self.filters, self.kernel)
        return example_spec(*sizes, self.stride, self.padding, self.dilation, self.groups, self.padding_mode)

    def as_one_row(self) -> Configuration:
        """A 1-D configuration as the 2-D one convlens computes: an image one row high."""
        padding = self.padding if isinstance(self.padding, str) else (0, *cast("tuple[int, ...]", self.padding))
        return replace(self, size=(1, *self.size), kernel=(1, *self.kernel), stride=(1, *self.stride),
                       padding=padding, dilation=(1, *self.dilation))  # fmt: skip


def given_or(value: T | None, default: T) -> T:
    return default if value is None else value


def configuration(args: argparse.Namespace) -> Configuration:
    """The options with their defaults: the im2col picture's (32x32x3, four 5x5 filters), the CS231n demo's
    (no size given: 5x5x3, two 3x3 filters, stride 2, padding 1), else small ones (5x5x3, two 3x3);
    with --dims 1 a 3-channel signal of 9 and two filters of 3, with --dims 3 a 2-channel 3x5x5
    volume and two 2x3x3 filters."""
    rank = args.dims
    size_given, kernel_given = per_dimension("size", args.size, rank), per_dimension("kernel", args.kernel, rank)
    stride_given, dilation_given = (
        per_dimension("stride", args.stride, rank),
        per_dimension("dilation", args.dilation, rank),
    )
    padding_given = args.padding if isinstance(args.padding, str) else per_dimension("padding", args.padding, rank)
    sizes = (size_given, args.channels, args.filters, kernel_given)
    cs231n = rank == 2 and not args.im2col and all(value is None for value in sizes)
    if rank == 2:
        size = given_or(size_given, (32, 32) if args.im2col else (5, 5))
        kernel = given_or(kernel_given, (5, 5) if args.im2col else (3, 3))
    else:
        size = given_or(size_given, (9,) if rank == 1 else (3, 5, 5))
        kernel = given_or(kernel_given, (3,) if rank == 1 else (2, 3, 3))
    channels = given_or(args.channels, 3 if rank < 3 else 2)
    filters = given_or(args.filters, 4 if args.im2col else 2)
    groups = given_or(args.groups, 1)
    if channels % groups or filters % groups:
        if cs231n:
            have = f"the CS231n default has {channels} channels and {filters} filters"
        else:
            default = {name: " (the default)" * (getattr(args, name) is None) for name in ("channels", "filters")}
            have = f"got --channels {channels}{default['channels']} and --filters {filters}{default['filters']}"
        raise UsageError(f"--groups {groups} needs --channels and --filters divisible by {groups}; {have}")
    return Configuration(
        cs231n,
        size,
        channels,
        filters,
        kernel,
        stride=given_or(stride_given, (2, 2) if cs231n else (1,) * rank),
        padding=given_or(padding_given, (1, 1) if cs231n else (0,) * rank),
        dilation=given_or(dilation_given, (1,) * rank),
        groups=groups,
        padding_mode=given_or(args.padding_mode, "zeros"),
    )


def check_options(args: argparse.Namespace) -> None:
    """Refuse an option that would be ignored."""
    if args.model is not None:
        unused = [option(name) for name in CONFIGURATION if getattr(args, name) is not None]
        unused += ["--dims"] * (args.dims != 2)
        unused += ["--filter"] * (args.filter is not None) + ["--im2col"] * args.im2col
        if args.layer is None:
            raise UsageError("--model needs --layer NAME (a Conv2d inside it, e.g. layer1.0.conv1)")
        if unused:
            raise UsageError(
                f"--model explains a layer with its own configuration: {', '.join(unused)} "
                f"{'is' if len(unused) == 1 else 'are'} not used (the position, filter included, is --at n,c,y,x)"
            )
        return
    if args.layer is not None or args.weights is not None:
        raise UsageError("--layer and --weights go with --model")
    if args.transposed and args.dims != 2:
        raise UsageError(f"--transposed explains 2-D transposed convolutions, not --dims {args.dims}")
    if args.output_padding is not None and not args.transposed:
        raise UsageError("--output-padding goes with --transposed (an ordinary convolution has none)")
    if args.transposed:
        unused = ["--padding-mode"] * (args.padding_mode is not None)
        unused += [f"--padding {args.padding}"] * isinstance(args.padding, str)
        if unused:
            raise UsageError(
                f"--transposed: {', '.join(unused)} not for a transposed convolution (PyTorch's takes zero padding "
                "of numbers only, which crops its output)"
            )
    if args.im2col and args.groups not in (None, 1):
        raise UsageError(
            f"--im2col draws one W_row @ X_col product, groups 1: --groups {args.groups} is not used "
            "(drop --im2col to explain one value of a grouped convolution)"
        )


def check_position(spec: ConvSpec, filter_index: int, at: tuple[int, ...]) -> None:
    if not 0 <= filter_index < spec.out_channels:
        raise UsageError(
            f"--filter {filter_index} is out of range: filter must be in [0, {spec.out_channels - 1}] "
            f"(the configuration has {spec.out_channels} filters)"
        )
    if not all(0 <= p < n for p, n in zip(at, spec.out_size, strict=True)):
        names = {1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x")}[len(at)]
        ranges = " and ".join(f"{name} in [0, {n - 1}]" for name, n in zip(names, spec.out_size, strict=True))
        raise UsageError(
            f"--at {','.join(map(str, at))}: output position must be within the "
            f"{'x'.join(map(str, spec.out_size))} output, {ranges}"
        )


def check_memory(args: argparse.Namespace, config: Configuration, spec: ConvSpec | None = None) -> None:
    """Refuse a configuration over explain's memory limit. Without ``spec``: the input and weight alone,
    checked first so that no size overflows the meta tensors the spec is checked on."""
    from convlens.explain.examples import MEMORY_LIMIT, explain_bytes, im2col_bytes, im2col_shape
    from convlens.spec import volume

    per_group = config.channels // config.groups
    if spec is None:
        needed = 4 * (config.channels * volume(config.size) + config.filters * per_group * volume(config.kernel))
        input_text = "x".join(map(str, (config.channels, *config.size)))
        weight_text = "x".join(map(str, (config.filters, per_group, *config.kernel)))
        what = f"the {input_text} input and the {weight_text} weight"
    elif args.im2col:
        needed, (rows, columns) = im2col_bytes(spec), im2col_shape(spec)
        what = f"X_col of {rows:,} x {columns:,} values, W_row @ X_col and the figure of them"
    else:
        needed = explain_bytes(spec)
        output = "x".join(map(str, (config.filters, *spec.out_size)))
        input_text = "x".join(map(str, (config.channels, *config.size)))
        what = f"the {input_text} input, its padded copy, the {output} output and the figure"
    if needed > MEMORY_LIMIT:
        raise UsageError(
            f"{what} would need {size_text(needed)}, more than the {MEMORY_LIMIT / 2**30:g} GiB "
            f"({MEMORY_LIMIT:,} bytes) explain allows; use a smaller --size, --channels, --filters or --kernel"
        )


def run(args: argparse.Namespace) -> int:
    from convlens.explain.byhand import explain_value, format_explanation
    from convlens.explain.examples import cs231n_example, integer_example, random_example
    from convlens.explain.figures import explain_figure, im2col_figure
    from convlens.files import prepare_out_dir, save_figure

    resolve_at(args)
    check_options(args)
    if args.model is not None:
        return explain_model(args)
    if args.transposed:
        return explain_transposed_command(args)
    config = configuration(args)
    check_memory(args, config)
    spec = config.spec()
    filter_index, at = 0 if args.filter is None else args.filter, args.at or (0,) * args.dims
    check_position(spec, filter_index, at)
    check_memory(args, config, spec)
    if args.dims == 1:  # computed as convlens computes it: the 2-D convolution of a one-row image
        print("conv1d, explained as convlens computes it: the 2-D convolution of an image one row high")
        config, at = config.as_one_row(), (0, *at)
        spec = config.spec()
    out = prepare_out_dir(args.out)
    stride, padding, dilation, mode = config.stride, config.padding, config.dilation, config.padding_mode

    if args.im2col:
        x, w = random_example(config.size, config.channels, config.filters, config.kernel, args.seed)
        if len(config.size) == 2 and config.channels == 3 and config.size[0] == config.size[1] > 1:
            from convlens.data import bundled_image

            x = bundled_image(config.size[0]).normalized  # a picture to look at, not static; the weights random
        figure = im2col_figure(x, w, at, filter_index, stride=stride, padding=padding, dilation=dilation,
                               padding_mode=mode)  # fmt: skip
        print(f"wrote {save_figure(figure, out / 'im2col.png')}")
        return 0
    if args.dims == 3:
        return explain_volume(config, filter_index, at, args.seed, out)
    if config.cs231n:
        x, w, b = cs231n_example(args.seed)
    else:
        sizes = (config.size, config.channels, config.filters, config.kernel)
        x, w, b = integer_example(*sizes, config.groups, args.seed)
    explanation = explain_value(x, w, b, filter_index, at, stride=stride, padding=padding, dilation=dilation,
                                groups=config.groups, padding_mode=mode)  # fmt: skip
    print(format_explanation(explanation))
    path = save_figure(explain_figure(explanation), out / "explain.png")
    print(f"wrote {path}")
    return 0


def explain_volume(config: Configuration, filter_index: int, at: tuple[int, ...], seed: int, out: Path) -> int:
    """--dims 3: one conv3d value by hand, its window and kernel shown one depth tap at a time."""
    from convlens.explain.byhand import explain_value, format_explanation
    from convlens.explain.examples import integer_example
    from convlens.explain.figures import volume_figure
    from convlens.files import save_figure

    x, w, b = integer_example(config.size, config.channels, config.filters, config.kernel, config.groups, seed)
    explanation = explain_value(x, w, b, filter_index, at, config.stride, config.padding, config.dilation,
                                config.groups, config.padding_mode)  # fmt: skip
    print(format_explanation(explanation))
    print(f"wrote {save_figure(volume_figure(explanation), out / 'explain-3d.png')}")
    return 0


class TransposedConfiguration(NamedTuple):
    size: tuple[int, ...]
    channels: int
    filters: int
    kernel: tuple[int, ...]
    groups: int
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    output_padding: tuple[int, ...]
    dilation: tuple[int, ...]


def transposed_configuration(args: argparse.Namespace) -> TransposedConfiguration:
    """--transposed's options with their defaults: a 3x3 input of 2 channels, one 3x3 filter, and
    when none of stride, padding, output_padding is given stride 2, padding 1, output_padding 1."""
    given = {name: per_dimension(name, getattr(args, name), 2) for name in ("size", "kernel", "stride", "dilation")}
    given["padding"] = per_dimension("padding", cast("tuple[int, ...] | None", args.padding), 2)  # numbers only here
    size, channels = given_or(given["size"], (3, 3)), given_or(args.channels, 2)
    filters, kernel, groups = given_or(args.filters, 1), given_or(given["kernel"], (3, 3)), given_or(args.groups, 1)
    defaults = args.stride is None and args.padding is None and args.output_padding is None
    if channels % groups or filters % groups:
        raise UsageError(f"--groups {groups} needs --channels and --filters divisible by {groups}")
    if channels * size[0] * size[1] > 2**20 or channels * filters * kernel[0] * kernel[1] > 2**20:
        raise UsageError("--transposed explains small examples: at most 2**20 input or weight values")
    return TransposedConfiguration(
        size, channels, filters, kernel, groups,
        stride=given_or(given["stride"], (2, 2) if defaults else (1, 1)),
        padding=given_or(given["padding"], (1, 1) if defaults else (0, 0)),
        output_padding=given_or(args.output_padding, (1, 1) if defaults else (0, 0)),
        dilation=given_or(given["dilation"], (1, 1)),
    )  # fmt: skip


def explain_transposed_command(args: argparse.Namespace) -> int:
    """--transposed: one value of conv_transpose2d, scatter and gather views. Defaults: a 3x3 input of
    2 channels, one 3x3 filter, stride 2, padding 1, output_padding 1 (6x6 out: it doubles the size)."""
    from convlens.errors import ArgumentError
    from convlens.explain.examples import transposed_example
    from convlens.explain.figures import transposed_figure, transposed_im2col_figure
    from convlens.explain.transposed import explain_transposed, format_transposed
    from convlens.files import prepare_out_dir, save_figure

    t = transposed_configuration(args)
    x, w, b = transposed_example(t.size, t.channels, t.filters, t.kernel, t.groups, args.seed)
    filter_index, at = 0 if args.filter is None else args.filter, args.at or (1, 1)
    try:
        explanation = explain_transposed(x, w, b, filter_index, at, t.stride, t.padding, t.output_padding, t.groups,
                                         t.dilation)  # fmt: skip
    except ArgumentError as error:
        raise UsageError(f"--transposed: {error}") from None
    out = prepare_out_dir(args.out)
    if args.im2col:  # groups 1: check_options refused any other
        figure, name = transposed_im2col_figure(explanation), "im2col-transposed.png"
    else:
        print(format_transposed(explanation))
        figure, name = transposed_figure(explanation), "explain-transposed.png"
    print(f"wrote {save_figure(figure, out / name)}")
    return 0


def explain_model(args: argparse.Namespace) -> int:
    from convlens.explain.byhand import format_explanation
    from convlens.explain.figures import explain_figure, receptive_field_figure
    from convlens.explain.model_layer import explain_layer
    from convlens.files import prepare_out_dir, save_figure

    at = args.at_model or (0, 0, 0, 0)
    result = explain_layer(args.model, args.layer, at, args.weights, args.seed)  # checks model, layer, weights, --at
    out = prepare_out_dir(args.out)
    print(f"{args.model}.{args.layer}: {result.module_repr}")
    print(f"input: the demo image at 224x224; weights: {args.weights or f'random, seed {args.seed}'}")
    print(format_explanation(result.explanation, max_channels=3, leading=at[:1]))
    print(f"the module's own output at (n, c, y, x)={at}: {result.module_value:.7g}")
    print(f"by hand: {result.explanation.value:.7g}  (|difference| {result.difference:.2g})")
    name = f"explain-{args.model}-{args.layer.replace('.', '_')}"
    figure = explain_figure(result.explanation, max_channels=3, leading=at[:1])
    print(f"wrote {save_figure(figure, out / f'{name}.png')}")
    if result.field is not None:
        height, width = result.image.shape[1:]
        where = result.field.describe(height, width)
        print(f"output (y, x)={at[2:]} of {args.layer}: {where}")
        title = f"{args.model}.{args.layer}, output (y, x)={at[2:]}:\n{where}"
        figure = receptive_field_figure(result.image, result.field.rows, result.field.columns, title)
        print(f"wrote {save_figure(figure, out / f'{name}-receptive-field.png')}")
    return 0
