"""Whole models: a torchvision model's forward with every Conv2d computed by convlens, against PyTorch.

    python benchmarks/models.py                                # resnet50, mobilenet_v2; batch 1 and 8; auto
    python benchmarks/models.py --models resnet18 --batch 8 --algorithm im2col
    python benchmarks/models.py --channels-last                # model and input channels-last
    python benchmarks/models.py --train                        # forward + backward + an SGD step, train mode
    python benchmarks/models.py --train --frozen-weights       # forward + backward only

What a user who swaps convlens layers into a real model (``convlens.nn.convert``) sees: the
per-layer ratios of ``convlens bench`` weighted by where the model spends its time, with the
layers convlens does not touch (batch norm, ReLU, pooling, the classifier) the same on both
sides. Random weights (nothing is downloaded), a 224x224 random input, eval mode and no
autograd unless ``--train``; PyTorch's model and its converted copy share nothing and are timed
interleaved in one process (median of repeats, ``torch.utils.benchmark``). A train step is the
forward, the backward of a loss and a plain SGD step (learning rate 1e-4), so that the weights
change every step as in training, and every transform convlens keeps of a weight (Winograd's U,
gemm.c's weight rows) is made again; ``--frozen-weights`` leaves the step out (before the
twentieth session's figures in benchmarks/RESULTS.md, --train timed it that way).

Also printed: each model's error against a float64 copy of the model, the largest difference
of its outputs (for --train, of its loss) over the largest float64 output. The PyTorch column
tells how well-conditioned the comparison is: in train mode at random initialisation, batch
norm's batch statistics make MobileNetV2's float32 output differ from its float64 output by
tens of percent even in PyTorch, so a difference between the two float32 models there says
nothing about convlens.
"""

from __future__ import annotations

import argparse
import copy

import torch
import torchvision
from rich.console import Console
from rich.progress import track
from rich.table import Table

import convlens
from convlens.benchmark.report import cpu_name
from convlens.benchmark.timing import interleaved_medians


def forward_call(model: torch.nn.Module, x: torch.Tensor, train: bool, sgd: bool = False):
    """One call of the timed work: the forward under no_grad, or forward + backward of a loss, and
    with ``sgd`` an SGD step of the weights."""
    if not train:
        return lambda: model(x)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4) if sgd else None

    def step() -> torch.Tensor:
        model.zero_grad(set_to_none=True)
        loss = model(x).square().mean()
        loss.backward()
        if optimizer is not None:
            optimizer.step()
        return loss

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet50,mobilenet_v2", help="comma-separated torchvision model names")
    parser.add_argument("--batch", default="1,8", help="comma-separated batch sizes")
    parser.add_argument("--algorithm", default="auto")
    parser.add_argument("--precision", choices=["highest", "high"], default="high")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--train", action="store_true", help="time forward + backward + SGD step in train mode")
    parser.add_argument("--frozen-weights", action="store_true", help="with --train: no SGD step")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-run-time", type=float, default=1.0)
    args = parser.parse_args()
    convlens.set_precision(args.precision)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format

    step = "" if args.frozen_weights else " + SGD step"
    print(cpu_name())
    mode = f"forward + backward{step}, train mode" if args.train else "forward, eval mode"
    table = Table(
        title=f"Whole models, {mode}, algorithm {args.algorithm!r}, precision {args.precision!r}"
        f"{', channels-last' if args.channels_last else ''}, fp32, {torch.get_num_threads()} threads"
    )
    for column in ("model", "batch", "PyTorch ms", "convlens ms", "speedup", "convlens error", "PyTorch error"):
        table.add_column(column, justify="left" if column == "model" else "right", no_wrap=column == "model")
    runs = [(name, int(batch)) for name in args.models.split(",") for batch in args.batch.split(",")]
    for name, batch in track(runs, description="timing models"):
        torch.manual_seed(0)
        theirs = torchvision.models.get_model(name, weights=None).train(args.train).to(memory_format=layout)
        ours = convlens.nn.convert(copy.deepcopy(theirs), args.algorithm)
        x = torch.randn(batch, 3, 224, 224).contiguous(memory_format=layout)
        truth = copy.deepcopy(theirs).double()
        sgd = not args.frozen_weights
        calls = {
            "pytorch": forward_call(theirs, x, args.train, sgd),
            "convlens": forward_call(ours, x, args.train, sgd),
        }
        with torch.set_grad_enabled(args.train):
            expected = forward_call(truth, x.double(), args.train)().detach()
            errors = {  # the first calls also warm up (transform caches); the loss is the one before the step
                name: ((call().detach() - expected).abs().max() / expected.abs().max()).item()
                for name, call in calls.items()
            }
            seconds = interleaved_medians(calls, rounds=args.rounds, min_run_time=args.min_run_time)
        table.add_row(
            name,
            str(batch),
            f"{seconds['pytorch'] * 1e3:.1f}",
            f"{seconds['convlens'] * 1e3:.1f}",
            f"{seconds['pytorch'] / seconds['convlens']:.2f}x",
            f"{errors['convlens']:.1e}",
            f"{errors['pytorch']:.1e}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
