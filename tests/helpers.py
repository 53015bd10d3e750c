"""One harness for every algorithm: random valid configurations and PyTorch's answer for them."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import convlens
from convlens.spec import same_padding

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
LAYOUTS = ("contiguous", "channels_last", "strided", "transposed")


def reference_conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """PyTorch's answer, computed the way nn.Conv2d does: F.pad for the non-zero modes, then
    F.conv2d, with the bias added after it (see ``conv2d_bias_after``)."""
    if padding_mode == "zeros":
        return conv2d_bias_after(x, w, b, stride, padding, dilation, groups)
    k_h, k_w = w.shape[-2:]
    d_h, d_w = (dilation, dilation) if isinstance(dilation, int) else dilation
    if padding == "same":
        top, bottom, left, right = same_padding((k_h, k_w), (d_h, d_w))
    elif padding == "valid":
        top = bottom = left = right = 0
    else:
        p_h, p_w = (padding, padding) if isinstance(padding, int) else padding
        top, bottom, left, right = p_h, p_h, p_w, p_w
    padded = F.pad(x, (left, right, top, bottom), mode=padding_mode)
    return conv2d_bias_after(padded, w, b, stride, 0, dilation, groups)


def conv2d_bias_after(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, *options) -> torch.Tensor:
    """F.conv2d, with the bias added to its result instead of by its kernel: the same values and
    layout. PyTorch 2.14.1's CPU kernel crashes the process (segmentation fault) on some
    channels-last inputs when it adds the bias itself. Seen from a property test: input (3, 6, 7, 1)
    and weight (6, 2, 2, 1), both channels-last, stride (2, 3), padding (0, 2), dilation 3, groups
    3, float32, with a bias; the same call without the bias runs, as does dilation 1, width 2, or
    NCHW tensors."""
    out = F.conv2d(x, w, None, *options)
    if b is None or out.shape[-3] == 0:  # no input channels: PyTorch returns no output channels, bias or not
        return out
    return out + b.view(-1, 1, 1)


def assert_same_layout(ours: torch.Tensor, theirs: torch.Tensor, context: object = "") -> None:
    """Output memory format as PyTorch's: channels-last in, channels-last out. (An output with no
    elements has no observable layout; PyTorch's "Empty" backend just copies the input's strides.)"""
    if ours.numel() == 0:
        return
    for layout in (torch.contiguous_format, torch.channels_last):
        assert ours.is_contiguous(memory_format=layout) == theirs.is_contiguous(memory_format=layout), context


def in_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as ``t`` in another memory layout (channels_last, strided view, transposed view)."""
    if layout == "channels_last" and t.dim() == 4:
        return t.contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        wide = torch.zeros((*t.shape[:-1], 2 * t.shape[-1]), dtype=t.dtype)
        wide[..., ::2] = t
        return wide[..., ::2]
    if layout == "transposed":
        return t.transpose(-1, -2).contiguous().transpose(-1, -2)
    return t


