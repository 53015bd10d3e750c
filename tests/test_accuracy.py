"""The accuracy rule, enforced: direct, im2col and tap-wise gemm float32 error at most 2x PyTorch's own
against float64 (per element), on random configurations of every option and on real model layers;
approximate algorithms within their documented bounds."""

from __future__ import annotations

import pytest

import convlens
from convlens import verify

EXACT = ["direct", "im2col", "gemm"]


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_algorithms_within_2x_pytorch_on_random_configurations(seed: int) -> None:
    summaries = verify.run(verify.random_configs(60, seed), EXACT)
    for name in EXACT:
        assert summaries[name].cases == 60
        assert summaries[name].failures == [], [f.config.describe() for f in summaries[name].failures[:3]]


def test_every_algorithm_within_its_bound_on_resnet18_layers() -> None:
    names = ["direct", "im2col", "gemm", "winograd", "fft", "auto"]
    summaries = verify.run(verify.model_configs(["resnet18"]), names)
    for name in names:
        assert summaries[name].cases > 0
        assert summaries[name].failures == [], [f.config.describe() for f in summaries[name].failures[:3]]


def test_high_precision_winograd_within_its_documented_50x() -> None:
    configs = [
        c for c in verify.model_configs(["resnet18"]) if c.layer.kernel_size == (3, 3) and c.layer.stride == (1, 1)
    ]
    with convlens.settings(precision="high"):
        summary = verify.run(configs, ["winograd"])["winograd"]
    assert summary.cases == len(configs) > 0
    assert summary.failures == []
    assert summary.worst_ratio > 2  # F(4x4,3x3) really ran: it is measurably less accurate than F(2x2,3x3)
