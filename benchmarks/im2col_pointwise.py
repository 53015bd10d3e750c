"""im2col's 1x1 unpadded layers: one product (``im2col.pointwise``) against the general path's pieces.

    python benchmarks/im2col_pointwise.py        # ResNet-50's and MobileNetV2's 1x1 layers, batch 1 and 8
    python benchmarks/im2col_pointwise.py --suite resnet50 --batch 1

A 1x1 unpadded layer's columns are its input (stride 1), or its every s-th row and column (one
copy), so the layer is one matrix product with the bias in it; ``im2col.forward`` takes it
(``one_product``) through ``pointwise``, or ``pointwise_folded`` where the
batch is folded (``folds_batch``: a product over all images' positions, bias in it, input and
output transposed by a copy each). This times that call and the general path
(``forward_in_pieces``: the same product, reached through the pieces' bookkeeping; folded, with
the bias added after) on each such layer, interleaved with F.conv2d in one process (float32,
torch's threads), and prints each one's speedup over PyTorch, "folded" on the folded rows.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from convlens.algos import im2col
from convlens.benchmark.report import cpu_name
from convlens.benchmark.suites import suite
from convlens.benchmark.timing import interleaved_medians
from convlens.config import get_workspace_limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="resnet50,mobilenet_v2")
    parser.add_argument("--batch", default="1,8", help="comma-separated batch sizes")
    args = parser.parse_args()
    print(f"{cpu_name()}, {torch.get_num_threads()} threads; speedup over F.conv2d")
    workspace = get_workspace_limit()
    for name in args.suite.split(","):
        for batch in (int(b) for b in args.batch.split(",")):
            for layer in suite(name):
                spec = layer.spec(batch)
                if not im2col.one_product(spec, workspace):
                    continue
                folded = im2col.folds_batch(spec)
                one_product = im2col.pointwise_folded if folded else im2col.pointwise
                x, w, b = layer.tensors(batch)
                w = torch.nn.Parameter(w)  # as a model's layer holds it (torch.matmul copies the input for it)
                candidates = {
                    "pytorch": lambda x=x, w=w, b=b, layer=layer: F.conv2d(x, w, b, **layer.options),
                    "pointwise": lambda x=x, w=w, b=b, spec=spec, f=one_product: f(x, w, b, spec),
                    "pieces": lambda x=x, w=w, b=b, spec=spec: im2col.forward_in_pieces(x, w, b, spec, workspace),
                }
                with torch.no_grad():
                    medians = interleaved_medians(candidates, rounds=3, min_run_time=0.1)
                speedup = {key: medians["pytorch"] / seconds for key, seconds in medians.items()}
                times = f"pointwise {speedup['pointwise']:.2f}x  pieces {speedup['pieces']:.2f}x"
                times += "  folded" if folded else ""
                pytorch = f"PyTorch {medians['pytorch'] * 1e3:7.3f} ms"
                print(f"{name} N={batch} {layer.label:>26}  {pytorch}  {times}", flush=True)


if __name__ == "__main__":
    main()
