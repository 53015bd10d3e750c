"""The backward pass, written as the math, shared by every algorithm.

Whatever algorithm computed the forward, the convolution is the im2col product
``out_rows = w_rows @ cols + bias``, so its gradients are products too (``products.py``):

    grad_bias   = grad_output summed over N, H_out, W_out          (C_out,)
    grad_weight = grad_rows @ cols^T                               (G, C_out/G, C_in/G*k_h*k_w)
    grad_x_pad  = col2im(w_rows^T @ grad_rows)                     (fold: overlapping windows add up)

Where another way is faster, it is taken instead (``function.py`` routes): a depthwise layer tap by
tap (``depthwise.py``), grad_x as a convolution of grad_output with the turned kernel and grad_weight
through Winograd's transforms (``by_convolution.py``).

    function.py         Conv2dFunction, and the routing of its backward
    products.py         the im2col products and col2im, NCHW and channels-last
    depthwise.py        one filter per channel: tap by tap
    by_convolution.py   grad_x as a convolution; grad_weight by Winograd
"""

from convlens.autograd.by_convolution import grad_input_spec, turned_weight
from convlens.autograd.function import Conv2dFunction, conjugated, conv2d_backward

__all__ = ["Conv2dFunction", "conjugated", "conv2d_backward", "grad_input_spec", "turned_weight"]
