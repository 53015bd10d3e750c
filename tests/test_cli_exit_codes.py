"""The CLI tells the caller's mistake (one line, exit 2) from a bug in convlens (traceback, exit 70)."""

from __future__ import annotations

from pathlib import Path

import pytest

from convlens.cli import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USAGE, demo, main


def test_a_library_argument_error_is_a_usage_error(capsys, tmp_path: Path) -> None:
    code = main(["explain", "--size", "4", "--kernel", "5", "--out", str(tmp_path)])  # ConvSpec refuses it
    err = capsys.readouterr().err
    assert code == EXIT_USAGE == 2
    assert err.startswith("convlens explain: error: Calculated padded input size per channel: (4 x 4).")
    assert "H_out = floor((H + pad + pad - dilation*(kernel-1) - 1) / stride) + 1" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_internal_error_is_reported_as_a_bug_with_its_traceback(monkeypatch, capsys) -> None:
    """A ValueError from inside convlens is not the caller's fault: before, every ValueError was
    printed as a usage error."""

    def broken(args):
        raise ValueError("an internal invariant broke")

    monkeypatch.setattr(demo, "run", broken)
    code = main(["demo"])
    err = capsys.readouterr().err
    assert code == EXIT_BUG == 70
    assert "Traceback" in err and "ValueError: an internal invariant broke" in err
    assert "this is a bug in convlens" in err


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys) -> None:
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run", interrupted)
    assert main(["demo"]) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "convlens demo: interrupted\n"


@pytest.mark.parametrize(
    ("args", "choices"),
    [(["explain", "--padding-mode", "mirror"], "'zeros', 'reflect', 'replicate', 'circular'"),
     (["verify", "--precision", "low"], "'highest', 'high'")],
)  # fmt: skip
def test_choices_come_from_the_library(args: list[str], choices: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert choices in capsys.readouterr().err
