import pytest
import torch

import convlens
from convlens import algos
from convlens.algos.auto import choose
from convlens.spec import ConvSpec


def test_algorithms_lists_auto_first_and_every_registered_one() -> None:
    names = convlens.algorithms()
    assert names[0] == "auto"
    assert {"direct", "im2col"} <= set(names)
    assert [a.name for a in algos.concrete()] == sorted(names[1:])


def test_unknown_algorithm_names_the_choices() -> None:
    x, w = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 3, 3)
    with pytest.raises(ValueError, match=r"algorithm must be one of .*'direct'.*got algorithm='fastest'"):
        convlens.conv2d(x, w, algorithm="fastest")
    with pytest.raises(TypeError, match="algorithm must be a str"):
        convlens.conv2d(x, w, algorithm=None)


def test_auto_gives_a_reason() -> None:
    spec = ConvSpec.from_args(torch.randn(1, 4, 8, 8), torch.randn(4, 1, 3, 3), groups=4)
    choice = choose(spec)
    assert choice.algorithm.name in convlens.algorithms()
    assert choice.reason
