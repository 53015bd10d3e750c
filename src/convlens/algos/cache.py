"""A cache of transformed weights (Winograd's U = G g G^T, FFT's weight spectra).

An entry is reused only if the weight tensor still holds exactly the values it was computed from
(``torch.equal`` against a saved copy, one read of the weight), so in-place updates of any kind,
``.data`` writes included, can never serve a stale transform. Bounded (least recently used out),
thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import torch


class TransformCache:
    """Transformed weights, recomputed whenever the weight's values change.

    An entry is reused only if the weight tensor still holds exactly the values it was computed
    from (``torch.equal`` against a saved copy), so in-place updates of any kind, ``.data`` writes
    included, can never serve a stale transform. Bounded (least recently used out), thread-safe.
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, weight: torch.Tensor, key: tuple, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if torch.compiler.is_compiling():  # traced graphs must not depend on a Python-side cache
            return compute()
        full_key = (id(weight), tuple(weight.shape), weight.dtype, weight.device, *key)
        with self._lock:
            entry = self._entries.get(full_key)
            if entry is not None and torch.equal(entry[0], weight):
                self._entries.move_to_end(full_key)
                self.hits += 1
                return entry[1]
        value = compute()
        with self._lock:
            self.misses += 1
            self._entries[full_key] = (weight.detach().clone(), value)
            self._entries.move_to_end(full_key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
