"""Peak memory growth of one convolution, measured in a fresh process.

    python benchmarks/memory.py                       # the issue's case: 64x64x112x112, 64 filters 3x3
    python benchmarks/memory.py --compare             # im2col (default, 2 MiB workspace), winograd, direct, PyTorch
    python benchmarks/memory.py --workspace-mib 64 --json out.json
    python benchmarks/memory.py --compare --depth 8 --batch 8 --size 56   # 3-D: r3d_18's layer1 conv at batch 8

Growth is the process's peak resident memory during the call (VmHWM, reset just before it through
/proc/self/clear_refs) minus its resident memory before it (VmRSS), with the input and weight
already allocated, so it counts everything the call itself allocated: padded input, columns,
products and the output. (ru_maxrss would not do: Linux carries it over from the parent process.)
The predicted one-shot im2col buffer (ConvSpec.cols_bytes) is printed beside it, and for im2col
and winograd the algorithm's own prediction of its buffers (``buffer_bytes``, the figure ``convlens
bench`` reports as extra memory) plus the output, which the growth should match.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

import convlens
from convlens.algos import im2col, winograd
from convlens.spec import ConvSpec

MIB = 1024**2


def status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS: now, VmHWM: peak)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> None:
    """Make VmHWM start again from the current resident size (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def predicted_buffer_bytes(algorithm: str, spec: ConvSpec, workspace: int | None) -> int | None:
    """The algorithm's own prediction of its buffers beyond input, weight and output (where it makes one)."""
    if algorithm == "im2col":
        return sum(im2col.buffer_bytes(spec, workspace or convlens.get_workspace_limit()).values())
    if algorithm == "winograd":
        return sum(winograd.buffer_bytes(spec, workspace or convlens.get_workspace_limit()).values())
    return None


def measure(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    rank = 2 if args.depth is None else 3
    spatial = (args.size, args.size) if args.depth is None else (args.depth, args.size, args.size)
    x = torch.randn(args.batch, args.channels, *spatial)
    w = torch.randn(args.filters, args.channels, *(args.kernel,) * rank)
    ours, theirs = (convlens.conv2d, F.conv2d) if rank == 2 else (convlens.conv3d, F.conv3d)
    spec = ConvSpec.from_args(x, w, padding=args.kernel // 2, rank=rank)
    workspace = None if args.workspace_mib is None else int(args.workspace_mib * MIB)
    before = status_bytes("VmRSS")
    reset_peak()
    start = time.perf_counter()
    with torch.no_grad():
        if args.algorithm == "pytorch":
            out = theirs(x, w, padding=args.kernel // 2)
        else:
            out = ours(x, w, padding=args.kernel // 2, algorithm=args.algorithm, workspace_limit=workspace)
    seconds = time.perf_counter() - start
    growth = status_bytes("VmHWM") - before
    check = theirs(x[:2], w, padding=args.kernel // 2)
    return {
        "config": spec.describe(),
        "algorithm": args.algorithm,
        "workspace_bytes": workspace if workspace is not None else convlens.get_workspace_limit(),
        "predicted_cols_bytes": spec.cols_bytes(),  # one shot, (N, C_in*k^rank, positions)
        "predicted_buffer_bytes": predicted_buffer_bytes(args.algorithm, spec, workspace),
        "output_bytes": out.numel() * out.element_size(),
        "peak_growth_bytes": growth,
        "seconds": seconds,
        "max_abs_error_first_2_images": (out[:2] - check).abs().max().item(),
    }


def compare(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    runs = [
        ("im2col, default workspace", ["--algorithm", "im2col"]),
        ("im2col, 2 MiB workspace", ["--algorithm", "im2col", "--workspace-mib", "2"]),
        ("winograd", ["--algorithm", "winograd"]),
        ("direct", ["--algorithm", "direct"]),
        ("PyTorch F.conv2d", ["--algorithm", "pytorch"]),
    ]
    if args.depth is not None:  # the 3-D algorithms: im2col and direct
        runs = [run for run in runs if run[0] != "winograd"]
        runs[-1] = ("PyTorch F.conv3d", ["--algorithm", "pytorch"])
    shape = [
        "--batch",
        str(args.batch),
        "--channels",
        str(args.channels),
        "--size",
        str(args.size),
        "--filters",
        str(args.filters),
        "--kernel",
        str(args.kernel),
        *([] if args.depth is None else ["--depth", str(args.depth)]),
    ]
    table = Table(title="Peak memory growth of one convolution (fresh process each)")
    for column in ("run", "predicted cols", "predicted buffers + output", "peak growth", "output", "time", "max err"):
        table.add_column(column, justify="right" if column != "run" else "left")
    console = Console()
    for label, extra in runs:
        with console.status(f"measuring {label} ..."):
            output = subprocess.run(
                [sys.executable, __file__, "--json", "-", *shape, *extra], check=True, capture_output=True, text=True
            ).stdout
        result = json.loads(output)
        table.add_row(
            label,
            f"{result['predicted_cols_bytes'] / MIB:,.0f} MiB",
            "-"
            if result["predicted_buffer_bytes"] is None
            else f"{(result['predicted_buffer_bytes'] + result['output_bytes']) / MIB:,.0f} MiB",
            f"{result['peak_growth_bytes'] / MIB:,.0f} MiB",
            f"{result['output_bytes'] / MIB:,.0f} MiB",
            f"{result['seconds']:.2f} s",
            f"{result['max_abs_error_first_2_images']:.1e}",
        )
    console.print(f"config: {result['config']}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--kernel", type=int, default=3)
    parser.add_argument("--depth", type=int, default=None, help="a 3-D convolution over this many frames")
    parser.add_argument("--algorithm", default="im2col", help="a convlens algorithm, or 'pytorch'")
    parser.add_argument("--workspace-mib", type=float, default=None, help="per-call workspace limit")
    parser.add_argument("--json", default=None, help="write the result as JSON to this file ('-' for stdout)")
    parser.add_argument("--compare", action="store_true", help="measure several settings, each in a fresh process")
    args = parser.parse_args()
    if args.compare:
        compare(args)
        return
    result = measure(args)
    if args.json == "-":
        print(json.dumps(result))
        return
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)
    for key, value in result.items():
        print(f"{key}: {value / MIB:,.1f} MiB" if key.endswith("bytes") else f"{key}: {value}")


if __name__ == "__main__":
    main()
