"""``ai-filters detect-heads``: find the retrieval heads of a model."""

from __future__ import annotations

import argparse
from pathlib import Path

from ai_filters.cli.common import HelpFormatter, add_model_options, load_model_from_args
from ai_filters.engine.heads import DetectionSettings
from ai_filters.engine.retrieval_scores import PROBE_SCORINGS

DEFAULTS = DetectionSettings()


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``detect-heads`` (``args.run(args)`` runs it); its defaults are
    :class:`DetectionSettings`'s."""
    parser = commands.add_parser(
        "detect-heads",
        formatter_class=HelpFormatter,
        help="find the retrieval heads of a model",
        description="Run synthetic 3-shot key-value retrieval probes and keep the heads that "
        "copy the answer from the context most often (writes heads.json and a heatmap).",
    )
    add_model_options(parser)
    parser.add_argument(
        "--num-probes",
        type=int,
        default=DEFAULTS.num_probes,
        help="retrieval probes (the paper uses 800)",
    )
    parser.add_argument(
        "--top-fraction",
        type=float,
        default=DEFAULTS.top_fraction,
        help="fraction of all (layer, head) pairs kept as retrieval heads",
    )
    parser.add_argument(
        "--max-tokens",
        dest="probe_tokens",
        type=int,
        default=DEFAULTS.probe_tokens,
        help="tokens per probe, answer included (None: min(4096, context))",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help="seed of keys and sentence choice"
    )
    parser.add_argument(
        "--probe-scoring",
        choices=PROBE_SCORINGS,
        default=DEFAULTS.probe_scoring,
        help="gold: the gold answer is fed in and every probe counts (the AttentionInfluence "
        "paper's score); generated: the model decodes its answer greedily, a head copies the "
        "tokens it produced, and only probes it retrieved count (Wu et al. 2024)",
    )
    parser.add_argument(
        "--sentences",
        default=DEFAULTS.sentences,
        help="probe sentence source: .txt, .jsonl, .jsonl.gz or .parquet documents "
        "(default: the Python Language Reference shipped with CPython)",
    )
    parser.add_argument("--out", required=True, help="heads file to write (JSON)")
    parser.add_argument("--plot", default=None, help="heatmap PNG to write (optional)")
    parser.set_defaults(run=run_detect)


def detection_settings_from_args(args: argparse.Namespace) -> DetectionSettings:
    """The :class:`DetectionSettings` the options of ``detect-heads`` give; ``ValueError`` in
    one line naming a bad value."""
    return DetectionSettings(
        num_probes=args.num_probes,
        probe_tokens=args.probe_tokens,
        top_fraction=args.top_fraction,
        seed=args.seed,
        probe_scoring=args.probe_scoring,
        sentences=args.sentences,
        allow_unsupported=bool(args.allow_unsupported_architecture),
    )


def run_detect(args: argparse.Namespace) -> int:
    """Detect the heads and write the heads file (and the heatmap); a bad setting fails before
    the model loads."""
    from ai_filters.engine.heads import detect_and_save

    settings = detection_settings_from_args(args)
    plot = Path(args.plot) if args.plot else None
    detect_and_save(load_model_from_args(args), settings, Path(args.out), plot)
    return 0
