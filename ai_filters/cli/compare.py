"""``ai-filters compare``: compare selections that different scorers made of one corpus."""

from __future__ import annotations

import argparse
from pathlib import Path

from ai_filters.cli.common import HelpFormatter
from ai_filters.compare import FIGURES, resolve_specs, write_comparison


def run_compare(args: argparse.Namespace) -> int:
    if args.examples < 0:
        raise ValueError(f"--examples must be >= 0, got {args.examples}")
    specs = resolve_specs(args.selections)
    for spec in specs:
        if spec.note:
            print(f"{spec.name} ({spec.folder}): {spec.note}")
    out = Path(args.out)
    result = write_comparison(specs, out, args.examples)
    print(f"compared {len(specs)} selections over {len(result['domains'])} domains")
    print(f"wrote compare.md, compare.json, {', '.join(FIGURES.values())} into {out}")
    return 0


COMPARE_HELP = """\
Compare selections that different scorers (attention_influence, zero_ablation, perplexity,
random, ...) made of the same corpus, per domain:

- overlap: Jaccard of the selected ids of every pair of selections, with the sizes;
- Spearman rank correlation of every pair of scorers' scores over the documents both scored
  (joined by id; documents scored by only one side are counted as 'only a' / 'only b');
- token lengths (ai_doc_tokens) of selected vs all scored documents: mean, median and the
  share of tokens selected, with box plots;
- the top and bottom documents of each scorer (id, score, tokens, first 200 characters).

Each SEL is an output folder of pipelines/smollm_select.py, as FOLDER or NAME=FOLDER. It must
hold scored/<domain>/*.jsonl.gz, selected/data/<domain>/*.parquet and thresholds.json.
scorer.json ({"scorer", "score_key", "fraction"}) gives the score's metadata key and the
default name; without it the key is attention_influence and the name the folder's.

Writes DIR/compare.md, DIR/compare.json, DIR/jaccard.png, DIR/spearman.png, DIR/tokens.png.
Example: ai-filters compare ai=out/ai ppl=out/ppl rnd=out/random --out out/compare"""


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``compare`` (``args.run(args)`` runs it)."""
    compare = subparsers.add_parser(
        "compare",
        formatter_class=HelpFormatter,
        help="compare selections made by different scorers",
        description=COMPARE_HELP,
    )
    compare.add_argument(
        "selections", nargs="+", metavar="SEL", help="selection folder, or NAME=FOLDER (two+)"
    )
    compare.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    compare.add_argument(
        "--examples", type=int, default=3, metavar="K", help="top and bottom documents shown"
    )
    compare.set_defaults(run=run_compare)
