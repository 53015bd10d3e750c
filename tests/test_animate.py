"""convlens animate: the sliding window written as GIF, HTML (and MP4 where ffmpeg is), one frame
per output position (per input position, transposed), as a user runs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

import convlens
from convlens.cli import main
from convlens.explain.animation import animate_transposed


def test_a_gif_has_one_frame_per_output_position(tmp_path: Path, capsys) -> None:
    args = ["--size", "5,4", "--kernel", "2", "--dilation", "2,1", "--groups", "2", "--channels", "2", "--filters", "2",
            "--padding", "1", "--padding-mode", "reflect", "--filter", "1", "--no-numbers"]  # fmt: skip
    assert main(["animate", *args, "--out", str(tmp_path)]) == 0
    spec_out = convlens.output_size((5, 4), (2, 2), padding=1, dilation=(2, 1))
    assert f"({spec_out[0] * spec_out[1]} frames" in capsys.readouterr().out
    with Image.open(tmp_path / "animate.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == spec_out[0] * spec_out[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["animate.gif"]  # no temporary file left
    assert (tmp_path / "animate.gif").stat().st_mode & 0o044  # readable by others, as files the user writes


def test_transposed_and_signal_animations(tmp_path: Path, capsys) -> None:
    assert main(["animate", "--transposed", "--size", "2,3", "--format", "html", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "animate-transposed.html").read_text()
    assert "<script" in page and page.count("base64,") == 6  # every frame inline
    assert "(6 frames" in capsys.readouterr().out
    assert main(["animate", "--dims", "1", "--size", "6", "--kernel", "3", "--out", str(tmp_path)]) == 0
    with Image.open(tmp_path / "animate.gif") as gif:
        assert gif.n_frames == 4


def test_the_scatter_frames_add_up_to_conv_transpose2d() -> None:
    torch.manual_seed(0)
    x, w, b = torch.randn(4, 3, 3), torch.randn(4, 3, 3, 2), torch.randn(6)
    # the running sum is checked against convlens.conv_transpose2d inside, for filter 4 (group 1)
    animation = animate_transposed(x, w, b, (2, 1), (1, 0), (1, 0), (1, 2), 2, filter_index=4)
    animation._init_draw()  # draws the first frame; the figure is not shown
    assert len(animation._fig.axes) == 3


def test_animate_refuses_what_it_cannot_draw(tmp_path: Path, capsys) -> None:
    for args, message in ((["--model", "resnet18", "--layer", "conv1"], "convlens explore --model"),
                          (["--dims", "3"], "animate draws --dims 1 and 2"),
                          (["--size", "40"], "more than 400"),
                          (["--filter", "5"], "--filter 5 is out of range")):  # fmt: skip
        assert main(["animate", *args, "--out", str(tmp_path)]) == 2
        assert message in capsys.readouterr().err
    if shutil.which("ffmpeg") is None:
        assert main(["animate", "--format", "mp4", "--out", str(tmp_path)]) == 2
        assert "--format mp4 needs ffmpeg" in capsys.readouterr().err
    else:
        assert main(["animate", "--format", "mp4", "--out", str(tmp_path)]) == 0


@pytest.mark.parametrize("numbers", [True, False])
def test_numbers_on_and_off(tmp_path: Path, numbers: bool) -> None:
    args = ["animate", "--size", "3", "--kernel", "2", "--out", str(tmp_path)] + ([] if numbers else ["--no-numbers"])
    assert main(args) == 0
    with Image.open(tmp_path / "animate.gif") as gif:
        assert gif.n_frames == 4
