"""Scratch buffers kept between calls: an algorithm's intermediates without fresh allocations.

A large temporary freed at the end of every call is handed back to the operating system and
faulted in again, page by page, on the next call. Why keep them: that slowed Winograd markedly
on ResNet-50's 64-channel 56x56 layer; evidence: ``python benchmarks/winograd_pieces.py
[--fresh]`` (benchmarks/RESULTS.md). Libraries keep a workspace for this reason (cuDNN's
workspace, oneDNN's scratchpad); here each thread keeps one buffer per (name, dtype, device),
grown when a call needs more, reused by every later call.

Only intermediates that never leave the call may live here: a result handed back to the caller
must be its own tensor. Memory held: the largest piece seen, per buffer and thread; ``clear()``
gives it back.
"""

from __future__ import annotations

import math
import threading

import torch


def vmapped(*tensors: torch.Tensor) -> bool:
    """Whether any of ``tensors`` is batched under vmap: torch.func's, or the legacy one that
    ``gradcheck(check_batched_grad=True)`` runs a backward under. A batched value cannot be written
    into a kept buffer (or any tensor made without it), so callers take fresh, out-of-place ways.
    False while torch.compile traces (it cannot trace the test; a traced graph keeps no buffers)."""
    if torch.compiler.is_compiling():
        return False
    return any(
        torch._C._functorch.is_functorch_wrapped_tensor(tensor) or torch._C._functorch.is_legacy_batchedtensor(tensor)
        for tensor in tensors
    )


class Scratch(threading.local):
    """Named buffers of the calling thread, reused across calls."""

    def __init__(self) -> None:
        self.buffers: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """An uninitialised (shape) tensor in the named buffer; valid until the next take of that name."""
        if torch.compiler.is_compiling():  # a traced graph must not capture a buffer shared between calls
            return torch.empty(shape, dtype=dtype, device=device)
        numel = math.prod(shape)
        key = (name, dtype, device)
        buffer = self.buffers.get(key)
        if buffer is None or buffer.numel() < numel:
            buffer = self.buffers[key] = torch.empty(numel, dtype=dtype, device=device)
        return buffer[:numel].view(shape)

    def bytes(self) -> int:
        return sum(buffer.numel() * buffer.element_size() for buffer in self.buffers.values())

    def clear(self) -> None:
        self.buffers.clear()


class FreshScratch(Scratch):
    """Hands out a new tensor on every take: what an algorithm would cost without kept buffers
    (the benchmarks swap it in to measure that)."""

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, device=device)
