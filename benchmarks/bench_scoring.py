"""Speed, memory, padding and agreement of AttentionInfluence scoring: the engine against the
naive way.

The naive way is what a user writes first: two model copies (the second with the retrieval
heads' query rows zeroed, which is exactly uniform masking on these Llama-shaped models), and
two full Hugging Face forward passes with ``labels=input_ids`` per document at batch size 1.
The engine is ``ai_filters.engine.scoring.ScoringEngine.score_token_ids``, one document per row
(``engine``), several documents packed per row (``packed``: the engine's kernel choice, flex
attention on CUDA; ``packed_sdpa``: SDPA with a block-diagonal mask), or packed with the decoder
layers compiled (``compiled``). All score the same documents: real text of the four demo domains
(``--texts``, or the local corpus), tokenized with the model's tokenizer, cut either into
windows of exactly ``--doc-tokens`` tokens (``--lengths fixed``) or into documents whose
lengths follow a web corpus (``--lengths web-mix``: log-normal around a median of
``--median-tokens``, truncated at ``--max-tokens``). The model is the embedded one or any model
folder, e.g. one with random weights written by ``benchmarks/random_model.py``.

Each variant runs in its own subprocess (this script re-invoked with a hidden ``--variant``
flag), so its peak memory is its own; with ``--rounds`` the variants alternate. The parent then
measures a matmul peak on the same device and writes one JSON file under
``benchmarks/results/``. Run with ``--help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from common import (
    add_variant_options,
    benchmark_documents,
    checked,
    corpus_texts,
    document_lengths,
    heads_of,
    model_config,
    model_documents_parser,
    peak_memory,
    report_head,
    variant_in_subprocess,
    write_report,
)
from scoring_variants import (
    ENGINE_VARIANTS,
    VARIANTS,
    EngineOptions,
    comparison,
    matmul_peak,
    run_scoring_variant,
    variant_summary,
)

from ai_filters.demo.corpus import DOMAINS
from ai_filters.engine.heads_file import RetrievalHeads
from ai_filters.engine.models import DTYPES, default_dtype, load_model, load_tokenizer
from ai_filters.engine.numerics import loss_rtol
from ai_filters.engine.scoring import ScoringConfig


# ------------------------------------------------------------------------------- arguments
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; ``--variant``, ``--docs-file`` and ``--result-file`` are internal."""
    defaults = ScoringConfig()
    parser = model_documents_parser(
        "Benchmark AttentionInfluence scoring: the naive baseline (two model copies, two "
        "Hugging Face forward passes with labels per document, batch size 1) against "
        "ai_filters' ScoringEngine (one document per row, packed, or packed and compiled), "
        "on the same real documents. Reports tokens/s, the speed-ups, the share of fed "
        "tokens that are padding, the largest score and loss differences, each variant's "
        "peak memory (each runs in its own subprocess) and model FLOP utilisation against a "
        "matmul peak measured in the same run; writes JSON to benchmarks/results/.",
        num_docs=32,
    )
    parser.add_argument(
        "--heads",
        type=Path,
        default=None,
        help="heads file to mask; default: the 14 detected heads of the embedded model, or 5%% "
        "of the heads of the model's middle layers drawn with a fixed seed",
    )
    parser.add_argument(
        "--lengths",
        choices=("fixed", "web-mix"),
        default="fixed",
        help="fixed: every document --doc-tokens long; web-mix: log-normal lengths (median "
        "--median-tokens, sigma --length-sigma) truncated at --max-tokens",
    )
    parser.add_argument("--doc-tokens", type=int, default=512, help="fixed: tokens per document")
    parser.add_argument(
        "--length-sigma",
        type=float,
        default=1.0,
        help="web-mix: standard deviation of log(length); 1.0 puts the mean at 1.65x the median",
    )
    parser.add_argument(
        "--variants",
        default="naive,engine",
        help=f"comma-separated, from {', '.join(VARIANTS)}; the first is the others' baseline",
    )
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="engine: rows per batch"
    )
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=defaults.batch_tokens,
        help="engine: padded tokens per batch (default: the engine's choice for the device)",
    )
    parser.add_argument(
        "--pack-tokens",
        type=int,
        default=None,
        help="packed: tokens per row (default: the engine's, the longest document)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the variants alternately this many times and keep each one's fastest round "
        "(on a noisy machine; every round's time and speed-up is in the JSON)",
    )
    add_variant_options(parser, VARIANTS)
    args = checked(parser, argv)
    args.variant_list = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = set(args.variant_list) - set(VARIANTS)
    if unknown or not args.variant_list:
        parser.error(f"--variants: choose from {', '.join(VARIANTS)}")
    if not set(args.variant_list) & set(ENGINE_VARIANTS):
        parser.error("--variants must include an engine variant")
    if args.num_docs < 1 or args.doc_tokens < 2 or args.max_tokens < 2:
        parser.error("--num-docs must be at least 1, --doc-tokens and --max-tokens at least 2")
    return args


