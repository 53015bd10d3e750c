"""convlens tune: one calibration per machine for auto's compiled-kernel rules, kept in the user's
cache folder and used by auto in every process with the same key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import convlens
from convlens import native, tune
from convlens.algos.auto import choose
from convlens.spec import ConvSpec

needs_kernels = pytest.mark.skipif(not native.available(), reason="auto's rules 5 to 7 need the compiled kernels")


LADDER = [tune.Probe("tiny", 1, c, c, 16, 3) for c in (4, 8, 16, 32, 64)]  # 36,864 .. 9,437,184 MACs


def test_the_threshold_is_where_direct_stops_leading() -> None:
    faster = [True, True, True, False, False]
    timings = [tune.Timing(p, 1.0 if f else 2.0, 2.0 if f else 1.0) for p, f in zip(LADDER, faster)]
    assert tune.fit_threshold(timings) == LADDER[2].macs
    assert tune.fit_threshold([tune.Timing(p, 2.0, 1.0) for p in LADDER]) == 0  # im2col everywhere: direct takes none
    assert tune.fit_threshold([tune.Timing(p, 1.0, 2.0) for p in LADDER]) == LADDER[-1].macs


def test_a_near_tie_out_of_line_does_not_move_the_threshold() -> None:
    """Misrouting costs log(slower / faster): a 2% win for im2col inside direct's range costs less
    than sending a 2x im2col win to direct."""
    times = [(1.0, 2.0), (1.02, 1.0), (1.0, 2.0), (2.0, 1.0), (2.0, 1.0)]
    assert tune.fit_threshold([tune.Timing(p, d, i) for p, (d, i) in zip(LADDER, times)]) == LADDER[2].macs


def test_stems_go_to_direct_when_it_is_faster_over_the_stems() -> None:
    stems = [p for p in tune.PROBES if p.rule == "stem"]
    assert len(stems) == 3 and all(p.in_channels <= 4 and p.kernel >= 5 for p in stems)
    ladder = [tune.Timing(p, 1.0, 2.0) for p in tune.PROBES if p.rule != "stem"]
    assert tune.fit([*ladder, *(tune.Timing(p, 1.0, 1.5) for p in stems)]).stems
    mostly_im2col = [tune.Timing(stems[0], 1.0, 1.1), *(tune.Timing(p, 1.5, 1.0) for p in stems[1:])]
    assert not tune.fit([*ladder, *mostly_im2col]).stems


def test_gemm_takes_dense_layers_up_to_the_depth_where_it_stops_leading() -> None:
    ladder = [p for p in tune.PROBES if p.rule == "gemm"]
    depths = [p.depth for p in ladder]
    assert all(p.compiled == "gemm" and p.stride == 2 for p in ladder) and {p.batch for p in ladder} == {1, 8}
    assert min(depths) <= 576 and max(depths) >= 4608  # ResNet-50's stride-2 3x3 layers, 64 to 512 channels
    others = [tune.Timing(p, 1.0, 2.0) for p in tune.PROBES if p.rule != "gemm"]
    gemm_leads = [tune.Timing(p, 1.0 if p.depth <= 1152 else 1.2, 1.1) for p in ladder]
    assert tune.fit([*others, *gemm_leads]).gemm_max_rows == 1152
    assert tune.fit([*others, *(tune.Timing(p, 1.2, 1.0) for p in ladder)]).gemm_max_rows == 0


def test_the_key_holds_the_thread_count_cpu_and_versions() -> None:
    key = tune.machine()
    assert {"cpu", "capability", "kernels", "threads", "torch", "convlens"} <= key.keys()
    assert key["threads"] == torch.get_num_threads()
    assert tune.path(threads=1) != tune.path(threads=2)
    assert tune.path().parent == tune.cache_dir()


@needs_kernels
def test_a_calibration_changes_autos_choice_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVLENS_CACHE_DIR", str(tmp_path))
    small = (torch.randn(1, 4, 8, 8), torch.randn(4, 4, 3, 3))
    # a stem gemm.c does not take (C_out not a multiple of 16), which the calibration sends to direct.c or not
    stem = ConvSpec.from_args(torch.empty(1, 3, 224, 224), torch.empty(24, 3, 7, 7), stride=2, padding=3)
    assert convlens.explain_choice(*small, padding=1).algorithm == "direct"  # the built-in rules
    assert choose(stem).algorithm.name == "direct"

    file = tune.save(tune.Thresholds(tiny_macs=0, tiny_pointwise_macs=0, stems=False, gemm_max_rows=2304), [])
    assert file.parent == tmp_path and json.loads(file.read_text())["thresholds"]["stems"] is False
    explained = convlens.explain_choice(*small, padding=1)
    assert explained.algorithm == "im2col"
    assert choose(stem).algorithm.name == "im2col"
    torch.testing.assert_close(convlens.conv2d(*small, padding=1), torch.nn.functional.conv2d(*small, padding=1))

    tune.save(tune.Thresholds(tiny_macs=10**6, tiny_pointwise_macs=0, stems=True, gemm_max_rows=2304), [])
    explained = convlens.explain_choice(*small, padding=1)
    assert explained.algorithm == "direct" and str(file) in explained.reason
    deep = (torch.randn(1, 256, 28, 28), torch.randn(256, 256, 3, 3))  # 2304 deep, stride 2
    assert convlens.explain_choice(*deep, stride=2, padding=1).algorithm == "gemm"
    tune.save(tune.Thresholds(tiny_macs=10**6, tiny_pointwise_macs=0, stems=True, gemm_max_rows=1152), [])
    explained = convlens.explain_choice(*deep, stride=2, padding=1)
    assert explained.algorithm == "im2col" and str(file) in explained.reason
    assert tune.forget() == file and not file.exists()
    assert "convlens tune" not in convlens.explain_choice(*small, padding=1).reason
    tune.save(tune.Thresholds(tiny_macs=0, tiny_pointwise_macs=0, stems=False, gemm_max_rows=2304), [])
    assert str(file) in convlens.explain_choice(*small, padding=1).reason  # im2col, past the measured thresholds


@pytest.mark.parametrize(
    "thresholds",
    ['{"tiny_macs": "lots"}', '{"tiny_macs": 1, "tiny_pointwise_macs": -1, "stems": true, "gemm_max_rows": 9}',
     '{"tiny_macs": 1, "tiny_pointwise_macs": 1, "stems": "no", "gemm_max_rows": 9}',
     '{"tiny_macs": 1, "tiny_pointwise_macs": 1, "stems": true}',
     '{"tiny_macs": 1, "tiny_pointwise_macs": 1, "stems": true, "gemm_max_rows": 1.5}', "[1, 2]"],
)  # fmt: skip
def test_a_broken_calibration_is_ignored_with_one_warning(
    thresholds: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVLENS_CACHE_DIR", str(tmp_path))
    tune.path().write_text(f'{{"format": {tune.FORMAT}, "thresholds": ' + thresholds + "}")
    with pytest.warns(RuntimeWarning, match="ignoring .* built-in rules"):
        assert tune.stored() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tune.stored() is None  # read once per key: no second warning
        convlens.conv2d(torch.randn(1, 2, 5, 5), torch.randn(2, 2, 3, 3))


@needs_kernels
def test_the_command_measures_writes_and_every_process_uses_it(tmp_path: Path) -> None:
    env = {**os.environ, "CONVLENS_CACHE_DIR": str(tmp_path), "COLUMNS": "200"}

    def convlens_command(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "convlens", "tune", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    dry = convlens_command("--rounds", "1", "--min-run-time", "0.001", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "--dry-run: nothing written" in dry.stdout and not list(tmp_path.iterdir())
    done = convlens_command("--rounds", "1", "--min-run-time", "0.001")
    assert done.returncode == 0, done.stderr
    for probe in tune.PROBES:
        assert str(probe) in done.stdout
    (file,) = tmp_path.iterdir()
    assert f"wrote {file}" in done.stdout.replace("\n", "")
    data = json.loads(file.read_text())
    assert [p["layer"] for p in data["probes"]] == [str(p) for p in tune.PROBES]
    assert all(p["compiled_s"] > 0 and p["im2col_s"] > 0 for p in data["probes"])
    assert [p["compiled"] for p in data["probes"]] == [probe.compiled for probe in tune.PROBES]
    timings = [tune.Timing(probe, p["compiled_s"], p["im2col_s"]) for probe, p in zip(tune.PROBES, data["probes"])]
    assert data["thresholds"] == {k: v for k, v in vars(tune.fit(timings)).items() if k != "source"}

    # another process on this machine, with the same threads, reads it: the same choice, saying why
    thresholds = data["thresholds"]
    script = (
        f"import torch, convlens; torch.set_num_threads({torch.get_num_threads()}); "
        "print(convlens.explain_choice(torch.randn(1, 64, 8, 8), torch.randn(64, 64, 1, 1)).reason)"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert str(file) in other.stdout, other.stdout + other.stderr
    assert ("small layer" in other.stdout) is (thresholds["tiny_pointwise_macs"] >= 64 * 64 * 64)

    shown = convlens_command("--show")
    assert shown.returncode == 0 and f"from {file}" in shown.stdout.replace("\n", "")
    forgot = convlens_command("--forget")
    assert forgot.returncode == 0 and f"deleted {file}" in forgot.stdout.replace("\n", "") and not file.exists()
    assert "no calibration for this machine" in convlens_command("--show").stdout


def test_without_the_kernels_there_is_nothing_to_tune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No compiled kernels: auto never picks direct.c, so tune says so, measures nothing and writes
    nothing (exit 1: the answer is no); --show still prints the built-in rules."""
    from convlens.cli import main

    monkeypatch.setenv("CONVLENS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(native, "_library", None)
    monkeypatch.setattr(native, "_reason", "no compiled kernels (test)")
    assert main(["tune"]) == 1
    assert "nothing to tune: no compiled kernels (no compiled kernels (test))" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())
    assert main(["tune", "--show"]) == 0
    assert "no calibration for this machine" in capsys.readouterr().out


def test_an_unwritable_cache_folder_is_refused_before_any_timing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from convlens.cli import main

    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("CONVLENS_CACHE_DIR", str(blocker))
    monkeypatch.setattr(tune, "measure", lambda *args, **kwargs: pytest.fail("timed before checking the folder"))
    if not native.available():
        pytest.skip(native.reason())
    assert main(["tune"]) == 2
    assert f"cache (CONVLENS_CACHE_DIR) {blocker} exists and is not a folder" in capsys.readouterr().err
