"""The ``ai-filters`` command line: one module per subcommand, nothing below imports it.

ai-filters detect-heads     find the retrieval heads of a model (heads.json + heatmap)
ai-filters score            score files of documents with AttentionInfluence
ai-filters hub-folder       turn a selection into a Hub-ready dataset folder with its card
ai-filters push             upload such a folder to the Hugging Face Hub
ai-filters nanotron-config  write a nanotron WSD pretraining config for corpus + selection
ai-filters nanotron-check   pre-flight of a nanotron config: schema, data folders, epochs
ai-filters compare          compare selections made by different scorers
ai-filters distill          train a fast text model on a selection's scores
ai-filters status           where a pipeline run stands, stage by stage
"""

from __future__ import annotations

import argparse
import sys

from ai_filters.cli import compare, detect, distill, hub, nanotron, score, status
from ai_filters.cli.common import HelpFormatter
from ai_filters.console import OneLineErrors

DESCRIPTION = """\
AttentionInfluence (arXiv 2505.07293): score pretraining documents by how much a small LM's loss
rises when its retrieval heads are masked, then keep the top documents of each domain.
Typical use: 'ai-filters detect-heads --out heads.json' once per selector model, then
'ai-filters score --heads heads.json --input docs.jsonl --output scored.jsonl'."""

SUBCOMMANDS = (detect, score, hub, nanotron, compare, distill, status)


def build_parser() -> argparse.ArgumentParser:
    """The ``ai-filters`` parser with every subcommand; ``args.run(args)`` runs the chosen one."""
    parser = argparse.ArgumentParser(
        prog="ai-filters", description=DESCRIPTION, formatter_class=HelpFormatter
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; an expected error is one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    with OneLineErrors("ai-filters", args.debug) as errors:
        return args.run(args)
    return errors.exit_code


if __name__ == "__main__":
    sys.exit(main())
