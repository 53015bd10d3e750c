"""``convlens.summary``: one row per layer call of a model's forward, every convolution rule
resolved to numbers, the receptive field of each output, and, where the forward breaks on a shape,
the rows up to it and a diagnosis with the fix's numbers instead of a traceback.

    rows.py      Row, Failure, Summary: totals, depth folding, JSON / CSV / Markdown
    trace.py     the forward run once under hooks and a TorchFunctionMode; receptive fields
    diagnose.py  the fixes for a failing call
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from convlens.summary.diagnose import diagnose
from convlens.summary.rows import Failure, Row, Summary
from convlens.summary.trace import trace

__all__ = ["Failure", "Row", "Summary", "summary"]


def summary(
    model: torch.nn.Module,
    input_size: Sequence[int] | None = None,
    *,
    input_data: torch.Tensor | Sequence[torch.Tensor] | None = None,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "meta",
    depth: int | None = None,
) -> Summary:
    """The layer calls of ``model`` on one input of ``input_size`` (N, C, H, W, or another rank).

    On ``device="meta"`` (the default) nothing is computed and no memory is taken: the model's
    parameters are replaced by meta ones for the call, in eval mode, and the model itself is left
    as it was. Another device runs the model for real on a seeded random input (for models that do
    data-dependent things); ``input_data`` gives the forward's arguments instead (a tensor or a
    sequence of them), for models whose input is not one image batch. ``dtype``: the input's, by
    default the model's first floating parameter's (float32 without one). ``depth``: rows nested
    deeper than that many module levels are folded into their module at that level.

    Never raises on a shape error in the model: the summary then ends at the failing call, marked,
    with a diagnosis (``Summary.failure``)."""
    on_meta = torch.device(device).type == "meta"
    if dtype is None:
        floating = [p.dtype for p in model.parameters() if p.is_floating_point()]
        dtype = floating[0] if floating else torch.float32
    if (input_size is None) == (input_data is None):
        raise TypeError("summary() takes one of input_size= and input_data=")
    if input_data is not None:
        given = (input_data,) if isinstance(input_data, torch.Tensor) else tuple(input_data)
        inputs = tuple(x.to("meta") if on_meta else x for x in given)
        shape = tuple(given[0].shape) if len(given) == 1 else None
    else:
        shape = tuple(int(n) for n in input_size)  # type: ignore[union-attr]
        inputs = (sized_input(shape, dtype, device),)
    traced = trace(model, inputs, on_meta)
    parameters = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() for p in parameters)
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    result = Summary(traced.rows, total, trainable, None, traced.modules)
    if traced.error is not None:
        failed = [row for row in traced.rows if row.failed]
        message = " ".join(str(traced.error).split())
        fixes: list[str] = []
        if failed:

            def runs(size: tuple[int, ...]) -> bool:
                return trace(model, (sized_input(size, dtype, "meta"),), True).error is None

            fixes = diagnose(traced.rows, failed[-1], message, shape, runs)
        result.failure = Failure(failed[-1].name if failed else "(no layer row)", message, fixes)
    return result if depth is None else result.at_depth(depth)


def sized_input(shape: tuple[int, ...], dtype: torch.dtype, device: str | torch.device) -> torch.Tensor:
    """An input of ``shape``: empty on meta, seeded normal values elsewhere."""
    if torch.device(device).type == "meta":
        return torch.empty(shape, dtype=dtype, device="meta")
    generator = torch.Generator().manual_seed(0)
    return torch.randn(shape, generator=generator, dtype=dtype).to(device)
