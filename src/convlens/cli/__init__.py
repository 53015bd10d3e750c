"""The ``convlens`` command: thin. It parses, calls the library, prints, and exits.

    convlens demo      the seed's walkthrough: nn.Conv2d(3, 1, 5) redone as unfold + matmul + view
    convlens explain   one output value by hand (any configuration, or a layer of a real model)
    convlens explore   an interactive HTML page: hover, step and change a convolution, or a real layer
    convlens animate   the sliding window as a GIF, MP4 or HTML animation
    convlens verify    every algorithm against PyTorch and float64
    convlens bench     speed against PyTorch on real layers
    convlens tune      measure this machine once for auto's choice of the compiled kernel
    convlens solve     the output-size formula backwards: the settings that give the wanted size
    convlens summary   every layer of a model, its receptive field, and why its shapes break

One module per command, each with ``add_parser`` and ``run``. Exit codes: 0 done; 1 the command's
own answer is "no" (verify found a failure); 2 a usage error, the caller's mistake, told in one
line (a :class:`~convlens.errors.ConvlensError`); 130 interrupted; 141 the output's reader closed
the pipe (``| head``), quietly; 70 a bug in convlens, with its traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from convlens.cli import animate, bench, demo, explain, explore, solve, summary, tune, verify
from convlens.cli.options import Parser
from convlens.errors import ConvlensError

EXIT_USAGE = 2
EXIT_BUG = 70  # EX_SOFTWARE in sysexits.h: an internal software error
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_PIPE = 141  # 128 + SIGPIPE, as a shell reports a writer whose reader closed the pipe


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="convlens", description="PyTorch's Conv2d, rebuilt and explained.")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in (demo, explain, explore, animate, verify, bench, tune, solve, summary):
        command.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import rich.console

    # rich answers a closed pipe with exit 1, which is summary's and verify's "no": let it reach the handler below
    rich.console.Console.on_broken_pipe = _broken_pipe  # type: ignore[method-assign, assignment]
    try:
        return args.run(args)
    except (argparse.ArgumentTypeError, ConvlensError) as error:
        # The caller's mistake: one line on stderr, no traceback.
        message = " ".join(line.strip() for line in str(error).splitlines())
        print(f"convlens {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"convlens {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (convlens ... | head): not an error of anyone's
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return EXIT_PIPE
    except Exception:
        traceback.print_exc()
        print(
            f"convlens {args.command}: internal error: this is a bug in convlens, not a problem with your input; "
            "please report it with the traceback above",
            file=sys.stderr,
        )
        return EXIT_BUG


def _broken_pipe(console: object) -> None:
    raise BrokenPipeError


if __name__ == "__main__":
    sys.exit(main())
