"""Timing against PyTorch in the same process: ratios over interleaved medians
(:func:`convlens.timing.interleaved_medians`), geometric means, and the A/B switch of one attribute."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from convlens.timing import interleaved_medians

__all__ = ["geomean", "interleaved_medians", "speedups_over", "with_attributes"]


def speedups_over(
    reference: str, candidates: dict[str, Callable[[], object]], rounds: int = 3, min_run_time: float = 0.2
) -> tuple[float, dict[str, float]]:
    """The reference candidate's median milliseconds, and every other candidate's speedup over it
    (reference time / its time), measured interleaved with autograd off."""
    with torch.no_grad():
        medians = interleaved_medians(candidates, rounds, min_run_time)
    seconds = medians.pop(reference)
    return seconds * 1e3, {name: seconds / other for name, other in medians.items()}


def with_attributes(call: Callable[[], object], owner: object, **values: object) -> Callable[[], object]:
    """``call``, run with ``owner``'s attributes set to ``values`` and restored afterwards (on an
    error too): the switch of an in-process A/B, one rule or constant changed, the rest as shipped."""

    def run() -> object:
        saved = {name: getattr(owner, name) for name in values}
        for name, value in values.items():
            setattr(owner, name, value)
        try:
            return call()
        finally:
            for name, value in saved.items():
                setattr(owner, name, value)

    return run


def geomean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")
