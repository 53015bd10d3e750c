"""The weight gradient of a 3x3 convolution (stride 1 or 2) by Winograd's transforms.

Winograd's forward (:mod:`convlens.algos.winograd.forward`) computes, tile by tile and for every
pair of input and output channels, ``Y = A^T [U * V] A`` with ``U = G g G^T`` (the transformed filter)
and ``V = B^T d B`` (the transformed input tile). Y is linear in U, elementwise, so the chain
rule runs back through the same transforms::

    dLoss/dU = sum over tiles of  V * Z,        Z = A dY A^T   (dY: dLoss/dY, one m x m output tile)
    dLoss/dg = G^T (dLoss/dU) G

and the sum over tiles, for every position xi of the t x t transformed tile, is a matrix
product that contracts over the tiles: t*t products of (C_out, P) @ (P, C_in) instead of
im2col's one product of (C_out, P) @ (P, 9*C_in) over P = N*H_out*W_out window positions,
2.25x (F(2x2)) or 4x (F(4x4)) fewer multiplications. Over a whole layer, P = N * tiles_h *
tiles_w tiles::

    x_pad   = x zero-padded and extended, channels last     (N, H_pad', W_pad', C_in)   as the forward
    V       = kron(B^T, B^T) @ tiles of x_pad                 (t*t, P, C_in)              as the forward
    dY      = grad_output, zero-extended to whole tiles, as m x m tiles   (m*m, P, C_out)
    Z       = kron(A^T, A^T)^T @ dY                           (t*t, P, C_out)
    grad_U  = Z^T @ V, one product per xi, summed over pieces (t*t, C_out, C_in)
    grad_w  = grad_U^T @ kron(G, G), over xi                  (C_out*C_in, 9) = (C_out, C_in, 3, 3)

On float32 CPU tensors (stride 1 or 2) V comes from winograd.c's input pass (``native.winograd_input``:
the padding, the tile gather and the transform in one pass, as the forward's), not from x_pad, a
gathered copy of the tiles and a product with the dense kron(B^T, B^T). Why: on ResNet-50's 64@56
at batch 8, F(4x4), the copies and that product were 7 of the weight gradient's 11 ms (a profile,
ad hoc), and its whole backward went from 1.05x to 0.80x of PyTorch's time (its input gradient
already by Winograd; ``python benchmarks/backward.py --batch 8 --precision high``,
benchmarks/RESULTS.md, twentieth session).

For ResNet-50's 128->128 layer at 28x28, batch 8, F(4x4): P = 392; V (36, 392, 128), dY
(16, 392, 128), Z (36, 392, 128), grad_U (36, 128, 128), grad_w (128, 128, 3, 3).
grad_U is laid out (C_out, C_in) per xi so that the last product writes the weight's own layout.
Why: with (C_in, C_out), the transposing copy into (C_out, C_in, 3, 3), whose innermost runs are 9
values, took most of the weight gradient at 512 channels (profiled once, no script kept; benchmarks/RESULTS.md).
The extension rows and columns of dY are zeros, so the overhang of the last tiles adds nothing.
The batch goes through in the forward's pieces (``winograd.pieces``), each adding its
products into grad_U, in scratch buffers kept between calls.

Only for groups == 1, and only where the backward is not itself recorded (the scratch buffers
and in-place sums are not differentiable): :mod:`convlens.autograd` decides.

Tile size: the forward's (``winograd.tile_size``): F(4x4) where precision "high" allows it and
there are at least 32 of its tiles, else F(2x2). Why: from 32 tiles F(4x4) is also the faster
weight gradient, and both beat im2col's (timed once, no script kept; benchmarks/RESULTS.md).

Error: like the forward's, F(2x2) stays at PyTorch's level and F(4x4) adds more (checked once on
ResNet-50's 3x3 layers at batch 8, no script kept; benchmarks/RESULTS.md). The tests hold them to
the forward's bounds.
"""

from __future__ import annotations

import torch

