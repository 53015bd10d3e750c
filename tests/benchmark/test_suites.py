"""The bench's layer suites are the layers the torchvision models run, read off with hooks."""

from __future__ import annotations

import pytest
import torch

import convlens
from convlens.algos.auto import choose
from convlens.benchmark.suites import SUITES, suite


def test_every_suite_builds_without_downloading() -> None:
    for name in SUITES:
        layers = suite(name)
        assert layers and all(layer.suite == name for layer in layers)


def test_convnext_tiny_has_its_7x7_depthwise_layers_and_auto_gives_them_to_fft_or_banded() -> None:
    depthwise = [layer for layer in suite("convnext_tiny") if layer.groups == layer.in_channels > 1]
    assert [(layer.in_channels, layer.size, layer.count) for layer in depthwise] == [
        (96, (56, 56), 3), (192, (28, 28), 3), (384, (14, 14), 9), (768, (7, 7), 3)
    ]  # fmt: skip
    assert all(layer.kernel_size == (7, 7) and layer.padding == (3, 3) for layer in depthwise)
    picks = [[choose(layer.spec(batch)).algorithm.name for layer in depthwise] for batch in (1, 8)]
    assert picks == [["fft", "banded", "banded", "banded"]] * 2  # 56 columns wide: FFT; 28 and below: banded


@pytest.mark.parametrize(("batch", "expected"), [(1, "im2col"), (8, "fft")])
def test_alexnet_5x5_layer(batch: int, expected: str) -> None:
    [five] = [layer for layer in suite("alexnet") if layer.kernel_size == (5, 5)]
    assert (five.in_channels, five.out_channels, five.size, five.stride) == (64, 192, (27, 27), (1, 1))
    assert choose(five.spec(batch, torch.float32)).algorithm.name == expected


def test_unknown_suite_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"suite must be one of .*convnext_tiny.*got suite='lenet'"):
        suite("lenet")


def test_the_bench_reports_the_algorithm_the_call_runs() -> None:
    """``auto picks`` is auto's choice for the tensors the bench times (on the CPU the compiled
    kernel may take a layer that a shape-only spec on no device would send to im2col), and the
    buffers predicted for it are that algorithm's."""
    from convlens.benchmark import runner
    from convlens.benchmark.suites import Layer

    stem = Layer("test", "conv1", 3, 8, (32, 32), (7, 7), (2, 2), (3, 3), (1, 1), 1)
    row = runner.benchmark_layer(stem, 1, ["auto"], rounds=1, min_run_time=0.001, device=torch.device("cpu"))
    x, w, _ = stem.tensors(1)
    assert row.auto_choice == convlens.explain_choice(x, w, stride=2, padding=3).algorithm
    assert row.auto_choice == ("direct" if convlens.native.available() else "im2col")
    assert row.extra_bytes["auto"] == convlens.explain_choice(x, w, stride=2, padding=3).workspace_bytes