def run_dtype(args: argparse.Namespace) -> torch.dtype:
    """The dtype asked for, or the device's default (fp32 on CPU, bf16 on GPU)."""
    return DTYPES[args.dtype] if args.dtype else default_dtype(torch.device(args.device))


def longest_document(args: argparse.Namespace) -> int:
    return args.doc_tokens if args.lengths == "fixed" else args.max_tokens


def lengths_of(args: argparse.Namespace) -> list[int]:
    return document_lengths(
        args.num_docs,
        args.lengths,
        args.doc_tokens,
        args.median_tokens,
        args.length_sigma,
        longest_document(args),
    )


def benchmark_heads(args: argparse.Namespace) -> list[tuple[int, int]]:
    """The heads to mask: ``--heads``, else :func:`common.heads_of` the model."""
    if args.heads is not None:
        return RetrievalHeads.load(args.heads).selected_heads
    return heads_of(args.model)


# -------------------------------------------------------------------------------- variants
def run_variant(args: argparse.Namespace) -> None:
    """Subprocess entry: load, score the documents of ``--docs-file``, write ``--result-file``."""
    documents = json.loads(args.docs_file.read_text())["documents"]
    start = time.perf_counter()
    loaded = load_model(args.model, device=args.device, dtype=run_dtype(args))
    heads = benchmark_heads(args)
    load_s = time.perf_counter() - start
    options = EngineOptions(
        longest_document(args), args.batch_size, args.batch_tokens, args.pack_tokens
    )
    result = run_scoring_variant(args.variant, loaded, heads, documents, options)
    result.update(peak_memory(loaded.device), load_s=load_s, threads=torch.get_num_threads())
    args.result_file.write_text(json.dumps(result))


# ---------------------------------------------------------------------------------- summary
def print_table(report: dict) -> None:
    """The human-readable summary of a report."""
    setup, host = report["settings"], report["machine"]
    memory_key = "peak_gpu_allocated_mib" if setup["device"] == "cuda" else "peak_rss_mib"
    lengths = setup["lengths"]
    print(
        f"\n{setup['model']} on {host.get('gpu', host['cpu'])}, {setup['dtype']}, "
        f"{host['torch_threads']} torch threads, {setup['num_docs']} docs, "
        f"{setup['scored_tokens']} tokens ({lengths['kind']}: median {lengths['median']}, "
        f"mean {lengths['mean']:.0f}, max {lengths['max']})"
    )
    print(
        f"{'variant':<9} {'tokens/s':>10} {'seconds':>9} {'padding':>8} {'peak MiB':>9} "
        f"{'GFLOP':>9} {'MFU':>7}"
    )
    for name, variant in report["variants"].items():
        print(
            f"{name:<9} {variant['tokens_per_s']:>10.1f} {variant['elapsed_s']:>9.2f} "
            f"{variant['padding_share']:>8.1%} {variant[memory_key]:>9.0f} "
            f"{variant['flops'] / 1e9:>9.1f} {variant['mfu']:>7.1%}"
        )
    peak = report["matmul_peak"]
    print(
        f"matmul peak: {peak['flops_per_s'] / 1e9:.1f} GFLOP/s ({peak['dtype']}, {peak['size']}^2)"
    )
    for name, diff in report["comparisons"].items():
        verdict = "agree" if diff["scores_agree"] else "DISAGREE"
        rounds = ", ".join(f"{ratio:.2f}x" for ratio in diff["speedup_per_round"])
        print(
            f"{name}: {diff['speedup']:.2f}x (rounds: {rounds}); scores {verdict} within "
            f"rounding: max |score diff| {diff['max_abs_diff_score']:.2e} = "
            f"{diff['max_score_diff_over_tolerance']:.2f} x its tolerance "
            f"({diff['dtype']}, loss rtol {diff['loss_rtol']:.1e}, "
            "see ai_filters/engine/numerics.py)"
        )


