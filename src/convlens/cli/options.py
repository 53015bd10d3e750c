"""Option types and checks shared by the commands; every choice list comes from the library."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import NoReturn

from convlens.errors import ArgumentError

SEED_MAX = 2**64 - 1  # torch.manual_seed takes [-2**63, 2**64 - 1]; a negative seed s is the seed 2**64 + s


class UsageError(ArgumentError):
    """A bad combination of command-line options."""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors told in one line (the usage is one ``--help`` away), as every usage error is."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(line.strip() for line in message.splitlines())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """argparse type: an integer, 1 or more (sizes, counts)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (1 or more), got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer, 0 or more."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer (0 or more), got {value}")
    return value


def seed(text: str) -> int:
    """argparse type: a seed torch.manual_seed takes as itself, 0 to 2**64 - 1 (torch maps a negative one
    onto that range, so -1 would quietly be 18446744073709551615)."""
    value = _integer(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be in [0, {SEED_MAX}] (0 to 2**64 - 1, as torch seeds), got {value}")
    return value


def finite_positive_float(text: str) -> float:
    """argparse type: a finite number above 0 (nan and inf are refused: a loop waiting for them never ends)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def int_list(
    count: int, name: str, repeat: bool = False, minimum: int | None = None
) -> Callable[[str], tuple[int, ...]]:
    """argparse type: "a,b" -> (a, b); with ``repeat`` a single "a" means (a, a) (sizes, strides);
    with ``minimum``, every number at least that."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {count} comma-separated integers, got {text!r}") from None
        if len(values) == 1 and repeat:
            values = values * 2
        if len(values) != count:
            raise argparse.ArgumentTypeError(f"{name} must be {count} comma-separated integers, got {text!r}")
        if minimum is not None and min(values) < minimum:
            rule = {0: "non-negative (0 or more)", 1: "positive (1 or more)"}.get(minimum, f"at least {minimum}")
            raise argparse.ArgumentTypeError(f"{name} must be {rule}, got {text!r}")
        return values

    return parse


def positive_int_list(text: str) -> list[int]:
    """argparse type: "1,8,32" -> [1, 8, 32], each 1 or more (batch sizes)."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, got {text!r}") from None
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"must be positive integers (1 or more), got {text!r}")
    return values


def padding_arg(text: str) -> tuple[int, ...] | str:
    """--padding: "same", "valid", or h,w (one number for both), each 0 or more."""
    from convlens.spec import PADDING_STRINGS

    return text if text in PADDING_STRINGS else int_list(2, "--padding", repeat=True, minimum=0)(text)


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def algorithm_names(requested: list[str] | None) -> list[str]:
    """--algorithms as given, checked; by default every algorithm, then auto."""
    import convlens

    names = list(requested) if requested else [*convlens.algorithms()[1:], "auto"]
    for name in names:
        if name not in convlens.algorithms():
            raise UsageError(
                f"--algorithms: unknown algorithm {name!r}; choose from {', '.join(convlens.algorithms())}"
            )
    return names


def size_text(count: int) -> str:
    """Bytes as "12.3 GiB (13,207,024,435 bytes)"; a size of no machine in scientific notation."""
    if count >= 2**70:
        return f"about {count / 2**30:.3g} GiB ({count:.3g} bytes)"
    return f"about {count / 2**30:,.1f} GiB ({count:,} bytes)"
