"""Winograd's transforms F(m, 3): derived from interpolation points, pure math, shared by the
forward and the weight gradient.

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015). In one dimension, m
outputs of a 3-tap correlation ``y_i = sum_k g_k d_{i+k}`` from a tile of t = m + 2 inputs are::

    y = A^T [ (G g) * (B^T d) ]        (G g), (B^T d): t values; * is elementwise

t multiplications instead of 3m. In two dimensions the transforms apply on both sides,
``Y = A^T [ (G g G^T) * (B^T d B) ] A``, so an m x m output tile costs t^2 multiplications instead
of 9 m^2: 16 vs 36 for F(2x2, 3x3) (2.25x fewer), 36 vs 144 for F(4x4, 3x3) (4x fewer).

The matrices come from the interpolation points (Toom-Cook): A^T and G by the formulas below,
B^T by solving the identity above exactly. Points: F(2, 3): 0, 1, -1; F(4, 3): 0, 1, -1, 1/2,
-1/2 (half-integer points keep the entries small, which is what keeps F(4, 3) accurate), and the
point at infinity for both.

At stride 2 (``STRIDED``: F(2, 3) at stride 2) two outputs ``y_i = sum_k g_k d_{2i+k}`` read t = 5
inputs, one tile every 4. Their even taps (g0, g2) over the even inputs (d0, d2, d4) are a 2-tap
correlation at stride 1, F(2, 2) (3 products: (d0 - d2) g0, d2 (g0 + g2), (d4 - d2) g2); the odd
tap g1 over the odd inputs (d1, d3) is 2 products. 5 multiplications instead of 6, in two
dimensions 25 instead of 36 (1.44x fewer), every entry of the matrices 0 or +-1 (polyphase
Winograd).

    transforms(m)      (A^T, G, B^T) in float64: (m, t), (t, 3), (t, t)
    STRIDED            the same for F(2, 3) at stride 2: (2, 5), (5, 3), (5, 5)
    matrices(m, s)     transforms(m) for stride s = 1, STRIDED for m = 2, s = 2
    KRON[m]            kron(B^T, B^T) (t*t, t*t) and kron(A^T, A^T) (m*m, t*t): the 2-D transforms as matrices
    KRON_G[m]          kron(G, G) (t*t, 9): the weight transform
    kron(m, s), kron_g(m, s)   the same at stride s
    transform_weight   U = G g G^T for every filter: (C_out, C_in/G, 3, 3) -> (G, t*t, C_in/G, C_out/G)
"""

from __future__ import annotations

from functools import cache

import torch

from convlens import native
from convlens.algos.cache import TransformCache

R = 3  # kernel size handled
POINTS = {2: (0.0, 1.0, -1.0), 4: (0.0, 1.0, -1.0, 0.5, -0.5)}  # finite points; infinity is implied


def tile_span(m: int, stride: int = 1) -> int:
    """t, the input values an m x m output tile reads along each side: stride * (m - 1) + 3."""
    return stride * (m - 1) + R


