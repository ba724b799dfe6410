"""``ai-filters demo``: the method end to end on the embedded model, offline.

1. detect the retrieval heads (heads.json, heads.png);
2. check them: answer loss of probes with the heads masked versus as many random other heads;
3. score a small real four-domain corpus made from text on this machine (:mod:`corpus`);
4. print and write per-domain score statistics (summary.md, summary.json).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ai_filters.cli import _load, detect_to_file, progress_bar
from ai_filters.corpus import local_corpus
from ai_filters.documents import DocumentWriter, read_documents
from ai_filters.heads import probe_answer_losses, random_other_heads
from ai_filters.report import domain_statistics, format_table
from ai_filters.score_files import score_file
from ai_filters.scoring import AttentionInfluenceScorer, ScoringConfig

CHECK_PROBES = 8
RANDOM_DRAWS = 2


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def check_heads(loaded, heads, probes, losses) -> dict:
    """Answer loss of the first probes: plain, retrieval heads masked, random heads masked."""
    probes, plain = probes[:CHECK_PROBES], losses[:CHECK_PROBES]
    selected = heads.selected_heads
    masked = probe_answer_losses(loaded, probes, selected)
    random_losses = [
        _mean(
            probe_answer_losses(
                loaded,
                probes,
                random_other_heads(selected, heads.num_layers, heads.num_heads, seed),
            )
        )
        for seed in range(RANDOM_DRAWS)
    ]
    return {
        "probes": len(probes),
        "answer_loss_plain": _mean(plain),
        "answer_loss_retrieval_heads_masked": _mean(masked),
        "answer_loss_random_heads_masked": _mean(random_losses),
        "random_draws": random_losses,
    }


def run(args) -> int:
    """Run the demo described in the module docstring; returns the exit code."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    loaded = _load(args)
    context = min(4096, loaded.max_context)
    probe_tokens = context if args.full else args.probe_tokens
    num_probes = 800 if args.full else args.num_probes
    max_tokens = context if args.full else args.max_tokens
    settings = {
        "model": args.model,
        "device": str(loaded.device),
        "dtype": str(loaded.dtype),
        "num_probes": num_probes,
        "probe_tokens": probe_tokens,
        "top_fraction": args.top_fraction,
        "seed": args.seed,
        "docs_per_domain": args.docs_per_domain,
        "max_tokens": max_tokens,
    }
    print("demo settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    if not args.full:
        print("(the paper's setting is 800 probes of 4,096 tokens: add --full)")

    heads, probes, losses = detect_to_file(
        loaded, args, num_probes, probe_tokens, out / "heads.json", out / "heads.png"
    )
    check = check_heads(loaded, heads, probes, losses)
    print(
        f"probe answer loss on {check['probes']} probes: plain {check['answer_loss_plain']:.3f}, "
        f"{len(heads.selected)} retrieval heads masked "
        f"{check['answer_loss_retrieval_heads_masked']:.3f}, as many random heads masked "
        f"{check['answer_loss_random_heads_masked']:.3f} (mean of {RANDOM_DRAWS} draws)"
    )

    corpus_path = out / "corpus.jsonl"
    with DocumentWriter(corpus_path) as writer:
        for document in local_corpus(args.docs_per_domain, args.seed):
            writer.write(document)
    scorer = AttentionInfluenceScorer(
        loaded, heads.selected_heads, ScoringConfig(max_tokens=max_tokens)
    )
    bar, update = progress_bar(writer.count, "doc", "scoring")
    scoring_started = time.monotonic()
    with bar:
        summary = score_file(scorer, corpus_path, out / "scored.jsonl", progress=update)
    scoring_seconds = time.monotonic() - scoring_started
    tokens = sum(summary.tokens.values())
    print(summary.format())
    print(
        f"scoring: {sum(summary.scored.values()) / scoring_seconds:.2f} docs/s, "
        f"{tokens / scoring_seconds:.0f} tokens/s ({scoring_seconds:.0f} s)"
    )

    statistics = domain_statistics(read_documents(out / "scored.jsonl"))
    table = format_table(statistics)
    print(
        "\nAttentionInfluence per domain (ppl_overlap: share of the top 20 % that a "
        "lowest-loss 20 % perplexity filter also picks)"
    )
    print(table)
    report = {
        "settings": settings,
        "top_heads": [
            [layer, head, heads.scores[layer][head]] for layer, head in heads.selected_heads
        ],
        "probe_check": check,
        "scoring": {
            "documents": sum(summary.scored.values()),
            "tokens": tokens,
            "seconds": scoring_seconds,
        },
        "domains": statistics,
        "total_seconds": time.monotonic() - started,
    }
    (out / "summary.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "summary.md").write_text(table + "\n")
    print(
        f"\nwrote {out}/: heads.json heads.png corpus.jsonl scored.jsonl summary.json "
        f"summary.md ({report['total_seconds']:.0f} s)",
        file=sys.stderr,
    )
    return 0
