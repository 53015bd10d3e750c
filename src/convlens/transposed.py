"""``convlens.conv_transpose1d / 2d / 3d``: the transposed convolution, written as what it is, the input
gradient of an ordinary convolution.

The ordinary convolution ``conv2d(x, weight)`` maps x (N, C_out, H_t, W_t) to (N, C_in, H, W)
with weight (C_in, C_out/G, k_h, k_w). Its input gradient takes a (N, C_in, H, W) tensor back to
(N, C_out, H_t, W_t), and that map is the transposed convolution of ``input``::

    X         = input as rows, per group            (G, C_in/G, N*H*W)
    cols      = W_row^T @ X                          (G, C_out/G*k_h*k_w, N*H*W)   every input value times every tap
    out       = col2im(cols)                         (N, C_out, L_h, L_w)           overlapping windows add up
    out       = rows p .. p + H_t of it (zeros past its end), + bias

so each input value spreads the whole kernel, scaled, over its window of the output (the
"scatter" view), windows ``stride`` apart; where windows overlap their values add, and the
output is ``stride`` times larger: it upsamples. The full output has ``L = (H - 1)*s + d*(k - 1) + 1``
rows; padding crops p of them on each side and ``output_padding`` keeps that many more at the
bottom: ``H_t = L - 2*p + output_padding`` (``spec/transposed.py``).

The rows above are the shared backward's input gradient (:mod:`convlens.autograd`), run for the
named algorithm within its error bound; autograd differentiates through its steps, so gradients
and double gradients exist.

For the seed's layer turned around: input (1, 1, 28, 28), weight (1, 3, 5, 5) -> X (1, 1, 784)
-> cols (1, 75, 784) -> out (1, 3, 32, 32).

The same steps hold along 1 or 3 spatial dimensions: conv_transpose1d is conv_transpose2d of
an image one row high; conv_transpose3d writes them out over (D, H, W) (``volume_scatter``),
for a video decoder's (1, 64, 4, 8, 8) input and (64, 32, 4, 4, 4) weight at stride 2:
X (1, 1, 64, 256) -> cols (1, 2048, 256) -> col2im -> (1, 32, 10, 18, 18), cropped by padding 1
to (1, 32, 8, 16, 16).
"""

from __future__ import annotations

from dataclasses import replace
from types import EllipsisType

import torch
import torch.nn.functional as F

from convlens import algos
from convlens.algos.im2col import PIECE_BYTES
from convlens.functional import output_layout
from convlens.grad import gradients
from convlens.spec import ConvSpec, IntOrSizes, non_negative_sizes, positive_sizes, volume
from convlens.spec.transposed import TransposedSpec
from convlens.unfold import col2im, taps, window_positions


def conv_transpose(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: IntOrSizes,
    padding: IntOrSizes,
    output_padding: IntOrSizes,
    groups: int,
    dilation: IntOrSizes,
    algorithm: str,
    rank: int,
) -> torch.Tensor:
    """The one pipeline of conv_transpose1d/2d/3d (``rank`` spatial dimensions). 1-D runs as the
    2-D transposed convolution of a one-row image (as PyTorch's does); 2-D through the shared
    backward (:mod:`convlens.autograd`); 3-D by :func:`volume_scatter`."""
    spec = TransposedSpec.from_args(input, weight, bias, stride, padding, output_padding, groups, dilation, rank)
    if rank == 1:
        strides, pads = positive_sizes("stride", stride, 1), non_negative_sizes("padding", padding, 1)
        extra, dilations = (
            non_negative_sizes("output_padding", output_padding, 1),
            positive_sizes("dilation", dilation, 1),
        )
        out = conv_transpose(input.unsqueeze(-2), weight.unsqueeze(-2), bias, (1, *strides), (0, *pads),
                             (0, *extra), groups, (1, *dilations), algorithm, rank=2)  # fmt: skip
        return out.squeeze(-2).contiguous()  # PyTorch's 1-D output is contiguous whatever the input's strides
    rows = input if spec.batched else input.unsqueeze(0)
    if spec.forward is None:  # no input value reaches the output
        out = rows.new_zeros(spec.out_shape)
    else:
        forward = replace(spec.forward, device=rows.device)
        if rank == 3:
            full = volume_scatter(rows, weight, forward, algos.resolve(algorithm, forward).name)
        else:
            zeros = weight.new_zeros(()).expand(forward.batch, forward.in_channels, *forward.in_size)  # values unused
            grad_input, _, _ = gradients(forward, rows, zeros, weight, algorithm, (True, False))
            assert grad_input is not None
            full = grad_input  # (N, C_out, L_h, L_w)
        # rows p .. p + H_t of the full output along each dimension: a crop, and zeros past its end
        # (output_padding beyond p)
        crop = [
            (-pad, pad + size - extent)
            for pad, size, extent in zip(spec.padding, spec.out_shape[2:], full.shape[2:], strict=True)
        ]
        out = F.pad(full, [amount for pair in reversed(crop) for amount in pair])
    if bias is not None:
        out = out + bias.view(1, -1, *(1,) * rank)
    if spec.forward is not None and out.numel():  # PyTorch's layout: channels-last as its kernel makes it
        out = out.contiguous(memory_format=output_layout(rows, weight, replace(spec.forward, device=rows.device)))
    return out if spec.batched else out.squeeze(0)


