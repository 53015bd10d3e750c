"""The convlens command, driven as a user would: run it, read what it prints, open what it writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from PIL import Image

import convlens
from convlens.algos import im2col
from convlens.algos.scratch import Scratch
from convlens.cli import main
from helpers import allocations, fake_cifar10

CONVLENS = [sys.executable, "-m", "convlens"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CONVLENS, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def assert_real_png(path: Path, min_size: tuple[int, int]) -> np.ndarray:
    assert path.is_file(), path
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    height, width = pixels.shape[:2]
    assert width >= min_size[0] and height >= min_size[1], (path, pixels.shape)
    assert pixels.std() > 10, f"{path} looks blank"
    return pixels


def coloured_columns(pixels: np.ndarray) -> int:
    """Number of separate horizontal runs of non-white columns: roughly, panels side by side."""
    busy = (pixels < 235).any(axis=2).mean(axis=0) > 0.3
    return int(np.sum(busy[1:] & ~busy[:-1]) + busy[0])


def test_demo_prints_the_walkthrough_and_writes_figures(tmp_path: Path) -> None:
    result = run("demo", "--out", str(tmp_path / "figs"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "floor((32 + 0 + 0 - 1*(5-1) - 1) / 1) + 1 = 28" in text
    for line in ("w.shape = (1, 3, 5, 5)", "inp_unf.shape = (1, 75, 784)", "out_unf.shape = (1, 1, 784)",
                 "out.shape = (1, 1, 28, 28)"):  # fmt: skip
        assert line in text
    difference = float(text.split("max |nn.Conv2d - convlens im2col| = ")[1].split()[0])
    assert 0 <= difference < 1e-5
    for name in ("demo-input.png", "demo-outputs.png", "demo-im2col.png"):
        assert f"wrote {tmp_path / 'figs' / name}" in text
    outputs = assert_real_png(tmp_path / "figs" / "demo-outputs.png", (800, 300))
    assert coloured_columns(outputs) >= 3  # nn.Conv2d, convlens, difference
    assert_real_png(tmp_path / "figs" / "demo-input.png", (200, 200))
    assert_real_png(tmp_path / "figs" / "demo-im2col.png", (1000, 700))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figs"]  # nothing else dropped in the working folder


def test_demo_default_out_is_convlens_out(tmp_path: Path) -> None:
    result = run("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "convlens-out" / "demo-outputs.png").is_file()


def test_demo_reads_cifar10_with_torchvision(tmp_path: Path, monkeypatch, capsys) -> None:
    import torchvision.datasets.cifar as cifar

    data = fake_cifar10(tmp_path / "data")
    # torchvision checks the real files' md5 sums; a data set made here cannot match them.
    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    assert main(["demo", "--data-root", str(tmp_path / "data"), "--index", "7", "--out", str(tmp_path / "o")]) == 0
    assert "CIFAR-10 test image 7 (horse)" in capsys.readouterr().out

    from convlens.data import cifar10_image

    image = cifar10_image(tmp_path / "data", 7)
    expected = torch.from_numpy(data[7].reshape(3, 32, 32).astype(np.float32) / 255.0)
    torch.testing.assert_close(image.display, expected)
    torch.testing.assert_close(image.normalized, (expected - 0.5) / 0.5)


def test_explain_cs231n_default(tmp_path: Path) -> None:
    result = run("explain", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "N=1 3x5x5 -> 2x3x3 k=(3, 3) s=(2, 2) p=(1, 1, 1, 1)" in result.stdout
    assert result.stdout.count("input channel") == 3
    value_line = next(line for line in result.stdout.splitlines() if line.startswith("value = "))
    check_line = next(line for line in result.stdout.splitlines() if line.startswith("check: "))
    value = value_line.split("= ")[-1]
    assert f"convlens.conv2d gives {value}, torch gives {value}" in check_line
    assert_real_png(tmp_path / "explain.png", (900, 700))


def test_explain_any_configuration(tmp_path: Path) -> None:
    result = run("explain", "--size", "7,6", "--channels", "4", "--filters", "4", "--kernel", "2,3", "--stride", "2,1",
                 "--padding", "1,0", "--dilation", "2,1", "--groups", "2", "--padding-mode", "reflect",
                 "--filter", "3", "--at", "1,2", "--out", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("input channel") == 2  # filter 3 is in group 1: channels 2 and 3
    assert "input channel 2:" in result.stdout and "input channel 3:" in result.stdout
    check = next(line for line in result.stdout.splitlines() if line.startswith("check: ")).split()
    assert check[3].rstrip(",") == check[6]


def test_explain_1d_and_3d(tmp_path: Path, capsys) -> None:
    """--dims 1: a signal, explained as convlens computes it (a one-row image); --dims 3: a volume,
    its window and kernel one depth tap at a time; each checked against PyTorch, each with its figure."""
    assert main(["explain", "--dims", "1", "--size", "12", "--kernel", "3", "--dilation", "2", "--at", "4",
                 "--out", str(tmp_path)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "conv1d, explained as convlens computes it: the 2-D convolution of an image one row high" in text
    assert "N=1 3x1x12 -> 2x1x8 k=(1, 3) s=(1, 1) p=(0, 0, 0, 0) d=(1, 2)" in text
    check = next(line for line in text.splitlines() if line.startswith("check: ")).split()
    assert check[3].rstrip(",") == check[6]
    assert_real_png(tmp_path / "explain.png", (600, 200))
    assert main(["explain", "--dims", "3", "--size", "3,5,5", "--kernel", "2,3,3", "--padding", "0,1,1",
                 "--at", "1,2,3", "--out", str(tmp_path)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert text.count("depth tap 0:") == 2 and text.count("depth tap 1:") == 2  # two input channels, two taps
    assert "window corner in the padded input: D, H, W = 1, 2, 3" in text
    check = next(line for line in text.splitlines() if line.startswith("check: ")).split()
    assert check[0:3] == ["check:", "convlens.conv3d", "gives"] and check[3].rstrip(",") == check[6]
    assert_real_png(tmp_path / "explain-3d.png", (900, 900))
    for dims in ("1", "3"):  # the matrix picture of each: X_col's columns are 1-D or 3-D windows
        assert main(["explain", "--dims", dims, "--im2col", "--out", str(tmp_path / dims)]) == 0
        assert_real_png(tmp_path / dims / "im2col.png", (1000, 700))


def test_explain_im2col_picture(tmp_path: Path) -> None:
    result = run("explain", "--im2col", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert_real_png(tmp_path / "im2col.png", (1000, 700))


def test_explain_a_real_model_layer(tmp_path: Path) -> None:
    result = run("explain", "--model", "resnet18", "--layer", "layer1.0.conv1", "--at", "0,5,10,20",
                 "--out", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    module_value = float(next(line for line in lines if "own output" in line).split(": ")[-1])
    by_hand = float(next(line for line in lines if line.startswith("by hand:")).split()[2])
    assert abs(module_value - by_hand) <= 1e-5 * max(1.0, abs(module_value))  # float32 precision
    assert_real_png(tmp_path / "explain-resnet18-layer1_0_conv1.png", (900, 600))
    field = next(line for line in lines if "receptive field" in line)
    # conv1 7 wide, stride 2, padding 3; maxpool 3, stride 2, padding 1; layer1.0.conv1 3, padding 1:
    # 7 + 2*2 + 2*4 = 19 pixels, jump 2*2 = 4, output 0's window from -3 - 1*2 - 1*4 = -9
    assert "receptive field 19x19 (jump 4x4): rows 31-49, columns 71-89 of the 224x224 input" in field
    assert_real_png(tmp_path / "explain-resnet18-layer1_0_conv1-receptive-field.png", (450, 450))


def test_the_drawn_receptive_field_holds_the_gradients_reach() -> None:
    """explain --model's window for an output of a layer deep in resnet18 (residual sums, max
    pooling, strided convolutions) holds every input pixel its gradient reaches."""
    import torchvision

    from convlens.explain.model_layer import receptive_field

    torch.manual_seed(0)
    model = torchvision.models.resnet18().eval()
    captured: dict[str, torch.Tensor] = {}
    model.layer2[1].conv2.register_forward_hook(lambda module, args, out: captured.update(out=out))
    for at in ((0, 0), (3, 5), (7, 7)):
        field = receptive_field(model, "layer2.1.conv2", (1, 3, 64, 64), at)
        assert field is not None and field.size == (99, 99) and field.jump == (8, 8)
        x = torch.rand(1, 3, 64, 64, requires_grad=True)
        model(x)
        captured["out"][0, :, at[0], at[1]].sum().backward()
        reached = x.grad.abs().sum(dim=(0, 1)) > 0
        rows, columns = reached.any(dim=1).nonzero().flatten(), reached.any(dim=0).nonzero().flatten()
        assert field.rows[0] <= int(rows.min()) and int(rows.max()) <= field.rows[1]
        assert field.columns[0] <= int(columns.min()) and int(columns.max()) <= field.columns[1]


def test_explain_a_model_layer_with_user_weights(tmp_path: Path) -> None:
    import torchvision

    torch.manual_seed(123)
    model = torchvision.models.resnet18()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    result = run("explain", "--model", "resnet18", "--layer", "conv1", "--weights", str(tmp_path / "weights.pt"),
                 "--at", "0,0,3,4", "--out", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "weights.pt" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "--model", "resnet1000", "--layer", "conv1"], "unknown model 'resnet1000'"),
        (["explain", "--model", "resnet18", "--layer", "layer9.conv"], "no layer 'layer9.conv'"),
        (["explain", "--model", "resnet18", "--layer", "bn1"], "is a BatchNorm2d, not a Conv2d"),
        (["explain", "--model", "resnet18", "--layer", "conv1", "--at", "0,0,500,0"], "outside the layer's output"),
        (["explain", "--at", "9,9"], "output position must be within the 3x3 output"),
        (["explain", "--size", "3", "--kernel", "5"], "larger than the padded input"),
        (["explain", "--at", "1"], "--at must be 2 comma-separated integers"),
        (["explain", "--dims", "3", "--size", "5,5"], "--size takes 1 or 3 numbers with --dims 3, got 5,5"),
        (["explain", "--dims", "3", "--transposed"], "--transposed explains 2-D transposed convolutions, not --dims 3"),
        (["explain", "--dims", "1", "--at", "9"], "--at 9: output position must be within the 7 output, x in [0, 6]"),
        (["explain", "--transposed", "--at", "9,9"], "output position must be within the 6x6 output"),
        (["demo", "--data-root", "{tmp}/empty"], "no CIFAR-10 under --data-root"),
        (
            ["explain", "--model", "resnet18", "--layer", "conv1", "--weights", "{tmp}/broken.pt"],
            "cannot use --weights",
        ),
        (["demo", "--out", "{tmp}/a-file"], "exists and is not a folder"),
        (["demo", "--out", "{tmp}/a-file/below"], "cannot create --out folder"),
        (["bench", "--suite", "seed", "--device", "tpu"], "--device: 'tpu' is not a device name"),
        (["bench", "--suite", "seed", "--device", "meta"], "--device must be cpu or cuda[:index], got --device meta"),
        pytest.param(
            ["bench", "--suite", "seed", "--device", "cuda"],
            "--device cuda: no CUDA device is available here",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is available"),
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.pt").write_bytes(b"this is not a state dict")
    (tmp_path / "a-file").write_text("x")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    # In this process through the command's own entry point (each subprocess would pay torch's import);
    # test_a_bad_value_from_the_shell_is_one_line_and_exit_2 runs the installed command itself.
    code, err = run_in_process(args, capsys)
    assert code == 2, err
    assert "Traceback" not in err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1


def run_in_process(args: list[str], capsys) -> tuple[int, str]:
    """``convlens ARGS`` through ``cli.main``: its exit code (argparse's SystemExit included) and stderr."""
    capsys.readouterr()
    try:
        code = main(args)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 2
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [(["explain", "--model", "resnet18", "--layer", "bn1"], "is a BatchNorm2d, not a Conv2d"),
     (["explain", "--at", "1"], "--at must be 2 comma-separated integers")],
)  # fmt: skip
def test_a_bad_value_from_the_shell_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(*args, "--out", str(tmp_path / "out"))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_written_files_have_ordinary_permissions(tmp_path: Path) -> None:
    import os

    assert main(["explain", "--out", str(tmp_path)]) == 0
    mode = (tmp_path / "explain.png").stat().st_mode & 0o777
    mask = os.umask(0)
    os.umask(mask)
    assert mode == 0o666 & ~mask


