"""A cache of transformed weights (Winograd's U = G g G^T, FFT's weight spectra).

An entry is reused only if the weight tensor still holds exactly the values it was computed from
(``torch.equal`` against a saved copy, one read of the weight), so in-place updates of any kind,
``.data`` writes included, can never serve a stale transform. An entry lives no longer than its
weight (a weak reference drops it when the weight is freed: the backward's turned weights are
new tensors on every call). Bounded (least recently used out), thread-safe.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

import torch


class TransformCache:
    """Transformed weights, recomputed whenever the weight's values change.

    An entry is reused only if the weight tensor still holds exactly the values it was computed
    from (``torch.equal`` against a saved copy), so in-place updates of any kind, ``.data`` writes
    included, can never serve a stale transform. An entry is dropped when its weight is freed.
    Bounded (least recently used out), thread-safe.
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
                if torch.equal(entry[1], weight):
                    self._entries.move_to_end(full_key)
                    self.hits += 1
                    return entry[2]
                stale = self._entries.pop(full_key)  # same weight, new values: reuse its buffers
        if stale is None:
            alive = weakref.ref(weight, lambda _, full_key=full_key: self._forget(full_key))
            saved = weight.detach().clone()
            value = compute(None)
        else:
            alive, saved, old_value = stale
            saved.copy_(weight.detach())
            value = compute(old_value)
        with self._lock:
            self.misses += 1
            self._entries[full_key] = (alive, saved, value)
            self._entries.move_to_end(full_key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
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