def volume_scatter(rows: torch.Tensor, weight: torch.Tensor, forward: ConvSpec, algorithm: str) -> torch.Tensor:
    """The full 3-D transposed output (N, C_out, L_d, L_h, L_w) of ``rows`` (N, C_in, D, H, W): the
    input gradient of ``forward``, written out. "im2col": per group ``cols = W_row^T @ X`` then
    col2im, in pieces of whole images of at most PIECE_BYTES of columns (one image is the smallest
    piece, whatever its size: not bounded by the workspace limit); "direct": the same sums one
    kernel tap at a time, each tap's products added (``index_add``) at the output positions it
    reaches. No in-place writes into slices: autograd differentiates these steps, vmap included."""
    groups, c_in, taps_count = forward.groups, forward.out_channels, forward.taps
    w_rows = weight.reshape(groups, c_in // groups, -1)  # (G, C_in/G, C_out/G*k_d*k_h*k_w)
    positions = volume(forward.out_size)
    if algorithm == "direct":
        w_taps = weight.unflatten(0, (groups, -1))  # (G, C_in/G, C_out/G, k_d, k_h, k_w)
        x_groups = rows.unflatten(1, (groups, -1))  # (N, G, C_in/G, D, H, W)
        full = rows.new_zeros((rows.shape[0], forward.in_channels, volume(forward.in_size)))  # (N, C_out, L_d*L_h*L_w)
        reach = window_positions(forward.in_size, forward.kernel_size, forward.dilation, forward.stride,
                                 forward.out_size, rows.device).view(taps_count, -1)  # fmt: skip
        for tap_number, tap in enumerate(taps(forward.kernel_size)):
            tap_index: tuple[EllipsisType | int, ...] = (..., *tap)
            products = torch.einsum("gco,ngc...->ngo...", w_taps[tap_index], x_groups)  # (N, G, C_out/G, D, H, W)
            values = products.reshape(rows.shape[0], forward.in_channels, positions)
            full = full.index_add(2, reach[tap_number], values)  # where the tap reaches
        return full.view(rows.shape[0], forward.in_channels, *forward.in_size)
    images = max(1, PIECE_BYTES // max(1, forward.in_channels * taps_count * positions * rows.dtype.itemsize))
    pieces = []
    for n0 in range(0, max(rows.shape[0], 1), images):  # one (empty) piece for an empty batch
        x_piece = rows[n0 : n0 + images]
        x_rows = x_piece.reshape(x_piece.shape[0], groups, c_in // groups, positions)  # (n, G, C_in/G, D*H*W)
        cols = torch.matmul(w_rows.transpose(1, 2), x_rows).flatten(1, 2)  # (n, C_out*k_d*k_h*k_w, D*H*W)
        pieces.append(
            col2im(cols, forward.in_size, forward.kernel_size, forward.dilation, forward.stride, forward.out_size)
        )
    return torch.cat(pieces) if len(pieces) > 1 else pieces[0]


def conv_transpose1d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrSizes = 1,
    padding: IntOrSizes = 0,
    output_padding: IntOrSizes = 0,
    groups: int = 1,
    dilation: IntOrSizes = 1,
    *,
    algorithm: str = "auto",
) -> torch.Tensor:
    """1-D transposed convolution with the semantics of ``torch.nn.functional.conv_transpose1d``:
    :func:`conv_transpose2d` along one dimension, computed as that of an image one row high.

    Args: as :func:`conv_transpose2d`, with input (N, C_in, L) or (C_in, L), weight (C_in, C_out/groups, k)
    and an int or a 1-tuple for stride, padding, output_padding and dilation.

    Returns:
        (N, C_out, L_t) or (C_out, L_t), ``L_t = (L - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1``.
    """
    return conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, algorithm, rank=1)


def conv_transpose2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrSizes = 1,
    padding: IntOrSizes = 0,
    output_padding: IntOrSizes = 0,
    groups: int = 1,
    dilation: IntOrSizes = 1,
    *,
    algorithm: str = "auto",
) -> torch.Tensor:
    """2-D transposed convolution with the semantics of ``torch.nn.functional.conv_transpose2d``.

    Args:
        input: (N, C_in, H, W) or unbatched (C_in, H, W).
        weight: (C_in, C_out/groups, k_h, k_w), laid out as the weight of the convolution whose
            input gradient this is.
        bias: optional (C_out,).
        stride, padding, dilation: int or (height, width); padding crops the output.
        output_padding: extra rows / columns at the bottom / right, each smaller than the stride
            or the dilation.
        algorithm: one of ``convlens.algorithms()``: the convolution whose gradient this is.

    Returns:
        (N, C_out, H_t, W_t) or (C_out, H_t, W_t), with
        ``H_t = (H - 1)*stride - 2*padding + dilation*(k_h - 1) + output_padding + 1``.
    """
    return conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, algorithm, rank=2)


def conv_transpose3d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrSizes = 1,
    padding: IntOrSizes = 0,
    output_padding: IntOrSizes = 0,
    groups: int = 1,
    dilation: IntOrSizes = 1,
    *,
    algorithm: str = "auto",
) -> torch.Tensor:
    """3-D transposed convolution with the semantics of ``torch.nn.functional.conv_transpose3d``:
    :func:`conv_transpose2d` along (D, H, W), computed by "im2col" (col2im of W_row^T @ X) or
    "direct" (one kernel tap at a time); "auto" takes im2col. Gradients come from autograd.

    Args: as :func:`conv_transpose2d`, with input (N, C_in, D, H, W) or (C_in, D, H, W), weight
    (C_in, C_out/groups, k_d, k_h, k_w) and an int or (depth, height, width) for stride, padding,
    output_padding and dilation.
    """
    return conv_transpose(input, weight, bias, stride, padding, output_padding, groups, dilation, algorithm, rank=3)
