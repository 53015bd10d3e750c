"""Timing in the same process: interleaved rounds of ``torch.utils.benchmark``, medians.

Used by auto's autotuning and by the benchmarks (:mod:`convlens.benchmark.timing` adds ratios).
Every candidate is measured with ``torch.utils.benchmark.Timer.blocked_autorange`` once per round,
candidates alternating within each round, so slow spells of a shared machine hit all of them
alike; the figure kept is the median over all measured blocks.
"""

from __future__ import annotations

import logging
import statistics
import types
from collections.abc import Callable, Mapping

import torch


def interleaved_medians(
    candidates: Mapping[str, Callable[[], object]], rounds: int = 3, min_run_time: float = 0.2
) -> dict[str, float]:
    """Median seconds per call of each candidate, measured in ``rounds`` interleaved rounds."""
    tbench = torch_benchmark()
    blocks: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, function in candidates.items():
            timer = tbench.Timer(stmt="function()", globals={"function": function}, num_threads=torch.get_num_threads())
            measurement = timer.blocked_autorange(min_run_time=min_run_time)
            blocks[name].extend(measurement.times)
    return {name: statistics.median(times) for name, times in blocks.items()}


def torch_benchmark() -> types.ModuleType:
    """``torch.utils.benchmark``, imported quietly: on a machine with a CUDA build of torch and no GPU,
    its import of ``torch.utils.cpp_extension`` logs "No CUDA runtime is found" as a warning, which
    says nothing about convlens's CPU timing."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        import torch.utils.benchmark as tbench
    finally:
        logger.setLevel(level)
    return tbench
