"""The timing helpers behind convlens bench and benchmarks/."""

from __future__ import annotations

import types

import pytest

from convlens.benchmark.timing import with_attributes


def test_with_attributes_sets_them_for_the_call_and_restores_them() -> None:
    owner = types.SimpleNamespace(rule=1, other="kept")
    seen = []
    run = with_attributes(lambda: seen.append((owner.rule, owner.other)) or "result", owner, rule=0)
    assert run() == "result" and seen == [(0, "kept")]
    assert (owner.rule, owner.other) == (1, "kept")


def test_with_attributes_restores_them_when_the_call_fails() -> None:
    owner = types.SimpleNamespace(rule=1)

    def fails() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        with_attributes(fails, owner, rule=0)()
    assert owner.rule == 1
