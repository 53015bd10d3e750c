"""convlens's compiled core: small C kernels (one file each, opening with the math and shapes of
its Python sibling), built by the install (setup.py, optional) and called through ctypes on
tensors' data pointers. The Python algorithms stay the reference and the fallback.

    available()            whether the kernels were built and load
    reason()               why not, when they do not ("" when they do)
    instruction_set()      the widest loops they run on this CPU (cpu.c): AVX-512, AVX2 or baseline
    direct_forward         direct.c: float32, NCHW (any groups) or channels-last (depthwise), zero padding
    im2col_columns         im2col.c: im2col's columns of a piece of an NCHW input, zero padding written in
    winograd_input         winograd.c: V = B^T d B for a piece of tiles, from x in any layout
    winograd_output        winograd.c: out = A^T M A + bias for a piece of tiles, into any layout
    winograd_fused         winograd.c and winograd_products.c: the whole layer, band by band, V and M
                           kept in the cache between the passes and the products
    gemm_forward           gemm.c: the tap-wise GEMM band by band, the input read in place
    winograd_products      winograd_products.c alone: M = V @ U per tile position (benchmarks/products.py)
    panels                 the layout of the products' right-hand matrices (products.h)
    same_bytes             compare.c: whether two contiguous tensors hold the same bytes (the weight caches)

Every kernel takes the number of threads from torch (``torch.get_num_threads()``) and runs its
shares on torch's own OpenMP team (parallel.c finds the runtime torch loaded; ``threads()`` says
which), or, where torch has none, on threads it starts per call; none loads a second OpenMP runtime.
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
_threads = "none"
_instruction_set = ""  # instruction_set(): the library's widest loops on this CPU, asked when it loads
_OPENMP_RUNTIMES = {1: "libgomp.so.1", 2: "libiomp5.so", 3: "libomp.so"}  # parallel.c's convlens_use_openmp
_warned = False


def _load() -> ctypes.CDLL | None:
    global _library, _reason, _instruction_set
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
    library.convlens_direct_forward.argtypes = [pointer] * 4 + [ctypes.POINTER(ConvSizes), int64, int64]
    library.convlens_direct_forward.restype = ctypes.c_int
    library.convlens_winograd_input.argtypes = [pointer] + [int64] * 16 + [pointer] + [int64] * 3
    library.convlens_winograd_output.argtypes = [pointer, int64, int64, pointer, pointer, *[int64] * 14]
    library.convlens_direct_pick.argtypes = [ctypes.POINTER(ConvSizes)]
    library.convlens_direct_pick.restype = ctypes.c_int
    library.convlens_winograd_tables.argtypes = [int64, int64, pointer, pointer]
    for name in ("winograd_input", "winograd_output", "winograd_tables"):
        getattr(library, f"convlens_{name}").restype = ctypes.c_int
    # x, sizes, x's strides, u, bias, out, out's strides, m, band_rows, images, wide, threads, nonfinite
    sizes = ctypes.POINTER(ConvSizes)
    library.convlens_winograd_fused.argtypes = [
        pointer,
        sizes,
        *[int64] * 4,
        *[pointer] * 3,
        *[int64] * 9,
        ctypes.POINTER(ctypes.c_int),
    ]
    library.convlens_winograd_fused.restype = ctypes.c_int
    library.convlens_gemm_forward.argtypes = [pointer, sizes, pointer, pointer, pointer, int64, int64, int64, int64]
    library.convlens_gemm_forward.restype = ctypes.c_int
    library.convlens_gemm_weight_rows.argtypes = [pointer, int64, int64, int64, pointer, int64]
    library.convlens_gemm_weight_rows.restype = ctypes.c_int
    library.convlens_gemm_phase_rows.argtypes = [pointer, int64, int64, int64, *[pointer] * 4, int64]
    library.convlens_gemm_phase_rows.restype = ctypes.c_int
    library.convlens_winograd_weight.argtypes = [pointer, int64, int64, int64, pointer, int64, pointer, int64]
    library.convlens_winograd_weight.restype = ctypes.c_int
    library.convlens_winograd_products.argtypes = [pointer, int64, pointer, pointer, *[int64] * 5, ctypes.c_int]
    library.convlens_winograd_products.restype = None
    library.convlens_same_bytes.argtypes = [pointer, pointer, int64, int64]
    library.convlens_same_bytes.restype = ctypes.c_int
    library.convlens_im2col.argtypes = [pointer, ctypes.POINTER(ConvSizes), *[int64] * 5, pointer, int64]
    library.convlens_im2col.restype = ctypes.c_int
    library.convlens_use_openmp.argtypes = [ctypes.c_int]
    library.convlens_use_openmp.restype = ctypes.c_int
    library.convlens_vector_bits.restype = ctypes.c_int
    _instruction_set = {512: "AVX-512", 256: "AVX2"}.get(library.convlens_vector_bits(), "baseline")
    _library, _reason = library, ""
    use_openmp(True)
    return library


def use_openmp(join: bool) -> None:
    """Whether the kernels run their shares on torch's OpenMP team (the default where torch has
    one: ``torch.backends.openmp.is_available()``) or on threads started per call (tests compare
    the two)."""
    global _threads
    library = _load()
    assert library is not None
    found = library.convlens_use_openmp(int(join and torch.backends.openmp.is_available()))
    _threads = f"torch's OpenMP team ({_OPENMP_RUNTIMES[found]})" if found else "threads started per call (POSIX)"


def threads() -> str:
    """Whose threads the kernels' shares run on: torch's OpenMP team, or threads of their own."""
    _load()
    return _threads


def instruction_set() -> str:
    """The widest loops of the kernels that run on this CPU: "AVX-512", "AVX2" (with FMA) or
    "baseline" (portable C); "" where the kernels are not built. Asked of the library when it loads
    (auto's rule 6 reads it, also while torch.compile traces, which cannot trace a call into it)."""
    _load()
    return _instruction_set


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


# torch's tests of a tensor that vmap batches (as scratch.vmapped), looked up once: plain_cpu_float32
# runs on every call of a small layer
_functorch_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_legacy_batched = torch._C._functorch.is_legacy_batchedtensor


def plain_cpu_float32(*tensors: torch.Tensor | None) -> bool:
    """Whether every tensor given is a float32 CPU tensor that the kernels can read through its
    data pointer: not traced by torch.compile, not batched by vmap."""
    if torch.compiler.is_compiling():
        return False
    for tensor in tensors:  # a loop, not all(...): this runs on every call of a small layer
        if tensor is not None and (
            tensor.dtype != torch.float32 or not tensor.is_cpu or _functorch_wrapped(tensor) or _legacy_batched(tensor)
        ):
            return False
    return True


MAX_CHANNELS_LAST_TAPS = 1024  # direct.c's MAX_CHANNELS_LAST_TAPS: the most kernel taps of a channels-last layer


def float32_2d(spec: ConvSpec) -> bool:
    """What every kernel needs of a spec: a 2-D float32 convolution on the CPU."""
    return spec.rank == 2 and spec.dtype == torch.float32 and spec.device.type == "cpu"


def float32_2d_on_cpu(spec: ConvSpec) -> bool:
    """``float32_2d``, remembered per spec, and the kernels built."""
    return _load() is not None and spec.remembered("float32 2-D CPU", lambda: float32_2d(spec))


def takes(spec: ConvSpec) -> bool:
    """Whether direct.c takes a convolution of this spec (given plain tensors): 2-D, float32 on the
    CPU, the input NCHW, or channels-last for a depthwise layer with one filter per channel and at
    most MAX_CHANNELS_LAST_TAPS kernel taps."""
    return _load() is not None and spec.remembered(  # one memo, not float32_2d_on_cpu's and a second
        "direct.c takes",
        lambda: (
            float32_2d(spec)
            and (
                not spec.channels_last
                or (spec.is_depthwise and spec.out_per_group == 1 and spec.taps <= MAX_CHANNELS_LAST_TAPS)
            )
        ),
    )


def runs_direct(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> bool:
    """Whether direct_forward takes this call: ``takes(spec)``, the input dense in its layout (NCHW,
    or channels-last where ``takes`` allows it), and float32 CPU tensors that nothing traces or
    transforms."""
    dense = x.is_contiguous(memory_format=torch.channels_last) if spec.channels_last else x.is_contiguous()
    return takes(spec) and dense and plain_cpu_float32(x, weight, bias)


class ConvSizes(ctypes.Structure):
    """sizes.h's ``Sizes``: one convolution's sizes, filled once per spec (see ``conv_sizes``)."""

    _fields_ = [
        (name, ctypes.c_int64)
        for name in (
            "batch", "in_channels", "out_channels", "groups", "height", "width", "kernel_h", "kernel_w",
            "stride_h", "stride_w", "pad_top", "pad_left", "dilation_h", "dilation_w", "out_h", "out_w",
            "channels_last",
        )
    ]  # fmt: skip


def conv_sizes(spec: ConvSpec) -> ConvSizes:
    """The ConvSizes of ``spec``, made once per spec object (``ConvSpec.remembered``), so that a
    repeated call converts no Python ints for ctypes."""
    return spec.remembered("native sizes", lambda: ConvSizes(
        spec.batch, spec.in_channels, spec.out_channels, spec.groups, *spec.in_size, *spec.kernel_size,
        *spec.stride, spec.padding[0], spec.padding[2], *spec.dilation, *spec.out_size, int(spec.channels_last),
    ))  # fmt: skip


DIRECT_LOOPS = {"any": 0, "planes": 1, "blocks": 2, "row vectors": 3}  # direct.c's ANY_LOOP, PLANE_LOOP, ...


def direct_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec, loop: str = "any"
) -> torch.Tensor:
    """direct.c: x (N, C_in, H, W) float32, dense NCHW or channels-last (see ``takes``), weight
    (C_out, C_in/G, k_h, k_w), bias (C_out) or None -> (N, C_out, H_out, W_out) in x's layout, with
    the zero padding of ``spec``. ``loop``: "any" (the kernel picks), or "planes", "blocks" or "row
    vectors" to ask for one of its loops (tests and benchmarks: every loop gives the same bits)."""
    library = _load()
    assert library is not None
    layout = torch.channels_last if spec.channels_last else torch.contiguous_format
    out = torch.empty(size=spec.output_shape, dtype=x.dtype, memory_format=layout)  # size=: 0.5 us less than positional
    weight = weight.contiguous()  # held while the kernel reads it: a copy's pointer alone would dangle
    bias = None if bias is None else bias.contiguous()
    status = library.convlens_direct_forward(x.data_ptr(), weight.data_ptr(), None if bias is None else bias.data_ptr(),
                                             out.data_ptr(), conv_sizes(spec), DIRECT_LOOPS[loop],
                                             torch.get_num_threads())  # fmt: skip
    # status 1: a thread could not start, and its share ran on the calling thread: the output is whole
    if status == 2:
        raise MemoryError("convlens's direct kernel could not allocate its column ranges or weight blocks")
    if status == 3:
        raise ValueError(f"direct.c does not take this layer ({spec.describe()}) with loop={loop!r}: see native.takes")
    return out


def gathers_columns(x: torch.Tensor, spec: ConvSpec) -> bool:
    """Whether im2col.c gathers this call's columns: a 2-D float32 NCHW convolution on the CPU, the
    input contiguous, a plain tensor that nothing traces or transforms."""
    return float32_2d_on_cpu(spec) and not spec.channels_last and x.is_contiguous() and plain_cpu_float32(x)


def im2col_columns(
    x: torch.Tensor,
    spec: ConvSpec,
    images: tuple[int, int],
    rows: tuple[int, int],
    batch_last: bool,
    cols: torch.Tensor,
) -> torch.Tensor:
    """im2col.c: the columns of output rows ``rows`` = (y0, y1) of images ``images`` = (n0, n1) of
    the unpadded input x (N, C_in, H, W), the zero padding of ``spec`` written in, into ``cols``
    (contiguous, as many elements): (n1 - n0, C_in*k_h*k_w, (y1 - y0)*W_out), or with
    ``batch_last`` (C_in*k_h*k_w, (n1 - n0)*(y1 - y0)*W_out). Returns ``cols``."""
    library = _load()
    assert library is not None
    (n0, n1), (y0, y1) = images, rows
    status = library.convlens_im2col(x.data_ptr(), conv_sizes(spec), n0, n1 - n0, y0, y1, int(batch_last),
                                     cols.data_ptr(), torch.get_num_threads())  # fmt: skip
    if status == 2:
        raise MemoryError("convlens's im2col kernel could not allocate its column ranges")
    return cols


def direct_loop(spec: ConvSpec) -> str:
    """The loop direct.c picks for a layer it takes (``takes``): "planes", "blocks" or "row vectors"."""
    library = _load()
    assert library is not None and takes(spec)
    return {value: name for name, value in DIRECT_LOOPS.items()}[library.convlens_direct_pick(conv_sizes(spec))]


MAX_BAND_WIDTH = 512  # winograd.c's MAX_BAND_W: the widest tiled output row its passes take


def runs_winograd_spec(spec: ConvSpec) -> bool:
    """Whether winograd.c's passes take a convolution of this spec (given plain tensors): 2-D,
    float32 on the CPU, tiles whose input columns span at most MAX_BAND_WIDTH (the Python side
    checks the rest: 3x3, stride 1 or 2, dilation 1)."""
    return float32_2d_on_cpu(spec) and max(spec.stride) * (spec.out_size[1] + 3) <= MAX_BAND_WIDTH  # tiles_w * step


def runs_winograd(x: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> bool:
    """``runs_winograd_spec``, with x and bias plain float32 CPU tensors."""
    return runs_winograd_spec(spec) and plain_cpu_float32(x, bias)


Piece = tuple[int, int, int, int, int]  # (first image, images, first tile row, tile rows, tiles per row)


def winograd_input(x: torch.Tensor, spec: ConvSpec, m: int, piece: Piece, v: torch.Tensor) -> None:
    """winograd.c: V = B^T d B for the tiles of ``piece`` of x (N, C_in, H, W) in any layout, with
    the zero padding of ``spec``, at its stride (1, or 2 for m = 2), into v (t*t, P, C_in), each
    v[xi] contiguous (the stride between them may be larger: see ``padded_rows``). The tiles step by
    the larger of the two strides (an axis with one output has its stride clamped to 1 in the spec:
    ``winograd.plan.tiling_stride``)."""
    library = _load()
    assert library is not None and v.stride(2) == 1
    status = library.convlens_winograd_input(
        x.data_ptr(), *x.stride(), spec.in_channels, *spec.in_size, spec.padding[0], spec.padding[2], m,
        max(spec.stride), *piece, v.data_ptr(), *v.stride()[:2], torch.get_num_threads(),
    )  # fmt: skip
    check_winograd_status(status, m, piece)


def winograd_output(products: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor, m: int, piece: Piece) -> None:
    """winograd.c: out = A^T M A + bias for the tiles of ``piece``, from products M (t*t, P, C_out),
    each M[xi] contiguous, into out (N, C_out, H_out, W_out) in any layout, cropped to it."""
    library = _load()
    assert library is not None and products.stride(2) == 1
    bias = None if bias is None else bias.contiguous()
    status = library.convlens_winograd_output(
        products.data_ptr(), *products.stride()[:2], None if bias is None else bias.data_ptr(), out.data_ptr(),
        *out.stride(), out.shape[1], *out.shape[2:], m, *piece, torch.get_num_threads(),
    )  # fmt: skip
    check_winograd_status(status, m, piece)


def winograd_fused(
    x: torch.Tensor,
    u: torch.Tensor,
    bias: torch.Tensor | None,
    out: torch.Tensor,
    spec: ConvSpec,
    m: int,
    band_rows: int,
    wide: bool = True,
    images: int = 1,
) -> bool:
    """winograd.c's fused pass over the whole layer: out = A^T [U * (B^T d B)] A + bias for every
    tile, in pieces of ``band_rows`` tile rows of one image or (band_rows = all of them) of
    ``images`` whole images; x and out in any layout, u (t*t, C_in, C_out) in ``panels`` of 64
    output channels, contiguous. Returns whether every output value is finite, seen by the output
    pass as it writes them (no NaN, no infinity; a value cropped away counts too).
    ``wide=False``: the 8-lane products even where AVX-512 is there (the same bits; the tests
    compare them)."""
    library = _load()
    assert library is not None and u.is_contiguous()
    bias = None if bias is None else bias.contiguous()
    nonfinite = ctypes.c_int(0)
    status = library.convlens_winograd_fused(
        x.data_ptr(), conv_sizes(spec), *x.stride(), u.data_ptr(), None if bias is None else bias.data_ptr(),
        out.data_ptr(), *out.stride(), m, band_rows, images, int(wide), torch.get_num_threads(),
        ctypes.byref(nonfinite),
    )  # fmt: skip
    if status == 3:
        raise MemoryError("convlens's fused Winograd could not allocate a band's V and M")
    if status == 4:
        raise ValueError(f"winograd.c's fused pass takes C_out a multiple of 16, got {spec.out_channels}")
    tiles_w = -(-spec.out_size[1] // m)
    check_winograd_status(status, m, (0, spec.batch, 0, band_rows, tiles_w))
    return nonfinite.value == 0


PANEL = 64  # products.h's PANEL: output channels per panel


def panels(u: torch.Tensor) -> torch.Tensor:
    """(B, R, C_out) laid out as products.h reads it: for each of the B matrices, panels of PANEL
    output channels (the last one C_out % PANEL wide), each (R, width) contiguous, one after the
    other: (B, R * C_out). A panel's rows are contiguous, so that a block of them stays in L1."""
    b, _, c_out = u.shape
    return torch.cat([u[:, :, k0 : k0 + PANEL].reshape(b, -1) for k0 in range(0, c_out, PANEL)], dim=1)


def kept_or_new(out: torch.Tensor | None, shape: tuple[int, int]) -> torch.Tensor:
    """``out`` where it is a contiguous buffer of ``shape`` (a weight cache's stale entry, written
    over in place), else a new float32 one."""
    if out is None or out.shape != shape or not out.is_contiguous():
        return torch.empty(shape, dtype=torch.float32)
    return out


def gemm_weight_rows(weight: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """gemm.c's convlens_gemm_weight_rows: a one-group weight (C_out, C_in, k_h, k_w), float32,
    contiguous, CPU, as gemm.c reads it: its taps then channels as rows, (k_h*k_w*C_in, C_out), in
    ``panels``, (1, k_h*k_w*C_in*C_out). ``out``: a buffer of that shape to write into (the weight
    cache's stale entry)."""
    library = _load()
    assert library is not None and weight.is_contiguous() and weight.dtype == torch.float32
    filters, channels = weight.shape[:2]
    taps = weight.shape[2] * weight.shape[3]
    out = kept_or_new(out, (1, taps * channels * filters))
    status = library.convlens_gemm_weight_rows(weight.data_ptr(), filters, channels, taps, out.data_ptr(),
                                               torch.get_num_threads())  # fmt: skip
    if status == 2:
        raise MemoryError("convlens's gemm weight rows could not allocate a block")
    return out


def gemm_phase_rows(
    weight: torch.Tensor, places: torch.Tensor, size: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """gemm.c's convlens_gemm_phase_rows: the weight rows of every stride phase's convolution in the
    input gradient (``autograd/by_phases.py``), one after the other, (1, size), from a one-group
    weight (C_out, C_in, k_h, k_w), float32, contiguous, CPU. ``places`` (3, k_h*k_w) int64: for each
    tap, where its phase's rows start (-1: no phase reads it), its place among the phase's taps and
    the phase's tap count. ``out``: a buffer of that shape to write into (the weight cache's stale
    entry)."""
    library = _load()
    assert library is not None and weight.is_contiguous() and weight.dtype == torch.float32
    taps = weight.shape[2] * weight.shape[3]
    assert places.dtype == torch.int64 and places.is_contiguous() and places.shape == (3, taps)
    filters, channels = weight.shape[:2]
    out = kept_or_new(out, (1, size))
    first, slot, count = (row.data_ptr() for row in places)
    library.convlens_gemm_phase_rows(weight.data_ptr(), filters, channels, taps, first, slot, count,
                                     out.data_ptr(), torch.get_num_threads())  # fmt: skip
    return out


def winograd_weight(
    weight: torch.Tensor, g: torch.Tensor, turned: bool = False, out: torch.Tensor | None = None
) -> torch.Tensor:
    """winograd_weight.c: U = G g G^T for every filter of a one-group 3x3 ``weight`` (float32,
    contiguous, CPU), straight in ``panels``: (t*t, C_in*C_out) from (C_out, C_in, 3, 3), G (t, 3).
    ``turned``: U of the weight turned 180 degrees with its channels swapped (the convolution of
    the input gradient, by_convolution.py's ``turned_weight``), (t*t, C_out*C_in). ``out``: a
    buffer of that shape to write into (the weight cache's stale entry)."""
    library = _load()
    assert library is not None and weight.is_contiguous() and weight.dtype == torch.float32
    filters, channels = (weight.shape[1], weight.shape[0]) if turned else (weight.shape[0], weight.shape[1])
    g = g.to(torch.float32).contiguous()
    t = g.shape[0]
    out = kept_or_new(out, (t * t, channels * filters))
    status = library.convlens_winograd_weight(weight.data_ptr(), filters, channels, int(turned), g.data_ptr(), t,
                                              out.data_ptr(), torch.get_num_threads())  # fmt: skip
    if status == 2:
        raise MemoryError("convlens's Winograd weight transform could not allocate its taps' buffer")
    if status == 3:
        raise ValueError(f"winograd_weight.c takes G with 1 to 6 rows, got {t}")
    return out


def winograd_products(v: torch.Tensor, u_panels: torch.Tensor, m: torch.Tensor, wide: bool = True) -> None:
    """winograd_products.c on its own: m[xi] = v[xi] @ u[xi] for v (B, P, C), u (B, C, K) given in
    ``panels`` (B, C*K), m (B, P, K), all contiguous float32, K a multiple of 16; on the calling
    thread. For benchmarks/products.py, which times the register block against torch.bmm."""
    library = _load()
    assert library is not None and v.is_contiguous() and u_panels.is_contiguous() and m.is_contiguous()
    b, p, c = v.shape
    k = m.shape[2]
    assert k % 16 == 0 and u_panels.shape == (b, c * k) and m.shape[:2] == (b, p)
    library.convlens_winograd_products(v.data_ptr(), p * c, u_panels.data_ptr(), m.data_ptr(), p * k, b, p, c, k, wide)


def same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool | None:
    """compare.c: whether two contiguous CPU tensors of the same size in bytes hold the same bytes,
    compared on torch's threads; None where it does not apply (no kernels, another device, not
    contiguous, traced), for the caller to compare with torch.equal."""
    library = _load()
    if library is None or torch.compiler.is_compiling() or not (a.is_cpu and b.is_cpu):
        return None
    if any(
        torch._C._functorch.is_functorch_wrapped_tensor(t) or torch._C._functorch.is_legacy_batchedtensor(t)
        for t in (a, b)
    ):
        return None
    if not (a.is_contiguous() and b.is_contiguous()) or a.numel() * a.element_size() != b.numel() * b.element_size():
        return None
    size = a.numel() * a.element_size()
    return bool(library.convlens_same_bytes(a.data_ptr(), b.data_ptr(), size, torch.get_num_threads()))


def runs_gemm_spec(spec: ConvSpec) -> bool:
    """Whether gemm.c takes a convolution of this spec (given plain contiguous NCHW tensors): 2-D
    float32 on the CPU, one group, C_out a multiple of 16, zero padding."""
    return (
        float32_2d_on_cpu(spec)
        and spec.groups == 1
        and spec.out_channels % 16 == 0
        and spec.padding_mode == "zeros"
        and not spec.channels_last
    )


def runs_gemm(x: torch.Tensor, bias: torch.Tensor | None, spec: ConvSpec) -> bool:
    """``runs_gemm_spec``, with x a plain contiguous float32 CPU tensor."""
    return runs_gemm_spec(spec) and plain_cpu_float32(x, bias) and x.is_contiguous()


def gemm_forward(
    x: torch.Tensor,
    w_rows: torch.Tensor,
    bias: torch.Tensor | None,
    spec: ConvSpec,
    pieces: tuple[int, int],
    wide: bool = True,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """gemm.c: the layer in pieces of (``band_rows`` output rows, ``images`` images: more than one
    only where a band is a whole image); x (N, C_in, H, W) contiguous, w_rows (k_h*k_w*C_in, C_out)
    in ``panels``. ``wide=False``: the 8-lane products even where AVX-512 is there (the same bits;
    the tests compare them). Returns out (N, C_out, H_out, W_out): ``out`` where given (contiguous,
    of that shape), else a new tensor."""
    library = _load()
    assert library is not None and x.is_contiguous() and w_rows.is_contiguous()
    bias = None if bias is None else bias.contiguous()
    if out is None:
        out = torch.empty(spec.output_shape, dtype=torch.float32)
    assert out.shape == spec.output_shape and out.is_contiguous() and out.dtype == torch.float32
    status = library.convlens_gemm_forward(
        x.data_ptr(), conv_sizes(spec), w_rows.data_ptr(), None if bias is None else bias.data_ptr(), out.data_ptr(),
        *pieces, int(wide), torch.get_num_threads(),
    )  # fmt: skip
    if status == 2:
        raise MemoryError("convlens's gemm kernel could not allocate a band's buffers")
    if status == 3:
        raise ValueError(f"gemm.c does not take this layer ({spec.describe()}): see native.runs_gemm")
    return out


def check_winograd_status(status: int, m: int, piece: Piece) -> None:
    """winograd.c returns 2 (nothing computed) for a tile size other than 2 or 4 (2 at stride 2), or
    tiles whose input row is wider than MAX_BAND_WIDTH; 1 means a thread could not start and its share
    ran on the caller."""
    if status == 2:
        raise ValueError(f"winograd.c takes m = 2 or 4 (m = 2 at stride 2) and tiled rows up to {MAX_BAND_WIDTH} "
                         f"wide, got m={m}, {piece[4]} tiles per row")  # fmt: skip


def padded_rows(buffer: torch.Tensor, rows: int, shape: tuple[int, int]) -> torch.Tensor:
    """A (rows, *shape) view of ``buffer`` whose rows start 16 floats (a cache line) further apart
    than their size. V's and M's t*t rows are read and written together, one line from each; when
    a row's size is a multiple of 4 KiB (P*C*4 bytes with C a multiple of 16 and P of 64, as in most
    layers) every line of a tile falls in the same cache set and they evict each other."""
    size = shape[0] * shape[1]
    return buffer[: rows * (size + 16)].view(rows, size + 16)[:, :size].view(rows, *shape)


def winograd_tables(m: int, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """winograd.c's own B^T (t, t) and A^T (m, t) at a stride, for the tests to compare with
    transforms.py's."""
    library = _load()
    assert library is not None
    t = stride * (m - 1) + 3
    b_t, a_t = torch.empty(t, t), torch.empty(m, t)
    if library.convlens_winograd_tables(m, stride, b_t.data_ptr(), a_t.data_ptr()):
        raise ValueError(
            f"winograd.c has tables for m = 2 and 4 at stride 1, m = 2 at stride 2, got m={m}, stride={stride}"
        )
    return b_t, a_t


_load()  # at import: a first load while torch.compile traces would break its graph (a file system call)
