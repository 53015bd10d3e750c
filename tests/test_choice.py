"""convlens.explain_choice: auto's choice for a call, as conv2d makes it, with its buffers."""

from __future__ import annotations

from unittest import mock

import torch

import convlens
from convlens import native
from convlens.algos import auto


def test_it_names_what_conv2d_runs_and_its_predicted_buffers() -> None:
    x, w = torch.randn(2, 8, 12, 12), torch.randn(8, 8, 3, 3)
    explained = convlens.explain_choice(x, w, padding=1)
    spec = convlens.ConvSpec.from_args(x, w, None, padding=1)
    chosen = convlens.algos.resolve("auto", spec)
    assert explained.algorithm == chosen.name
    assert explained.buffers == chosen.buffer_bytes(spec, convlens.get_workspace_limit())
    assert explained.workspace_bytes == sum(explained.buffers.values())
    assert set(explained.alternatives) == {a.name for a in convlens.algos.concrete()} - {chosen.name}
    assert isinstance(explained.alternatives["banded"], str)  # a dense layer: banded says why not
    text = str(explained)
    assert f"auto runs {chosen.name}" in text and explained.reason in text and "precision" in text


def test_a_small_layer_goes_to_the_compiled_kernel_and_says_so() -> None:
    x, w = torch.randn(1, 4, 8, 8), torch.randn(4, 4, 3, 3)
    explained = convlens.explain_choice(x, w, padding=1)
    if native.available():
        assert (explained.algorithm, explained.compiled, explained.workspace_bytes) == ("direct", True, 0)
        assert "a compiled kernel" in str(explained)
    else:
        assert explained.algorithm == "im2col" and not explained.compiled


def test_it_follows_the_settings_and_the_workspace_limit() -> None:
    x, w = torch.randn(8, 128, 28, 28, device="meta"), torch.randn(128, 128, 3, 3, device="meta")
    assert convlens.explain_choice(x, w, padding=1).algorithm == "winograd"
    # a workspace too small for FFT's buffers keeps a 7x7 layer off FFT, as conv2d's choice does
    big_x, big_w = torch.randn(8, 64, 56, 56, device="meta"), torch.randn(64, 64, 7, 7, device="meta")
    roomy = convlens.explain_choice(big_x, big_w, padding=3)
    tight = convlens.explain_choice(big_x, big_w, padding=3, workspace_limit=1024)
    assert roomy.algorithm == "fft" and tight.algorithm != "fft"
    with mock.patch.object(auto, "TINY_MACS", 0):
        assert convlens.explain_choice(torch.randn(1, 4, 8, 8), torch.randn(4, 4, 3, 3)).algorithm == "im2col"
