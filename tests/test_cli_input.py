"""No input makes the CLI print a traceback, hang, or silently ignore a value: each bad value is refused
with exit 2 in one line naming the option, the value and the rule, before any work (--out is not even
made); values ignored before are now honoured or refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import convlens.verify
from convlens import files
from convlens.benchmark import runner
from convlens.cli import EXIT_INTERRUPTED, build_parser, main
from convlens.explain import figures
from convlens.explain.examples import random_example


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """main(args) as a user runs it: the exit code (argparse's own errors exit through SystemExit), stdout, stderr."""
    try:
        code = main(list(args))
    except SystemExit as exited:
        code = exited.code if isinstance(exited.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, tmp_path: Path, *args: str) -> str:
    """Run a command that must be refused: exit 2, one line naming the command, no traceback, nothing made."""
    out = tmp_path / "out"
    if args[0] != "verify":
        args = (*args, "--out", str(out))
    code, _, err = cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"convlens {args[0]}: error: "), err
    assert not out.exists(), "refused after work had started"
    return lines[0]


@pytest.fixture
def no_work(monkeypatch):
    """Neither a verify sweep nor a bench timing may start: each refusal comes before them."""

    def work(*args, **kwargs):
        raise AssertionError("the work started before the refusal")

    monkeypatch.setattr(convlens.verify, "run", work)
    monkeypatch.setattr(runner, "benchmark_layer", work)


# ---- explain -------------------------------------------------------------------------------------


def positive(option: str, value: str) -> str:
    """The rule argparse reports for a bad ``value`` of ``option``."""
    if option in ("--size", "--kernel", "--stride", "--dilation"):  # "h,w" or one number
        return f"argument {option}: {option} must be positive (1 or more), got {value!r}"
    if option == "--batch":
        return f"argument --batch: must be positive integers (1 or more), got {value!r}"
    if option == "--min-run-time":
        return f"argument --min-run-time: must be a finite number above 0, got {value}"
    return f"argument {option}: must be a positive integer (1 or more), got {value}"


@pytest.mark.parametrize(
    ("option", "value"),
    [("--size", "-3"), ("--channels", "-2"), ("--filters", "-1"), ("--kernel", "-1"), ("--groups", "-1"),
     ("--channels", "0"), ("--filters", "0"),  # before: taken as not given, the defaults 3 and 2
     ("--stride", "0"), ("--dilation", "0,1")],
)  # fmt: skip
def test_explain_sizes_must_be_positive(capsys, tmp_path: Path, option: str, value: str) -> None:
    assert positive(option, value) in refused(capsys, tmp_path, "explain", option, value)
    rule = "argument --padding: --padding must be non-negative (0 or more), got '-1'"
    assert rule in refused(capsys, tmp_path, "explain", "--padding", "-1")


@pytest.mark.parametrize(
    ("args", "what", "gib"),
    [(["--size", "100000"], "the 3x100000x100000 input and the 2x3x3x3 weight", "111.8 GiB (120,000,000,216 bytes)"),
     (["--im2col", "--size", "2000"], "X_col of 75 x 3,984,016 values", "11.1 GiB (11,936,496,752 bytes)"),
     (["--size", "10" * 12], "input", "GiB"),  # larger than any tensor shape: refused before torch sees it
     (["--padding", "100000"], "its padded copy, the 2x100002x100002 output and the figure", "GiB")],
)  # fmt: skip
def test_explain_refuses_what_would_not_fit_before_allocating(capsys, tmp_path, args, what, gib) -> None:
    line = refused(capsys, tmp_path, "explain", *args)
    assert what in line and gib in line
    assert "more than the 1 GiB (1,073,741,824 bytes) explain allows" in line
    assert "use a smaller --size" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--im2col", "--filter", "9"],  # before: accepted, a figure without the filter
      "--filter 9 is out of range: filter must be in [0, 3] (the configuration has 4 filters)"),
     (["--im2col", "--filter", "-1"], "--filter -1 is out of range: filter must be in [0, 3]"),
     (["--im2col", "--at", "99,99"],
      "--at 99,99: output position must be within the 28x28 output, y in [0, 27] and x in [0, 27]"),
     (["--im2col", "--stride", "2", "--at", "14,0"], "--at 14,0: output position must be within the 14x14 output"),
     (["--im2col", "--groups", "2"], "--im2col draws one W_row @ X_col product, groups 1: --groups 2 is not used"),
     (["--filter", "2"], "--filter 2 is out of range: filter must be in [0, 1] (the configuration has 2 filters)"),
     (["--at=-1,0"],  # "--at -1,0" reads as an option to argparse
      "--at -1,0: output position must be within the 3x3 output, y in [0, 2] and x in [0, 2]")],
)  # fmt: skip
def test_explain_filter_and_position_are_checked_against_the_configuration(capsys, tmp_path, args, message) -> None:
    assert message in refused(capsys, tmp_path, "explain", *args)


