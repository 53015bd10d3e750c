"""convlens's compiled core: small C kernels (one file each, opening with the math and shapes of
its Python sibling), built by the install (setup.py, optional) and called through ctypes on
tensors' data pointers. The Python algorithms stay the reference and the fallback.

    available()            whether the kernels were built and load
    reason()               why not, when they do not ("" when they do)
    depthwise_forward      depthwise.c: float32, NCHW, multiplier 1, zero padding
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import warnings
from pathlib import Path

import torch

from convlens.spec import ConvSpec

_library: ctypes.CDLL | None = None
_reason = "not loaded yet"
_warned = False


def _load() -> ctypes.CDLL | None:
    global _library, _reason
    if _library is not None or _reason != "not loaded yet":
        return _library
    folder = Path(__file__).parent
    built = [folder / f"_kernels{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES]
    found = [path for path in built if path.is_file()]
    if not found:
        _reason = (f"no compiled kernels in {folder} (the install found no C compiler, or was not built from source: "
                   f"`pip install -e .` with gcc builds them)")  # fmt: skip
        return None
    try:
        library = ctypes.CDLL(str(found[0]))
    except OSError as error:
        _reason = f"cannot load {found[0].name}: {error}"
        return None
    int64, pointer = ctypes.c_int64, ctypes.c_void_p
    library.convlens_depthwise_forward.argtypes = [pointer] * 4 + [int64] * 15
    library.convlens_depthwise_forward.restype = ctypes.c_int
    _library, _reason = library, ""
    return library


def available() -> bool:
    """Whether the compiled kernels are there; says once why not."""
    global _warned
    library = _load()
    if library is None and not _warned:
        _warned = True
        warnings.warn(f"convlens runs its Python algorithms only: {_reason}", RuntimeWarning, stacklevel=2)
    return library is not None


def reason() -> str:
    _load()
    return _reason


def takes(spec: ConvSpec) -> bool:
    """Whether depthwise_forward takes a convolution of this spec (given plain tensors): a 2-D
    depthwise one with one filter per channel, float32 on the CPU, the input contiguous NCHW."""
    return (
        spec.rank == 2
        and spec.is_depthwise
        and spec.out_per_group == 1
        and spec.dtype == torch.float32
        and spec.device.type == "cpu"
        and not spec.channels_last
        and _load() is not None
    )


def runs_depthwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> bool:
    """Whether depthwise_forward takes this call: ``takes(spec)``, with float32 CPU tensors, the
    input contiguous NCHW, and nothing tracing or transforming the call."""
    from convlens.algos.scratch import vmapped

    tensors = (x, weight) if bias is None else (x, weight, bias)
    return (
        takes(spec)
        and all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors)
        and x.is_contiguous()
        and not torch.compiler.is_compiling()
        and not vmapped(*tensors)
    )


def depthwise_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> torch.Tensor:
    """depthwise.c: x (N, C, H, W) contiguous float32, weight (C, 1, k_h, k_w), bias (C) or None
    -> (N, C, H_out, W_out), with the zero padding of ``spec``."""
    library = _load()
    assert library is not None
    n, c = x.shape[:2]
    h_out, w_out = spec.out_size
    weight = weight.contiguous()
    bias = None if bias is None else bias.contiguous()
    out = x.new_empty((n, c, h_out, w_out))
    failed = library.convlens_depthwise_forward(
        x.data_ptr(), weight.data_ptr(), None if bias is None else bias.data_ptr(), out.data_ptr(),
        n, c, *spec.in_size, *spec.kernel_size, *spec.stride, spec.padding[0], spec.padding[2], *spec.dilation,
        h_out, w_out, torch.get_num_threads(),
    )  # fmt: skip
    if failed:
        raise RuntimeError("convlens's depthwise kernel could not start its threads")
    return out