from convlens import native as native_kernels
from convlens.algos import accumulation_dtype
from convlens.algos.winograd.forward import SCRATCH, channels_last_tiled, padded_scratch, transformed_tiles
from convlens.algos.winograd.plan import pieces, span, step, tile_grid, tile_size, tiled_input_size, tiling_stride
from convlens.algos.winograd.transforms import R, kron, kron_g
from convlens.spec import ConvSpec


def weight_grad(grad_output: torch.Tensor, x: torch.Tensor, spec: ConvSpec) -> torch.Tensor:
    """dLoss/d weight (C_out, C_in, 3, 3) of a 3x3 dilation-1 convolution with one group, stride 1 or
    2, from grad_output (N, C_out, H_out, W_out) and the unpadded input x (N, C_in, H, W)."""
    m = tile_size(spec)
    t, tile_step = span(spec, m), step(spec, m)
    compute = accumulation_dtype(x.dtype)
    n, c_in, c_out = x.shape[0], spec.in_channels, spec.out_channels
    tiles_h, tiles_w = tile_grid(spec, m)
    kron_b, kron_a = (matrix.to(dtype=compute, device=x.device) for matrix in kron(m, tiling_stride(spec)))
    kron_g_m = kron_g(m, tiling_stride(spec)).to(dtype=compute, device=x.device)  # (t*t, 9)

    # V by winograd.c's input pass where it runs (float32 CPU): padding, gather and transform in one
    native_input = native_kernels.runs_winograd(x, None, spec)
    x_pad = None if native_input else channels_last_tiled(x, spec.padding, tiled_input_size(spec, m), compute)
    # grad_output channels last, zero-extended to whole tiles: the overhang's gradient is zero
    grad_pad = channels_last_tiled(grad_output, (0, 0, 0, 0), (tiles_h * m, tiles_w * m), compute, name="dy_pad")
    grad_u = SCRATCH.take("grad_u", (t * t, c_out, c_in), compute, x.device)
    images, band = pieces(spec, m, (tiles_h, tiles_w), grad_u.numel() * grad_u.element_size())
    first = True
    for n0 in range(0, n, images):
        for i0 in range(0, tiles_h, band):
            k, rows = min(images, n - n0), min(band, tiles_h - i0)  # this piece: k images, tile rows i0 .. i0 + rows
            p = k * rows * tiles_w
            if x_pad is None:  # V = B^T d B                                                  (t*t, P, C_in)
                v = padded_scratch("v", t * t, (p, c_in))
                native_kernels.winograd_input(x, spec, m, (n0, k, i0, rows, tiles_w), v)
            else:
                rows_in = x_pad[n0 : n0 + k, i0 * tile_step : (i0 + rows) * tile_step + t - tile_step]
                v = transformed_tiles(rows_in, t, tile_step, kron_b)  # as the forward's
            # m x m output tiles of the gradient, which do not overlap: (m, m, k, rows, tiles_w, C_out)
            grad_windows = grad_pad[n0 : n0 + k, i0 * m : (i0 + rows) * m].unfold(1, m, m).unfold(2, m, m)
            grad_tiles = SCRATCH.take("dy", (m, m, k, rows, tiles_w, c_out), compute, x.device)
            grad_tiles.copy_(grad_windows.permute(4, 5, 0, 1, 2, 3))
            z = SCRATCH.take("z", (t * t, p, c_out), compute, x.device)
            torch.mm(kron_a.T, grad_tiles.view(m * m, -1), out=z.view(t * t, -1))  # Z = A dY A^T  (t*t, P, C_out)
            if first:  # grad_U = sum over tiles of V * Z: Z^T @ V at every xi   (t*t, C_out, C_in)
                torch.bmm(z.transpose(1, 2), v, out=grad_u)
                first = False
            else:
                grad_u.baddbmm_(z.transpose(1, 2), v)
    if first:  # no tiles at all (an empty batch): nothing was summed
        grad_u.zero_()
    grad_taps = grad_u.view(t * t, -1).T @ kron_g_m  # dLoss/dg = G^T (dLoss/dU) G       (C_out*C_in, 9)
    return grad_taps.view(c_out, c_in, R, R).to(x.dtype)