def test_explain_im2col_honours_stride_padding_dilation_and_padding_mode(capsys, monkeypatch, tmp_path) -> None:
    """Before, --im2col drew stride 1, no padding, whatever was asked; now X_col holds the windows conv2d reads."""
    drawn, draw = [], figures.im2col_figure

    def spy(*args, **kwargs):
        drawn.append(draw(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(figures, "im2col_figure", spy)
    args = ["--size", "12,10", "--kernel", "3", "--stride", "2,1", "--padding", "1,2", "--dilation", "2"]
    code, out, err = cli(capsys, "explain", "--im2col", *args, "--padding-mode", "reflect", "--filter", "1",
                         "--at", "2,3", "--seed", "5", "--out", str(tmp_path))  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "im2col.png").is_file() and "im2col.png" in out
    x, w = random_example((12, 10), 3, 4, (3, 3), seed=5)
    padded = F.pad(x.unsqueeze(0), (2, 2, 1, 1), mode="reflect")
    expected = F.conv2d(padded, w, stride=(2, 1), dilation=2)[0]  # (4, 5, 10)
    views = [axis for axis in drawn[0].axes if axis.get_title().startswith("view -> channel")]
    assert len(views) == 4
    for channel, axis in enumerate(views):
        shown = torch.as_tensor(axis.get_images()[0].get_array())
        torch.testing.assert_close(shown, expected[channel], rtol=1e-5, atol=1e-5)
    assert "stride (2, 1), padding (1, 1, 2, 2) reflect, dilation (2, 2)" in drawn[0].get_suptitle()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--groups", "2"],
         "--groups 2 needs --channels and --filters divisible by 2; the CS231n default has 3 channels and 2 filters"),
        (["--groups", "5"],
         "--groups 5 needs --channels and --filters divisible by 5; the CS231n default has 3 channels and 2 filters"),
        (["--size", "5", "--channels", "3", "--groups", "2"],
         "--groups 2 needs --channels and --filters divisible by 2; got --channels 3 and --filters 2 (the default)"),
    ],
)  # fmt: skip
def test_explain_groups_name_the_channels_and_filters_not_a_weight(capsys, tmp_path, args, message) -> None:
    line = refused(capsys, tmp_path, "explain", *args)
    assert line.endswith(message) and "weight" not in line


def test_explain_model_refuses_the_options_of_a_configuration(capsys, tmp_path: Path) -> None:
    """With --model the layer's own configuration is used: a --size or --filter given would be ignored."""
    model = ("explain", "--model", "resnet18", "--layer", "conv1")
    line = refused(capsys, tmp_path, *model, "--size", "5", "--filter", "1")
    assert "--model explains a layer with its own configuration: --size, --filter are not used" in line
    assert "--im2col is not used" in refused(capsys, tmp_path, *model, "--im2col")