def correlation_system(a_t: torch.Tensor, g: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear equations in B^T's entries that make A^T [(G g) * (B^T d)] the correlation at this
    stride for every g and d: sum_xi A^T[i, xi] G[xi, k] B^T[xi, l] = 1 if l == stride*i + k else 0."""
    m, t = a_t.shape
    equations, targets = [], []
    for i in range(m):
        for k in range(R):
            for lane in range(t):
                row = torch.zeros(t, t, dtype=torch.float64)
                row[:, lane] = a_t[i] * g[:, k]
                equations.append(row.flatten())
                targets.append(1.0 if lane == stride * i + k else 0.0)
    return torch.stack(equations), torch.tensor(targets, dtype=torch.float64)


def check_correlation(a_t: torch.Tensor, g: torch.Tensor, b_t: torch.Tensor, stride: int) -> None:
    """Raises unless (A^T, G, B^T) compute the 3-tap correlation at this stride exactly."""
    system, targets = correlation_system(a_t, g, stride)
    residual = (system @ b_t.flatten() - targets).abs().max()
    assert residual < 1e-12, f"transforms at stride {stride} do not reproduce correlation (residual {residual})"


@cache
def transforms(m: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T, G, B^T) of F(m, 3) in float64: shapes (m, t), (t, 3), (t, t), t = m + 2."""
    t = m + R - 1
    points = torch.tensor(POINTS[m], dtype=torch.float64)
    a_t = torch.zeros(m, t, dtype=torch.float64)
    g = torch.zeros(t, R, dtype=torch.float64)
    for j, point in enumerate(points):
        others = torch.cat([points[:j], points[j + 1 :]])
        a_t[:, j] = point ** torch.arange(m)  # evaluate the output polynomial at the point
        g[j] = point ** torch.arange(R) / torch.prod(point - others)  # Lagrange weight of the point
    a_t[m - 1, t - 1] = 1.0  # the point at infinity: leading coefficients
    g[t - 1, R - 1] = 1.0
    # B^T is what makes A^T [(G g) * (B^T d)] the correlation for every g and d (correlation_system)
    system, targets = correlation_system(a_t, g, stride=1)
    b_t = torch.linalg.lstsq(system, targets.unsqueeze(1)).solution.view(t, t)
    b_t = torch.round(b_t * 1024) / 1024  # the entries are small dyadic fractions: snap off solver noise
    check_correlation(a_t, g, b_t, stride=1)
    return a_t, g, b_t


def strided_transforms() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T, G, B^T) of F(2, 3) at stride 2 in float64: (2, 5), (5, 3), (5, 5) (the module docstring).
    Products, in order: (d0 - d2) g0, d1 g1, d2 (g0 + g2), d3 g1, (d4 - d2) g2; y0 sums the first
    three, y1 the last three."""
    a_t = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1]], dtype=torch.float64)
    g = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    b_t = torch.tensor(
        [[1, 0, -1, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, -1, 0, 1]], dtype=torch.float64
    )
    check_correlation(a_t, g, b_t, stride=2)
    return a_t, g, b_t


# Derived once, at import: torch.compile then sees constants, not the solver.
MATRICES = {m: transforms(m) for m in POINTS}
STRIDED = strided_transforms()
STRIDES = {1: tuple(POINTS), 2: (2,)}  # the tile sizes m at each stride


def matrices(m: int, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T, G, B^T) of F(m, 3) at this stride."""
    if m not in STRIDES.get(stride, ()):
        raise ValueError(
            f"Winograd has F(m, 3) for m in {STRIDES[1]} at stride 1 and m = 2 at stride 2, got m={m}, stride={stride}"
        )
    return MATRICES[m] if stride == 1 else STRIDED


# The 2-D transforms as single matrices, per (m, stride): kron(B^T, B^T) (t*t, t*t) and kron(A^T, A^T)
# (m*m, t*t); and the weight transform kron(G, G) (t*t, 9).
_KRONS = {(m, s): (torch.kron(b_t, b_t), torch.kron(a_t, a_t)) for s, ms in STRIDES.items() for m in ms
          for a_t, _, b_t in [matrices(m, s)]}  # fmt: skip
_KRONS_G = {(m, s): torch.kron(matrices(m, s)[1], matrices(m, s)[1]) for s, ms in STRIDES.items() for m in ms}
KRON = {m: _KRONS[(m, 1)] for m in MATRICES}  # at stride 1
KRON_G = {m: _KRONS_G[(m, 1)] for m in MATRICES}


