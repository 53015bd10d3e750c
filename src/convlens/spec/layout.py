"""Memory layout: whether a tensor is channels-last, by PyTorch's own rule."""

from __future__ import annotations

import torch


def prefers_channels_last(tensor: torch.Tensor) -> bool:
    """True when a 4-D tensor's strides say channels-last, by PyTorch's own rule
    (``suggest_memory_format``): walking C, W, H, N the strides never decrease, with the
    ambiguous cases (size-0 dimensions, C of stride 0, N of the same stride as C) read as NCHW.
    A sliced channels-last tensor is still channels-last; a plainly contiguous one is not.
    """
    if tensor.dim() != 4:
        return False
    sizes, strides = tensor.shape, tensor.stride()
    if strides[1] == 0:
        return False
    smallest = 0
    for dim in (1, 3, 2, 0):
        if sizes[dim] == 0 or strides[dim] < smallest:
            return False
        if dim == 0 and smallest == strides[1]:
            return False
        smallest = strides[dim] * (sizes[dim] if sizes[dim] > 1 else 1)
    return True
