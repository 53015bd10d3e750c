"""Whether a weight changed since its previous convolution: auto's sign that a transform of it
(Winograd's U, gemm.c's weight rows, FFT's spectra) would be made again on every call, as in
training, where an optimizer step writes new values into every weight between two forwards.

The sign is the weight's version counter, which every in-place write through the tensor bumps
(an optimizer's ``add_``, ``mul_``, ``copy_``), against the one seen at its previous call::

    version seen at the previous call   this call's version   changed?
    (none: the weight's first call)     v                     no
    v                                   v                     no
    v                                   v + 1 (a step)        yes

A write through ``.data`` or NumPy does not bump it: auto then goes on as if the weight were
fixed. That costs speed, never correctness: the weight caches compare the weight's bits on every
call (``algos/cache.py``), so a stale transform is never used. A weight is remembered through a
weak reference, and forgotten when it is freed.
"""

from __future__ import annotations

import weakref

import torch

_seen: dict[int, tuple[weakref.ref, int]] = {}  # id(weight) -> (the weight, its version at its last call)


def changed_since_last_call(weight: torch.Tensor) -> bool:
    """Whether ``weight``'s version moved since its previous call (module docstring), recording this
    call's version. False for its first call, for inference tensors (no version counter) and while
    torch.compile traces (a traced graph keeps no state)."""
    if torch.compiler.is_compiling() or weight.is_inference():
        return False
    try:
        version = weight._version
    except RuntimeError:  # a tensor without a version counter (functorch's wrappers)
        return False
    key = id(weight)
    entry = _seen.get(key)
    if entry is not None and entry[0]() is weight:
        if entry[1] == version:
            return False
        _seen[key] = (entry[0], version)
        return True

    def forget(reference: weakref.ref, key: int = key) -> None:
        if key in _seen and _seen[key][0] is reference:
            del _seen[key]

    _seen[key] = (weakref.ref(weight, forget), version)
    return False
