"""The compiled core (src/convlens/native/): plain C, no Python or torch headers, called through
ctypes on tensors' data pointers. ``optional=True``: without a C compiler the install still
succeeds and convlens runs its Python algorithms (``convlens.native.available()`` says why)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "convlens.native._kernels",
            sources=[
                f"src/convlens/native/{name}.c"
                for name in ("parallel", "direct", "im2col", "winograd", "winograd_products", "gemm", "compare")
            ],
            # -Wno-psabi: GCC notes that the baseline clone passes 8-float vectors differently; they
            # never cross a call (the helpers that take them are always inlined)
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno", "-std=c11", "-Wno-psabi"],
            extra_link_args=["-pthread", "-ldl"],  # dlopen: parallel.c looks up torch's OpenMP runtime
            optional=True,
        )
    ]
)
