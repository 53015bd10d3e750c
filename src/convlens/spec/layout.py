"""Memory layout: whether a tensor is channels-last, by PyTorch's own rule."""

from __future__ import annotations

import torch


def prefers_channels_last(tensor: torch.Tensor) -> bool:
    """True when a 4-D (or 5-D) tensor's strides say channels-last (channels-last-3d), by PyTorch's
    own rule (``suggest_memory_format``): walking C, then the spatial dimensions from the last, then
    N, the strides never decrease, with the ambiguous cases (size-0 dimensions, C of stride 0, N of
    the same stride as C) read as contiguous. A sliced channels-last tensor is still channels-last;
    a plainly contiguous one is not.
    """
    if tensor.dim() not in (4, 5):
        return False
    sizes, strides = tensor.shape, tensor.stride()
    if strides[1] == 0:
        return False
    smallest = 0
    for dim in (1, *range(tensor.dim() - 1, 1, -1), 0):
        if sizes[dim] == 0 or strides[dim] < smallest:
            return False
        if dim == 0 and smallest == strides[1]:
            return False
        smallest = strides[dim] * (sizes[dim] if sizes[dim] > 1 else 1)
    return True


def channels_last_format(rank: int) -> torch.memory_format:
    """The channels-last memory format of a tensor with ``rank`` spatial dimensions (2 or 3)."""
    return torch.channels_last_3d if rank == 3 else torch.channels_last
