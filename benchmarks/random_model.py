"""Write a model folder with seeded random weights in a SmolLM2 shape, and a tokenizer.

The shapes are the configs under ``benchmarks/model_shapes/`` (SmolLM2-135M, 360M and 1.7B, and
a toy shape for CPU smoke runs). The folder loads like any local model (``--model DIR``), so a
GPU machine that cannot receive weights measures the engine and the pipeline on the real shapes:
speed, memory and numerics, not what real weights select.

    python benchmarks/random_model.py --shape smollm2-1.7b --tokenizer gpu_bundle/tokenizer \\
        --out /tmp/models/smollm2-1.7b --dtype bfloat16 --device cuda
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from common import build_random_model, shape_names

from ai_filters.engine.models import DTYPES


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--shape", required=True, choices=shape_names(), help="model shape")
    parser.add_argument(
        "--tokenizer", type=Path, required=True, help="folder holding the tokenizer's files"
    )
    parser.add_argument("--out", type=Path, required=True, help="model folder to write")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="weights dtype")
    parser.add_argument("--device", default="cpu", help="where the weights are drawn")
    args = parser.parse_args(argv)
    if not (args.tokenizer / "tokenizer.json").is_file():
        parser.error(f"--tokenizer: {args.tokenizer}/tokenizer.json does not exist")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    build_random_model(
        args.shape, args.tokenizer, args.out, DTYPES[args.dtype], torch.device(args.device)
    )
    print(f"wrote {args.out} ({args.shape}, {args.dtype}) in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
