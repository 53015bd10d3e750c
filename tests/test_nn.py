"""convlens.nn.Conv2d is a drop-in torch.nn.Conv2d; convert() swaps it into real models."""

from __future__ import annotations

import copy

import pytest
import torch
import torchvision

import convlens
from convlens.nn import Conv2d, convert

CONFIGS = [
    dict(in_channels=3, out_channels=8, kernel_size=3),
    dict(in_channels=4, out_channels=6, kernel_size=(2, 3), stride=2, padding=(1, 0), dilation=(1, 2), groups=2),
    dict(in_channels=4, out_channels=4, kernel_size=4, padding="same", padding_mode="reflect", bias=False),
    dict(in_channels=6, out_channels=6, kernel_size=3, padding=1, groups=6, padding_mode="circular"),
    dict(in_channels=2, out_channels=3, kernel_size=5, padding="valid", padding_mode="replicate"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: repr(c))
def test_same_as_torch_module(config: dict) -> None:
    torch.manual_seed(0)
    theirs = torch.nn.Conv2d(**config)
    torch.manual_seed(0)
    ours = Conv2d(**config)
    assert isinstance(ours, torch.nn.Conv2d)
    assert repr(ours) == repr(theirs)  # extra_repr shows only non-defaults, and auto is the default
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():  # same initialisation from the same seed
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=0, atol=0)
    x = torch.randn(2, config["in_channels"], 11, 12)
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(ours(x[0]), theirs(x[0]))  # unbatched


def test_algorithm_in_repr_and_checked() -> None:
    assert "algorithm='direct'" in repr(Conv2d(1, 1, 3, algorithm="direct"))
    with pytest.raises(ValueError, match="algorithm must be one of"):
        Conv2d(1, 1, 3, algorithm="fastest")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        convert(torch.nn.Conv2d(1, 1, 3), algorithm="fastest")


def test_convert_keeps_weights_device_dtype_and_mode() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1)).double().eval()
    weights = [p for p in model.parameters()]
    converted = convert(model, algorithm="im2col")
    assert converted is model
    assert all(isinstance(model[i], Conv2d) and model[i].algorithm == "im2col" for i in (0, 2))
    assert all(a is b for a, b in zip(model.parameters(), weights))  # shared, so optimizers keep working
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert not model[0].training
    assert isinstance(convert(torch.nn.Conv2d(1, 1, 1)), Conv2d)  # a bare layer comes back converted


def test_convert_leaves_foreign_subclasses_alone() -> None:
    class Special(torch.nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2

    model = torch.nn.Sequential(Special(1, 1, 1))
    with pytest.warns(UserWarning, match=r"left 1 conv subclass layer\(s\) as they are .*: 0$"):
        convert(model)
    assert type(model[0]) is Special


def conv_count(model: torch.nn.Module) -> int:
    return sum(isinstance(m, Conv2d) for m in model.modules())


@pytest.mark.parametrize(
    ("name", "dtype", "tolerance"),
    [
        ("resnet18", torch.float64, {"rtol": 1e-9, "atol": 1e-9}),
        ("mobilenet_v3_small", torch.float64, {"rtol": 1e-9, "atol": 1e-9}),
        ("resnet18", torch.float32, {"rtol": 1e-3, "atol": 1e-4}),
        ("mobilenet_v3_small", torch.float32, {"rtol": 1e-3, "atol": 1e-4}),
    ],
)
def test_real_models_outputs_and_gradients_match(name: str, dtype: torch.dtype, tolerance: dict) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.get_model(name, weights=None, num_classes=10).to(dtype)
    model = convert(copy.deepcopy(reference))
    assert conv_count(model) == sum(type(m) is torch.nn.Conv2d for m in reference.modules()) > 0
    images = torch.randn(4, 3, 64, 64, dtype=dtype)
    labels = torch.tensor([0, 3, 5, 9])
    losses = []
    for net in (reference, model):
        torch.manual_seed(1)  # the same dropout masks in both (MobileNetV3's classifier has dropout)
        loss = torch.nn.functional.cross_entropy(net(images), labels)
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[1], losses[0], **tolerance)
    for (key, theirs), ours in zip(reference.named_parameters(), model.parameters()):
        torch.testing.assert_close(ours.grad, theirs.grad, **tolerance, msg=lambda m, key=key: f"{key}: {m}")


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_twenty_sgd_steps_track_pytorch(name: str) -> None:
    torch.manual_seed(0)
    reference = torchvision.models.get_model(name, weights=None, num_classes=10)
    model = convert(copy.deepcopy(reference))
    images = torch.randn(8, 3, 32, 32)
    labels = torch.arange(8) % 10
    histories = []
    for net in (reference, model):
        torch.manual_seed(1)  # the same dropout masks, step by step, in both runs
        optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        losses = []
        for _ in range(20):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(images), labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        histories.append(torch.tensor(losses))
    theirs, ours = histories
    assert theirs[-1] < theirs[0]  # it does learn
    torch.testing.assert_close(ours, theirs, rtol=2e-3, atol=2e-3)


