"""The registry of convolution algorithms, one module each.

Every algorithm computes the same thing, the cross-correlation of the input zero-padded by
``spec.padding`` (x_pad below)::

    out[n, o, y, x] = bias[o] + sum_{c, i, j} weight[o, c, i, j] * x_pad[n, c', y*s_h + i*d_h, x*s_w + j*d_w]

with c' = g(o) * C_in/G + c the c-th input channel of output channel o's group g(o).

and differs only in how. Every algorithm is an :class:`Algorithm` with the same members:

    supports(spec)                          None, or the reason it cannot run this configuration
    forward(x, weight, bias, spec, workspace) -> (N, C_out, H_out, W_out)
    buffer_bytes(spec, workspace)           {name: bytes} of every buffer beyond input, weight and output
    error_bound(spec)                       its float32 error against float64, as a multiple of PyTorch's own
    compiled(spec)                          whether a compiled kernel (src/convlens/native/) computes it
    checked_forward(...) -> (out, finite)   optional, for one that mixes values: the forward, and whether
                                            every output value is finite, without a pass of its own

The backward is shared by all of them (:mod:`convlens.autograd`). The zero padding is the
algorithm's to apply: most call :func:`convlens.unfold.zero_pad` first, and those that copy the
input anyway write the zeros in that copy (Winograd, and the stride phases of gemm and
depthwise). The other padding modes are applied before, with ``spec.prepadded()`` (no padding
left) handed on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from convlens.errors import ArgumentError, ArgumentTypeError
from convlens.spec import ConvSpec

Forward = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None", ConvSpec, int], torch.Tensor]
CheckedForward = Callable[
    [torch.Tensor, torch.Tensor, "torch.Tensor | None", ConvSpec, int], "tuple[torch.Tensor, bool]"
]
Supports = Callable[[ConvSpec], "str | None"]
BufferBytes = Callable[[ConvSpec, int], dict[str, int]]
ErrorBound = Callable[[ConvSpec], float]
Compiled = Callable[[ConvSpec], bool]


def never(spec: ConvSpec) -> bool:
    """``compiled`` of the algorithms made of torch ops only."""
    return False


EXACT_BOUND = 2.0  # the accuracy rule for exact methods: float32 error at most 2x PyTorch's own


@dataclass(frozen=True)
class Algorithm:
    """One way to compute a convolution: its name, a one-line summary, and its functions.

    ``buffer_bytes(spec, workspace)`` predicts from the shapes alone every buffer a forward takes
    beyond input, weight and output (kept caches and scratch included), within ``workspace``
    bytes per piece of work. ``error_bound(spec)`` is the documented accuracy: the largest float32 error against float64
    it may have, as a multiple of PyTorch's own float32 error on the same inputs (``convlens
    verify`` and the tests enforce it).
    """

    name: str
    summary: str
    forward: Forward
    supports: Supports
    buffer_bytes: BufferBytes
    error_bound: ErrorBound
    mixes_values: bool = False  # one input value feeds outputs far from it (a tile, an image): NaN/Inf spread
    ranks: tuple[int, ...] = (2,)  # spatial dimensions it runs (1-D convolutions run as 2-D ones, one row high)
    compiled: Compiled = never  # whether a compiled kernel computes this spec (given plain float32 CPU tensors)
    # forward that also says whether every output value is finite, seen as it writes them (auto's NaN/Inf guard)
    checked_forward: CheckedForward | None = None

    def extra_bytes(self, spec: ConvSpec, workspace: int) -> int:
        """All of ``buffer_bytes`` added up."""
        return sum(self.buffer_bytes(spec, workspace).values())

    def __repr__(self) -> str:
        return f"Algorithm({self.name!r})"


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16 and bfloat16 are computed in float32 and rounded once at the end, as PyTorch's
    kernels do; other dtypes are computed as they are."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def exact(spec: ConvSpec) -> float:
    """``error_bound`` of an exact algorithm: the same sums as PyTorch's, in another order."""
    return EXACT_BOUND


