"""Scratch buffers: reused across calls, per thread, and never handed back to the caller."""

from __future__ import annotations

import threading

import torch

import convlens
from convlens.algos import winograd
from convlens.algos.scratch import Scratch

CPU = torch.device("cpu")


def test_a_buffer_is_reused_and_grows_when_needed() -> None:
    scratch = Scratch()
    small = scratch.take("tiles", (2, 3), torch.float32, CPU)
    again = scratch.take("tiles", (3, 2), torch.float32, CPU)
    assert again.shape == (3, 2) and again.data_ptr() == small.data_ptr()  # same memory, any shape that fits
    other = scratch.take("v", (2, 3), torch.float32, CPU)
    assert other.data_ptr() != small.data_ptr()  # names do not share
    as_double = scratch.take("tiles", (2, 3), torch.float64, CPU)
    assert as_double.dtype == torch.float64 and as_double.data_ptr() != small.data_ptr()
    large = scratch.take("tiles", (100, 100), torch.float32, CPU)
    assert large.shape == (100, 100)
    assert scratch.bytes() == 100 * 100 * 4 + 2 * 3 * 4 + 2 * 3 * 8
    scratch.clear()
    assert scratch.bytes() == 0


def test_each_thread_has_its_own_buffers() -> None:
    scratch = Scratch()
    mine = scratch.take("tiles", (4,), torch.float32, CPU)
    seen = []
    thread = threading.Thread(target=lambda: seen.append(scratch.take("tiles", (4,), torch.float32, CPU).data_ptr()))
    thread.start()
    thread.join()
    assert seen[0] != mine.data_ptr()
    assert scratch.take("tiles", (4,), torch.float32, CPU).data_ptr() == mine.data_ptr()


def test_winograd_results_do_not_live_in_scratch() -> None:
    generator = torch.Generator().manual_seed(0)
    w = torch.randn(8, 8, 3, 3, generator=generator, dtype=torch.float64)
    b = torch.randn(8, generator=generator, dtype=torch.float64)
    first_input, second_input = torch.randn(2, 2, 8, 9, 9, generator=generator, dtype=torch.float64)
    first = convlens.conv2d(first_input, w, b, padding=1, algorithm="winograd")
    kept = first.clone()
    convlens.conv2d(second_input, w, b, padding=1, algorithm="winograd")
    torch.testing.assert_close(first, kept, rtol=0, atol=0)  # a later call did not overwrite the earlier result
    scratch_storages = {buffer.untyped_storage().data_ptr() for buffer in winograd.SCRATCH.buffers.values()}
    assert scratch_storages and first.untyped_storage().data_ptr() not in scratch_storages
