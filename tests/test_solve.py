"""convlens.solve and `convlens solve`: every combination it lists gives the wanted size in PyTorch,
and it lists every one PyTorch accepts within its bounds, simplest first."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convlens
from convlens.cli import main
from convlens.solve import Solution


def pytorch_size(solution: Solution, in_size: int) -> int | None:
    """The output length PyTorch's own conv1d / conv_transpose1d gives on meta tensors, or None where it refuses."""
    x = torch.empty(1, 1, in_size, device="meta")
    w = torch.empty(1, 1, solution.kernel_size, device="meta")
    try:
        if solution.transposed:
            out = F.conv_transpose1d(x, w, None, solution.stride, solution.padding, solution.output_padding, 1,
                                     solution.dilation)  # fmt: skip
        else:
            out = F.conv1d(x, w, None, solution.stride, solution.padding, solution.dilation)
    except RuntimeError:
        return None
    return out.shape[-1]


@settings(max_examples=60, deadline=None)
@given(in_size=st.integers(1, 20), out_size=st.integers(1, 40), kernel=st.integers(1, 5))
def test_solve_lists_exactly_what_pytorch_gives(in_size: int, out_size: int, kernel: int) -> None:
    found = convlens.solve(in_size, out_size, kernel, max_stride=3, max_dilation=2)
    assert all(pytorch_size(solution, in_size) == out_size for solution in found)
    candidates = [
        Solution(transposed, kernel, stride, padding, dilation, extra)
        for transposed in (False, True)
        for stride in range(1, 4)
        for dilation in range(1, 3)
        for padding in range(dilation * (kernel - 1) + 1)
        for extra in (range(max(stride, dilation)) if transposed else range(1))
    ]
    assert {c for c in candidates if pytorch_size(c, in_size) == out_size} == set(found)
    assert [s.simplicity for s in found] == sorted(s.simplicity for s in found)


def test_the_simplest_answers_are_the_familiar_layers() -> None:
    assert convlens.solve(64, 128, 4)[0] == Solution(True, 4, 2, 1)  # DCGAN's upsampling
    assert convlens.solve(32, 16, 3, transposed=False)[0] == Solution(False, 3, 2, 1)  # ResNet's downsampling
    assert convlens.solve(56, 56, 3, transposed=False)[0] == Solution(False, 3, 1, 1)  # "same"
    assert all(not s.transposed for s in convlens.solve(56, 56, 3, transposed=False))
    with pytest.raises(ValueError, match="out_size must be positive"):
        convlens.solve(8, 0, 3)


def test_convlens_solve_from_the_command_line(capsys) -> None:
    assert main(["solve", "--in", "64", "--out", "128", "--kernel", "4"]) == 0
    out = capsys.readouterr().out
    first = next(line for line in out.splitlines() if "nn.Conv" in line)
    assert "nn.ConvTranspose2d(C_in, C_out, kernel_size=4, stride=2, padding=1)" in first
    assert "= (64 - 1)*2 - 2*1 + 1*(4 - 1) + 0 + 1 = 128" in out
    assert main(["solve", "--in", "4", "--out", "100", "--kernel", "3", "--ordinary"]) == 2
    err = capsys.readouterr().err
    assert "no ordinary convolution with a 3 kernel takes 4 to 100" in err and len(err.strip().splitlines()) == 1
