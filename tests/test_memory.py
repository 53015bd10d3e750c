"""im2col stays inside its workspace: a conv whose one-shot columns need ~1.8 GB runs in far less."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "memory.py"
GIB = 1024**3
MIB = 1024**2


def run_memory_benchmark(*args: str) -> dict:
    output = subprocess.run(
        [sys.executable, str(BENCHMARK), "--json", "-", *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output)


def test_im2col_of_a_1_8_gb_conv_grows_memory_by_far_less() -> None:
    result = run_memory_benchmark("--algorithm", "im2col")  # 64x64x112x112 input, 64 filters 3x3
    # 1.85 GB one-shot columns: 64 images' worth of the columns F.unfold really makes for one
    one_image = F.unfold(torch.zeros(1, 64, 112, 112), 3, padding=1)
    assert result["predicted_cols_bytes"] == 64 * one_image.numel() * one_image.element_size()
    # Everything the call allocates: padded input (~200 MiB), output (196 MiB), at most one
    # 256 MiB piece of columns and its product. Far below the columns alone.
    assert result["peak_growth_bytes"] < 1.0 * GIB, result
    assert result["peak_growth_bytes"] < result["predicted_cols_bytes"] / 2, result
    assert result["max_abs_error_first_2_images"] < 1e-3, result


def test_the_workspace_limit_bounds_the_columns() -> None:
    """With a 2 MiB workspace, the call grows memory by its padded input and output, two pieces of
    columns at most, and allocator slack; far below the 72 MiB of one-shot columns."""
    result = run_memory_benchmark("--batch", "8", "--size", "64", "--workspace-mib", "2")
    padded = F.pad(torch.zeros(8, 64, 64, 64), (1, 1, 1, 1))  # the zero-padded copy of the 8x64x64x64 input
    padded_input = padded.numel() * padded.element_size()
    bound = padded_input + result["output_bytes"] + 2 * 2 * MIB + 24 * MIB
    assert result["peak_growth_bytes"] < bound, (result, bound)
    assert bound < result["predicted_cols_bytes"] * 0.65  # the bound itself is far below one-shot columns
    assert result["max_abs_error_first_2_images"] < 1e-3