def im2col_extra_bytes_measured() -> int:
    """Bytes im2col allocates for the seed's layer (3->1 5x5 on one 32x32 image, with a bias) beyond
    its output, measured (helpers.allocations) on a call with empty scratch buffers."""
    x, w, b = torch.randn(1, 3, 32, 32), torch.randn(1, 3, 5, 5), torch.randn(1)
    with torch.no_grad(), mock.patch.object(im2col, "SCRATCH", Scratch()), allocations() as made:
        out = convlens.conv2d(x, w, b, algorithm="im2col")
    return sum(a.nbytes for a in made if a.address != out.data_ptr())


def test_bench_times_against_pytorch_and_writes_a_report(tmp_path: Path) -> None:
    result = run("bench", "--suite", "seed", "--batch", "1", "--rounds", "1", "--min-run-time", "0.01",
                 "--out", str(tmp_path / "report"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "geomean speedup:" in result.stdout and "nan" not in result.stdout
    report = (tmp_path / "report" / "bench.md").read_text()
    assert "| 3->1 5x5 @32x32 | 1 |" in report  # the seed's CIFAR-10 layer, one image
    assert "im2col (x, GFLOP/s)" in report and "same-size GEMM" in report
    # % of the GEMM roofline and predicted extra memory: what im2col really allocates for this layer
    # beyond its output (measured here: its columns, 3*25 rows x 28*28 positions)
    lines = report.splitlines()
    header = next(index for index, line in enumerate(lines) if "im2col (% of GEMM, extra MiB)" in line)
    column = [cell.strip() for cell in lines[header].split("|")].index("im2col (% of GEMM, extra MiB)")
    im2col_cell = lines[header + 2].split("|")[column].strip()  # the first (only) layer's row
    percent, extra_mib = (part.strip() for part in im2col_cell.split(","))
    assert percent.endswith("%"), im2col_cell
    measured = im2col_extra_bytes_measured()
    assert measured > 0 and extra_mib == f"{measured / 2**20:.1f}", (im2col_cell, measured)
    # depthwise cannot run this layer, so it has no column and no geomean (not a "nan")
    assert "depthwise" not in report and "nan" not in report
    geomean_line = next(line for line in report.splitlines() if line.startswith("Geometric-mean speedup:"))
    assert "im2col" in geomean_line and "auto" in geomean_line
    assert_real_png(tmp_path / "report" / "bench.png", (400, 200))


def test_sums_are_written_as_a_person_writes_them() -> None:
    from convlens.explain.byhand import sum_text

    assert sum_text([0.01157, -0.02514, (3.0, " (bias)")]) == "0.01157 - 0.02514 + 3 (bias)"
    assert sum_text([-2.0, 0.0, (-1.5, " (bias)")]) == "-2 + 0 - 1.5 (bias)"


def test_a_model_layer_value_is_named_with_its_batch_index(tmp_path: Path) -> None:
    result = run("explain", "--model", "resnet18", "--layer", "conv1", "--at", "0,3,5,6", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "output[0, 3, 5, 6] of N=1" in result.stdout and " + -" not in result.stdout


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path) -> None:
    """convlens summary densenet201 ... | head -1: the reader leaves early; no traceback, exit 141.
    densenet201's table (about 120 KB) is larger than a pipe's buffer (64 KB), so the command is
    still writing when the reader leaves (resnet18's 12 KB could all be written, and the command
    end normally, before the reader closed: the test then failed under load)."""
    command = [sys.executable, "-m", "convlens", "summary", "densenet201", "--input", "1,3,64,64"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()
    errors = process.stderr.read().decode()
    assert process.wait(timeout=120) == 141 and "Traceback" not in errors and "internal error" not in errors
