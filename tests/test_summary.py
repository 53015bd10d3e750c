"""convlens.summary and `convlens summary`: rows, totals and receptive fields of real models, and a
broken model diagnosed with the fix's numbers, as a user would run it."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import pytest
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
    assert result.total_macs == 1_814_083_944  # torchinfo's "Total mult-adds (G): 1.81" for resnet18
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
    names = ["Broken", "features.0", "features.1", "features.2", "features.3", "conv2d"]
    assert [row.name for row in result.rows] == names
    assert result.rows[0].type == "Broken (own parameters)" and result.rows[0].params == 4 * 8 * 5 * 5
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
    assert out.isascii() and "| conv1 " in out  # not a terminal: a plain ASCII table
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


MODELS = {
    "torchinfo": (torchvision.models.resnet18, torchvision.models.mobilenet_v2, torchvision.models.efficientnet_b0,
                  torchvision.models.vgg11, torchvision.models.googlenet)
}  # fmt: skip


@pytest.mark.parametrize("build", MODELS["torchinfo"], ids=lambda build: build.__name__)
def test_params_and_multiply_adds_agree_with_torchinfo(build) -> None:
    """The same definition as torchinfo's (a layer's weight products, one per bias value added, a
    normalisation's affine parameters once per sample): totals and every convolution's count equal."""
    torchinfo = pytest.importorskip("torchinfo")
    model = build(**({"aux_logits": False, "init_weights": False} if build is torchvision.models.googlenet else {}))
    theirs = torchinfo.summary(model, (2, 3, 96, 96), verbose=0)
    ours = convlens.summary(model, (2, 3, 96, 96))
    assert ours.failure is None
    assert (ours.total_params, ours.trainable_params, ours.total_macs) == (
        theirs.total_params,
        theirs.trainable_params,
        theirs.total_mult_adds,
    )
    their_convs = [layer.macs for layer in theirs.summary_list if layer.class_name == "Conv2d"]
    assert [row.macs for row in ours.rows if row.type == "Conv2d"] == their_convs


class Both(nn.Module):
    def __init__(self, attention: nn.Module, block: nn.Module) -> None:
        super().__init__()
        self.attention, self.block = attention, block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x)[0] + self.block(x)


def test_linear_and_attention_count_every_position() -> None:
    """torchinfo counts a Linear on (N, H, W, C) or (N, tokens, C) once per sample (ConvNeXt-T
    0.32 G, ViT-B/16 0.17 G); convlens once per position, and attention's products too (ViT-B/16
    17.58 G, the 17.6 GFLOPs usually quoted). Checked against PyTorch's FlopCounterMode (products
    only, so the bias adds are added)."""
    from torch.utils.flop_counter import FlopCounterMode

    attention = nn.MultiheadAttention(16, 4, batch_first=True).train()
    block = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 16))
    x = torch.randn(2, 7, 16)
    counter = FlopCounterMode(display=False)
    with counter:
        attention(x, x, x)  # with weights: the scores are matmuls the counter sees
        block(x)
    rows = convlens.summary(Both(attention, block), input_data=x).rows
    assert [row.type for row in rows] == ["MultiheadAttention (own parameters)", "Linear", "GELU", "Linear"]
    bias_adds = 2 * 7 * (16 * 4) + 2 * 7 * (32 + 16)  # q, k, v, out projections; the two Linears
    assert sum(row.macs for row in rows) == counter.get_total_flops() // 2 + bias_adds
    convnext = convlens.summary(torchvision.models.convnext_tiny(), (1, 3, 64, 64))
    for row in (row for row in convnext.rows if row.type == "Linear" and len(row.input_shape or ()) == 4):
        positions = row.output_shape[0] * row.output_shape[1] * row.output_shape[2]  # type: ignore[index]
        assert row.macs == positions * row.output_shape[3] * (row.input_shape[3] + 1)  # type: ignore[index]


def test_depth_folds_rows_into_their_modules() -> None:
    full = convlens.summary(torchvision.models.resnet18(), (1, 3, 64, 64))
    top = convlens.summary(torchvision.models.resnet18(), (1, 3, 64, 64), depth=1)
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "flatten", "fc"]
    assert [row.name for row in top.rows] == names
    layer2 = top.rows[5]
    inside = [row for row in full.rows if row.name.startswith("layer2.")]
    assert (layer2.type, layer2.output_shape) == ("Sequential", (1, 128, 8, 8))
    assert layer2.params == sum(row.params for row in inside) and layer2.macs == sum(row.macs for row in inside)
    assert layer2.receptive_field == [row for row in inside if row.receptive_field][-1].receptive_field == (99, 99)
    assert (top.total_macs, top.total_params) == (full.total_macs, full.total_params)
    second = convlens.summary(torchvision.models.resnet18(), (1, 3, 64, 64), depth=2)
    assert [row.name for row in second.rows if row.name.startswith("layer1")] == ["layer1.0", "layer1.1"]
    assert second.rows[4].type == "BasicBlock"


class Decoder(nn.Module):
    """Functional calls in a forward, a reflect-padded layer, a transposed convolution and an upsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Conv2d(1, 4, 3, stride=2, padding=2)
        self.decode = nn.ConvTranspose2d(4, 1, 4, stride=2, padding=1)
        self.smooth = nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.encode(x), 2)
        x = F.interpolate(self.decode(x), scale_factor=2, mode="nearest")
        return torch.flatten(self.smooth(x), 1) @ torch.ones(x.shape[-1] * x.shape[-2], 3)


