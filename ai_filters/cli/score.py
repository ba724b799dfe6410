"""``ai-filters score``: score files of documents with AttentionInfluence."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai_filters.cli.common import HelpFormatter, add_model_options, load_model_from_args
from ai_filters.engine.options import add_engine_options, engine_settings_from_options


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``score`` (``args.run(args)`` runs it)."""
    parser = commands.add_parser(
        "score",
        formatter_class=HelpFormatter,
        help="score documents with AttentionInfluence",
        description="Add attention_influence, ai_loss_base, ai_loss_ref, ai_n_tokens and "
        "ai_doc_tokens to the metadata of every document. Documents that cannot be scored go to "
        "OUTPUT's .skipped file (e.g. out.skipped.jsonl) with metadata.skip_reason.",
    )
    add_model_options(parser, default=None)
    parser.add_argument("--heads", required=True, help="heads file from detect-heads")
    parser.add_argument(
        "--input",
        required=True,
        nargs="+",
        help=".jsonl, .jsonl.gz or .parquet documents (one or more files)",
    )
    parser.add_argument("--output", required=True, help=".jsonl, .jsonl.gz or .parquet to write")
    parser.add_argument("--text-key", default="text", help="field holding the document text")
    parser.add_argument(
        "--domain-key", default="domain", help="metadata field holding the domain (for the summary)"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first unreadable line or file (default: record it in the skipped "
        "file with its path and line, and go on)",
    )
    add_engine_options(parser.add_argument_group("scoring engine"))
    parser.add_argument(
        "--ignore-fingerprint",
        action="store_true",
        help="accept a heads file found on other weights of the same shape",
    )
    parser.set_defaults(run=run_score)


def run_score(args: argparse.Namespace) -> int:
    from ai_filters.console import progress_bar
    from ai_filters.documents import check_writable_folder
    from ai_filters.engine.heads_file import RetrievalHeads
    from ai_filters.engine.score_files import score_file, skipped_path
    from ai_filters.engine.scoring import ScoringEngine

    heads = RetrievalHeads.load(args.heads)
    missing = [path for path in args.input if not Path(path).is_file()]
    if missing:
        raise FileNotFoundError(f"input file {missing[0]} does not exist")
    skipped_path(args.output)  # rejects an unsupported output type before loading the model
    check_writable_folder(Path(args.output).parent, "--output")
    args.model = args.model or heads.model
    settings = engine_settings_from_options(vars(args))  # a bad setting fails before loading
    loaded = load_model_from_args(args)
    heads.check_model(loaded, strict_fingerprint=not args.ignore_fingerprint)
    scorer = ScoringEngine(loaded, heads.selected_heads, settings.scoring)
    bar, update = progress_bar(None, "doc", "scoring")
    with bar:
        summary = score_file(
            scorer,
            args.input,
            args.output,
            args.text_key,
            args.domain_key,
            progress=update,
            strict=args.strict,
        )
    print(summary.format())
    print(f"wrote {args.output} and {skipped_path(args.output)}", file=sys.stderr)
    return 0
