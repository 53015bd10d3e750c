"""The gradients of a depthwise convolution with one filter per channel, tap by tap.

As im2col products they would be C products of one row each; as the depthwise algorithm's scaled
adds, each tap's gradient is one pass (see ``depthwise_grads``).
"""

from __future__ import annotations

import torch

from convlens.algos import depthwise as depthwise_algorithm
from convlens.spec import ConvSpec, prefers_channels_last
from convlens.unfold import part, tap_slice, unpad, zero_pad, zeros_image


def depthwise_grads(
    grad_output: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, spec: ConvSpec, needs: tuple[bool, bool]
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(grad_x, grad_weight), as ``needs`` (input, weight) asks, for a depthwise convolution with
    one filter per channel. Its taps are scaled adds (as in the depthwise algorithm), so their
    gradients are too, one pass per tap each; as im2col products they are C products of one row::

        out[n, c, y, x]      = sum_ij w[c, i, j] * x_pad[n, c, y*s_h + i*d_h, x*s_w + j*d_w]
        dLoss/d w[c, i, j]   = sum_nyx grad_output[n, c, y, x] * x_pad[n, c, y*s_h + i*d_h, x*s_w + j*d_w]
        dLoss/d x_pad[n, c, y*s_h + i*d_h, x*s_w + j*d_w] += w[c, i, j] * grad_output[n, c, y, x]
    """
    needs_input, needs_weight = needs
    (k_h, k_w), (d_h, d_w), (s_h, s_w) = spec.kernel_size, spec.dilation, spec.stride
    h_out, w_out = spec.out_size
    x_pad = zero_pad(x, spec.padding)  # (N, C, H_pad, W_pad), in x's layout
    layout = torch.channels_last if prefers_channels_last(x) else torch.contiguous_format
    grad_x_pad = zeros_image(grad_output, x_pad.shape, layout) if needs_input else None
    taps = [(tap_slice(i, d_h, s_h, h_out), tap_slice(j, d_w, s_w, w_out)) for i in range(k_h) for j in range(k_w)]
    w_taps = weight.reshape(spec.out_channels, k_h * k_w)  # (C, k_h*k_w)
    weight_pieces = []
    # Cache-sized pieces of channels, as the forward's; channels-last input in one piece (a slice of its
    # channels is strided along the innermost axis, which made every pass several times slower).
    channels = spec.out_channels if prefers_channels_last(x) else depthwise_algorithm.piece_channels(spec)
    for c0 in range(0, spec.out_channels, channels):
        block = slice(c0, c0 + channels)
        grad_block = part(grad_output, block, slice(None), slice(None))
        if needs_weight:
            tap_sums = [(grad_block * part(x_pad, block, rows, columns)).sum(dim=(0, 2, 3)) for rows, columns in taps]
            weight_pieces.append(torch.stack(tap_sums, dim=1))  # (C_piece, k_h*k_w)
        if grad_x_pad is not None:
            for tap, (rows, columns) in enumerate(taps):
                part(grad_x_pad, block, rows, columns).addcmul_(grad_block, w_taps[block, tap].view(1, -1, 1, 1))
    grad_weight = torch.cat(weight_pieces).view(weight.shape) if needs_weight else None
    grad_x = unpad(grad_x_pad, spec.padding) if grad_x_pad is not None else None
    return grad_x, grad_weight
