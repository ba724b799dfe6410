"""Shared by the distillation tests: a scored selection folder whose scores a text model can
learn, written in milliseconds without a model."""

from __future__ import annotations

import json
import random
from pathlib import Path

from ai_filters.distill import ScoredDocument, group_of
from ai_filters.documents import DocumentWriter

COMMON = (
    "the of and to in is that for it as was with be by on not he this are or his from at "
    "which but have an they you were her she all there can been has if more when will would "
    "who so no one what out up into do time only new some could these two may first then"
).split()
SIGNAL = ("therefore", "theorem", "proof", "lemma", "hence", "implies")
DOMAINS = ("web", "math")


def synthetic_documents(per_domain: int = 150, seed: int = 0) -> list[dict]:
    """Documents of common words with 0 to 12 signal words mixed in; the score is the signal
    share plus a little noise, so the ranking is learnable from the words alone."""
    generator = random.Random(seed)
    documents = []
    for domain in DOMAINS:
        for index in range(per_domain):
            words = [generator.choice(COMMON) for _ in range(60)]
            signals = generator.randint(0, 12)
            words += [generator.choice(SIGNAL) for _ in range(signals)]
            generator.shuffle(words)
            score = signals / len(words) + generator.gauss(0, 0.005)
            documents.append(
                {
                    "text": " ".join(words),
                    "id": f"{domain}/doc-{index:04d}",
                    "metadata": {"domain": domain, "attention_influence": score},
                }
            )
    return documents


def write_scored_selection(folder: Path, documents: list[dict], heads: bool = True) -> Path:
    """The part of a selection folder distillation reads: ``scored/<domain>/*.jsonl.gz``,
    ``scorer.json`` and (with ``heads``) a ``heads.json``."""
    for domain in sorted({d["metadata"]["domain"] for d in documents}):
        in_domain = [d for d in documents if d["metadata"]["domain"] == domain]
        for shard in range(2):
            with DocumentWriter(folder / "scored" / domain / f"{shard:05d}.jsonl.gz") as writer:
                for document in in_domain[shard::2]:
                    writer.write(document)
    record = {"scorer": "attention_influence", "score_key": "attention_influence", "fraction": 0.2}
    (folder / "scorer.json").write_text(json.dumps(record))
    if heads:
        (folder / "heads.json").write_text(json.dumps(HEADS_FILE))
    return folder


HEADS_FILE = {
    "model": "smollm2-135m",
    "model_fingerprint": "sha256:" + "ab" * 32,
    "num_layers": 2,
    "num_heads": 2,
    "num_kv_heads": 1,
    "scores": [[0.1, 0.9], [0.2, 0.3]],
    "selected": [[0, 1]],
    "settings": {},
    "format_version": 1,
}


def as_scored(documents: list[dict], group_key: str = "source_text") -> list[ScoredDocument]:
    """The documents of :func:`synthetic_documents` as distillation reads them."""
    return [
        ScoredDocument(
            d["id"],
            d["metadata"]["domain"],
            d["text"],
            d["metadata"]["attention_influence"],
            group_of(d["metadata"], group_key),
        )
        for d in documents
    ]


def grouped(documents: list[dict], size: int = 5, key: str = "source_text") -> list[dict]:
    """``documents`` with ``metadata[key]`` naming a source shared by ``size`` consecutive
    documents of a domain, as pieces cut from one text are."""
    return [
        {**d, "metadata": {**d["metadata"], key: f"{d['metadata']['domain']}/text-{i // size}"}}
        for i, d in enumerate(documents)
    ]
