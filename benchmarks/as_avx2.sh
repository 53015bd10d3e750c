#!/usr/bin/env bash
# Runs a command (a benchmark, `convlens bench ...`) as an AVX2 machine would run it, on a CPU that
# has AVX-512: convlens's kernels built for x86-64-v3 alone (setup.py's CONVLENS_NATIVE_ARCH, into
# a copy of src/, first on PYTHONPATH) and torch held to AVX2 (its own kernels: ATEN_CPU_CAPABILITY;
# MKL's GEMM: MKL_ENABLE_INSTRUCTIONS; oneDNN's convolutions: ONEDNN_MAX_CPU_ISA). Both sides run
# 8-lane vectors, so the ratio between them says how the kernels rank where AVX2 is the widest set;
# it is not an AMD EPYC (other caches, other cores): the headers say "held to AVX2", and figures
# from here are reported as such, never as an AVX2 machine's.
#
#   bash benchmarks/as_avx2.sh python benchmarks/winograd_native.py
#   bash benchmarks/as_avx2.sh convlens bench --suite resnet50 --batch 8
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
cp -r "$root/src" "$root/setup.py" "$root/pyproject.toml" "$root/README.md" "$build/"
find "$build/src" -name '_kernels*.so' -delete
(cd "$build" && CONVLENS_NATIVE_ARCH=x86-64-v3 python setup.py -q build_ext --inplace 2>&1 | grep -E "warning|error" >&2 || true)
export PYTHONPATH="$build/src${PYTHONPATH:+:$PYTHONPATH}"
export ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2
python -c 'import convlens.native as n; assert n.instruction_set() == "AVX2", (n.instruction_set(), n.__file__)'
"$@"