@pytest.mark.parametrize("kind", ["text", "pickle", "tensor"])
def test_explain_weights_that_are_not_a_state_dict(capsys, tmp_path: Path, kind: str) -> None:
    weights = tmp_path / f"weights.{kind}"
    if kind == "tensor":
        torch.save(torch.zeros(3), weights)
    else:  # torch.load warns of pickle protocol 4 before it fails: the warning must not make a second line
        weights.write_bytes(b"not weights\n" if kind == "text" else pickle.dumps({"conv1.weight": [1]}, protocol=4))
    line = refused(capsys, tmp_path, "explain", "--model", "resnet18", "--layer", "conv1", "--weights", str(weights))
    assert f"cannot use --weights {weights} for resnet18: " in line
    if kind == "tensor":
        assert "it holds a Tensor, not a state_dict" in line
    else:
        assert "it is not a PyTorch state_dict file" in line and "torch.save(model.state_dict(), path)" in line


# ---- demo ----------------------------------------------------------------------------------------


def test_demo_index_and_download_need_data_root(capsys, tmp_path: Path) -> None:
    line = refused(capsys, tmp_path, "demo", "--index", "5")
    assert "--index 5 picks a CIFAR-10 image and needs --data-root" in line
    assert "--download fetches CIFAR-10 into --data-root" in refused(capsys, tmp_path, "demo", "--download")
    assert "argument --index: must be a non-negative integer (0 or more), got -1" in refused(
        capsys, tmp_path, "demo", "--data-root", str(tmp_path), "--index", "-1"
    )


@pytest.mark.parametrize("value", [str(2**70), "-1", str(2**64)])
def test_seeds_outside_what_torch_takes_are_refused(capsys, tmp_path: Path, value: str) -> None:
    rule = f"argument --seed: must be in [0, 18446744073709551615] (0 to 2**64 - 1, as torch seeds), got {value}"
    for command in ("demo", "explain", "verify"):
        assert rule in refused(capsys, tmp_path, command, "--seed", value)


def test_the_largest_seed_is_taken() -> None:
    largest = str(2**64 - 1)
    for command in ("demo", "explain", "verify"):
        assert build_parser().parse_args([command, "--seed", largest]).seed == 2**64 - 1
    torch.manual_seed(2**64 - 1)  # and torch takes it


# ---- verify --------------------------------------------------------------------------------------


def test_verify_json_is_checked_before_the_sweep(capsys, tmp_path: Path, no_work) -> None:
    """Before, a folder given as --json failed after the whole sweep; its errors spoke of an --out folder."""
    (tmp_path / "results").mkdir()
    (tmp_path / "a-file").write_text("x")
    folder, below_a_file = tmp_path / "results", tmp_path / "a-file" / "results.json"
    line = refused(capsys, tmp_path, "verify", "--cases", "1", "--models", "none", "--json", str(folder))
    assert f"--json {folder} is a folder; give a file name, e.g. --json {folder / 'results.json'}" in line
    line = refused(capsys, tmp_path, "verify", "--cases", "1", "--models", "none", "--json", str(below_a_file))
    assert f"--json {below_a_file}: {tmp_path / 'a-file'} exists and is not a folder" in line


def test_verify_cases_cannot_be_negative_or_leave_nothing(capsys, tmp_path: Path, no_work) -> None:
    line = refused(capsys, tmp_path, "verify", "--cases", "-1", "--models", "none")
    assert "argument --cases: must be a non-negative integer (0 or more), got -1" in line
    line = refused(capsys, tmp_path, "verify", "--cases", "0", "--models", "none")
    assert "--cases 0 with --models none leaves nothing to verify" in line


def test_verify_batch_is_bounded_and_reaches_the_model_layers(capsys, tmp_path: Path, monkeypatch) -> None:
    for value, message in (("0", "must be a positive integer"), ("17", "--batch 17: at most 16")):
        with monkeypatch.context() as patched:
            patched.setattr(convlens.verify, "run", lambda *a, **k: pytest.fail("the sweep started"))
            assert message in refused(capsys, tmp_path, "verify", "--models", "alexnet", "--batch", value)
    asked = []
    real = convlens.verify.model_configs
    monkeypatch.setattr(
        convlens.verify, "model_configs", lambda names, batch: asked.append(batch) or real(names, batch)[:1]
    )
    code, out, err = cli(
        capsys, "verify", "--cases", "0", "--models", "alexnet", "--batch", "2", "--algorithms", "im2col"
    )
    assert code == 0, err
    assert asked == [2] and "layers of alexnet at batch 2" in " ".join(out.split())


