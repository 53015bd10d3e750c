"""One calibration per machine for auto's compiled-kernel rules: ``convlens tune``.

auto's rules 5 and 7 (:mod:`convlens.algos.auto`) send small layers and stems to the compiled direct
kernel (direct.c) instead of im2col, and its rule 6 dense 3x3 layers up to a depth (k_h*k_w*C_in) to
the compiled tap-wise GEMM (gemm.c; larger kernels at any depth). Where each stops paying depends on
the CPU. direct.c's built-in thresholds were measured on an AMD EPYC (AVX2), where direct leads
im2col on 3x3 layers up to about 2^22 multiply-adds and on ResNet's 7x7 stem; on an Intel Xeon with
AVX-512 im2col (oneDNN's matmul) led from about 2^19 and on that stem while direct.c started threads
per call and summed 8 lanes (thirteenth session), and direct.c leads up to about 2^24 and on the
stem since it runs on torch's OpenMP team with 16-lane output blocks (fourteenth session). gemm.c
leads im2col on ResNet-50's 2304-deep stride-2 layer with AVX-512, and trails it with AVX2 loops on
both sides (``benchmarks/as_avx2.sh``, sixteenth session; all in benchmarks/RESULTS.md).
So a machine can be measured once:

    probes    a ladder of small 3x3 layers, of 1x1 layers, three stems, and a ladder of 3x3
              stride-2 layers by depth at batch 1 and 8 (gemm.c reads its weight once per piece
              of the batch, so where it stops leading moves with the batch) (PROBES), each timed
              with its compiled kernel (direct.c; gemm.c for the depth ladder) and im2col,
              interleaved, median of rounds (``interleaved_medians``)
    fit       each threshold t (0 or a probe's multiply-adds, or depth) routes the probes of at
              most t to the compiled kernel; the t kept misroutes the least time, the cost of a
              misrouted probe being log(slower / faster) (``fit_threshold``); stems go to direct
              when direct is faster over the three stems (geometric mean)
    stored    as JSON in the user's cache directory (``cache_dir``), named by a digest of the
              machine's key: CPU model, torch's CPU capability (AVX512, AVX2, ...), the loops
              convlens's kernels run (``native.instruction_set()``), threads, torch and convlens
              versions (``machine``); written atomically

auto reads the file whose key is this process's (``stored``: once per key, so every process on
that machine and thread count makes the same choices) and keeps its built-in constants when there
is none. A different thread count, torch or convlens version is another key: measured again, or
the built-in rules.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from convlens import native
from convlens.files import atomic_write_bytes
from convlens.spec import ConvSpec

FORMAT = 2  # the file's layout; a file of another layout is ignored


@dataclass(frozen=True)
class Thresholds:
    """What auto's rules 5 to 7 read: multiply-adds up to which direct.c takes a layer (a 1x1
    unpadded stride-1 layer: ``tiny_pointwise_macs``), whether it takes stems, and the depth
    (k_h*k_w*C_in) up to which gemm.c takes a dense layer."""

    tiny_macs: int
    tiny_pointwise_macs: int
    stems: bool
    gemm_max_rows: int
    source: str = ""  # the file they came from


@dataclass(frozen=True)
class Probe:
    """One layer ``convlens tune`` times: which threshold it informs, and its sizes."""

    rule: str  # "tiny", "pointwise", "stem" (direct.c against im2col) or "gemm" (gemm.c against im2col)
    batch: int
    in_channels: int
    out_channels: int
    size: int
    kernel: int
    stride: int = 1
    groups: int = 1

    @property
    def padding(self) -> int:
        return 0 if self.rule == "pointwise" else self.kernel // 2

    def tensors(self, generator: torch.Generator | None = None, device: str = "cpu") -> tuple[torch.Tensor, ...]:
        """The probe's input and weight, random (on the meta device: shapes only)."""
        x_shape = (self.batch, self.in_channels, self.size, self.size)
        w_shape = (self.out_channels, self.in_channels // self.groups, self.kernel, self.kernel)
        if device == "meta":
            return torch.empty(x_shape, device="meta"), torch.empty(w_shape, device="meta")
        return torch.randn(x_shape, generator=generator), torch.randn(w_shape, generator=generator)

    @property
    def compiled(self) -> str:
        """The algorithm timed against im2col: gemm for the depth ladder, else direct."""
        return "gemm" if self.rule == "gemm" else "direct"

    @property
    def depth(self) -> int:
        """The depth of its product, k_h*k_w*C_in per group: rule 6's measure."""
        return self.in_channels // self.groups * self.kernel * self.kernel

    @property
    def macs(self) -> int:
        """Multiply-adds, as ConvSpec counts them."""
        x, w = self.tensors(device="meta")
        return ConvSpec.from_args(x, w, None, stride=self.stride, padding=self.padding, groups=self.groups).flops // 2

    def __str__(self) -> str:
        groups = f" g={self.groups}" if self.groups > 1 else ""
        stride = f" s{self.stride}" if self.stride > 1 else ""
        return (
            f"N={self.batch} {self.in_channels}->{self.out_channels} {self.kernel}x{self.kernel}{stride}{groups} "
            f"@{self.size}"
        )


PROBES = (
    *(Probe("tiny", 1, c, c, size, 3) for c, size in ((4, 8), (8, 16), (16, 16), (32, 16), (48, 16), (64, 14))),
    Probe("tiny", 1, 3, 16, 32, 3), Probe("tiny", 4, 8, 8, 16, 3), Probe("tiny", 1, 32, 32, 16, 3, groups=4),
    Probe("tiny", 4, 16, 16, 32, 3), Probe("tiny", 1, 96, 96, 14, 3), Probe("tiny", 1, 64, 64, 28, 3),
    *(Probe("pointwise", 1, c_in, c_out, size, 1) for c_in, c_out, size in (
        (16, 16, 16), (64, 64, 8), (32, 64, 16), (64, 64, 14), (32, 192, 28), (960, 160, 7))),
    Probe("stem", 1, 3, 64, 224, 7, stride=2), Probe("stem", 1, 3, 64, 224, 11, stride=4),
    Probe("stem", 1, 3, 32, 224, 5, stride=2),
    *(Probe("gemm", batch, c, c, size, 3, stride=2) for batch in (1, 8) for c, size in (
        (64, 56), (128, 56), (192, 28), (256, 28), (384, 14), (512, 14))),
)  # fmt: skip


@dataclass(frozen=True)
class Timing:
    """A probe's median seconds per call with its compiled kernel (``probe.compiled``) and im2col."""

    probe: Probe
    compiled: float
    im2col: float


def cache_dir() -> Path:
    """Where calibrations are kept: $CONVLENS_CACHE_DIR, else $XDG_CACHE_HOME/convlens, else
    ~/.cache/convlens."""
    if os.environ.get("CONVLENS_CACHE_DIR"):
        return Path(os.environ["CONVLENS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "convlens"


@functools.cache
def cpu_model() -> str:
    """The CPU's model name as the OS reports it (Linux: /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(threads: int | None = None) -> dict[str, str | int]:
    """The key a calibration holds for: what changes which algorithm is faster."""
    from convlens import __version__

    return {
        "cpu": cpu_model(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "kernels": native.instruction_set(),
        "threads": torch.get_num_threads() if threads is None else threads,
        "torch": torch.__version__,
        "convlens": __version__,
    }


def path(threads: int | None = None) -> Path:
    """The file of this machine's calibration (which may not exist)."""
    key = json.dumps(machine(threads), sort_keys=True)
    return cache_dir() / f"tune-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


_lock = threading.Lock()
_stored: dict[tuple[str, int], Thresholds | None] = {}


def stored() -> Thresholds | None:
    """This machine's calibration, read once per cache folder and thread count; None without one.
    A file that cannot be read is reported once and ignored (auto keeps its built-in rules)."""
    key = (os.environ.get("CONVLENS_CACHE_DIR", ""), torch.get_num_threads())
    try:
        return _stored[key]
    except KeyError:
        pass
    with _lock:
        if key not in _stored:
            _stored[key] = read(path())
        return _stored[key]


def read(file: Path) -> Thresholds | None:
    """The thresholds in ``file``; None where it does not exist, or (with a warning) is not a
    calibration this version can use."""
    try:
        data = json.loads(file.read_text())
        if data["format"] != FORMAT:
            raise ValueError(f"format {data['format']!r}, not {FORMAT}")
        found = data["thresholds"]
        tiny, pointwise, stems = found["tiny_macs"], found["tiny_pointwise_macs"], found["stems"]
        gemm_max_rows = found["gemm_max_rows"]
        for name, value in (("tiny_macs", tiny), ("tiny_pointwise_macs", pointwise), ("gemm_max_rows", gemm_max_rows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if not isinstance(stems, bool):
            raise ValueError(f"stems must be true or false, got {stems!r}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        warnings.warn(f"convlens tune: ignoring {file} ({error}); auto uses its built-in rules", RuntimeWarning, 2)
        return None
    return Thresholds(tiny, pointwise, stems, gemm_max_rows, source=str(file))


def forget() -> Path | None:
    """Delete this machine's calibration; the file deleted, or None where there was none."""
    file = path()
    with _lock:
        _stored.clear()
    if not file.exists():
        return None
    file.unlink()
    return file


def measure(
    probes: Sequence[Probe] = PROBES,
    rounds: int = 3,
    min_run_time: float = 0.05,
    progress: Callable[[Probe], None] | None = None,
) -> list[Timing]:
    """Each probe timed with its compiled kernel and im2col, forward, float32, interleaved, on random
    data."""
    import convlens
    from convlens.timing import interleaved_medians

    generator = torch.Generator().manual_seed(0)
    timings = []
    for probe in probes:
        x, w = probe.tensors(generator)
        runs = {
            name: functools.partial(
                convlens.conv2d, x, w, stride=probe.stride, padding=probe.padding, groups=probe.groups, algorithm=name
            )
            for name in (probe.compiled, "im2col")
        }
        with torch.no_grad():
            for call in runs.values():
                call()  # warm up
            seconds = interleaved_medians(runs, rounds=rounds, min_run_time=min_run_time)
        timings.append(Timing(probe, seconds[probe.compiled], seconds["im2col"]))
        if progress is not None:
            progress(probe)
    return timings


def fit_threshold(timings: Sequence[Timing], size: Callable[[Probe], int] = lambda probe: probe.macs) -> int:
    """The size t (0 or a probe's: multiply-adds, or ``size``) up to which the compiled kernel should
    take a layer: the t whose routing (the kernel for probes of at most t, im2col above) misroutes
    the least time, a misrouted probe costing log(slower / faster); the smallest such t."""

    def misrouted(t: int) -> float:
        return sum(
            abs(math.log(timing.compiled / timing.im2col))
            for timing in timings
            if (size(timing.probe) <= t) != (timing.compiled < timing.im2col)
        )

    return min([0, *sorted(size(timing.probe) for timing in timings)], key=lambda t: (misrouted(t), t))


def fit(timings: Sequence[Timing]) -> Thresholds:
    """The thresholds the timings call for (``fit_threshold`` per ladder, stems by geometric mean)."""
    by_rule = {rule: [t for t in timings if t.probe.rule == rule] for rule in ("tiny", "pointwise", "stem", "gemm")}
    stems = sum(math.log(t.im2col / t.compiled) for t in by_rule["stem"]) > 0
    gemm_max_rows = fit_threshold(by_rule["gemm"], size=lambda probe: probe.depth)
    return Thresholds(fit_threshold(by_rule["tiny"]), fit_threshold(by_rule["pointwise"]), stems, gemm_max_rows)


def save(thresholds: Thresholds, timings: Sequence[Timing]) -> Path:
    """Write the calibration for this machine (atomically) and use it from now on in this process."""
    file = path()
    file.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "format": FORMAT,
        "machine": machine(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "thresholds": {k: v for k, v in asdict(thresholds).items() if k != "source"},
        "probes": [
            dict(
                layer=str(t.probe),
                rule=t.probe.rule,
                macs=t.probe.macs,
                depth=t.probe.depth,
                compiled=t.probe.compiled,
                compiled_s=t.compiled,
                im2col_s=t.im2col,
            )
            for t in timings
        ],
    }
    atomic_write_bytes(file, (json.dumps(data, indent=1) + "\n").encode())
    with _lock:
        _stored.clear()
    return file
