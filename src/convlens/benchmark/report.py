"""The bench report: a Markdown file of tables and a chart, built from measured rows.

bench.md    the machine, the settings, then per layer: speed over PyTorch with GFLOP/s, rate as a %
            of the same-size GEMM's with predicted extra memory, and max |error| against float64
bench.png   speed over PyTorch per layer and candidate, log scale
"""

from __future__ import annotations

import os
import platform
from datetime import date
from pathlib import Path

import torch

from convlens.benchmark.runner import GEMM, REFERENCE, SEED, Row


def require_kernels() -> None:
    """Exits (SystemExit, with native.reason()) where the compiled kernels are not built: for the
    benchmarks that time them."""
    from convlens import native

    if not native.available():
        raise SystemExit(f"no compiled kernels: {native.reason()}")


def cpu_name() -> str:
    """The processor by its model name and widest vector instructions, e.g. "AMD EPYC (AVX2)" (what
    lscpu prints; speed figures differ between such machines), or the architecture where unknown.
    Where torch's or convlens's loops are held narrower than the CPU (benchmarks/as_avx2.sh), it
    says so: "Intel Xeon (AVX-512; held to AVX2: torch, MKL, oneDNN, convlens)"."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    widest = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{fields.get('model name', platform.machine())} ({widest}{held_to(widest)})"


def held_to(widest: str) -> str:
    """ "; held to AVX2: torch, ..." where the loops that run are narrower than the CPU's widest
    (torch's CPU capability, MKL's and oneDNN's limits set by environment, convlens's kernels)."""
    from convlens import native

    rank = {"AVX-512": 2, "AVX512": 2, "AVX2": 1}
    loops = {
        "torch": torch.backends.cpu.get_cpu_capability(),
        "MKL": os.environ.get("MKL_ENABLE_INSTRUCTIONS", ""),
        "oneDNN": os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
        "convlens": native.instruction_set(),
    }
    narrower = {who: isa for who, isa in loops.items() if isa and rank.get(isa.upper(), 0) < rank.get(widest, 0)}
    if not narrower:
        return ""
    sets = sorted({isa.upper() for isa in narrower.values()})
    return f"; held to {'/'.join(sets)}: {', '.join(narrower)}"


def machine_description(device: torch.device) -> str:
    """The processor, threads and torch version; on CUDA also the GPU, cuDNN and its TF32 setting."""
    machine = f"{cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if device.type == "cuda":
        tf32 = "on" if torch.backends.cudnn.allow_tf32 else "off"
        machine += f"; {torch.cuda.get_device_name(device)}, cuDNN {torch.backends.cudnn.version()} (TF32 {tf32})"
    return machine


def bench_markdown(
    rows: list[Row],
    names: list[str],
    geomeans: dict[str, float],
    *,
    device: torch.device,
    suites: list[str],
    batches: list[int],
    precision: str,
    rounds: int,
) -> str:
    """The whole bench.md: ``names`` are the convlens candidates that ran, in column order."""
    shown = [*names, SEED, GEMM]
    return "\n\n".join([
        f"# convlens bench, {date.today().isoformat()}",
        f"Machine: {machine_description(device)}. Suites: {', '.join(suites)}; batch {', '.join(map(str, batches))}; "
        f"precision {precision}; {rounds} interleaved rounds, median.",
        "Speedup over PyTorch (its function of each layer's kind; higher is faster) and effective GFLOP/s:",
        markdown_table(rows, shown),
        "Geometric-mean speedup: " + ", ".join(f"{n} {v:.2f}x" for n, v in geomeans.items()),
        "Rate as a % of the same-size GEMM's (its practical roofline) and predicted extra memory beyond "
        "input, weight and output (buffers kept between calls included), in MiB:",
        resources_table(rows, [*names, SEED]),
        "Max |error| against float64 (PyTorch's own in the first column):",
        error_table(rows, [REFERENCE, *names]),
    ]) + "\n"  # fmt: skip


def markdown_table(rows: list[Row], names: list[str]) -> str:
    header = "| layer | N | PyTorch ms | " + " | ".join(f"{n} (x, GFLOP/s)" for n in names) + " | auto picks |"
    lines = [header, "|" + "---|" * (len(names) + 4)]
    for row in rows:
        cells = []
        for name in names:
            if name in row.milliseconds:
                cells.append(f"{row.speedup(name):.2f}x, {row.gflops(name):.0f}")
            else:
                cells.append("-")
        lines.append(
            f"| {row.layer.label} | {row.batch} | {row.milliseconds[REFERENCE]:.2f} | "
            + " | ".join(cells)
            + f" | {row.auto_choice} |"
        )
    return "\n".join(lines)


def resources_table(rows: list[Row], names: list[str]) -> str:
    """Per candidate: its rate as a % of the same-size GEMM's, and its predicted extra memory."""
    header = "| layer | N | " + " | ".join(f"{n} (% of GEMM, extra MiB)" for n in names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 2)]
    for row in rows:
        cells = [
            f"{row.gemm_percent(n):.0f}%, {row.extra_bytes[n] / 2**20:.1f}"
            if n in row.extra_bytes
            else f"{row.gemm_percent(n):.0f}%, -"
            if n in row.milliseconds
            else "-"
            for n in names
        ]
        lines.append(f"| {row.layer.label} | {row.batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def error_table(rows: list[Row], names: list[str]) -> str:
    lines = ["| layer | N | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 2)]
    for row in rows:
        cells = [f"{row.errors[n]:.1e}" if n in row.errors else "-" for n in names]
        lines.append(f"| {row.layer.label} | {row.batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(rows: list[Row], names: list[str]):
    """Speedup over PyTorch per layer (log scale), one bar per candidate; 1.0 is PyTorch."""
    from matplotlib.figure import Figure

    labels = [f"{r.layer.suite}: {r.layer.label} N={r.batch}" for r in rows]
    figure = Figure(figsize=(12, 0.28 * len(rows) * len(names) / 3 + 2.5), layout="constrained")
    axis = figure.subplots()
    height = 0.8 / len(names)
    for index, name in enumerate(names):
        values = [r.speedup(name) if name in r.milliseconds else float("nan") for r in rows]
        positions = [i + index * height for i in range(len(rows))]
        axis.barh(positions, values, height=height, label=name)
    axis.axvline(1.0, color="black", lw=1)
    axis.set_xscale("log")
    axis.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], labels, fontsize=7)
    axis.invert_yaxis()
    axis.set_xlabel("speedup over PyTorch (higher is faster; 1 = PyTorch)")
    axis.legend(fontsize=8, loc="lower right")
    return figure
