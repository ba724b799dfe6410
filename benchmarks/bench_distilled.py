"""Speed and memory of the distilled scorer against the engine, on the same documents.

Both variants are the datatrove scorer blocks the selection pipeline runs, called on the same
scored documents of a selection (``OUT/scored/``), tokenization included:

- **engine**: ``AttentionInfluenceScorer`` with the selection's heads file (two forward passes
  of the selector per document, ``--max-tokens`` tokens at most), fp32 on the CPU;
- **distilled**: ``DistilledScorer`` with a model of ``ai-filters distill`` (the selector's
  tokenizer for ``ai_doc_tokens`` and the skips, then hashed n-grams and a dot product).

The engine scores ``--engine-docs`` documents (an equal share of each domain, chosen by a hash
of the id); the distilled scorer scores the same documents, repeated until ``--min-seconds``
have passed, and then every scored document of the selection once per pass likewise. Each
variant runs in its own process (this script re-invoked with ``--variant``), so its peak
resident memory is its own; variants alternate for ``--rounds`` rounds and each keeps its
fastest. The ratio is distilled documents/s over engine documents/s on the same documents.

    python benchmarks/bench_distilled.py --selection out/distill/attention_influence \\
        --model-dir out/distill/models/largest

Prints a summary and writes ``benchmarks/results/distilled_cpu_<YYYYmmdd-HHMMSS>.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import (
    MIB,
    RESULTS_DIR,
    add_variant_options,
    base_parser,
    peak_memory,
    report_head,
    variant_in_subprocess,
    write_report,
)

VARIANTS = ("engine", "distilled")
TARGET_RATIO = 1000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = base_parser(__doc__, raw=True)
    parser.add_argument("--selection", type=Path, required=True, help="AttentionInfluence OUT")
    parser.add_argument("--model-dir", type=Path, required=True, help="ai-filters distill output")
    parser.add_argument("--engine-docs", type=int, default=16, help="documents the engine scores")
    parser.add_argument("--max-tokens", type=int, default=192, help="engine: tokens per document")
    parser.add_argument("--min-seconds", type=float, default=5.0, help="distilled: timed at least")
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds, fastest kept")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    add_variant_options(parser, VARIANTS)
    return parser.parse_args(argv)


# ------------------------------------------------------------------------------- the documents
def scored_documents(selection: Path) -> list[dict]:
    """Every scored document of the selection: id, domain, text."""
    from ai_filters.documents import read_documents
    from ai_filters.selection.folder import SelectionFolder

    folder = SelectionFolder(selection)
    return [
        {"id": d["id"], "domain": d["metadata"]["domain"], "text": d["text"]}
        for path in folder.scored_files()
        for d in read_documents(path, strict=True)
    ]


def engine_sample(documents: list[dict], count: int) -> list[dict]:
    """``count`` documents, an equal share of each domain, the first by a hash of the id."""
    domains = sorted({d["domain"] for d in documents})
    ranked = {
        domain: sorted(
            (d for d in documents if d["domain"] == domain),
            key=lambda d: hashlib.blake2b(d["id"].encode(), digest_size=8).digest(),
        )
        for domain in domains
    }
    picked = [ranked[domains[i % len(domains)]][i // len(domains)] for i in range(count)]
    return sorted(picked, key=lambda d: d["id"])


# ------------------------------------------------------------------------------- the variants
def as_documents(rows: list[dict]):
    from datatrove.data import Document

    return [Document(text=r["text"], id=r["id"], metadata={"domain": r["domain"]}) for r in rows]


def run_engine(args: argparse.Namespace, payload: dict) -> dict:
    """The engine block on the sample: one warm-up document, then the sample once."""
    from ai_filters.blocks import AttentionInfluenceScorer
    from ai_filters.engine.scoring import ScoringConfig
    from ai_filters.engine.settings import EngineSettings

    started = time.monotonic()
    block = AttentionInfluenceScorer(
        str(Path(payload["heads"]).resolve()),
        engine=EngineSettings(ScoringConfig(max_tokens=args.max_tokens), "cpu", "float32"),
    )
    block.filter_batch(as_documents(payload["sample"][:1]))
    warm = time.monotonic() - started
    documents = as_documents(payload["sample"])
    started = time.monotonic()
    results = block.filter_batch(documents)
    seconds = time.monotonic() - started
    tokens = sum(d.metadata.get("ai_n_tokens", 0) for d in documents)
    return {
        "documents": len(documents),
        "scored": sum(result is True for result in results),
        "seconds": seconds,
        "docs_per_s": len(documents) / seconds,
        "scored_tokens_per_s": tokens / seconds,
        "load_and_warmup_s": warm,
        "torch_threads": torch.get_num_threads(),
    }


def timed_passes(block, rows: list[dict], min_seconds: float) -> dict:
    """Score ``rows`` with ``block`` in batches of its size, again and again, until
    ``min_seconds`` have passed; documents/s over all passes."""
    passes, seconds, scored, tokens = 0, 0.0, 0, 0
    while seconds < min_seconds:
        documents = as_documents(rows)  # fresh documents: metadata is written into them
        started = time.monotonic()
        for start in range(0, len(documents), block.batch_size):
            results = block.filter_batch(documents[start : start + block.batch_size])
            scored += sum(result is True for result in results)
        seconds += time.monotonic() - started
        tokens += sum(d.metadata.get("ai_doc_tokens", 0) for d in documents)
        passes += 1
    return {
        "documents": len(rows),
        "passes": passes,
        "seconds": seconds,
        "docs_per_s": passes * len(rows) / seconds,
        "doc_tokens_per_s": tokens / seconds,
        "chars_per_s": passes * sum(len(row["text"]) for row in rows) / seconds,
        "scored_per_pass": scored // passes,
    }


def run_distilled(args: argparse.Namespace, payload: dict) -> dict:
    """The distilled block: warm-up, the engine's sample, every document; and the model
    alone (no tokenizer) on every document."""
    from ai_filters.blocks import DistilledScorer

    started = time.monotonic()
    block = DistilledScorer(str(Path(payload["model_dir"]).resolve()))
    block.filter_batch(as_documents(payload["sample"][:1]))
    warm = time.monotonic() - started
    same = timed_passes(block, payload["sample"], args.min_seconds)
    every = timed_passes(block, payload["all"], args.min_seconds)
    texts = [row["text"] for row in payload["all"]]
    domains = [row["domain"] for row in payload["all"]]
    started, passes = time.monotonic(), 0
    while time.monotonic() - started < args.min_seconds:
        block.model.predict(texts, domains)
        passes += 1
    model_only = passes * len(texts) / (time.monotonic() - started)
    return {
        "same_documents": same,
        "all_documents": every,
        "model_only_docs_per_s": model_only,
        "docs_per_s": same["docs_per_s"],
        "load_and_warmup_s": warm,
        "weights_mib": block.model.weights.nbytes / MIB,
    }


def run_variant(args: argparse.Namespace) -> None:
    """Subprocess entry: run ``--variant`` on ``--docs-file``, write ``--result-file``."""
    payload = json.loads(args.docs_file.read_text())
    runner = run_engine if args.variant == "engine" else run_distilled
    result = runner(args, payload)
    result["peak_rss_mib"] = peak_memory("cpu")["peak_rss_mib"]
    args.result_file.write_text(json.dumps(result))


# ------------------------------------------------------------------------------- the report
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.variant:
        run_variant(args)
        return 0
    from ai_filters.distill import read_record

    record = read_record(args.model_dir)  # a bad folder fails before anything runs
    heads = args.selection / "heads.json"
    if not heads.is_file():
        raise SystemExit(f"error: {heads} is missing: give an AttentionInfluence selection")
    documents = scored_documents(args.selection)
    sample = engine_sample(documents, args.engine_docs)
    load_start = os.getloadavg()
    rounds: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory() as scratch:
        docs_file = Path(scratch) / "docs.json"
        payload = {"heads": str(heads), "model_dir": str(args.model_dir)}
        docs_file.write_text(json.dumps({**payload, "sample": sample, "all": documents}))
        for _ in range(args.rounds):
            for variant in rounds:
                work = Path(scratch)
                rounds[variant].append(
                    variant_in_subprocess(__file__, argv, variant, docs_file, work)
                )
    best = {name: max(runs, key=lambda run: run["docs_per_s"]) for name, runs in rounds.items()}
    ratio = best["distilled"]["docs_per_s"] / best["engine"]["docs_per_s"]
    result = {
        **report_head("distilled", "cpu", packages=("scikit-learn",), load_start=load_start),
        "settings": {
            "selection": str(args.selection),
            "model_dir": str(args.model_dir),
            "model_trained_on_documents": record["training"]["documents"],
            "engine_docs": args.engine_docs,
            "all_docs": len(documents),
            "max_tokens": args.max_tokens,
            "min_seconds": args.min_seconds,
            "rounds": args.rounds,
        },
        "variants": best,
        "rounds": rounds,
        "ratio": ratio,
        "ratio_all_documents": best["distilled"]["all_documents"]["docs_per_s"]
        / best["engine"]["docs_per_s"],
        "target_ratio": TARGET_RATIO,
        "target_met": ratio >= TARGET_RATIO,
    }
    path = write_report(result, args.out_dir, "distilled", "cpu")
    engine, distilled = best["engine"], best["distilled"]
    print(
        f"engine: {engine['docs_per_s']:.3f} documents/s on {engine['documents']} documents "
        f"({engine['scored_tokens_per_s']:.0f} tokens/s), peak RSS {engine['peak_rss_mib']:.0f} MiB"
    )
    print(
        f"distilled: {distilled['docs_per_s']:.0f} documents/s on the same documents, "
        f"{distilled['all_documents']['docs_per_s']:.0f} on all {len(documents)}, model alone "
        f"{distilled['model_only_docs_per_s']:.0f}; peak RSS {distilled['peak_rss_mib']:.0f} MiB "
        f"(weights {distilled['weights_mib']:.0f} MiB)"
    )
    print(
        f"ratio: {ratio:,.0f}x on the same documents (target {TARGET_RATIO:,}x: "
        f"{'met' if result['target_met'] else 'not met'}); load average {load_start[0]:.1f} at the "
        f"start; wrote {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
