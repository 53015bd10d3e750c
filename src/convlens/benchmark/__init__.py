"""Benchmarks: real layer suites, timing against PyTorch in the same process, reports."""