def test_functional_rows_transposed_and_padding_mode() -> None:
    result = convlens.summary(Decoder(), (2, 1, 32, 32))
    kinds = [(row.name, row.type) for row in result.rows]
    assert kinds == [("encode", "Conv2d"), ("max_pool2d", "F.max_pool2d"), ("decode", "ConvTranspose2d"),
                     ("interpolate", "F.interpolate"), ("smooth", "Conv2d"), ("flatten", "torch.flatten"),
                     ("matmul", "Tensor.matmul")]  # fmt: skip
    _, pool, decode, upsample, smooth, flatten, matmul = result.rows
    assert (pool.kernel_size, pool.stride, pool.receptive_field, pool.jump) == ((2, 2), (2, 2), (5, 5), (4, 4))
    assert (decode.output_padding, decode.macs) == ((0, 0), 2 * 4 * 8 * 8 * 16 + 2 * 16 * 16)
    assert (decode.receptive_field, decode.jump) == ((11, 11), (2, 2))  # 5 + (4 - 1)*4/2; 4/2
    assert upsample.jump == (1, 1) and smooth.padding_mode == "reflect" and smooth.padding == (1, 1, 1, 1)
    assert flatten.output_bytes == 0 and matmul.macs == 2 * 3 * 32 * 32
    report = result.to_dict()["rows"]
    assert report[2]["output_padding"] == [0, 0] and "output_padding" not in report[0]


