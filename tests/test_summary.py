"""convlens.summary and `convlens summary`: rows, totals and receptive fields of real models, and a
broken model diagnosed with the fix's numbers, as a user would run it."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

import convlens
from convlens.cli import main


def test_resnet18_rows_totals_and_receptive_field() -> None:
    model = torchvision.models.resnet18().train()
    weight = model.conv1.weight.detach().clone()
    result = convlens.summary(model, (1, 3, 224, 224))
    assert result.failure is None
    assert model.training and model.conv1.weight.device.type == "cpu" and torch.equal(model.conv1.weight, weight)
    assert result.total_params == sum(p.numel() for p in model.parameters())
    assert result.total_macs == 1_814_073_344  # torchinfo's "Total mult-adds (G): 1.81" for resnet18
    conv1 = result.rows[0]
    assert (conv1.name, conv1.type, conv1.output_shape, conv1.padding) == (
        "conv1",
        "Conv2d",
        (1, 64, 112, 112),
        (3,) * 4,
    )
    assert (conv1.receptive_field, conv1.jump) == ((7, 7), (2, 2))
    last = [row for row in result.rows if row.type == "Conv2d"][-1]
    assert (last.name, last.receptive_field, last.jump) == ("layer4.1.conv2", (435, 435), (32, 32))


def test_the_receptive_field_is_the_gradients_support() -> None:
    """One output's gradient with respect to the input is non-zero exactly over its receptive field
    (positive weights and inputs, so no ReLU or cancellation hides a path; average pooling, whose
    gradient reaches its whole window, where max pooling's reaches one element)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(2, 1, 3, dilation=2))
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            nn.init.constant_(layer.weight, 1.0)
            nn.init.constant_(layer.bias, 1.0)
    result = convlens.summary(model, (1, 1, 64, 64))
    field, jump = result.rows[-1].receptive_field, result.rows[-1].jump
    x = torch.rand(1, 1, 64, 64, requires_grad=True)
    out = model(x)
    out[0, 0, 3, 4].backward()
    rows, columns = (x.grad[0, 0].abs() > 0).nonzero(as_tuple=True)
    assert (int(rows.max() - rows.min()) + 1, int(columns.max() - columns.min()) + 1) == field
    assert (int(rows.min()), int(columns.min())) == (3 * jump[0], 4 * jump[1])


class Broken(nn.Module):
    """Shrinks a 32x32 input to 3x3, then its forward calls F.conv2d with a 5x5 kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3, stride=2)
        )
        self.head = nn.Parameter(torch.randn(4, 8, 5, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.features(x), self.head)


def test_a_broken_model_is_diagnosed_with_the_fix() -> None:
    result = convlens.summary(Broken(), (1, 3, 32, 32))
    assert [row.name for row in result.rows] == ["features.0", "features.1", "features.2", "features.3", "conv2d"]
    assert result.rows[-1].failed and result.failure is not None and result.failure.name == "conv2d"
    assert "Kernel size can't be greater than actual input size" in result.failure.message
    fixes = "\n".join(result.failure.fixes)
    assert "H_out = floor((H + pad + pad - dilation*(kernel-1) - 1) / stride) + 1 = floor((3 + 0 + 0 - 1*(5-1)" in fixes
    assert "the input shrank 32x32 -> features.0 15x15 -> features.2 7x7 -> features.3 3x3 -> conv2d (fails)" in fixes
    assert "padding (1, 1) on conv2d (instead of (0, 0)) lets this input through" in fixes
    assert "the smallest input the whole model accepts is 45x45" in fixes
    for size, runs in ((45, True), (44, False)):  # the search's answer, checked with real tensors
        try:
            Broken()(torch.zeros(1, 3, size, size))
            ran = True
        except RuntimeError:
            ran = False
        assert ran is runs


def test_channel_linear_and_channels_last_mistakes_are_diagnosed() -> None:
    channels = convlens.summary(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(16, 8, 3)), (1, 3, 32, 32))
    assert channels.failure is not None and channels.failure.name == "2"
    assert channels.failure.fixes == [
        "2 expects 16 input channels and gets 8",
        "the 8 channels come from 0 (Conv2d, output [1, 8, 30, 30]): give 2 in_channels=8, or 0 16 output channels",
    ]
    linear = convlens.summary(nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(100, 10)), (1, 3, 32, 32))
    assert linear.failure is not None
    assert "in_features=7200 fits this input (nn.LazyLinear(out_features) infers it" in linear.failure.fixes[0]
    nhwc = convlens.summary(torchvision.models.resnet18(), (1, 224, 224, 3))
    assert nhwc.failure is not None and nhwc.failure.name == "conv1"
    assert "looks channels-last (N, H, W, C)" in nhwc.failure.fixes[-1] and "[1, 3, 224, 224]" in nhwc.failure.fixes[-1]


def test_convlens_summary_from_the_command_line(tmp_path: Path, capsys) -> None:
    assert main(["summary", "resnet18", "--input", "1,3,64,64", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "layer4.1.conv2" in out and "total: 11,689,512 parameters" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["failure"] is None and report["total_params"] == 11_689_512
    assert report["rows"][0]["kernel_size"] == [7, 7] and "kernel_size" not in report["rows"][1]
    assert main(["summary", "alexnet", "--input", "1,3,32,32"]) == 1  # a shape error: the answer, not a crash
    out = capsys.readouterr().out
    assert "the forward stopped at features.12" in out and "FAILED" in out and "Traceback" not in out
    assert "the smallest input the whole model accepts is 63x63" in out
    assert main(["summary", "resnet1000", "--input", "1,3,32,32"]) == 2
    assert "unknown model 'resnet1000'" in capsys.readouterr().err
    assert main(["summary", "resnet18", "--input", "1,3"]) == 2
