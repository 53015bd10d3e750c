"""convert() keeps what a real model hangs on its layers: hooks, weight_norm, spectral_norm, pruning,
and converts a model whole or not at all."""

from __future__ import annotations

import pytest
import torch
import torch.nn.utils.prune as prune
from torch.nn.utils import parametrize, spectral_norm, weight_norm

from convlens.nn import Conv2d, convert


def small_model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3))


def test_forward_hooks_and_pre_hooks_keep_firing() -> None:
    model = small_model()
    fired = []
    model[0].register_forward_pre_hook(lambda module, args: fired.append("pre"))
    model[0].register_forward_hook(lambda module, args, out: fired.append("post"))
    x = torch.randn(2, 3, 8, 8)
    expected = model(x)
    assert fired == ["pre", "post"]
    convert(model, algorithm="im2col")
    assert isinstance(model[0], Conv2d) and model[0].algorithm == "im2col"
    torch.testing.assert_close(model(x), expected)
    assert fired == ["pre", "post", "pre", "post"]


@pytest.mark.filterwarnings("ignore:.*weight_norm. is deprecated:FutureWarning")
@pytest.mark.parametrize("wrap", ["weight_norm", "spectral_norm", "prune"])
def test_reparametrized_weights_keep_working(wrap: str) -> None:
    def wrapped() -> torch.nn.Sequential:
        model = small_model()
        if wrap == "weight_norm":
            weight_norm(model[0])
        elif wrap == "spectral_norm":
            spectral_norm(model[0])
        else:
            prune.l1_unstructured(model[0], "weight", amount=0.5)
        return model.eval()  # spectral_norm's power iteration only runs in training

    model, reference = wrapped(), wrapped()  # the same seed: equal models (deepcopy refuses weight_norm)
    x = torch.randn(2, 3, 8, 8)
    convert(model, algorithm="direct")
    assert isinstance(model[0], Conv2d)
    torch.testing.assert_close(model(x), reference(x))
    # gradients reach the underlying parameters (weight_v / weight_orig), as in PyTorch
    model(x).sum().backward()
    reference(x).sum().backward()
    for (name, ours), (_, theirs) in zip(model.named_parameters(), reference.named_parameters(), strict=True):
        scale = theirs.grad.abs().max().item()  # float32 sums in another order: relative to the largest
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-6 * scale, msg=name)
    if wrap == "prune":
        assert (model[0].weight == 0).sum() == model[0].weight.numel() // 2  # the mask is still applied


def test_a_parametrized_layer_is_left_alone_with_a_warning_naming_it() -> None:
    model = small_model()
    parametrize.register_parametrization(model[2], "weight", torch.nn.Identity())
    with pytest.warns(UserWarning, match=r"left 1 conv subclass layer\(s\) .*: 2$"):
        convert(model)
    assert isinstance(model[0], Conv2d)  # the rest is converted
    assert not isinstance(model[2], Conv2d) and parametrize.is_parametrized(model[2])


def test_a_bad_algorithm_leaves_the_model_untouched() -> None:
    model = small_model()
    with pytest.raises(ValueError, match="algorithm must be one of"):
        convert(model, algorithm="fastest")
    assert not any(isinstance(m, Conv2d) for m in model.modules())
