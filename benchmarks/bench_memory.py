"""Peak memory of the scoring engine against its batch size in tokens, with its speed.

One model (any model folder or the embedded one), loaded once; the same web-like documents
(log-normal lengths, as ``bench_scoring.py --lengths web-mix``) scored with the packed engine at
each ``--batch-tokens`` value. On a GPU the peak allocated memory is reset before each value,
so each figure is that batch size's own; on a CPU only the process's peak resident memory is
known, which never goes down (read the GPU figures). Writes
``benchmarks/results/memory_<device>_<stamp>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Sequence
from pathlib import Path

import torch
from common import (
    EMBEDDED,
    EMBEDDED_HEADS,
    MIB,
    RESULTS_DIR,
    benchmark_documents,
    corpus_texts,
    document_lengths,
    machine,
    peak_memory,
    random_heads,
    timed,
    write_report,
)

from ai_filters.engine.models import DTYPES, load_model
from ai_filters.engine.scoring import ScoringConfig, ScoringEngine


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--model", default=EMBEDDED, help="model spec or folder")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default=None, help="default: by device")
    parser.add_argument("--texts", type=Path, default=None, help="as bench_scoring.py --texts")
    parser.add_argument("--num-docs", type=int, default=64, help="documents scored per setting")
    parser.add_argument("--max-tokens", type=int, default=2048, help="the longest document")
    parser.add_argument("--median-tokens", type=int, default=600, help="median document length")
    parser.add_argument(
        "--batch-tokens",
        default="8192,16384,32768,65536",
        help="comma-separated batch sizes in tokens to measure",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    args = parser.parse_args(argv)
    args.batch_token_list = [int(value) for value in args.batch_tokens.split(",") if value]
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    return args


def measure(engine: ScoringEngine, documents: list[list[int]], device: torch.device) -> dict:
    """Score ``documents`` once to warm up, then again timed, with the device's peak memory."""
    engine.score_token_ids(documents[:4])
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device) / MIB if device.type == "cuda" else 0.0
    scores, seconds = timed(lambda: engine.score_token_ids(documents), device)
    tokens = sum(len(ids) for ids in documents)
    return {
        "tokens_per_s": tokens / seconds,
        "seconds": seconds,
        "skipped": sum(score.skip_reason is not None for score in scores),
        "weights_and_cache_mib": before,
        **peak_memory(device),
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    loaded = load_model(args.model, device=device, dtype=args.dtype)
    heads = EMBEDDED_HEADS if args.model == EMBEDDED else random_heads(loaded.config)
    lengths = document_lengths(
        args.num_docs, "web-mix", 0, args.median_tokens, 1.0, args.max_tokens
    )
    documents = benchmark_documents(loaded.tokenizer, lengths, corpus_texts(args.texts))
    ids = [document["ids"] for document in documents]
    results = {}
    for batch_tokens in args.batch_token_list:
        config = ScoringConfig(max_tokens=args.max_tokens, batch_tokens=batch_tokens, packing=True)
        results[str(batch_tokens)] = measure(ScoringEngine(loaded, heads, config), ids, device)
        print(f"batch_tokens {batch_tokens}: {json.dumps(results[str(batch_tokens)])}")
    report = {
        "benchmark": "memory",
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(device),
        "settings": {
            "model": args.model,
            "device": args.device,
            "dtype": str(loaded.dtype).removeprefix("torch."),
            "documents": len(ids),
            "tokens": sum(lengths),
            "max_tokens": args.max_tokens,
            "packing": True,
        },
        "by_batch_tokens": results,
    }
    print(f"wrote {write_report(report, args.out_dir, 'memory', args.device)}")


if __name__ == "__main__":
    main()
