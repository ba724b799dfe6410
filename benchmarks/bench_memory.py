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
import json
from collections.abc import Sequence

import torch
from common import (
    MIB,
    benchmark_documents,
    checked,
    corpus_texts,
    document_lengths,
    heads_of,
    model_documents_parser,
    peak_memory,
    report_head,
    timed,
    write_report,
)

from ai_filters.engine.models import load_model
from ai_filters.engine.scoring import ScoringConfig, ScoringEngine


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = model_documents_parser(__doc__.split("\n\n")[0], num_docs=64)
    parser.add_argument(
        "--batch-tokens",
        default="8192,16384,32768,65536",
        help="comma-separated batch sizes in tokens to measure",
    )
    args = checked(parser, argv)
    args.batch_token_list = [int(value) for value in args.batch_tokens.split(",") if value]
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
    heads = heads_of(args.model)
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
        **report_head("memory", device),
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