def always(spec: ConvSpec) -> str | None:
    """``supports`` for an algorithm that handles every valid configuration."""
    return None


def real_only(spec: ConvSpec) -> str | None:
    """The reason an algorithm built on real floating-point transforms (Winograd's, FFT's real
    spectra, banded's band matrices) refuses a complex or integer convolution, or None."""
    if not spec.dtype.is_floating_point:
        return (
            f"real floating-point tensors only (its transforms are real and fractional), got {spec.dtype}; "
            "the exact algorithms run it"
        )
    return None


_REGISTRY: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    _REGISTRY[algorithm.name] = algorithm
    return algorithm


def check_name(name: object) -> str:
    """``name`` if ``algorithm=`` accepts it ("auto" or a registered algorithm), else the error."""
    if not isinstance(name, str):
        raise ArgumentTypeError(f"algorithm must be a str, one of {names()}, got algorithm={name!r}")
    if name != "auto" and name not in _REGISTRY:
        raise ArgumentError(f"algorithm must be one of {names()}, got algorithm={name!r}")
    return name


def get(name: str) -> Algorithm:
    """The registered algorithm called ``name`` ("auto" is not one: it picks among them)."""
    if check_name(name) == "auto":
        raise ArgumentError(f"algorithm must be one of {names()[1:]} here, got algorithm='auto'")
    return _REGISTRY[name]


def names() -> tuple[str, ...]:
    """Every algorithm name ``algorithm=`` accepts, "auto" included."""
    return ("auto", *sorted(_REGISTRY))


def concrete() -> tuple[Algorithm, ...]:
    """Every registered algorithm except "auto", in name order."""
    return tuple(_REGISTRY[name] for name in sorted(_REGISTRY))


def resolve(name: object, spec: ConvSpec, workspace: int | None = None, weight_changes: bool = False) -> Algorithm:
    """The algorithm that will run ``spec``: the named one (if it supports it) or auto's choice
    (within ``workspace`` bytes, default the process-wide workspace limit; ``weight_changes``: the
    weight changed since its previous call, ``weight_changes.py``)."""
    checked = check_name(name)
    if checked == "auto":
        return choose(spec, workspace, weight_changes).algorithm  # imported at the end of this module
    algorithm = get(checked)
    check_rank(checked, spec.rank, spec)
    reason = algorithm.supports(spec)
    if reason is not None:
        raise ArgumentError(f"algorithm={name!r} cannot run this convolution ({spec.describe()}): {reason}")
    return algorithm


def check_rank(name: str, rank: int, what: str | ConvSpec = "this convolution") -> None:
    """Refuse ``algorithm=name`` for a convolution over ``rank`` spatial dimensions that it does not
    run (1-D runs as 2-D: every algorithm serves it). ``what``: the words for the convolution, or
    its spec (described only when refused: describing costs microseconds on every call)."""
    if name == "auto" or rank == 1 or rank in get(name).ranks:
        return
    if isinstance(what, ConvSpec):
        what = f"this convolution ({what.describe()})"
    names_here = ", ".join(repr(a.name) for a in concrete() if rank in a.ranks)
    raise ArgumentError(
        f"algorithm={name!r} cannot run {what}: it runs 2-D convolutions (and 1-D ones, as images one row "
        f"high); a {rank}-D convolution takes 'auto', {names_here}"
    )


def runs(name: str, spec: ConvSpec) -> bool:
    """Whether ``algorithm=name`` runs ``spec`` (a 1-D one as the one-row image it runs as)."""
    if name == "auto":
        return True
    return (spec.rank == 1 or spec.rank in get(name).ranks) and get(name).supports(spec.as_2d()) is None


def _load_builtin() -> None:
    from convlens.algos import banded, depthwise, direct, fft, gemm, im2col, winograd  # noqa: F401  (modules register themselves)


_load_builtin()
# auto's choice, imported once here (it reads this registry), not inside resolve: an import statement
# there cost 0.8 us of every call
from convlens.algos.auto import choose  # noqa: E402
