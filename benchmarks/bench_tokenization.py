"""How much of the datatrove scorer's time goes to tokenizing, and what overlapping it saves.

1. **Through the block.** ``ai_filters.blocks.AttentionInfluenceScorer`` runs on documents of
   the demo corpus (datatrove ``Document`` objects, cut like ``make demo`` cuts them) exactly as
   a pipeline runs it (``block.run(documents)``). The engine's tokenizer call,
   ``ScoringEngine.tokenize_many``, is timed from outside (wrapped in this process, unchanged),
   so the share of the block's wall time spent tokenizing is measured on the real path. The
   block tokenizes in a background thread, so this share is the work it keeps off the
   critical path.
2. **Overlapped.** The same batches scored by ``ScoringEngine.score_texts`` one after another,
   against ``ScoringEngine.score_batches``, which tokenizes the next batch in a background
   thread while the model scores the current one. The variants alternate ``--rounds`` times.
3. **Tokenizer alone.** Its throughput in tokens/s on one batch call, which with the engine's
   tokens/s on another device gives the share there: ``engine / (engine + tokenizer)``.

Writes ``benchmarks/results/tokenization_<device>_<stamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from common import (
    EMBEDDED,
    EMBEDDED_HEADS,
    demo_documents_parser,
    peak_memory,
    report_head,
    write_heads_file,
    write_report,
)
from datatrove.data import Document

from ai_filters.blocks import AttentionInfluenceScorer
from ai_filters.blocks.scorer_base import shared_model
from ai_filters.demo.corpus import local_corpus
from ai_filters.engine.scoring import ScoringConfig, ScoringEngine
from ai_filters.engine.settings import EngineSettings


class TokenizerClock:
    """Wraps ``ScoringEngine.tokenize_many`` while active and adds up the seconds it takes."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.tokens = 0
        self._original = ScoringEngine.tokenize_many

    def __enter__(self) -> TokenizerClock:
        original = self._original

        def timed(engine: ScoringEngine, texts: Sequence[str]):
            start = time.perf_counter()
            encoded = original(engine, texts)
            self.seconds += time.perf_counter() - start
            self.tokens += sum(len(ids) for ids in encoded if ids is not None)
            return encoded

        ScoringEngine.tokenize_many = timed
        return self

    def __exit__(self, *exc) -> None:
        ScoringEngine.tokenize_many = self._original


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = demo_documents_parser(__doc__.split("\n\n")[0], docs_per_domain=48, max_tokens=512)
    parser.add_argument("--batch-size", type=int, default=64, help="documents per block batch")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of step 2")
    return parser.parse_args(argv)


def heads_file(folder: Path, device: str) -> Path:
    """A heads file selecting the embedded model's 14 detected heads (no detection run)."""
    loaded = shared_model(EMBEDDED, device, None)
    return write_heads_file(loaded, EMBEDDED_HEADS, folder / "heads.json")


def through_the_block(args: argparse.Namespace, texts: list[str], heads: Path) -> dict:
    """Step 1: the block's wall time and the part of it spent in the engine's tokenizer."""
    block = AttentionInfluenceScorer(
        heads,
        settings=EngineSettings(ScoringConfig(max_tokens=args.max_tokens), args.device),
        docs_per_batch=args.batch_size,
    )
    documents = [Document(text=text, id=str(i)) for i, text in enumerate(texts)]
    block.engine.score_texts(texts[:2])  # build the engine and warm up outside the clock
    with TokenizerClock() as clock:
        start = time.perf_counter()
        kept = sum(1 for _ in block.run(iter(documents)))
        total = time.perf_counter() - start
    return {
        "documents": len(documents),
        "kept": kept,
        "tokens_tokenized": clock.tokens,
        "block_s": total,
        "tokenize_s": clock.seconds,
        "tokenize_share": clock.seconds / total,
    }


def overlapped(args: argparse.Namespace, texts: list[str], engine: ScoringEngine) -> dict:
    """Step 2: the same batches in turn and with background tokenizing, alternately."""
    batches = [texts[i : i + args.batch_size] for i in range(0, len(texts), args.batch_size)]
    seconds: dict[str, list[float]] = {"in_turn": [], "background": []}
    for _ in range(args.rounds):
        start = time.perf_counter()
        in_turn = [engine.score_texts(batch) for batch in batches]
        seconds["in_turn"].append(time.perf_counter() - start)
        start = time.perf_counter()
        background = [scores for _, scores in engine.score_batches(batches)]
        seconds["background"].append(time.perf_counter() - start)
    same = [a.skip_reason for batch in in_turn for a in batch] == [
        b.skip_reason for batch in background for b in batch
    ]
    best = {name: min(values) for name, values in seconds.items()}
    return {
        "rounds_s": seconds,
        "best_s": best,
        "saved_share": 1 - best["background"] / best["in_turn"],
        "same_skips": same,
    }


def tokenizer_alone(engine: ScoringEngine, texts: list[str]) -> dict:
    """Step 3: one batched tokenizer call over all texts."""
    engine.tokenize_many(texts[:8])
    start = time.perf_counter()
    encoded = engine.tokenize_many(texts)
    seconds = time.perf_counter() - start
    tokens = sum(len(ids) for ids in encoded if ids is not None)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    corpus = local_corpus(args.docs_per_domain, seed=0, chunk_chars=args.chunk_chars)
    texts = [document["text"] for document in corpus]
    with tempfile.TemporaryDirectory(prefix="bench_tokenization.") as folder:
        heads = heads_file(Path(folder), args.device)
        block = through_the_block(args, texts, heads)
    loaded = shared_model(EMBEDDED, args.device, None)
    engine = ScoringEngine(loaded, EMBEDDED_HEADS, ScoringConfig(max_tokens=args.max_tokens))
    report = {
        **report_head("tokenization", args.device),
        "settings": {
            "device": args.device,
            "model": EMBEDDED,
            "documents": len(texts),
            "chunk_chars": args.chunk_chars,
            "max_tokens": args.max_tokens,
            "batch_size": args.batch_size,
            "rounds": args.rounds,
        },
        "block": block,
        "overlap": overlapped(args, texts, engine),
        "tokenizer": tokenizer_alone(engine, texts),
        "peak_rss_mib": peak_memory("cpu")["peak_rss_mib"],
    }
    print(json.dumps({key: report[key] for key in ("block", "overlap", "tokenizer")}, indent=1))
    print(f"wrote {write_report(report, args.out_dir, 'tokenization', args.device)}")


if __name__ == "__main__":
    main()
