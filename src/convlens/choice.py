"""``convlens.explain_choice``: which algorithm ``algorithm="auto"`` runs for a call, and why.

The answer is what ``conv2d`` would do with the same arguments at this moment (precision,
autotuning, workspace limit, compiled core): the algorithm, auto's reason, whether a compiled
kernel computes it, the buffers it will take beyond input, weight and output (predicted, in
bytes, before anything is allocated), and every other algorithm with its own prediction or the
reason it cannot run the call.
"""

from __future__ import annotations

from dataclasses import dataclass

from convlens import algos, native
from convlens.algos import auto
from convlens.config import get_autotune, get_precision, resolve_workspace
from convlens.spec import ConvSpec, IntOrSizes, Padding, conv_spec


@dataclass(frozen=True)
class ExplainedChoice:
    """auto's choice for one call, and the alternatives it had."""

    spec: ConvSpec
    algorithm: str
    reason: str
    compiled: bool  # whether a compiled kernel (src/convlens/native/) computes it
    buffers: dict[str, int]  # the chosen algorithm's buffers, by name, in bytes
    alternatives: dict[str, int | str]  # every other algorithm: its buffers' bytes, or why it cannot run
    settings: str  # the settings the choice depends on

    @property
    def workspace_bytes(self) -> int:
        return sum(self.buffers.values())

    def __str__(self) -> str:
        made_by = "a compiled kernel" if self.compiled else "torch ops from Python"
        lines = [
            f"{self.spec.describe()}",
            f"auto runs {self.algorithm} ({made_by}): {self.reason}",
            f"  buffers beyond input, weight and output: {self.workspace_bytes:,} bytes"
            + "".join(f"\n    {name}: {size:,}" for name, size in self.buffers.items() if size),
            f"  settings: {self.settings}",
            "  the others:",
        ]
        for name, detail in self.alternatives.items():
            lines.append(
                f"    {name}: {detail:,} bytes" if isinstance(detail, int) else f"    {name}: cannot, {detail}"
            )
        return "\n".join(lines)


def explain_choice(
    input: object,
    weight: object,
    bias: object = None,
    stride: IntOrSizes = 1,
    padding: Padding = 0,
    dilation: IntOrSizes = 1,
    groups: int = 1,
    *,
    padding_mode: str = "zeros",
    workspace_limit: int | None = None,
    weight_changes: bool = False,
) -> ExplainedChoice:
    """What ``convlens.conv2d(input, weight, bias, ..., algorithm="auto")`` would run, and why.

    Takes conv2d's arguments (meta tensors do: nothing is computed). With autotuning on, the first
    call for a shape times the candidates, as conv2d's would, and the choice is kept for both.
    ``weight_changes``: as in training, where the weight takes new values between two calls (auto's
    rule 9, ``algos/weight_changes.py``); conv2d sees that from the weight's version counter."""
    spec = conv_spec(input, weight, bias, stride, padding, dilation, groups, padding_mode, 2)
    run_spec = spec if spec.padding_mode == "zeros" else spec.prepadded()
    workspace = resolve_workspace(workspace_limit)
    choice = auto.choose(run_spec, workspace, weight_changes)
    name = choice.algorithm.name
    alternatives: dict[str, int | str] = {}
    for algorithm in algos.concrete():
        if algorithm.name != name:
            reason = algorithm.supports(run_spec)
            alternatives[algorithm.name] = reason if reason is not None else algorithm.extra_bytes(run_spec, workspace)
    settings = (
        f"precision {get_precision()!r}, autotune {'on' if get_autotune() else 'off'}, "
        f"weight {'changing between calls' if weight_changes else 'fixed'}, "
        f"workspace limit {workspace:,} bytes, compiled kernels {'built' if native.reason() == '' else 'absent'}"
    )
    return ExplainedChoice(
        spec=spec,
        algorithm=name,
        reason=choice.reason,
        compiled=algos.get(name).compiled(run_spec),
        buffers=algos.get(name).buffer_bytes(run_spec, workspace),
        alternatives=alternatives,
        settings=settings,
    )
