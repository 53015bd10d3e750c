"""The compiled core (src/convlens/native/): plain C, no Python or torch headers, called through
ctypes on tensors' data pointers. ``optional=True``: without a C compiler the install still
succeeds and convlens runs its Python algorithms (``convlens.native.available()`` says why).

CONVLENS_NATIVE_ARCH=<gcc -march value>, e.g. x86-64-v3: every loop built for that instruction set
alone, no run-time dispatch (benchmarks/as_avx2.sh builds an AVX2 machine's kernels this way, to
measure them on an AVX-512 CPU beside torch held to AVX2)."""

import os

from setuptools import Extension, setup

ARCH = os.environ.get("CONVLENS_NATIVE_ARCH", "")

setup(
    ext_modules=[
        Extension(
            "convlens.native._kernels",
            sources=[
                f"src/convlens/native/{name}.c"
                for name in (
                    "parallel",
                    "cpu",
                    "direct",
                    "im2col",
                    "winograd",
                    "winograd_products",
                    "winograd_weight",
                    "gemm",
                    "compare",
                )
            ],
            # -Wno-psabi: GCC notes that the baseline clone passes 8-float vectors differently; they
            # never cross a call (the helpers that take them are always inlined)
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno", "-std=c11", "-Wno-psabi"]
            + ([f"-march={ARCH}", "-DCONVLENS_ONE_ARCH"] if ARCH else []),
            extra_link_args=["-pthread", "-ldl"],  # dlopen: parallel.c looks up torch's OpenMP runtime
            optional=True,
        )
    ]
)
