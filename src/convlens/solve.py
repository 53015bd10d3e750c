"""``convlens.solve``: the output-size formula run backwards. "I have size 64 and want 128 with a
4x4 kernel": which stride, padding, dilation (and output_padding, for a transposed convolution)
give exactly that size?

Along one dimension, an ordinary convolution gives
``out = floor((size + 2*padding - dilation*(kernel - 1) - 1) / stride) + 1`` and a transposed one
``out = (size - 1)*stride - 2*padding + dilation*(kernel - 1) + output_padding + 1`` (both from
:mod:`convlens.spec.shape`, the formulas convlens itself runs). ``solve`` tries every combination
within the given bounds, keeps those that give ``out_size`` exactly and that PyTorch accepts
(``output_padding`` below the stride or the dilation; padding at most what the kernel spans, beyond
which whole windows read only padding), and lists them simplest first: no dilation before
dilation, no output_padding before some, then the smaller stride and padding.
"""

from __future__ import annotations

from dataclasses import dataclass

from convlens.spec import output_length, positive_int, transposed_length


@dataclass(frozen=True, order=True)
class Solution:
    """One way to get the wanted size along one dimension."""

    transposed: bool
    kernel_size: int
    stride: int
    padding: int
    dilation: int = 1
    output_padding: int = 0

    def out_size(self, in_size: int) -> int:
        """The output size this gives for ``in_size``, by the formula of its kind."""
        if self.transposed:
            return transposed_length(in_size, self.kernel_size, self.stride, self.padding, self.dilation,
                                     self.output_padding)  # fmt: skip
        return output_length(in_size, self.kernel_size, self.stride, self.padding, self.padding, self.dilation)

    def formula(self, in_size: int) -> str:
        """The formula of its kind with the numbers filled in."""
        k, s, p, d = self.kernel_size, self.stride, self.padding, self.dilation
        if self.transposed:
            return (f"out = (in - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1 = ({in_size} - 1)*{s} "
                    f"- 2*{p} + {d}*({k} - 1) + {self.output_padding} + 1 = {self.out_size(in_size)}")  # fmt: skip
        return (f"out = floor((in + 2*padding - dilation*(k - 1) - 1) / stride) + 1 = floor(({in_size} + 2*{p} - "
                f"{d}*({k} - 1) - 1) / {s}) + 1 = {self.out_size(in_size)}")  # fmt: skip

    def code(self) -> str:
        """The PyTorch layer that does it (channels left to the reader)."""
        options = [f"kernel_size={self.kernel_size}", f"stride={self.stride}", f"padding={self.padding}"]
        if self.output_padding:
            options.append(f"output_padding={self.output_padding}")
        if self.dilation != 1:
            options.append(f"dilation={self.dilation}")
        layer = "ConvTranspose2d" if self.transposed else "Conv2d"
        return f"nn.{layer}(C_in, C_out, {', '.join(options)})"

    @property
    def simplicity(self) -> tuple[int, int, int, int, bool]:
        """The sort key, simplest first: no dilation, no output_padding, small stride and padding."""
        return (self.dilation, self.output_padding, self.stride, self.padding, self.transposed)


def solve(
    in_size: int,
    out_size: int,
    kernel_size: int,
    *,
    transposed: bool | None = None,
    max_stride: int = 8,
    max_dilation: int = 4,
) -> list[Solution]:
    """Every (stride, padding, dilation, output_padding) that maps ``in_size`` to ``out_size`` with a
    ``kernel_size`` kernel, simplest first. ``transposed``: True for transposed convolutions only,
    False for ordinary ones only, None (default) for both. Strides up to ``max_stride``, dilations up
    to ``max_dilation``; paddings from 0 to what the dilated kernel spans.

    >>> [s.code() for s in solve(64, 128, 4)][:1]   # DCGAN's upsampling layer
    ['nn.ConvTranspose2d(C_in, C_out, kernel_size=4, stride=2, padding=1)']
    >>> solve(32, 16, 3, transposed=False)[0].code()   # halve with a 3x3
    'nn.Conv2d(C_in, C_out, kernel_size=3, stride=2, padding=1)'
    """
    sizes = {name: positive_int(name, value) for name, value in
             (("in_size", in_size), ("out_size", out_size), ("kernel_size", kernel_size),
              ("max_stride", max_stride), ("max_dilation", max_dilation))}  # fmt: skip
    kinds = (False, True) if transposed is None else (bool(transposed),)
    found = []
    for kind in kinds:
        for stride in range(1, sizes["max_stride"] + 1):
            for dilation in range(1, sizes["max_dilation"] + 1):
                span = dilation * (sizes["kernel_size"] - 1)
                extras = range(max(stride, dilation)) if kind else range(1)  # output_padding < stride or dilation
                for padding in range(span + 1):
                    for extra in extras:
                        solution = Solution(kind, sizes["kernel_size"], stride, padding, dilation, extra)
                        if solution.out_size(sizes["in_size"]) == sizes["out_size"]:
                            found.append(solution)
    return sorted(found, key=lambda solution: solution.simplicity)
