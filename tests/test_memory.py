"""im2col stays inside its workspace: a conv whose one-shot columns need ~1.8 GB runs in far less."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    assert result["predicted_cols_bytes"] == 64 * 64 * 9 * 112 * 112 * 4  # 1.85 GB one-shot columns
    # Everything the call allocates: padded input (~200 MiB), output (196 MiB), at most one
    # 256 MiB piece of columns and its product. Far below the columns alone.
    assert result["peak_growth_bytes"] < 1.0 * GIB, result
    assert result["peak_growth_bytes"] < result["predicted_cols_bytes"] / 2, result
    assert result["max_abs_error_first_2_images"] < 1e-3, result


def test_the_workspace_limit_bounds_the_columns() -> None:
    """With a 2 MiB workspace, the call grows memory by its padded input and output, two pieces of
    columns at most, and allocator slack; far below the 72 MiB of one-shot columns."""
    result = run_memory_benchmark("--batch", "8", "--size", "64", "--workspace-mib", "2")
    padded_input = 8 * 64 * 66 * 66 * 4
    bound = padded_input + result["output_bytes"] + 2 * 2 * MIB + 24 * MIB
    assert result["peak_growth_bytes"] < bound, (result, bound)
    assert bound < result["predicted_cols_bytes"] * 0.65  # the bound itself is far below one-shot columns
    assert result["max_abs_error_first_2_images"] < 1e-3
