"""DistributedDataParallel: two gloo processes, each on half the batch, give the gradients of one
process on the whole batch."""

from __future__ import annotations

import faulthandler
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from convlens.nn import Conv2d

WORLD = 2
BATCH = 8


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        Conv2d(8, 8, 3, stride=2, groups=2, padding="valid", padding_mode="reflect"),
        torch.nn.ReLU(),
        Conv2d(8, 8, 3, padding="same", groups=8, padding_mode="circular"),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 10),
    ).double()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.randn(BATCH, 3, 16, 16, generator=generator, dtype=torch.float64), torch.arange(BATCH) % 10


def worker(rank: int, rendezvous: str, out_dir: str) -> None:
    # Once in a CI run both workers aborted ("terminate called without an active exception"); should it
    # happen again, this prints where each was (Python's stack on SIGABRT / SIGSEGV) into the test's stderr.
    faulthandler.enable()
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        model = torch.nn.parallel.DistributedDataParallel(small_model())
        images, labels = batch()
        shard = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
        F.cross_entropy(model(images[shard]), labels[shard]).backward()
        torch.save([p.grad for p in model.module.parameters()], Path(out_dir) / f"rank{rank}.pt")
        dist.barrier()  # both ranks done before teardown: gloo aborts if torn down mid-exchange
    finally:
        dist.destroy_process_group()


def test_ddp_gradients_equal_single_process(tmp_path: Path) -> None:
    mp.spawn(worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD, join=True)

    model = small_model()
    images, labels = batch()
    F.cross_entropy(model(images), labels).backward()
    expected = [p.grad for p in model.parameters()]
    for rank in range(WORLD):
        grads = torch.load(tmp_path / f"rank{rank}.pt")
        assert len(grads) == len(expected)
        for ours, reference in zip(grads, expected):
            torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)
