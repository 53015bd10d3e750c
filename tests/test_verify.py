"""convlens verify: run as a user would, read its table and JSON; a broken algorithm makes it fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from convlens import algos, verify
from convlens.cli import main


def test_verify_passes_and_reports_every_algorithm(tmp_path: Path) -> None:
    out = tmp_path / "verify.json"
    result = subprocess.run(
        [sys.executable, "-m", "convlens", "verify", "--cases", "40", "--seed", "3", "--models", "none",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert set(report["algorithms"]) == {"depthwise", "direct", "fft", "gemm", "im2col", "winograd", "auto"}
    for name, summary in report["algorithms"].items():
        assert summary["failures"] == [], name
        assert summary["cases"] > 0, name
        assert 0 < summary["max_abs_error"] < 1e-3, (name, summary)
        assert summary["pytorch_max_abs_error"] > 0
    assert report["algorithms"]["im2col"]["cases"] == 40  # im2col runs everything
    assert "worst x PyTorch" in result.stdout


def test_random_configs_are_reproducible_and_valid() -> None:
    first, second = verify.random_configs(25, seed=7), verify.random_configs(25, seed=7)
    assert first == second
    assert verify.random_configs(25, seed=8) != first
    for config in first:  # every generated configuration is accepted
        x, w, b = config.tensors()
        from convlens.spec import ConvSpec

        ConvSpec.from_args(x, w, b, **config.options)


def test_model_layers_are_the_real_ones() -> None:
    layers = verify.model_configs(["resnet18"])
    shapes = {(c.layer.in_channels, c.layer.out_channels, c.layer.size, c.layer.kernel_size, c.layer.stride)
              for c in layers}  # fmt: skip
    assert len(layers) == len(shapes)
    assert any(
        (c.layer.suite, c.layer.name) == ("resnet18", "conv1") and c.layer.kernel_size == (7, 7)
        and c.layer.stride == (2, 2) for c in layers
    )  # fmt: skip


def test_a_broken_algorithm_fails_verify_and_names_the_configuration(monkeypatch, capsys) -> None:
    im2col = algos.get("im2col")

    def off_by_a_little(x, weight, bias, spec, workspace):
        out = im2col.forward(x, weight, bias, spec, workspace)
        return out + 1e-3 * out.abs().max()

    broken = algos.Algorithm("broken", "im2col plus a small error", off_by_a_little, algos.always)
    monkeypatch.setitem(algos._REGISTRY, "broken", broken)
    code = main(["verify", "--cases", "5", "--models", "none", "--algorithms", "broken,im2col"])
    text = capsys.readouterr().out
    assert code == 1
    assert "FAIL broken: error" in text and "random: N=" in text
    assert "FAIL im2col" not in text


def test_outcome_bound_uses_a_floor_when_pytorch_is_exact() -> None:
    config = verify.random_configs(1, 0)[0]
    exact = verify.Outcome(config, "im2col", error=1e-7, pytorch_error=0.0, scale=1.0, bound=2.0)
    assert exact.passed  # PyTorch exactly right is not a reason to fail a 1-ulp error
    assert exact.allowed == 2.0 * 4 * torch.finfo(torch.float32).eps  # bound x the 4-ulp floor at scale 1
    assert not verify.Outcome(config, "im2col", 1e-4, 1e-7, 1.0, 2.0).passed
