"""The bench report's machine line: the CPU, and where its loops are held narrower."""

from __future__ import annotations

import pytest
import torch

from convlens import native
from convlens.benchmark import report


@pytest.fixture
def unheld(monkeypatch) -> None:
    for name in ("MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.setattr(native, "instruction_set", lambda: "AVX-512")


def test_a_cpu_run_at_its_widest_says_nothing_more(unheld) -> None:
    assert report.held_to("AVX-512") == ""
    assert report.held_to("AVX2") == ""


def test_loops_held_narrower_than_the_cpu_are_named(unheld, monkeypatch) -> None:
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "avx2")
    monkeypatch.setattr(native, "instruction_set", lambda: "AVX2")
    assert report.held_to("AVX-512") == "; held to AVX2: MKL, convlens"
    assert report.held_to("AVX2") == ""  # an AVX2 CPU runs AVX2 loops: nothing held
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "DEFAULT")
    assert report.held_to("AVX2") == "; held to DEFAULT: torch"