def test_the_receptive_field_window_is_where_the_gradient_reaches() -> None:
    """Each output's field, from its start (padding included, before a transposed convolution too),
    holds every input its gradient reaches, and for some outputs exactly those (a transposed
    convolution's outputs see fewer inputs at some phases)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, padding=2), nn.ConvTranspose2d(1, 1, 3, stride=2, padding=1),
                          nn.Conv2d(1, 1, 3, dilation=2, padding=1))  # fmt: skip
    for layer in model:
        nn.init.constant_(layer.weight, 1.0)
    row = convlens.summary(model, (1, 1, 40, 40)).rows[-1]
    field, jump, start = row.receptive_field, row.jump, row.receptive_field_start
    assert field is not None and jump is not None and start is not None
    exact = 0
    for y in range(0, row.output_shape[2], 5):  # type: ignore[index]
        x = torch.rand(1, 1, 40, 40, requires_grad=True)
        model(x)[0, 0, y, y].backward()
        rows = (x.grad[0, 0].abs() > 0).any(dim=1).nonzero().flatten()
        low, high = start[0] + y * jump[0], start[0] + y * jump[0] + field[0] - 1
        assert low <= int(rows.min()) and int(rows.max()) <= high
        exact += (int(rows.min()), int(rows.max())) == (max(0, math.ceil(low)), min(39, math.floor(high)))
    assert exact > 0


def test_input_data_and_a_real_run() -> None:
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return self.conv(image * mask)

    data = (torch.randn(1, 3, 8, 8), torch.ones(1, 1, 8, 8))
    on_meta = convlens.summary(TwoInputs(), input_data=data)
    for_real = convlens.summary(TwoInputs(), input_data=data, device="cpu")
    assert on_meta.rows == for_real.rows and on_meta.rows[0].output_shape == (1, 4, 6, 6)
    assert convlens.summary(nn.Conv2d(3, 4, 3), (1, 3, 8, 8), device="cpu").rows[0].name == "Conv2d"
    with pytest.raises(TypeError, match="one of input_size= and input_data="):
        convlens.summary(TwoInputs())


def test_video_model() -> None:
    result = convlens.summary(torchvision.models.video.r3d_18(), (1, 3, 16, 112, 112))
    assert result.failure is None and result.total_params == 33_371_472
    last = [row for row in result.rows if row.type == "Conv3d"][-1]
    assert last.output_shape == (1, 512, 2, 7, 7) and last.jump == (8, 16, 16) and len(last.receptive_field) == 3


USER_MODEL = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 5)
        self.fc = nn.Linear(8 * 12 * 12, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.conv(x), 1))


def build():
    return Net()


instance = Net()
"""


def test_a_users_own_model_from_the_command_line(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "mynet.py").write_text(USER_MODEL)
    for name in ("Net", "build", "instance"):  # a class, a function returning a model, a model
        target = f"{tmp_path / 'mynet.py'}:{name}"
        assert main(["summary", target, "--input", "1,3,16,16"]) == 0
        assert "fc" in capsys.readouterr().out
    monkeypatch.syspath_prepend(str(tmp_path))
    csv_file = tmp_path / "out" / "rows.csv"
    assert main(["summary", "mynet:Net", "--input", "2,3,16,16", "--csv", str(csv_file), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| conv | Conv2d | 2x3x16x16 | 2x8x12x12 | 608 |" in out and "total: 12,138 parameters" in out
    table = list(csv.DictReader(csv_file.open()))
    assert [line["layer"] for line in table] == ["conv", "flatten", "fc"] and table[0]["kernel"] == "5x5"
    assert main(["summary", "mynet:Net", "--input", "1,3,20,20"]) == 1  # the Linear's in_features no longer fits
    assert "in_features=2048 fits this input" in capsys.readouterr().out
    for target, message in ((f"{tmp_path / 'mynet.py'}:Missing", "has no 'Missing'; models in it: Net, instance"),
                            (f"{tmp_path / 'none.py'}:Net", "no file"), ("no_such_package.models:Net", "cannot import"),
                            ("mynet:torch", "is a module, not an nn.Module")):  # fmt: skip
        assert main(["summary", target, "--input", "1,3,16,16"]) == 2
        assert message in capsys.readouterr().err
    sys.modules.pop("mynet", None)


def test_depth_and_json_from_the_command_line(tmp_path: Path, capsys) -> None:
    report_file = tmp_path / "r.json"
    assert main(["summary", "resnet18", "--input", "1,3,64,64", "--depth", "1", "--json", str(report_file)]) == 0
    report = json.loads(report_file.read_text())
    assert [row["name"] for row in report["rows"]][4:8] == ["layer1", "layer2", "layer3", "layer4"]
    assert report["rows"][4]["depth"] == 1 and report["activation_bytes"] > 0
    with pytest.raises(SystemExit) as exit_:
        main(["summary", "resnet18", "--input", "1,3,64,64", "--depth", "0"])
    assert exit_.value.code == 2 and "--depth: must be a positive integer" in capsys.readouterr().err
