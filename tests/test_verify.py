"""convlens verify: run as a user would, read its table and JSON; a broken algorithm makes it fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

import convlens
from convlens import algos, verify
from convlens.cli import main


def test_verify_passes_and_reports_every_algorithm(tmp_path: Path) -> None:
    out = tmp_path / "verify.json"
    result = subprocess.run(
        [sys.executable, "-m", "convlens", "verify", "--cases", "40", "--seed", "3", "--models", "none",
         "--kinds", "conv2d", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert set(report["algorithms"]) == {"banded", "depthwise", "direct", "fft", "gemm", "im2col", "winograd", "auto"}
    for name, summary in report["algorithms"].items():
        assert summary["failures"] == [], name
        assert summary["cases"] > 0, name
        assert 0 < summary["max_abs_error"] < 1e-3, (name, summary)
        assert summary["pytorch_max_abs_error"] > 0
    assert report["algorithms"]["im2col"]["cases"] == 40  # im2col runs everything
    assert "worst x PyTorch" in result.stdout


def test_verify_sweeps_every_kind_and_the_models_that_use_them(tmp_path: Path) -> None:
    """1-D, 3-D and transposed convolutions, random and from a DCGAN generator and a WaveNet stack:
    the same report and bounds, and each kind really swept."""
    out = tmp_path / "verify.json"
    main(["verify", "--cases", "6", "--seed", "1", "--models", "dcgan,wavenet", "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["settings"]["kinds"] == list(verify.KINDS)
    for name in ("auto", "direct", "im2col"):  # the algorithms of every kind
        summary = report["algorithms"][name]
        assert summary["failures"] == [] and summary["cases"] == 6 * 6 + 5 + 11, (name, summary["cases"])
    kinds = [config.layer.kind for kind in verify.KINDS for config in verify.kind_configs(kind, 3, seed=1)]
    assert kinds == [kind for kind in verify.KINDS for _ in range(3)]


def test_every_kinds_random_configs_are_reproducible_and_valid() -> None:
    for kind in verify.KINDS:
        first = verify.kind_configs(kind, 15, seed=4)
        assert first == verify.kind_configs(kind, 15, seed=4) != verify.kind_configs(kind, 15, seed=5)
        for config in first:  # PyTorch accepts each, and convlens gives its values
            x, w, b = config.tensors()
            torch.testing.assert_close(config.layer.convlens(x, w, b), config.layer.pytorch(x, w, b))


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

    broken = algos.Algorithm(
        "broken", "im2col plus a small error", off_by_a_little, algos.always, im2col.buffer_bytes, algos.exact
    )
    monkeypatch.setitem(algos._REGISTRY, "broken", broken)
    code = main(["verify", "--cases", "5", "--models", "none", "--algorithms", "broken,im2col"])
    text = capsys.readouterr().out
    assert code == 1
    assert "FAIL broken: error" in text and "random: conv2d N=" in text
    assert "FAIL im2col" not in text


def test_outcome_bound_uses_a_floor_when_pytorch_is_exact() -> None:
    config = verify.random_configs(1, 0)[0]
    exact = verify.Outcome(config, "im2col", error=1e-7, pytorch_error=0.0, scale=1.0, bound=2.0)
    assert exact.passed  # PyTorch exactly right is not a reason to fail a 1-ulp error
    assert exact.allowed == 2.0 * 4 * torch.finfo(torch.float32).eps  # bound x the 4-ulp floor at scale 1
    assert not verify.Outcome(config, "im2col", 1e-4, 1e-7, 1.0, 2.0).passed


def test_verify_backward_checks_every_gradient(tmp_path: Path) -> None:
    """--backward adds one row per gradient, run through the CLI as a user would."""
    out = tmp_path / "verify.json"
    code = main(["verify", "--cases", "12", "--seed", "1", "--models", "none", "--algorithms", "im2col",
                 "--kinds", "conv2d", "--backward", "--json", str(out)])  # fmt: skip
    report = json.loads(out.read_text())
    assert code == 0
    assert set(report["algorithms"]) == {"im2col", *verify.GRADIENTS}
    assert report["settings"]["backward"] is True
    for name in verify.GRADIENTS:
        assert report["algorithms"][name]["cases"] == 12 and report["algorithms"][name]["failures"] == []
        assert 0 < report["algorithms"][name]["max_abs_error"] < 1e-3


def test_a_broken_gradient_fails_verify(monkeypatch) -> None:
    from convlens.autograd import function

    backward = function.conv2d_backward

    def weight_gradient_off_by_a_little(*args, **kwargs):
        grad_x, grad_weight, grad_bias = backward(*args, **kwargs)
        if grad_weight is not None:
            grad_weight = grad_weight + 1e-3 * grad_weight.abs().max()
        return grad_x, grad_weight, grad_bias

    monkeypatch.setattr(function, "conv2d_backward", weight_gradient_off_by_a_little)
    summaries = verify.run(verify.random_configs(4, seed=2), ["im2col"], backward=True)
    assert summaries["grad_weight"].failures
    assert not summaries["grad_input"].failures and not summaries["grad_bias"].failures


def test_backward_bound_is_winograds_where_it_may_run() -> None:
    from convlens.spec import ConvSpec

    dense = ConvSpec.from_args(torch.empty(8, 64, 28, 28), torch.empty(64, 64, 3, 3), padding=1)
    strided = ConvSpec.from_args(torch.empty(8, 64, 28, 28), torch.empty(64, 64, 3, 3), stride=2, padding=1)
    with convlens.settings(precision="high"):
        assert verify.backward_bound(dense) == 50.0  # F(4x4): the input gradient may be a Winograd convolution
        assert verify.backward_bound(strided) == algos.EXACT_BOUND
    with convlens.settings(precision="highest"):
        assert verify.backward_bound(dense) == 2.0
