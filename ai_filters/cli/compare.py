"""``ai-filters compare``: compare selections that different scorers made of one corpus."""

from __future__ import annotations

import argparse
from pathlib import Path

from ai_filters.cli.common import HelpFormatter
from ai_filters.selection.compare import FIGURES, resolve_specs
from ai_filters.selection.compare_output import write_comparison


def run_compare(args: argparse.Namespace) -> int:
    if args.examples < 0:
        raise ValueError(f"--examples must be >= 0, got {args.examples}")
    specs = resolve_specs(args.selections)
    out = Path(args.out)
    only_ids = None
    if args.only_ids:
        from ai_filters.distill import read_ids

        only_ids = read_ids(args.only_ids)
    result = write_comparison(specs, out, args.examples, only_ids, args.only_ids or "")
    restricted = result["only_ids"]
    scope = f" on the {restricted['ids']} ids of {restricted['source']}" if restricted else ""
    print(f"compared {len(specs)} selections over {len(result['domains'])} domains{scope}")
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
hold scored/<domain>/*.jsonl.gz, selected/data/<domain>/*.parquet, thresholds.json and
scorer.json ({"scorer", "score_key", "fraction"}), which gives the score's metadata key and
the default name.

With --only-ids PATH (a file of ids, one per line, or a model folder of 'ai-filters distill',
for its held-out ids) every statistic counts those documents alone, and each selection is made
again among them: its top fraction (scorer.json's) of each domain's listed documents by its
score, the thresholds computed from those documents alone (compare.json records them). How
a distilled scorer agrees with the selector on documents it was not trained on, without
thresholds set on the documents it was trained on.

Writes DIR/compare.md, DIR/compare.json, DIR/jaccard.png, DIR/spearman.png, DIR/tokens.png.
Example: ai-filters compare ai=out/ai ppl=out/ppl rnd=out/random --out out/compare"""


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Register ``compare`` (``args.run(args)`` runs it)."""
    compare = commands.add_parser(
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
    compare.add_argument(
        "--only-ids",
        default=None,
        metavar="PATH",
        help="compare on these documents alone: a file of ids or a distilled model folder "
        "(its held-out ids)",
    )
    compare.set_defaults(run=run_compare)