def kron(m: int, stride: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """KRON[m] at this stride: kron(B^T, B^T) (t*t, t*t), kron(A^T, A^T) (m*m, t*t)."""
    matrices(m, stride)  # says which pairs there are
    return _KRONS[(m, stride)]


def kron_g(m: int, stride: int = 1) -> torch.Tensor:
    """KRON_G[m] at this stride: kron(G, G) (t*t, 9)."""
    matrices(m, stride)
    return _KRONS_G[(m, stride)]


WEIGHT_CACHE = TransformCache()


TRANSFORM_FILTERS = 64  # filters per chunk of the weight transform; see transform_weight


def transform_weight(
    weight: torch.Tensor, m: int, groups: int, dtype: torch.dtype, out: torch.Tensor | None = None, stride: int = 1
) -> torch.Tensor:
    """U = G g G^T for every filter: (C_out, C_in/G, 3, 3) -> (G, t*t, C_in/G, C_out/G).

    For each chunk of TRANSFORM_FILTERS filters, one product kron(G, G) (t*t, 9) @ taps^T
    (9, filters*C_in/G) gives (t*t, filters, C_in/G), copied transposed into U, whose (C_in/G,
    C_out/G) blocks the products then read as they are. Paid whenever the weight changes (every
    optimizer step). Why: chunks beat one product and one transposing copy of the whole U, and a U
    laid out (t*t, C_out, C_in), which needs no copy, slows the products on every call; evidence:
    ``python benchmarks/winograd_transform.py`` (benchmarks/RESULTS.md). ``out``: a buffer of U's
    shape to write into; ``stride``: the layer's (2: ``STRIDED``'s G)."""
    t = tile_span(m, stride)
    c_out, c_in_g = weight.shape[:2]
    c_out_g = c_out // groups
    kron_g_m = kron_g(m, stride).to(dtype=dtype, device=weight.device)  # (t*t, 9)
    taps = weight.to(dtype).reshape(groups, c_out_g, c_in_g, R * R)  # (G, C_out/G, C_in/G, 9)
    shape = (groups, t * t, c_in_g, c_out_g)
    if out is None or out.shape != shape:
        out = torch.empty(shape, dtype=dtype, device=weight.device)
    for o0 in range(0, c_out_g, TRANSFORM_FILTERS):
        block = taps[:, o0 : o0 + TRANSFORM_FILTERS]  # (G, filters, C_in/G, 9)
        u_block = torch.matmul(kron_g_m, block.reshape(groups, -1, R * R).transpose(1, 2))  # (G, t*t, filters*C_in/G)
        out[..., o0 : o0 + block.shape[1]] = u_block.view(groups, t * t, -1, c_in_g).transpose(2, 3)
    return out


def cached_weight_transform(
    weight: torch.Tensor, m: int, groups: int, dtype: torch.dtype, stride: int = 1
) -> torch.Tensor:
    return WEIGHT_CACHE.get(
        weight, (m, stride, groups, dtype), lambda buffer: transform_weight(weight, m, groups, dtype, buffer, stride)
    )


def cached_panels(weight: torch.Tensor, m: int, stride: int = 1, turned: bool = False) -> torch.Tensor:
    """The float32 U of a one-group layer in the panels winograd_products.c reads (``native.panels``),
    kept in WEIGHT_CACHE as U is. ``turned``: U of the weight turned 180 degrees with its input and
    output channels swapped, the convolution that gives the input gradient
    (autograd/by_convolution.py), kept under the same weight beside the forward's.

    Made by winograd_weight.c where the kernels are built (into the stale entry's buffer when the
    weight has changed, as after an optimizer step), else by ``transform_weight`` and ``panels``,
    the reference. Why: a training step makes it again on every call, and the torch ops took 5-7x
    the compiled pass's time (128x128 F(4x4) 0.61 ms against 0.09 ms, 256x256 F(2x2) 1.21 ms against
    0.23 ms; ``python benchmarks/winograd_transform.py``, benchmarks/RESULTS.md, twentieth session)."""

    def laid_out(buffer: torch.Tensor | None) -> torch.Tensor:
        if native.available() and native.plain_cpu_float32(weight):
            g = matrices(m, stride)[1]
            return native.winograd_weight(weight.detach().contiguous(), g, turned, out=buffer)
        source = weight.detach().transpose(0, 1).flip(-2, -1) if turned else weight
        return native.panels(transform_weight(source, m, 1, torch.float32, stride=stride)[0])

    key = (m, stride, 1, torch.float32, "panels", "turned" if turned else "forward")
    return WEIGHT_CACHE.get(weight, key, laid_out)