@dataclass
class Case:
    """A valid conv2d configuration; ``tensors(dtype)`` makes seeded inputs for it."""

    batch: int
    in_channels: int
    out_channels: int
    size: tuple[int, int]
    kernel: tuple[int, int]
    options: dict = field(default_factory=dict)
    bias: bool = True
    batched: bool = True
    layout: str = "contiguous"
    seed: int = 0

    def tensors(self, dtype=torch.float64, requires_grad=False):
        generator = torch.Generator().manual_seed(self.seed)
        groups = self.options.get("groups", 1)
        shape = (self.batch, self.in_channels, *self.size) if self.batched else (self.in_channels, *self.size)
        x = torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)
        w = torch.randn(
            (self.out_channels, self.in_channels // groups, *self.kernel), generator=generator, dtype=torch.float64
        ).to(dtype)
        b = torch.randn(self.out_channels, generator=generator, dtype=torch.float64).to(dtype) if self.bias else None
        x = in_layout(x, self.layout)
        w = in_layout(w, self.layout if self.layout != "strided" else "contiguous")
        if requires_grad:
            x = x.detach().requires_grad_()
            w = w.detach().requires_grad_()
            b = b.detach().requires_grad_() if b is not None else None
        return x, w, b

    def __repr__(self) -> str:
        return (
            f"Case(N={self.batch}{'' if self.batched else ' unbatched'}, C_in={self.in_channels}, "
            f"C_out={self.out_channels}, size={self.size}, kernel={self.kernel}, options={self.options}, "
            f"bias={self.bias}, layout={self.layout}, seed={self.seed})"
        )


def _min_size(kernel: int, dilation: int, pads: tuple[int, int], mode: str) -> int:
    span = dilation * (kernel - 1) + 1
    smallest = max(1, span - pads[0] - pads[1])
    if mode == "reflect":
        smallest = max(smallest, max(pads) + 1)
    if mode == "circular":
        smallest = max(smallest, max(pads))
    return smallest


KERNELS = st.integers(1, 4)
STRIDES = st.integers(1, 3)
DILATIONS = st.integers(1, 3)
MODES = st.sampled_from(PADDING_MODES)


@st.composite
def conv_cases(
    draw,
    kernels=KERNELS,
    strides=STRIDES,
    dilations=DILATIONS,
    max_channels_per_group: int = 3,
    modes=MODES,
    allow_same: bool = True,
    max_groups: int = 3,
    max_batch: int = 3,
    extra_size: int = 7,
    groups=None,
    in_per_group=None,
    out_per_group=None,
) -> Case:
    """A random valid configuration over every conv2d option. ``groups``, ``in_per_group`` and
    ``out_per_group`` (strategies) replace the default draws of 1..max_groups groups and
    1..max_channels_per_group channels per group."""
    channels_per_group = st.integers(1, max_channels_per_group)
    groups = draw(st.integers(1, max_groups) if groups is None else groups)
    in_channels = groups * draw(channels_per_group if in_per_group is None else in_per_group)
    out_channels = groups * draw(channels_per_group if out_per_group is None else out_per_group)
    kernel = (draw(kernels), draw(kernels))
    stride = (draw(strides), draw(strides))
    dilation = (draw(dilations), draw(dilations))
    mode = draw(modes)
    padding_kind = draw(st.sampled_from(["int", "pair", "valid", "same"] if allow_same else ["int", "pair", "valid"]))
    if padding_kind == "same":
        stride = (1, 1)
        padding = "same"
        top, bottom, left, right = same_padding(kernel, dilation)
    elif padding_kind == "valid":
        padding = "valid"
        top = bottom = left = right = 0
    elif padding_kind == "int":
        padding = draw(st.integers(0, 3))
        top = bottom = left = right = padding
    else:
        padding = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
        top = bottom = padding[0]
        left = right = padding[1]
    min_h = _min_size(kernel[0], dilation[0], (top, bottom), mode)
    min_w = _min_size(kernel[1], dilation[1], (left, right), mode)
    size = (draw(st.integers(min_h, min_h + extra_size)), draw(st.integers(min_w, min_w + extra_size)))
    options = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups, "padding_mode": mode}
    # Mix the ways a user writes the same option: an int instead of an equal pair.
    for name in ("stride", "dilation"):
        if options[name][0] == options[name][1] and draw(st.booleans()):
            options[name] = options[name][0]
    return Case(
        batch=draw(st.integers(0, max_batch)),
        in_channels=in_channels,
        out_channels=out_channels,
        size=size,
        kernel=kernel,
        options=options,
        bias=draw(st.booleans()),
        batched=draw(st.booleans()),
        layout=draw(st.sampled_from(LAYOUTS)),
        seed=draw(st.integers(0, 2**16)),
    )


def cases_for(algorithm: str, max_channels_per_group: int = 3, max_groups: int = 3) -> st.SearchStrategy[Case]:
    """Random configurations that ``algorithm`` supports (``algos.get(algorithm).supports``), every
    other option as random as in ``conv_cases``: padding (int, pair, 'valid', 'same') and its mode,
    layout, batch (empty and unbatched too), bias, sizes.

    winograd   3x3 kernels, stride 1 or 2 (the same on both axes), dilation 1; any groups and channels
    banded     depthwise with one filter per channel (groups == C_in == C_out >= 2), stride 1
    depthwise  groups == C_in >= 2, 1..max_channels_per_group filters per channel
    the rest   every configuration (``conv_cases``)
    """
    options = {"max_channels_per_group": max_channels_per_group, "max_groups": max_groups}
    if algorithm == "winograd":
        return st.one_of(
            conv_cases(kernels=st.just(3), strides=st.just(1), dilations=st.just(1), **options),
            conv_cases(kernels=st.just(3), strides=st.just(2), dilations=st.just(1), allow_same=False, **options),
        )
    one = st.just(1)
    if algorithm == "banded":
        return conv_cases(strides=one, groups=st.integers(2, max(2, max_groups)), in_per_group=one, out_per_group=one)
    if algorithm == "depthwise":
        return conv_cases(groups=st.integers(2, max(2, max_groups)), in_per_group=one, **options)
    return conv_cases(**options)


