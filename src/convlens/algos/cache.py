"""A cache of transformed weights (Winograd's U = G g G^T, FFT's weight spectra).

An entry is reused only if the weight tensor still holds exactly the bits it was computed from
(compared with a saved copy, one read of the weight), so in-place updates of any kind, ``.data``
writes included, can never serve a stale transform. The version counter that autograd keeps is
not enough: a write through ``.data`` or through NumPy does not bump it. An entry lives no
longer than its weight (a weak reference drops it when the weight is freed: the backward's
turned weights are new tensors on every call). Bounded in entries and in bytes (the transforms
and their saved weight copies, ``convlens.set_cache_limit``): least recently used out; thread-safe.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

import torch

from convlens import native
from convlens.config import get_cache_limit


def memory_words(tensor: torch.Tensor) -> torch.Tensor | None:
    """The bytes of a dense tensor in memory order, seen as 64-bit words where their count and
    alignment allow (else narrower integers); None for a tensor with gaps or overlaps."""

    def descending_stride(dim: int) -> int:
        return -tensor.stride(dim)

    order = sorted(range(tensor.dim()), key=descending_stride)
    in_memory_order = tensor.permute(order)
    if not in_memory_order.is_contiguous():
        return None
    raw = in_memory_order.reshape(-1).view(torch.uint8)  # a view: contiguous
    for word in (torch.int64, torch.int32, torch.int16):
        if raw.numel() % word.itemsize == 0 and raw.storage_offset() % word.itemsize == 0:
            return raw.view(word)
    return raw


def same_bits(saved: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether ``weight`` holds exactly what ``saved``, its earlier copy, holds.

    Bits, not values, for a dense weight: -0.0 and 0.0 differ, and a NaN matches itself (the
    transform of the same bits is the same). A weight with gaps or overlaps in memory (a strided
    slice, an expanded tensor) is compared by value with ``torch.equal``.

    Why words: ``torch.equal`` on the float32 values runs well below the memory speed; evidence:
    the cache-check stage of ``python benchmarks/winograd_profile.py`` (benchmarks/RESULTS.md).
    Where the compiled core is built, the words are compared by compare.c on torch's threads:
    torch.equal compares on one, 1.1 ms for a 512x512x3x3 weight (a fifth of that layer's
    convolution at batch 8; benchmarks/RESULTS.md, fifteenth session)."""
    if saved.stride() == weight.stride():
        if weight.is_contiguous():  # the usual weight: compare.c reads both as bytes, no word views made
            same = native.same_bytes(saved, weight.detach())
            if same is not None:
                return same
        saved_words, weight_words = memory_words(saved), memory_words(weight.detach())
        if saved_words is not None and weight_words is not None:
            same = native.same_bytes(saved_words, weight_words)
            return torch.equal(saved_words, weight_words) if same is None else same
    return torch.equal(saved, weight)


def entry_bytes(entry: tuple[weakref.ref, torch.Tensor, torch.Tensor]) -> int:
    """Bytes an entry keeps: the transform and the saved copy of its weight."""
    _, saved, value = entry
    return saved.numel() * saved.element_size() + value.numel() * value.element_size()


class TransformCache:
    """Transformed weights, recomputed whenever the weight's values change.

    An entry is reused only if the weight tensor still holds exactly the bits it was computed
    from (``same_bits`` against a saved copy), so in-place updates of any kind, ``.data`` writes
    included, can never serve a stale transform. An entry is dropped when its weight is freed.
    Bounded in entries (``capacity``) and in bytes (``convlens.get_cache_limit()``, read on every
    insertion): least recently used out; a transform larger than the byte limit is returned but
    not kept. Thread-safe.
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        # key -> (weak reference to the weight, copy of its values, transformed weight)
        self._entries: OrderedDict[tuple, tuple[weakref.ref, torch.Tensor, torch.Tensor]] = OrderedDict()
        self._lock = threading.RLock()  # re-entrant: a weight freed while the lock is held calls _forget
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Bytes kept: every entry's transform and its saved copy of the weight."""
        with self._lock:
            return sum(entry_bytes(entry) for entry in self._entries.values())

    def get(
        self, weight: torch.Tensor, key: tuple, compute: Callable[[torch.Tensor | None], torch.Tensor]
    ) -> torch.Tensor:
        """The transform of ``weight``, from the cache or ``compute(buffer)``.

        When this weight's entry is stale (its values changed, as after an optimizer step), its
        buffers are rewritten in place: ``compute`` gets the old transform as ``buffer`` to write
        into (it may ignore it and return a new tensor), and the saved copy is updated. Fresh
        buffers of tens of MiB cost a page fault per 4 KiB page on every step otherwise (a
        512x512 F(4x4) Winograd transform: ``python benchmarks/winograd_transform.py``). Nothing
        outside the cache holds a transform between calls, so the rewrite is safe."""
        if torch.compiler.is_compiling():  # traced graphs must not depend on a Python-side cache
            return compute(None)
        full_key = (id(weight), tuple(weight.shape), weight.dtype, weight.device, *key)
        stale = None
        with self._lock:
            entry = self._entries.get(full_key)
            if entry is not None and entry[0]() is weight:
                if same_bits(entry[1], weight):
                    self._entries.move_to_end(full_key)
                    self.hits += 1
                    return entry[2]
                stale = self._entries.pop(full_key)  # same weight, new values: reuse its buffers
        if stale is None:

            def forget(_: weakref.ref[torch.Tensor], full_key: tuple = full_key) -> None:
                self._forget(full_key)

            alive = weakref.ref(weight, forget)
            saved = weight.detach().clone()
            value = compute(None)
        else:
            alive, saved, old_value = stale
            saved.copy_(weight.detach())
            value = compute(old_value)
        with self._lock:
            self.misses += 1
            limit = get_cache_limit()
            if entry_bytes((alive, saved, value)) > limit:
                return value  # larger than the whole cache may hold: used for this call, not kept
            self._entries[full_key] = (alive, saved, value)
            self._entries.move_to_end(full_key)
            kept = sum(entry_bytes(entry) for entry in self._entries.values())
            while len(self._entries) > self.capacity or kept > limit:
                _, dropped = self._entries.popitem(last=False)
                kept -= entry_bytes(dropped)
        return value

    def _forget(self, full_key: tuple) -> None:
        """Called when a weight is freed: drop its entry (unless a live weight has taken the key since)."""
        with self._lock:
            entry = self._entries.get(full_key)
            if entry is not None and entry[0]() is None:
                del self._entries[full_key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
