"""The README's examples run, so they cannot drift from what convlens does."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

from convlens.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def fenced_blocks(language: str) -> list[str]:
    """The text of every fenced block opened with ```language (an empty language: a bare fence)."""
    blocks, current, opened = [], [], None
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            if opened is None:
                opened, current = line[3:].strip(), []
            else:
                if opened == language:
                    blocks.append("\n".join(current) + "\n")
                opened = None
        elif opened is not None:
            current.append(line)
    return blocks


def test_the_python_examples_print_what_the_readme_says() -> None:
    """Every ``>>>`` example in the README, run by doctest with its printed results compared."""
    failures, attempted = doctest.testfile(
        str(README), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert attempted >= 10
    assert failures == 0


def test_the_demo_prints_the_readme_block(tmp_path: Path) -> None:
    """``convlens demo`` prints the README's block line for line; the difference's last digits
    depend on the CPU, so that one value is checked to be below 1e-6 instead."""
    (block,) = [b for b in fenced_blocks("") if b.startswith("$ convlens demo\n")]
    expected = block.splitlines()[1:]
    result = subprocess.run(
        [sys.executable, "-m", "convlens", "demo"], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    printed = result.stdout.splitlines()
    assert len(printed) > len(expected)
    for want, got in zip(expected, printed):
        if want.startswith("max |nn.Conv2d - convlens im2col| = "):
            prefix = "max |nn.Conv2d - convlens im2col| = "
            assert got.startswith(prefix) and 0 <= float(got.removeprefix(prefix)) < 1e-6, got
        else:
            assert got == want
    for line in expected:
        if line.startswith("wrote "):
            assert (tmp_path / line.removeprefix("wrote ")).stat().st_size > 0


def test_the_commands_in_the_readme_exist() -> None:
    """Every ``convlens ...`` line parses with the real parser, and every ``python benchmarks/...`` script exists."""
    root = README.parent
    parser = build_parser()
    commands = [line.split("#")[0].strip() for block in fenced_blocks("bash") for line in block.splitlines()]
    convlens_lines = [line for line in commands if line.startswith("convlens ")]
    scripts = [line.split()[1] for line in commands if line.startswith("python benchmarks/")]
    assert convlens_lines and scripts
    for line in convlens_lines:
        parser.parse_args(line.split()[1:])
    for script in scripts:
        assert (root / script).is_file(), script
