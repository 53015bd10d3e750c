"""im2col stays inside its workspace: a conv whose one-shot columns need ~1.8 GB runs in far less."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "memory.py"
GIB = 1024**3


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


def test_a_smaller_workspace_means_less_memory() -> None:
    small = run_memory_benchmark("--batch", "8", "--size", "64", "--workspace-mib", "8")
    large = run_memory_benchmark("--batch", "8", "--size", "64", "--workspace-mib", "4096")
    growths = {"8 MiB": small["peak_growth_bytes"], "4 GiB": large["peak_growth_bytes"]}
    assert small["peak_growth_bytes"] < large["peak_growth_bytes"] - small["predicted_cols_bytes"] / 2, growths
    assert small["max_abs_error_first_2_images"] < 1e-3
