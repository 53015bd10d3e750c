"""auto: pick an algorithm for a configuration, and say why.

The rule, first match wins:

1. depthwise (groups == C_in > 1): ``direct`` — each tap is an elementwise multiply-add over
   the input, while im2col would copy the input k_h*k_w times to multiply by 1-wide rows;
2. otherwise ``im2col`` — one large matrix multiply, the fastest general method here.
"""

from __future__ import annotations

from dataclasses import dataclass

from convlens.algos import Algorithm, get
from convlens.spec import ConvSpec


@dataclass(frozen=True)
class Choice:
    algorithm: Algorithm
    reason: str


def choose(spec: ConvSpec) -> Choice:
    if spec.is_depthwise:
        return Choice(get("direct"), "depthwise: k_h*k_w elementwise multiply-adds beat an im2col copy")
    return Choice(get("im2col"), "general case: one matrix multiply over im2col columns")
