"""Settings: set for the process, or for a block with ``convlens.settings``; bad values refused when set."""

from __future__ import annotations

import pytest
import torch

import convlens
from convlens.algos import auto


def current() -> tuple[str, int, bool]:
    return convlens.get_precision(), convlens.get_workspace_limit(), convlens.get_autotune()


def test_settings_hold_inside_the_block_and_are_restored_after() -> None:
    before = current()
    with convlens.settings(precision="high", workspace_limit=1 << 20, autotune=True):
        assert current() == ("high", 1 << 20, True)
    assert current() == before


def test_settings_are_restored_when_the_block_raises() -> None:
    before = current()
    with pytest.raises(KeyError), convlens.settings(precision="high", workspace_limit=12345):
        assert current()[:2] == ("high", 12345)
        raise KeyError("inside")
    assert current() == before


def test_none_leaves_a_setting_as_it_is() -> None:
    with convlens.settings(precision="high"), convlens.settings(workspace_limit=4096):
        assert current()[:2] == ("high", 4096)


@pytest.mark.parametrize(
    ("values", "error", "message"),
    [
        ({"precision": "medium"}, ValueError, "precision must be one of"),
        ({"workspace_limit": 0}, ValueError, "workspace_limit must be positive, got workspace_limit=0"),
        ({"workspace_limit": 1.5}, TypeError, "workspace_limit must be an int number of bytes, got float"),
        ({"autotune": 1}, TypeError, "autotune must be a bool, got int"),
    ],
)
def test_a_bad_value_is_refused_before_anything_changes(values: dict, error: type, message: str) -> None:
    before = current()
    good = {"precision": "high", "workspace_limit": 1 << 20, "autotune": True}
    with pytest.raises(error, match=message) as raised, convlens.settings(**(good | values)):
        pass
    assert isinstance(raised.value, convlens.ConvlensError) and isinstance(raised.value, RuntimeError)
    assert current() == before  # the good values in the same call were not applied either


def test_autotune_in_a_block_times_once_and_the_rule_is_back_after() -> None:
    auto.clear_cache()
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 4, 3, 3)
    spec = convlens.ConvSpec.from_args(x, w)
    with convlens.settings(autotune=True):
        assert auto.choose(spec).reason.startswith("timed once:")
    assert not auto.choose(spec).reason.startswith("timed once:")
    auto.clear_cache()


def test_a_layer_refuses_a_bad_algorithm_when_it_is_set() -> None:
    layer = convlens.nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match="algorithm must be one of") as raised:
        layer.algorithm = "winograd2"
    assert isinstance(raised.value, RuntimeError)
    with pytest.raises(TypeError, match="algorithm must be a str"):
        layer.algorithm = None  # type: ignore[assignment]
    assert layer.algorithm == "auto"  # unchanged
    layer.algorithm = "direct"
    assert "algorithm='direct'" in repr(layer)


def test_a_workspace_below_a_useful_size_is_accepted_with_a_warning() -> None:
    with pytest.warns(UserWarning, match=r"workspace_limit=4096 bytes is below 1 MiB: im2col then works a few"):
        convlens.conv2d(torch.randn(1, 2, 8, 8), torch.randn(2, 2, 3, 3), workspace_limit=4096)
    with pytest.warns(UserWarning, match=r"limit_bytes=1 bytes is below 1 MiB"), convlens.settings():
        convlens.set_workspace_limit(1)