# ---- torch.compile -------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compiles_with_no_graph_break(backend: str) -> None:
    torch._dynamo.reset()
    model = torch.nn.Sequential(
        Conv2d(3, 8, 3, padding="same", padding_mode="reflect"),
        torch.nn.ReLU(),
        Conv2d(8, 8, 3, stride=2, groups=8),
        Conv2d(8, 4, 1, algorithm="im2col"),
    )
    # 48x48: large enough that the first and last layers' input gradients are convolutions (autograd.py)
    x = torch.randn(2, 3, 48, 48, requires_grad=True)
    compiled = torch.compile(model, fullgraph=True, backend=backend)  # fullgraph: any graph break raises
    out = compiled(x)
    torch.testing.assert_close(out, model(x))
    out.sum().backward()
    # The compiled backward's gradients are PyTorch's: the same layers as torch.nn.Conv2d, eager, in
    # float64. Each gradient is a float32 sum over up to 2*48*48 positions, whose rounding grows with
    # the sum of the terms' sizes, not with the result's: within 1e-5 of the largest value (PyTorch's
    # own float32 gradients are off by up to 5e-6 of it; convlens's here by about 3e-7).
    reference = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding="same", padding_mode="reflect"),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, stride=2, groups=8),
        torch.nn.Conv2d(8, 4, 1),
    ).double()
    reference.load_state_dict(model.state_dict())
    x_ref = x.detach().double().requires_grad_()
    reference(x_ref).sum().backward()
    pairs = [("input", x.grad, x_ref.grad)]
    pairs += [
        (name, p.grad, q.grad) for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True)
    ]
    for name, ours, theirs in pairs:
        assert ours is not None, f"no gradient for {name}"
        tolerance = {"rtol": 1e-5, "atol": 1e-5 * max(1.0, theirs.abs().max().item())}
        torch.testing.assert_close(ours.double(), theirs, **tolerance, msg=lambda m, n=name: f"{n} gradient: {m}")


@pytest.mark.slow
def test_compiles_with_inductor() -> None:
    """The default backend end to end (C++ code generation; the slowest test in the suite)."""
    torch._dynamo.reset()

    def layer(x, w, b, w3):
        # im2col with the batch folded (stride 2: Inductor stores the padded input without its unused
        # last row) and Winograd (transform matrices, scratch buffers, tiles of an intermediate)
        strided = convlens.conv2d(x, w, b, stride=2, padding=1, groups=2, algorithm="im2col").relu()
        return strided, convlens.conv2d(strided, w3, padding=1, algorithm="winograd")

    x, w, b, w3 = torch.randn(2, 4, 12, 12), torch.randn(6, 2, 3, 3), torch.randn(6), torch.randn(6, 6, 3, 3)
    with torch.no_grad():
        compiled = torch.compile(layer, fullgraph=True)
        for ours, expected in zip(compiled(x, w, b, w3), layer(x, w, b, w3), strict=True):
            torch.testing.assert_close(ours, expected)
