"""``ai-filters detect-heads``: find the retrieval heads of a model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ai_filters.cli.common import HelpFormatter, add_model_options, load_model_from_args
from ai_filters.engine.retrieval_scores import DEFAULT_PROBE_SCORING, PROBE_SCORINGS


def add_parsers(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "detect-heads",
        formatter_class=HelpFormatter,
        help="find the retrieval heads of a model",
        description="Run synthetic 3-shot key-value retrieval probes and keep the heads that "
        "copy the answer from the context most often (writes heads.json and a heatmap).",
    )
    add_model_options(parser)
    parser.add_argument(
        "--num-probes", type=int, default=800, help="retrieval probes (the paper uses 800)"
    )
    parser.add_argument(
        "--top-fraction",
        type=float,
        default=0.05,
        help="fraction of all (layer, head) pairs kept as retrieval heads",
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="tokens per probe, answer included (None: min(4096, context))",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of keys and sentence choice")
    parser.add_argument(
        "--probe-scoring",
        choices=PROBE_SCORINGS,
        default=DEFAULT_PROBE_SCORING,
        help="gold: the gold answer is fed in and every probe counts (the AttentionInfluence "
        "paper's score); generated: the model decodes its answer greedily, a head copies the "
        "tokens it produced, and only probes it retrieved count (Wu et al. 2024)",
    )
    parser.add_argument(
        "--sentences",
        default=None,
        help="probe sentence source: .txt, .jsonl, .jsonl.gz or .parquet documents "
        "(default: the Python Language Reference shipped with CPython)",
    )
    parser.add_argument("--out", required=True, help="heads file to write (JSON)")
    parser.add_argument("--plot", default=None, help="heatmap PNG to write (optional)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ai_filters.engine.heads import detect_and_save

    detect_and_save(
        load_model_from_args(args),
        Path(args.out),
        Path(args.plot) if args.plot else None,
        args.num_probes,
        args.max_tokens,
        args.top_fraction,
        args.seed,
        args.sentences,
        allow_unsupported=args.allow_unsupported_architecture,
        probe_scoring=args.probe_scoring,
    )
    return 0
