"""auto's rule 9: a weight that changed since its previous call (``algos/weight_changes.py``) does not
go to an algorithm that would transform it again on every call where the output has few positions."""

from __future__ import annotations

import gc

import pytest
import torch
import torch.nn.functional as F

import convlens
from convlens import tune
from convlens.algos import auto, weight_changes
from convlens.algos.weight_changes import changed_since_last_call
from convlens.spec import ConvSpec


def test_a_weight_changes_when_its_version_moves_between_two_calls() -> None:
    w = torch.randn(4, 4, 3, 3)
    seen = [changed_since_last_call(w)]  # its first call: nothing to compare with
    seen.append(changed_since_last_call(w))
    w.mul_(2)  # an optimizer step
    seen.append(changed_since_last_call(w))
    seen.append(changed_since_last_call(w))
    w.data.mul_(2)  # a write through .data moves no version: taken for a fixed weight (speed only)
    seen.append(changed_since_last_call(w))
    assert seen == [False, False, True, False, False]


def test_a_freed_weight_is_forgotten_and_inference_tensors_never_change() -> None:
    w = torch.randn(4, 4, 3, 3)
    changed_since_last_call(w)
    key = id(w)
    assert key in weight_changes._seen
    del w
    gc.collect()
    assert key not in weight_changes._seen
    with torch.inference_mode():
        frozen = torch.randn(4, 4, 3, 3)
        assert not changed_since_last_call(frozen)
        frozen.add_(1)
        assert not changed_since_last_call(frozen)


@pytest.mark.parametrize(
    ("batch", "channels", "size", "stride", "fixed_pick", "changing_pick"),
    [
        (1, 256, 14, 1, "winograd", "im2col"),  # 196 positions
        (8, 256, 14, 1, "winograd", "winograd"),  # 1,568
        (1, 256, 28, 2, "gemm", "im2col"),  # 196
        (1, 128, 56, 2, "gemm", "gemm"),  # 784
        (1, 32, 8, 1, "direct", "direct"),  # no transform of the weight to make again
    ],
)
def test_rule_9_reads_the_weight_as_it_is_where_a_transform_made_every_call_does_not_pay(
    batch, channels, size, stride, fixed_pick, changing_pick, monkeypatch
) -> None:
    if not convlens.native.available():
        pytest.skip(convlens.native.reason())
    monkeypatch.setattr(tune, "stored", lambda: None)  # the built-in thresholds, not this machine's calibration
    monkeypatch.setattr(convlens.native, "instruction_set", lambda: "AVX-512")  # rule 6's depth of 4608
    x, w = torch.empty(batch, channels, size, size), torch.empty(channels, channels, 3, 3)
    spec = ConvSpec.from_args(x, w, None, stride, 1)
    fixed, changing = auto.rule(spec), auto.rule(spec, weight_changes=True)
    assert (fixed.algorithm.name, changing.algorithm.name) == (fixed_pick, changing_pick)
    if changing_pick != fixed_pick:
        assert "changed since its previous call" in changing.reason and fixed_pick in changing.reason
    explained = convlens.explain_choice(x, w, None, stride, 1, weight_changes=True)
    assert explained.algorithm == changing_pick and "weight changing between calls" in explained.settings


def test_conv2d_follows_the_weight_through_a_training_step(monkeypatch) -> None:
    """With gradients recorded and an optimizer step between two forwards, the second call runs rule
    9's im2col, a call with the weight unchanged the fixed rule's pick again; the outputs and
    gradients are PyTorch's throughout."""
    if not convlens.native.available():
        pytest.skip(convlens.native.reason())
    monkeypatch.setattr(tune, "stored", lambda: None)
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(1, 256, 14, 14, generator=generator, requires_grad=True)
    w = torch.nn.Parameter(torch.randn(256, 256, 3, 3, generator=generator) / 48)
    ran = []
    real = convlens.algos.resolve

    def spy(*args):  # the forward's resolve passes the weight's history (the backward's own ones do not)
        if len(args) == 4:
            ran.append(real(*args).name)
        return real(*args)

    monkeypatch.setattr(convlens.algos, "resolve", spy)
    optimizer = torch.optim.SGD([w], lr=0.1)
    for _ in range(3):
        out = convlens.conv2d(x, w, padding=1)
        expected_out = F.conv2d(x, w, padding=1)
        torch.testing.assert_close(out, expected_out, rtol=1e-4, atol=1e-4)
        optimizer.zero_grad()
        out.square().mean().backward()
        optimizer.step()
    convlens.conv2d(x, w, padding=1)  # after the last step
    convlens.conv2d(x, w, padding=1)  # no step since the last call
    assert ran == ["winograd", "im2col", "im2col", "im2col", "winograd"]