def tolerances(dtype: torch.dtype) -> dict:
    """float64: tight; float32: torch.testing's defaults; half types: loose, as PyTorch's own tests."""
    return {
        torch.float64: {"rtol": 1e-12, "atol": 1e-12},
        torch.float32: {"rtol": 1.3e-6, "atol": 1e-5},
        torch.bfloat16: {"rtol": 2e-2, "atol": 5e-2},
        torch.float16: {"rtol": 2e-3, "atol": 1e-2},
    }[dtype]


def small_cases(**kwargs):
    """Configurations small enough for gradcheck (few hundred input elements at most)."""
    return conv_cases(
        kernels=st.integers(1, 3),
        dilations=st.integers(1, 2),
        max_channels_per_group=2,
        max_groups=2,
        max_batch=2,
        extra_size=3,
        **kwargs,
    )


def outcome(function, *args, **kwargs):
    """(result, None) or (None, the exception raised): what a call did, warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return function(*args, **kwargs), None
        except Exception as error:
            return None, error


@contextmanager
def winograd_tiles_of(precision: str) -> Iterator[None]:
    """``precision`` set, and at "high" Winograd F(4x4) used whatever the tile count (the rule in
    ``winograd.tile_size`` would give the small test inputs F(2x2), leaving F(4x4) untested)."""
    from convlens.algos.winograd import plan

    with convlens.settings(precision=precision), mock.patch.object(plan, "MIN_TILES", 0):
        yield


@contextmanager
def phases_made(module: object) -> Iterator[list[int]]:
    """The bytes of every stride-phases copy (phases.stride_phases) that ``module`` makes inside the
    block, in order: what a forward really takes, for the tests of its ``buffer_bytes``."""
    made: list[int] = []
    original = module.stride_phases

    def recording(*args):
        phases = original(*args)
        made.append(phases.values.numel() * phases.values.element_size())
        return phases

    with mock.patch.object(module, "stride_phases", recording):
        yield made


@dataclass
class Allocation:
    """A tensor a call created (new storage, not a view): the op that made it, its shape and bytes,
    which earlier allocations (indices into the list) the op read, and the storage's address."""

    op: str
    shape: tuple[int, ...]
    nbytes: int
    reads: tuple[int, ...]
    address: int


class _AllocationRecorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.made: list[Allocation] = []
        self.owner: dict[int, int] = {}  # storage address -> index in made, for ``reads``

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        inputs = {t.untyped_storage().data_ptr() for t in tensors}
        reads = tuple(sorted(self.owner[address] for address in inputs if address in self.owner))
        for t in tree_flatten(result)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            address, nbytes = t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()
            if nbytes == 0 or address in inputs:
                continue  # a view, an in-place or out= result: no new memory
            self.owner[address] = len(self.made)  # (an address freed and reused belongs to the new tensor)
            self.made.append(Allocation(func.overloadpacket.__name__, tuple(t.shape), nbytes, reads, address))
        return result


@contextmanager
def allocations() -> Iterator[list[Allocation]]:
    """Every tensor the PyTorch operations inside the block allocate, in order: the bytes of the
    storage each really got, measured, not predicted. Views, in-place and ``out=`` results share
    an input's storage and are not counted; temporaries freed inside the block are."""
    with _AllocationRecorder() as recorder:
        yield recorder.made


def fake_cifar10(root: Path, images: int = 12) -> np.ndarray:
    """A small data set in CIFAR-10's on-disk format (pickled batches of uint8 rows)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = np.random.default_rng(0).integers(0, 256, (images, 3072), dtype=np.uint8)
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({"data": data, "labels": [i % 10 for i in range(images)]}, handle)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]},
                    handle)  # fmt: skip
    return data
