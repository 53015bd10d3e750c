"""The compiled products' register block (src/convlens/native/products.h, through
winograd_products.c) against torch.bmm, one thread each: GFLOP/s of 16 products V (P, C) @ U (C, K),
the shapes of Winograd's t*t products on ResNet-50's 3x3 layers.

    python benchmarks/products.py

"wide": the AVX-512 loop (6 rows x 4 vectors of 16) where the CPU has it; "8-lane": the loop every
x86-64-v3 CPU runs (6 x 2 vectors of 8). Both give the same bits (tests/test_native.py). One thread:
the kernels' threads split bands of a layer, not one product, so this is the rate a share runs at.
"""

from __future__ import annotations

import torch
import torch.utils.benchmark as benchmark

from convlens import native
from convlens.benchmark.report import cpu_name, require_kernels

SHAPES = ((64, 64, 56), (64, 64, 112), (128, 128, 28), (128, 128, 56), (256, 256, 28), (512, 512, 16), (512, 512, 64))


def rates(c: int, k: int, p: int) -> dict[str, float]:
    """GFLOP/s of each candidate on 16 products (p, c) @ (c, k), one thread, median of repeats."""
    v, u = torch.randn(16, p, c), torch.randn(16, c, k)
    u_panels, m = native.panels(u), torch.empty(16, p, k)
    calls = {
        "wide": lambda: native.winograd_products(v, u_panels, m, wide=True),
        "8-lane": lambda: native.winograd_products(v, u_panels, m, wide=False),
        "torch.bmm": lambda: torch.bmm(v, u, out=m),
    }
    flops = 2 * 16 * p * c * k
    return {
        name: flops
        / benchmark.Timer("call()", globals={"call": call}, num_threads=1).blocked_autorange(min_run_time=0.3).median
        / 1e9
        for name, call in calls.items()
    }


def main() -> None:
    require_kernels()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    print(f"{cpu_name()}, one thread; GFLOP/s of 16 products (P, C) @ (C, K)")
    try:
        for c, k, p in SHAPES:
            row = "  ".join(f"{name} {rate:6.1f}" for name, rate in rates(c, k, p).items())
            print(f"C={c:<4} K={k:<4} P={p:<4} {row}", flush=True)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
