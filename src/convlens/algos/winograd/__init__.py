"""Winograd convolution F(m x m, 3x3): fewer multiplications through polynomial interpolation.

    transforms.py   A^T, G, B^T from the interpolation points; the weight transform U (cached)
    plan.py         tile size, tiles, pieces, the output's detour, buffers, error bound, support
    forward.py      the forward over a whole layer
    grad.py         the weight gradient through the same transforms

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2015): an m x m output tile of
a 3x3 correlation is ``Y = A^T [ (G g G^T) * (B^T d B) ] A`` from a t x t input tile d, t = m + 2,
t^2 multiplications instead of 9 m^2 (2.25x fewer for F(2x2, 3x3), 4x for F(4x4, 3x3)); the
one-dimensional form and the matrices from the interpolation points are in ``transforms.py``.

Over a whole layer, with P = N * tiles_h * tiles_w tiles and channels contiguous in the tiles::

    x_pad = x zero-padded, channels last                     (N, H_pad', W_pad', C_in)  one copy, zeros written in it
    tiles = overlapping t x t windows of x_pad, stride m     (t*t, P, C_in)       gathered once
    V     = kron(B^T, B^T) @ tiles                           (t*t, P, C_in)       input transform
    U     = kron(G, G) @ weight                              (t*t, C_in, C_out)   weight transform, cached
    M     = V @ U, one matmul per tile position xi           (t*t, P, C_out)      the products
    Y     = kron(A^T, A^T) @ M                               (m*m, P, C_out)      output transform
    out   = Y rearranged to (N, C_out, tiles_h*m, tiles_w*m), cropped to (H_out, W_out)

For ResNet-50's 128->128 layer at 28x28, batch 8, F(4x4): 7x7 tiles per image, P = 392;
tiles and V (36, 392, 128), U (36, 128, 128), M (36, 392, 128), Y (16, 392, 128), out (8, 128, 28, 28).
The batch goes through in pieces (each reads all of U): whole images, about 16 MiB of tiles
at a time, or, for an image with more than 4 MiB of tiles, bands of its tile rows of about
2 MiB (see ``pieces``).
On float32 CPU layers with one group (``plan.uses_fused``) the same steps run fused in C instead,
piece by piece (bands of tile rows, or whole images: ``plan.fused_pieces``), V and M of the piece
kept in the cache: gather and
input transform, the t*t products, output transform, bias and layout in one call
(src/convlens/native/winograd.c, ``forward.forward_fused``). The steps above stay the reference.
The intermediates live in scratch buffers kept between calls (:mod:`convlens.algos.scratch`),
and the zero padding is written by the channels-last copy, not into a separate padded tensor
first. Why: fresh buffers are faulted in on every call and a padded tensor is one more pass over
the input; evidence: ``python benchmarks/winograd_pieces.py [--fresh]`` and the copies stage of
``python benchmarks/winograd_profile.py`` (benchmarks/RESULTS.md). The bias is added by the output
transform's matrix product (addmm).

Error bound: the transforms add rounding on top of the direct sum. Against float64, F(2x2, 3x3)
stays within 2x PyTorch's own float32 error; F(4x4, 3x3)'s documented bound is 50x (the rounding
is in the tile transforms: computing the weight transform in float64 barely changes it), and it
is used only when ``convlens.set_precision("high")`` allows it. Why 50x: it covers the worst case
over the 3x3 layers of ResNet-18/50, MobileNetV2 and VGG-16; evidence: ``convlens verify
--precision high`` (benchmarks/RESULTS.md, Accuracy).
``convlens verify`` checks both.
At stride 2 (``transforms.STRIDED``) an output tile is 2x2 from a 5x5 input tile, one every 4
pixels (tiles overlap by 1): 25 multiplications instead of 36 (1.44x fewer), every transform entry
0 or +-1; the steps above are the same with t = 5 and the tiles every 4 pixels (``plan.span``,
``plan.step``), and so is the weight gradient.
Supports 3x3 kernels, stride 1 or 2, dilation 1, any padding and groups.
"""

from __future__ import annotations

from convlens.algos import Algorithm, register
from convlens.algos.winograd import forward, transforms  # the submodules, named as such
from convlens.algos.winograd.forward import SCRATCH
from convlens.algos.winograd.plan import (
    buffer_bytes,
    compiled,
    error_bound,
    supports,
    tile_count,
    tile_grid,
    tile_size,
)
from convlens.algos.winograd.transforms import KRON, KRON_G, MATRICES, STRIDED, WEIGHT_CACHE

ALGORITHM = register(
    Algorithm(
        name="winograd",
        summary="Winograd F(2x2,3x3) / F(4x4,3x3): 2.25x / 4x fewer multiplications for 3x3, stride 1 "
        "(F(2x2,3x3) at stride 2: 1.44x)",
        forward=forward.forward,
        supports=supports,
        buffer_bytes=buffer_bytes,
        error_bound=error_bound,
        mixes_values=True,
        compiled=compiled,
        checked_forward=forward.forward_checked,
    )
)

__all__ = [
    "ALGORITHM",
    "KRON",
    "KRON_G",
    "MATRICES",
    "SCRATCH",
    "STRIDED",
    "WEIGHT_CACHE",
    "buffer_bytes",
    "error_bound",
    "forward",
    "supports",
    "tile_count",
    "tile_grid",
    "tile_size",
    "transforms",
]