def settings(args: argparse.Namespace, documents: list[dict], shared_layers: int) -> dict:
    """The benchmark's settings as recorded in the JSON."""
    domains = [document["domain"] for document in documents]
    lengths = [len(document["ids"]) for document in documents]
    return {
        "model": args.model,
        "device": args.device,
        "dtype": str(run_dtype(args)).removeprefix("torch."),
        "num_docs": args.num_docs,
        "lengths": {
            "kind": args.lengths,
            "doc_tokens": args.doc_tokens if args.lengths == "fixed" else None,
            "median_tokens": args.median_tokens if args.lengths == "web-mix" else None,
            "sigma": args.length_sigma if args.lengths == "web-mix" else None,
            "max_tokens": longest_document(args),
            "median": float(np.median(lengths)),
            "mean": float(np.mean(lengths)),
            "min": min(lengths),
            "max": max(lengths),
            "truncated": sum(length == longest_document(args) for length in lengths),
        },
        "scored_tokens": sum(lengths),
        "variants": args.variant_list,
        "batch_size": args.batch_size,
        "batch_tokens": args.batch_tokens,
        "pack_tokens": args.pack_tokens,
        "rounds": args.rounds,
        "heads": [list(head) for head in benchmark_heads(args)],
        "engine_shared_layers": shared_layers,
        "documents_per_domain": {domain: domains.count(domain) for domain in DOMAINS},
    }


def benchmark(args: argparse.Namespace, argv: Sequence[str]) -> dict:
    """Run the variants in subprocesses, measure the matmul peak, and assemble the report; each
    variant after the first is compared with the first."""
    tokenizer = load_tokenizer(args.model)
    documents = benchmark_documents(tokenizer, lengths_of(args), corpus_texts(args.texts))
    variants = args.variant_list
    with tempfile.TemporaryDirectory(prefix="bench_scoring.") as work:
        docs_file = Path(work) / "documents.json"
        docs_file.write_text(json.dumps({"documents": [doc["ids"] for doc in documents]}))
        rounds: dict[str, list[dict]] = {v: [] for v in variants}
        for _ in range(args.rounds):
            for variant in variants:
                rounds[variant].append(
                    variant_in_subprocess(__file__, argv, variant, docs_file, Path(work))
                )
    results = {v: min(runs, key=lambda run: run["elapsed_s"]) for v, runs in rounds.items()}
    device = torch.device(args.device)
    peak = matmul_peak(device, run_dtype(args))
    engine_name = next(v for v in variants if v in ENGINE_VARIANTS)
    shared_layers = results[engine_name]["shared_layers"]
    scored = sum(len(document["ids"]) for document in documents)
    summaries = {v: variant_summary(r, scored, peak["flops_per_s"]) for v, r in results.items()}
    rtol = loss_rtol(model_config(args.model), longest_document(args), run_dtype(args))
    baseline, *others = variants
    comparisons = {}
    for name in others:
        diff = comparison(summaries[baseline], summaries[name], rtol, run_dtype(args))
        diff["speedup_per_round"] = [
            first["elapsed_s"] / run["elapsed_s"]
            for first, run in zip(rounds[baseline], rounds[name], strict=True)
        ]
        comparisons[f"{name}/{baseline}"] = diff
    return {
        **report_head("scoring", device),
        "settings": settings(args, documents, shared_layers),
        "matmul_peak": peak,
        "variants": summaries,
        "comparisons": comparisons,
        "rounds_elapsed_s": {v: [run["elapsed_s"] for run in runs] for v, runs in rounds.items()},
    }


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.variant:
        run_variant(args)
        return
    report = benchmark(args, argv)
    print_table(report)
    print(f"wrote {write_report(report, args.out_dir, 'scoring', args.device)}")


if __name__ == "__main__":
    main()