def test_verify_json_to_a_file_still_works(capsys, tmp_path: Path) -> None:
    path = tmp_path / "new" / "results.json"
    code, _, err = cli(
        capsys, "verify", "--cases", "1", "--models", "none", "--algorithms", "im2col", "--json", str(path)
    )
    assert code == 0, err
    assert path.is_file() and '"cases": 1' in path.read_text()


# ---- bench ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [("--batch", "0"), ("--batch", "-1"), ("--batch", "8,0"),  # before: tracebacks
     ("--threads", "-1"), ("--threads", "0"),  # before: a traceback; ignored
     ("--rounds", "0"),  # before: "no median for empty data"
     ("--limit", "0"), ("--limit", "-1"),  # before: an empty report; every layer but the last
     ("--min-run-time", "nan"), ("--min-run-time", "inf"), ("--min-run-time", "-1"), ("--min-run-time", "0"),
     ("--kernel", "0")],  # before: nan hung, -1 was taken
)  # fmt: skip
def test_bench_numbers_must_be_positive(capsys, tmp_path: Path, no_work, option: str, value: str) -> None:
    assert positive(option, value) in refused(capsys, tmp_path, "bench", option, value)


def test_bench_batch_that_would_not_fit_is_refused_before_allocating(capsys, tmp_path: Path, no_work) -> None:
    line = refused(capsys, tmp_path, "bench", "--batch", "100000")
    assert (
        "--batch 100000: resnet50 3->64 7x7 @224x224 s2 would need about 2,350.5 GiB (2,523,852,800,000 bytes)" in line
    )
    assert "GiB" in line.split("more than the ")[1] and "of memory on cpu" in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kernel", "99"], "--kernel: no layer of suite resnet50 has a 99x99 kernel; kernels there: 1x1, 3x3, 7x7"),
        (["--kernel", "3", "--limit", "1"],
         "--kernel: no layer of suite resnet50 (the first 1 layer) has a 3x3 kernel; kernels there: 7x7"),
        (["--suite", ","], "--suite names no suite; choose from resnet50, vgg16"),
    ],
)  # fmt: skip
def test_bench_refuses_to_write_an_empty_report(capsys, tmp_path: Path, no_work, args, message) -> None:
    assert message in refused(capsys, tmp_path, "bench", *args)


def test_bench_threads_are_honoured(capsys, monkeypatch, tmp_path: Path) -> None:
    seen: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    code, _, err = cli(capsys, "bench", "--suite", "seed", "--batch", "1", "--algorithms", "im2col", "--threads", "1",
                         "--limit", "1", "--rounds", "1", "--min-run-time", "0.01", "--out", str(tmp_path))  # fmt: skip
    assert code == 0, err
    assert seen[0] == 1 and (tmp_path / "bench.md").is_file()  # (torch's Timer sets its own afterwards)


# ---- everywhere ----------------------------------------------------------------------------------


def test_argparse_errors_are_one_line_too(capsys, tmp_path: Path) -> None:
    assert "(see convlens explain --help)" in refused(capsys, tmp_path, "explain", "--filter", "x")
    code, _, err = cli(capsys, "explain", "--sise", "5")  # the top parser's error: "convlens: error: ..."
    assert code == 2 and err == "convlens: error: unrecognized arguments: --sise 5 (see convlens --help)\n"


@pytest.mark.parametrize("step", ["replace", "chmod"])
def test_ctrl_c_while_writing_leaves_no_temporary_file(capsys, monkeypatch, tmp_path: Path, step: str) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, step, interrupted)
    code, _, err = cli(capsys, "explain", "--out", str(tmp_path))
    assert code == EXIT_INTERRUPTED == 130
    assert err == "convlens explain: interrupted\n"
    assert list(tmp_path.iterdir()) == []  # neither explain.png nor .explain.png.*.tmp
