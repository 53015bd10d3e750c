"""``convlens.conv_transpose2d``: the transposed convolution, written as what it is, the input
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
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from convlens.grad import gradients
from convlens.spec import IntOrPair
from convlens.spec.transposed import TransposedSpec


def conv_transpose2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    groups: int = 1,
    dilation: IntOrPair = 1,
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
    spec = TransposedSpec.from_args(input, weight, bias, stride, padding, output_padding, groups, dilation)
    rows = input if spec.batched else input.unsqueeze(0)
    if spec.forward is None:  # no input value reaches the output
        out = rows.new_zeros(spec.out_shape)
    else:
        forward = replace(spec.forward, device=rows.device)
        zeros = weight.new_zeros(()).expand(forward.batch, forward.in_channels, *forward.in_size)  # values unused
        full, _, _ = gradients(forward, rows, zeros, weight, algorithm, (True, False))  # (N, C_out, L_h, L_w)
        assert full is not None
        (pad_h, pad_w), (height, width) = spec.padding, spec.out_shape[2:]
        (full_h, full_w) = full.shape[2:]
        # rows p .. p + H_t of the full output: a crop, and zeros past its end (output_padding beyond p)
        out = F.pad(full, (-pad_w, pad_w + width - full_w, -pad_h, pad_h + height - full_h))
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out if spec.batched else out.squeeze(0)
