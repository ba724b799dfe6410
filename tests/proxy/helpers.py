"""Shared by the proxy tests: a tiny size, stand-in selections, the demo folder layout."""

from __future__ import annotations

import random
from pathlib import Path

from ai_filters.documents import DocumentWriter
from ai_filters.proxy import ProxySize

# hidden 32, 2 layers, 8 steps of 2 x 32 tokens: a real Trainer run in about a second
TINY = ProxySize(
    hidden=32,
    layers=2,
    heads=2,
    kv_heads=1,
    intermediate=64,
    seq_len=32,
    batch_size=2,
    grad_accum=1,
    steps=8,
    lr=3e-3,
    bf16=False,
    logging_steps=1,
    eval_points=2,
)


def top_fraction(documents: list[dict], key, fraction: float = 0.2) -> list[dict]:
    """The first ``fraction`` of each domain's documents ordered by ``key`` (a stand-in
    selection: the tests need a selection, not a good one)."""
    picked = []
    for domain in sorted({d["metadata"]["domain"] for d in documents}):
        pool = sorted((d for d in documents if d["metadata"]["domain"] == domain), key=key)
        picked += pool[: max(1, round(fraction * len(pool)))]
    return picked


def with_random_scores(documents: list[dict], seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{**d, "metadata": {**d["metadata"], "random_score": rng.random()}} for d in documents]


def write_demo_layout(out: Path, corpus: list[dict]) -> None:
    """The folders ``make demo`` and the two control selections write, with stand-in picks."""
    scored = with_random_scores(corpus)
    by_length = top_fraction(corpus, key=lambda d: -len(d["text"]))
    by_id = top_fraction(corpus, key=lambda d: d["id"])
    for domain in {d["metadata"]["domain"] for d in corpus}:
        for folder, docs, name in (
            ("corpus", corpus, "00000.jsonl.gz"),
            ("controls/random/scored", scored, "00000.jsonl.gz"),
            ("selected/data", by_length, "00000.parquet"),
            ("controls/perplexity/selected/data", by_id, "00000.parquet"),
        ):
            with DocumentWriter(out / folder / domain / name) as writer:
                for document in docs:
                    if document["metadata"]["domain"] == domain:
                        writer.write(document)
