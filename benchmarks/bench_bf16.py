"""Can bf16 scores be trusted? The engine in bf16 against the engine in fp32, on the demo corpus.

Both score the same documents of the four demo domains (cut like ``make demo`` cuts them) with
the embedded model and its 14 detected heads; in bf16 the weights and the decoder run in bf16
while the output layer and the loss run in fp32 (as the engine always does). Reported: the
Spearman correlation of the two score lists (pooled and per domain), and the Jaccard overlap of
the documents each selects with the method's rule (top 20 % of every domain, ties kept), with
the largest score and loss differences, the documents only one of them selects, every
document's two scores, the speed of bf16 relative to fp32 and the process's
peak memory (both models, one after the other).
Writes ``benchmarks/results/bf16_<device>_<stamp>.json``.
Targets: Spearman >= 0.99 and top-20 % Jaccard >= 0.9.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

import numpy as np
from common import (
    EMBEDDED,
    add_model_option,
    add_texts_option,
    checked,
    corpus_texts,
    demo_documents_parser,
    heads_of,
    peak_memory,
    report_head,
    timed,
    write_report,
)

from ai_filters.demo.corpus import DOMAINS, local_corpus
from ai_filters.engine.models import load_model
from ai_filters.engine.numerics import BF16_SCORE_DIFF
from ai_filters.engine.scoring import DocumentScore, ScoringConfig, ScoringEngine
from ai_filters.selection.compare import jaccard
from ai_filters.selection.report import spearman
from ai_filters.selection.thresholds import top_fraction_threshold

FRACTION = 0.2


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = demo_documents_parser(__doc__.split("\n\n")[0], docs_per_domain=25, max_tokens=256)
    add_model_option(
        parser,
        f"{EMBEDDED} (real weights: the agreement a selection sees) or a model folder, "
        "e.g. random weights from benchmarks/random_model.py (the numerics only)",
    )
    add_texts_option(parser)
    return checked(parser, argv)


def documents_of(args: argparse.Namespace) -> list[dict]:
    """``--docs-per-domain`` documents of each domain, from ``--texts`` or the local corpus."""
    if args.texts is None:
        return local_corpus(args.docs_per_domain, seed=0, chunk_chars=args.chunk_chars)
    documents = corpus_texts(args.texts)
    chosen: list[dict] = []
    for domain in DOMAINS:
        in_domain = [d for d in documents if d["metadata"]["domain"] == domain]
        chosen += in_domain[: args.docs_per_domain]
    return chosen


def score_in(
    dtype: str, args: argparse.Namespace, texts: list[str]
) -> tuple[list[DocumentScore], float]:
    """The engine's scores of ``texts`` with ``--model`` in ``dtype``, and the seconds."""
    loaded = load_model(args.model, device=args.device, dtype=dtype)
    engine = ScoringEngine(loaded, heads_of(args.model), ScoringConfig(max_tokens=args.max_tokens))
    engine.score_texts(texts[:1])
    return timed(lambda: engine.score_texts(texts), loaded.device)


def selected(scores: Sequence[float], domains: Sequence[str], tokens: Sequence[int]) -> set[int]:
    """Indices the method keeps: the top ``FRACTION`` of each domain, ties at the threshold kept."""
    keep: set[int] = set()
    for domain in sorted(set(domains)):
        index = [i for i, name in enumerate(domains) if name == domain]
        values = np.asarray([scores[i] for i in index], dtype=np.float64)
        counts = np.asarray([tokens[i] for i in index], dtype=np.int64)
        threshold = top_fraction_threshold(values, counts, FRACTION).threshold
        keep |= {i for i, value in zip(index, values, strict=True) if value >= threshold}
    return keep


def agreement(
    fp32: list[DocumentScore], bf16: list[DocumentScore], domains: list[str]
) -> dict[str, object]:
    """Spearman (pooled, per domain), top-20 % Jaccard, the largest differences, and whether
    every bf16 score lies within :data:`~ai_filters.engine.numerics.BF16_SCORE_DIFF` of its
    fp32 score
    (the bound measured on the CPU)."""
    both = [i for i, (a, b) in enumerate(zip(fp32, bf16, strict=True)) if a.skip_reason is None]
    both = [i for i in both if bf16[i].skip_reason is None]
    a = [fp32[i].attention_influence for i in both]
    b = [bf16[i].attention_influence for i in both]
    names = [domains[i] for i in both]
    tokens = [fp32[i].document_tokens for i in both]
    per_domain = {
        domain: spearman(
            [x for x, name in zip(a, names, strict=True) if name == domain],
            [y for y, name in zip(b, names, strict=True) if name == domain],
        )
        for domain in DOMAINS
        if domain in names
    }
    keep_a, keep_b = selected(a, names, tokens), selected(b, names, tokens)
    largest = max(abs(x - y) for x, y in zip(a, b, strict=True))
    swapped = sorted(keep_a ^ keep_b)
    return {
        "documents_scored": len(both),
        "skipped_fp32": sum(score.skip_reason is not None for score in fp32),
        "skipped_bf16": sum(score.skip_reason is not None for score in bf16),
        "spearman": spearman(a, b),
        "spearman_per_domain": per_domain,
        "selected_fp32": len(keep_a),
        "selected_bf16": len(keep_b),
        "top20_jaccard": jaccard({str(i) for i in keep_a}, {str(i) for i in keep_b}),
        "max_abs_diff_score": largest,
        "score_bound": BF16_SCORE_DIFF,
        "scores_within_bound": largest <= BF16_SCORE_DIFF,
        "score_std_fp32": float(np.std(a)),
        "max_rel_diff_loss_base": max(
            abs(bf16[i].loss_base - fp32[i].loss_base) / fp32[i].loss_base for i in both
        ),
        "swapped": [
            {"domain": names[i], "fp32": a[i], "bf16": b[i], "selected_in_fp32": i in keep_a}
            for i in swapped
        ],
        "documents": [
            {"domain": name, "fp32": x, "bf16": y} for name, x, y in zip(names, a, b, strict=True)
        ],
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    corpus = documents_of(args)
    texts = [document["text"] for document in corpus]
    domains = [document["metadata"]["domain"] for document in corpus]
    fp32, fp32_s = score_in("float32", args, texts)
    bf16, bf16_s = score_in("bfloat16", args, texts)
    report = {
        **report_head("bf16", args.device),
        "settings": {
            "device": args.device,
            "model": args.model,
            "weights": "real" if args.model == EMBEDDED else "random (numerics only)",
            "documents": len(texts),
            "chunk_chars": args.chunk_chars,
            "max_tokens": args.max_tokens,
            "fraction": FRACTION,
        },
        "seconds": {"float32": fp32_s, "bfloat16": bf16_s},
        "speed_bf16_over_fp32": fp32_s / bf16_s,
        "peak_rss_mib": peak_memory("cpu")["peak_rss_mib"],
        "agreement": agreement(fp32, bf16, domains),
    }
    shown = {key: value for key, value in report["agreement"].items() if key != "documents"}
    print(json.dumps({"seconds": report["seconds"], "agreement": shown}, indent=1))
    print(f"wrote {write_report(report, args.out_dir, 'bf16', args.device)}")


if __name__ == "__main__":
    main()
