"""Timing against PyTorch in the same process: interleaved rounds, medians, ratios.

Every candidate is measured with ``torch.utils.benchmark.Timer.blocked_autorange`` once per round,
candidates alternating within each round, so slow spells of a shared machine hit all of them
alike; the figure kept is the median over all measured blocks.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

import torch
import torch.utils.benchmark as tbench


def interleaved_medians(
    candidates: dict[str, Callable[[], object]], rounds: int = 3, min_run_time: float = 0.2
) -> dict[str, float]:
    """Median seconds per call of each candidate, measured in ``rounds`` interleaved rounds."""
    blocks: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, function in candidates.items():
            timer = tbench.Timer(stmt="function()", globals={"function": function}, num_threads=torch.get_num_threads())
            measurement = timer.blocked_autorange(min_run_time=min_run_time)
            blocks[name].extend(measurement.times)
    return {name: statistics.median(times) for name, times in blocks.items()}


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
